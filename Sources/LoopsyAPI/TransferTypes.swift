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

public struct TransferListResponse: Codable, Sendable {
    public var files: [FileEntry]
    public init(files: [FileEntry]) { self.files = files }
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
