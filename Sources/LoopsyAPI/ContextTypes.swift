/// A context store entry. Times are Unix epoch milliseconds; `ttl` is seconds.
public struct ContextEntry: Codable, Sendable, Equatable {
    public var key: String
    public var value: String
    public var fromNodeId: String
    public var createdAt: Int64
    public var updatedAt: Int64
    public var ttl: Int?
    public var expiresAt: Int64?
    /// Starts at 1 and grows by one on every write of this key.
    public var revision: Int64

    public init(key: String, value: String, fromNodeId: String, createdAt: Int64, updatedAt: Int64,
                ttl: Int?, expiresAt: Int64?, revision: Int64) {
        self.key = key
        self.value = value
        self.fromNodeId = fromNodeId
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.ttl = ttl
        self.expiresAt = expiresAt
        self.revision = revision
    }
}

public struct ContextPutRequest: Codable, Sendable {
    public var value: String
    /// Seconds until the entry expires; absent or null for no expiry.
    public var ttl: Int?
    /// Compare-and-set: write only if the key's current revision is this (0: only if absent);
    /// otherwise 412 `revision_mismatch` with the current entry.
    public var ifRevision: Int64?

    public init(value: String, ttl: Int? = nil, ifRevision: Int64? = nil) {
        self.value = value
        self.ttl = ttl
        self.ifRevision = ifRevision
    }
}

/// The body of a 412 `revision_mismatch`: the error, and the entry as it is now (null when the
/// key does not exist), so the caller can retry from it without another read.
public struct RevisionMismatchBody: Codable, Sendable {
    public var error: ErrorBody.Detail
    public var current: ContextEntry?
    public init(message: String, current: ContextEntry?) {
        error = ErrorBody.Detail(code: .revisionMismatch, message: message)
        self.current = current
    }

    private enum CodingKeys: String, CodingKey { case error, current }

    /// `current` is always there: null when the key does not exist.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(error, forKey: .error)
        try container.encode(current, forKey: .current)
    }
}

/// A page of a context listing. `more`: entries remain past the last one; the next page is
/// asked for with `afterKey` = `nextAfterKey` (the last entry's key). A daemon caps a page by
/// bytes as well as by `limit`, so a page can end early with `more` set.
public struct ContextListResponse: Codable, Sendable {
    public var entries: [ContextEntry]
    public var more: Bool
    public var nextAfterKey: String?

    public init(entries: [ContextEntry], more: Bool = false) {
        self.entries = entries
        self.more = more
        nextAfterKey = more ? entries.last?.key : nil
    }

    private enum CodingKeys: String, CodingKey { case entries, more, nextAfterKey }

    /// A daemon from before pages had neither field: its answer was the whole listing.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        entries = try container.decode([ContextEntry].self, forKey: .entries)
        more = try container.decodeIfPresent(Bool.self, forKey: .more) ?? false
        nextAfterKey = try container.decodeIfPresent(String.self, forKey: .nextAfterKey)
    }
}

public struct DeletedResponse: Codable, Sendable {
    public var deleted: Bool
    public init(deleted: Bool) { self.deleted = deleted }
}

public enum ContextLimits {
    /// Longest key in UTF-8 bytes.
    public static let maxKeyBytes = 512
}

/// One change of a context key, as a watch reports it. `seq` is the change's cursor (it grows
/// with every change on the node); `value` is the value it wrote when that is still the key's
/// current value (otherwise read the key, or follow the later changes).
public struct ContextChange: Codable, Sendable, Equatable {
    public var seq: Int64
    public var key: String
    /// put, delete or expire
    public var kind: String
    public var revision: Int64
    public var at: Int64
    public var value: String?
    public init(seq: Int64, key: String, kind: String, revision: Int64, at: Int64, value: String?) {
        self.seq = seq
        self.key = key
        self.kind = kind
        self.revision = revision
        self.at = at
        self.value = value
    }
}

/// `GET /context?prefix=P&after=C&wait=S`: the changes after cursor C (waiting up to S seconds
/// for one), and the cursor to pass next.
public struct ContextChangesResponse: Codable, Sendable {
    public var changes: [ContextChange]
    public var cursor: Int64
    public init(changes: [ContextChange], cursor: Int64) {
        self.changes = changes
        self.cursor = cursor
    }
}
