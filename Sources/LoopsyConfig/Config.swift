import LoopsyAPI

/// Everything `config.yaml` can say, with the seed README's defaults.
public struct LoopsyConfig: Sendable, Equatable {
    public struct Server: Sendable, Equatable {
        public var port = Int(19532)
        public var host = "0.0.0.0"
        public var hostname: String?
        /// MHD worker threads; 0 picks one per core (at least 2).
        public var threads = 0
        /// Seconds a connection may stay idle (or dribble a request) before it is closed.
        public var connectionTimeout = 30
        /// Open connections from other machines per listener; more are refused (or, for loopback
        /// clients past their reserve, wait in the kernel's accept queue).
        public var maxConnections = 1000
        /// Open connections one remote address may hold.
        public var maxConnectionsPerAddress = 64
        /// Connections on top of maxConnections that only loopback clients (CLI, MCP, dashboard) can use.
        public var loopbackReserve = 64
        /// Seconds a remote client has to send a whole request head, from connecting or from its
        /// previous request's end.
        public var headerTimeout = 15
        /// KiB of memory per connection for the request head (with a copy of its cookies) and
        /// the reads of a body (see `HTTPServerOptions.connectionMemory`).
        public var connectionMemoryKiB = 16
    }
    public struct Auth: Sendable, Equatable {
        public var apiKey = ""
        /// Extra accepted keys by name (hand-made setups; pairing stores peer keys in SQLite).
        public var allowedKeys: [String: String] = [:]
    }
    public struct TLS: Sendable, Equatable {
        /// On by default (`loopsy init` writes it): peers' credentials never cross the LAN in
        /// clear. Loopback clients always get plain HTTP.
        public var enabled = true
        public var pinnedCerts: [String: String] = [:]
    }
    public struct Execution: Sendable, Equatable {
        public var denylist = ["rm", "rmdir", "format", "mkfs", "dd", "shutdown", "reboot"]
        /// When set, only these programs run.
        public var allowlist: [String]?
        public var maxConcurrent = 10
        /// Milliseconds, applied when a caller gives no timeout.
        public var defaultTimeout = 300_000
        /// Milliseconds; the most a caller may ask for.
        public var maxTimeout = 3_600_000
        /// Bytes kept per output stream of a job.
        public var maxOutputBytes = 10 * 1024 * 1024
        /// Names of the daemon's environment variables passed to commands on top of the minimal
        /// set (HOME, USER, LOGNAME, SHELL, LANG, LC_ALL, TZ, TMPDIR, TERM, PATH).
        public var environment: [String] = []
    }
    public struct Transfer: Sendable, Equatable {
        public var allowedPaths = ["~"]
        public var deniedPaths = ["~/.ssh", "~/.gnupg", "~/.loopsy"]
        public var maxFileSize = 1_073_741_824
        /// Dotfiles and dot-directories that run code (~/.bashrc, ~/.config/systemd, …) are refused
        /// to everyone but the owner; paths listed here are let through.
        public var allowedDotfiles: [String] = []
    }
    /// Requests per minute per caller; 0 switches a category's limit off.
    public struct RateLimits: Sendable, Equatable {
        public var execute = 30
        public var transfer = 10
        public var context = 60
        /// Pairing messages per minute per source address (the routes need no key).
        public var pairing = 10
        /// The node's own key on loopback (its CLI, MCP server, dashboard) is not limited: limits
        /// protect the node from others, and an agent script doing a few operations a second must
        /// not meet 429s. False limits it like every other caller.
        public var exemptLocalOwner = true
    }
    public struct AITasks: Sendable, Equatable {
        /// The Claude Code CLI (a name looked up on PATH, or a path).
        public var claudePath = "claude"
        public var maxConcurrent = 3
        /// A task running longer is stopped.
        public var maxDurationSeconds = 3600
        /// A permission request nobody answers is denied after this long.
        public var approvalTimeoutSeconds = 300
        /// Finished tasks (and their events) are kept this long.
        public var retentionDays = 7
        /// Event data stored per task: past it, only the events a reader needs (the session, what
        /// asks for a person, the result, the end) are kept.
        public var maxEventBytes = 64 * 1024 * 1024
        /// Names of the daemon's environment variables Claude Code gets on top of the minimal set.
        public var environment = ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL",
                                  "ANTHROPIC_SMALL_FAST_MODEL", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX",
                                  "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "DISABLE_TELEMETRY",
                                  "DISABLE_AUTOUPDATER", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"]
    }
    /// Live Claude Code sessions (loopsy-mcp as a channel).
    public struct Channels: Sendable, Equatable {
        /// Peers (names or nodeIds) a session's permission prompts are forwarded to, as messages
        /// of type approval; they answer with `loopsy approve` if they hold the approvals grant.
        public var approvers: [String] = []
        /// A prompt nobody answers expires after this long (the terminal's dialog stays live).
        public var approvalTimeoutSeconds = 300
        /// Pending prompts kept at most; more are refused (the terminal's dialog still works).
        public var maxPendingApprovals = 100
    }
    public struct Peers: Sendable, Equatable {
        /// What a peer added without explicit grants (or an extra key) may do.
        public var defaultGrants: Set<Capability> = [.contextRead, .contextWrite, .messages]
    }
    public struct Pairing: Sendable, Equatable {
        /// Seconds a pairing session stays open.
        public var timeoutSeconds = 300
    }
    public struct ManualPeer: Sendable, Equatable {
        public var address: String
        public var port: Int
    }
    public struct Discovery: Sendable, Equatable {
        public var enabled = true
        public var manualPeers: [ManualPeer] = []
        /// Seconds between health checks of an online peer.
        public var healthInterval = 30
        /// Consecutive failed checks before a peer is offline (then re-checked with backoff).
        public var offlineAfter = 3
        /// Peers known only from mDNS adverts (never paired or added) at most; more are ignored.
        public var maxUnpairedPeers = 64
        /// Of those, at most this many at one address (several session nodes share a machine's).
        public var maxUnpairedPerAddress = 8
        /// Seconds after which an mDNS-only peer that was neither advertised nor answered a health
        /// check is forgotten.
        public var unpairedExpiry = 600
    }
    public struct Logging: Sendable, Equatable {
        public var level = LogLevel.info
        /// Largest size of the log file loopsyd writes (stderr, when that is a file: `loopsy
        /// start` makes it logs/loopsyd.log) before it becomes `<file>.1` and a new one begins.
        public var maxFileBytes = 10 << 20
    }
    public struct Context: Sendable, Equatable {
        /// Largest value in UTF-8 bytes.
        public var maxValueBytes = 1_048_576
        public var maxEntries = 10_000
    }
    public struct Audit: Sendable, Equatable {
        public var retentionDays = 30
        public var maxEntries = 100_000
    }

    public struct Messages: Sendable, Equatable {
        /// Largest message body in UTF-8 bytes.
        public var maxBodyBytes = 65_536
        /// Seconds a message may wait for delivery when the sender gives no ttl.
        public var defaultTtl = 86_400
        /// Unhandled (unread or read, not acked) messages kept per sender; newer ones are refused
        /// to that sender (it keeps retrying until its ttl) until the owner reads or acks some.
        public var maxInboxPerSender = 1000
    }

    public var server = Server()
    public var auth = Auth()
    public var tls = TLS()
    public var execution = Execution()
    public var transfer = Transfer()
    public var rateLimits = RateLimits()
    public var discovery = Discovery()
    public var logging = Logging()
    public var context = Context()
    public var audit = Audit()
    public var messages = Messages()
    public var pairing = Pairing()
    public var aiTasks = AITasks()
    public var peers = Peers()
    public var channels = Channels()

    public init() {}
}

public enum LogLevel: String, Sendable, Comparable, CaseIterable {
    case debug, info, warn, error

    /// Position in increasing severity.
    public var severity: Int {
        switch self {
        case .debug: return 0
        case .info: return 1
        case .warn: return 2
        case .error: return 3
        }
    }

    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.severity < rhs.severity }
}
