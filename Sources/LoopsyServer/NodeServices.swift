import LoopsyConfig
import LoopsyStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The node as handlers see it: configuration, identity and stores.
public final class NodeServices: Sendable {
    public let config: LoopsyConfig
    public let dataDir: DataDir
    public let identity: NodeIdentity
    public let hostname: String
    public let pool: DatabasePool
    public let contextStore: ContextStore
    public let auditStore: AuditStore
    public let execution: ExecutionService
    public let transfer: TransferService
    public let logger: Logger
    public let startedAt = Clock.monotonicSeconds()
    private let boundPort = Atomic<Int>(0)

    public init(config: LoopsyConfig, dataDir: DataDir, identity: NodeIdentity, pool: DatabasePool, logger: Logger) {
        self.config = config
        self.dataDir = dataDir
        self.identity = identity
        self.pool = pool
        self.logger = logger
        hostname = config.server.hostname ?? Self.systemHostname()
        contextStore = ContextStore(pool: pool)
        auditStore = AuditStore(pool: pool)
        execution = ExecutionService(config: config.execution, pool: pool, logger: logger)
        transfer = TransferService(config: config.transfer)
    }

    /// The port the server actually listens on.
    public var port: Int {
        get { boundPort.load(ordering: .relaxed) }
        set { boundPort.store(newValue, ordering: .relaxed) }
    }

    public var uptime: Double { Clock.monotonicSeconds() - startedAt }

    public static func systemHostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
