public struct HealthResponse: Codable, Sendable, Equatable {
    public var status: String
    public var nodeId: String
    public var version: String
    /// Seconds since the daemon started.
    public var uptime: Double

    public init(status: String, nodeId: String, version: String, uptime: Double) {
        self.status = status
        self.nodeId = nodeId
        self.version = version
        self.uptime = uptime
    }
}

public struct IdentityResponse: Codable, Sendable, Equatable {
    public var nodeId: String
    public var hostname: String
    public var platform: String
    public var version: String
    public var port: Int
    public var capabilities: [String]
    /// Base64 of the node's P-256 public key (X9.63); the nodeId is derived from it.
    public var publicKey: String
    /// Hex SHA-256 of the TLS certificate's SubjectPublicKeyInfo: what peers pin.
    public var fingerprint: String
    /// Whether peers are served over HTTPS.
    public var tls: Bool

    public init(nodeId: String, hostname: String, platform: String, version: String, port: Int,
                capabilities: [String], publicKey: String, fingerprint: String, tls: Bool) {
        self.nodeId = nodeId
        self.hostname = hostname
        self.platform = platform
        self.version = version
        self.port = port
        self.capabilities = capabilities
        self.publicKey = publicKey
        self.fingerprint = fingerprint
        self.tls = tls
    }
}

public struct StatusResponse: Codable, Sendable, Equatable {
    public var nodeId: String
    public var hostname: String
    public var version: String
    public var port: Int
    public var uptime: Double
    public var pid: Int
    public var dataDir: String
    public var peers: Int
    public var peersOnline: Int
    public var jobs: Int
    public var context: Int

    public init(nodeId: String, hostname: String, version: String, port: Int, uptime: Double, pid: Int,
                dataDir: String, peers: Int, peersOnline: Int, jobs: Int, context: Int) {
        self.nodeId = nodeId
        self.hostname = hostname
        self.version = version
        self.port = port
        self.uptime = uptime
        self.pid = pid
        self.dataDir = dataDir
        self.peers = peers
        self.peersOnline = peersOnline
        self.jobs = jobs
        self.context = context
    }
}

/// One audited request. Times are Unix epoch milliseconds.
public struct AuditEntry: Codable, Sendable, Equatable {
    public var id: Int64
    public var time: Int64
    public var requestId: String
    public var caller: String
    public var method: String
    public var path: String
    public var status: Int
    public var durationMs: Double
    public var remote: String
    /// Requests this row stands for: successful reads from one caller to one path are
    /// summarised per flush (the first one's time and id, the mean duration); else 1.
    public var count: Int

    public init(id: Int64, time: Int64, requestId: String, caller: String, method: String, path: String,
                status: Int, durationMs: Double, remote: String, count: Int = 1) {
        self.id = id
        self.time = time
        self.requestId = requestId
        self.caller = caller
        self.method = method
        self.path = path
        self.status = status
        self.durationMs = durationMs
        self.remote = remote
        self.count = count
    }

    private enum CodingKeys: String, CodingKey {
        case id, time, requestId, caller, method, path, status, durationMs, remote, count
    }

    /// `count` may be missing (a daemon from before it existed): 1.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(id: try container.decode(Int64.self, forKey: .id), time: try container.decode(Int64.self, forKey: .time),
                  requestId: try container.decode(String.self, forKey: .requestId),
                  caller: try container.decode(String.self, forKey: .caller),
                  method: try container.decode(String.self, forKey: .method),
                  path: try container.decode(String.self, forKey: .path),
                  status: try container.decode(Int.self, forKey: .status),
                  durationMs: try container.decode(Double.self, forKey: .durationMs),
                  remote: try container.decode(String.self, forKey: .remote),
                  count: try container.decodeIfPresent(Int.self, forKey: .count) ?? 1)
    }
}

public struct AuditListResponse: Codable, Sendable {
    public var entries: [AuditEntry]
    public init(entries: [AuditEntry]) { self.entries = entries }
}

/// `loopsyd check-database`: what `loopsy doctor` reports about the database, found by the
/// program that owns it (the CLI links no SQLite).
public struct DatabaseCheck: Codable, Sendable, Equatable {
    /// `PRAGMA integrity_check`'s lines: ["ok"] when sound.
    public var integrity: [String]
    /// The newest migration applied to the file, and the newest this build has.
    public var applied: Int
    public var available: Int

    public init(integrity: [String], applied: Int, available: Int) {
        self.integrity = integrity
        self.applied = applied
        self.available = available
    }
}

/// The areas of a node that change notifications (`GET /events`, `event: change`) name.
public enum ChangeTopic: String, Codable, Sendable, CaseIterable {
    case context, messages, peers, execute, transfer, pair, locks, approvals, grants
    case aiTasks = "ai-tasks"

    /// The area an API path (without its query) belongs to: its segment after the API base (a
    /// relayed call counts as `peers`).
    /// Read as bytes: every successful write runs this (splitting the path into Substrings and
    /// joining two of them again was 15k instructions, 6% of a context PUT).
    public init?(path: String) {
        let slash = UInt8(ascii: "/")
        let bytes = path.utf8
        var index = bytes.startIndex
        // Empty segments are skipped, as a split would.
        for segmentNumber in 0...Self.baseSegments.count {
            while index != bytes.endIndex, bytes[index] == slash { index = bytes.index(after: index) }
            guard index != bytes.endIndex else { return nil }
            var end = index
            while end != bytes.endIndex, bytes[end] != slash { end = bytes.index(after: end) }
            let segment = bytes[index..<end]
            if segmentNumber < Self.baseSegments.count {
                guard segment.elementsEqual(Self.baseSegments[segmentNumber]) else { return nil }
                index = end
                continue
            }
            // Compared as bytes: a String made of the segment and matched to each raw value in
            // turn was 2,000 instructions a write.
            guard let topic = Self.rawBytes.first(where: { $0.bytes.elementsEqual(segment) })?.topic else { return nil }
            self = topic
            return
        }
        return nil
    }

    /// Each topic's raw value, as bytes.
    private static let rawBytes: [(topic: ChangeTopic, bytes: [UInt8])] = allCases.map { ($0, Array($0.rawValue.utf8)) }

    /// The API base's segments ("api", "v1").
    private static let baseSegments: [[UInt8]] =
        LoopsyVersion.apiBase.utf8.split(separator: UInt8(ascii: "/")).map { Array($0) }
}
