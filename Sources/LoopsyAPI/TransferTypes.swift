/// `POST /transfer/push` answers with what was stored.
public struct TransferPushResult: Codable, Sendable, Equatable {
    public var path: String
    public var size: Int64
    public var sha256: String
    public var durationMs: Double

    public init(path: String, size: Int64, sha256: String, durationMs: Double) {
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.durationMs = durationMs
    }
}

public struct TransferPullRequest: Codable, Sendable {
    public var sourcePath: String
    public init(sourcePath: String) { self.sourcePath = sourcePath }
}

public struct TransferPathRequest: Codable, Sendable {
    public var path: String
    public init(path: String) { self.path = path }
}

/// One directory entry of `POST /transfer/list`. `modified` is epoch ms; `mode` octal text.
public struct FileEntry: Codable, Sendable, Equatable {
    public var name: String
    public var path: String
    /// "file", "directory", "symlink" or "other".
    public var type: String
    public var size: Int64
    public var modified: Int64
    public var mode: String

    public init(name: String, path: String, type: String, size: Int64, modified: Int64, mode: String) {
        self.name = name
        self.path = path
        self.type = type
        self.size = size
        self.modified = modified
        self.mode = mode
    }
}

/// The body of `POST /transfer/list`: a directory, and where the page starts: after the name
/// `afterName` (byte-wise; the previous page's `nextAfterName`).
public struct TransferListRequest: Codable, Sendable {
    public var path: String
    public var afterName: String?
    public init(path: String, afterName: String? = nil) {
        self.path = path
        self.afterName = afterName
    }
}

/// A page of a directory listing, by name (byte-wise). `more`: names remain past the last
/// entry; ask again with `afterName` = `nextAfterName`.
public struct TransferListResponse: Codable, Sendable {
    public var files: [FileEntry]
    public var more: Bool
    public var nextAfterName: String?

    public init(files: [FileEntry], more: Bool = false) {
        self.files = files
        self.more = more
        nextAfterName = more ? files.last?.name : nil
    }

    private enum CodingKeys: String, CodingKey { case files, more, nextAfterName }

    /// A daemon from before pages had neither field: its answer was the whole directory.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        files = try container.decode([FileEntry].self, forKey: .files)
        more = try container.decodeIfPresent(Bool.self, forKey: .more) ?? false
        nextAfterName = try container.decodeIfPresent(String.self, forKey: .nextAfterName)
    }
}

public struct ChecksumResponse: Codable, Sendable, Equatable {
    public var path: String
    public var size: Int64
    public var sha256: String

    public init(path: String, size: Int64, sha256: String) {
        self.path = path
        self.size = size
        self.sha256 = sha256
    }
}

public enum TransferHeaders {
    /// Whole-file SHA-256 (hex) on pull responses, and an upload's expected checksum on push.
    public static let sha256 = "X-Loopsy-Sha256"
}
