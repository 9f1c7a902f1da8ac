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
        error = ErrorBody.Detail(code: "revision_mismatch", message: message)
        self.current = current
    }
}

public struct ContextListResponse: Codable, Sendable {
    public var entries: [ContextEntry]
    public init(entries: [ContextEntry]) { self.entries = entries }
}

public struct DeletedResponse: Codable, Sendable {
    public var deleted: Bool
    public init(deleted: Bool) { self.deleted = deleted }
}

public enum ContextLimits {
    /// Longest key in UTF-8 bytes.
    public static let maxKeyBytes = 512
}
