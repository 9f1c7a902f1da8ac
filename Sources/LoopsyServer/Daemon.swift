import Dispatch
import LoopsyAPI
import LoopsyConfig
import LoopsyHTTP
import LoopsyStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public struct DaemonOptions: Sendable {
    public var dataDir: DataDir
    /// Overrides `server.port` (0 picks a free port).
    public var port: Int?
    /// Overrides `server.host`.
    public var host: String?

    public init(dataDir: DataDir, port: Int? = nil, host: String? = nil) {
        self.dataDir = dataDir
        self.port = port
        self.host = host
    }
}

public struct DaemonError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// loopsyd wired together: config, identity, database, HTTP server and background upkeep.
public final class Daemon: Sendable {
    public let node: NodeServices
    private let server: HTTPServer
    private let auditLog: AuditLog
    private let rateLimiter: RateLimiter
    private let options: DaemonOptions
    private let running = Atomic<Bool>(false)
    private let upkeepQueue = DispatchQueue(label: "loopsy.upkeep")

    public init(options: DaemonOptions) throws {
        self.options = options
        let dataDir = options.dataDir
        let (config, warnings) = try ConfigFile.load(dataDir)
        let logger = Logger(level: config.logging.level)
        for warning in warnings { logger.warn(warning) }
        guard SecureFile.exists(dataDir.identityKeyFile) else {
            throw DaemonError("no node identity at \(dataDir.identityKeyFile); run `loopsy init`")
        }
        let identity = try NodeIdentity.load(from: dataDir.identityKeyFile)
        let pool = try DatabasePool(path: dataDir.databaseFile,
                                    migrations: try Migration.load(from: try Migration.locateDirectory()))
        node = NodeServices(config: config, dataDir: dataDir, identity: identity, pool: pool, logger: logger)
        auditLog = AuditLog(store: node.auditStore, logger: logger)
        rateLimiter = RateLimiter(perMinute: [.execute: config.rateLimits.execute,
                                              .transfer: config.rateLimits.transfer,
                                              .context: config.rateLimits.context])
        let authenticator = Authenticator(auth: config.auth, configPath: dataDir.configFile, logger: logger)
        let dispatcher = Dispatcher(routes: Routes.table(config: config), node: node, authenticator: authenticator,
                                    rateLimiter: rateLimiter, auditLog: auditLog)
        let threads = config.server.threads > 0 ? config.server.threads : max(2, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        server = HTTPServer(handler: dispatcher, options: HTTPServerOptions(
            host: options.host ?? config.server.host, port: UInt16(options.port ?? config.server.port),
            threads: threads))
    }

    /// Binds, writes daemon.pid and daemon.port, and starts upkeep. Returns the bound port.
    @discardableResult
    public func start() throws -> Int {
        let dataDir = options.dataDir
        if let pid = dataDir.runningDaemonPid(), pid != getpid() {
            throw DaemonError("loopsyd is already running for \(dataDir.root) (pid \(pid)); stop it with `loopsy stop`")
        }
        do {
            try server.start()
        } catch {
            throw DaemonError("\(error)")
        }
        node.port = Int(server.port)
        try SecureFile.write(dataDir.pidFile, contents: "\(getpid())\n", mode: 0o644)
        try SecureFile.write(dataDir.portFile, contents: "\(server.port)\n", mode: 0o644)
        running.store(true, ordering: .relaxed)
        auditLog.start()
        upkeep()
        node.logger.info("loopsyd \(LoopsyVersion.current) listening on \(options.host ?? node.config.server.host):\(server.port) "
            + "node \(node.identity.nodeId) data \(dataDir.root)")
        return Int(server.port)
    }

    /// Stops serving (in-flight requests finish), flushes the audit log, removes the pid file.
    public func stop() {
        guard running.exchange(false, ordering: .relaxed) else { return }
        // Jobs first: their streams finish, which resumes every suspended connection before
        // MHD is stopped.
        node.execution.shutdown()
        server.stop()
        auditLog.stop()
        unlink(options.dataDir.pidFile)
        unlink(options.dataDir.portFile)
        node.logger.info("loopsyd stopped")
    }

    /// Expired context entries, old audit rows and idle rate-limit buckets, every 10 seconds.
    private func upkeep() {
        upkeepQueue.asyncAfter(deadline: .now() + 10) { [weak self] in
            guard let self, self.running.load(ordering: .relaxed) else { return }
            do {
                try self.node.contextStore.sweepExpired()
                let audit = self.node.config.audit
                let cutoff = Clock.nowMillis() - Int64(audit.retentionDays) * 86_400_000
                try self.node.auditStore.prune(olderThan: cutoff, keep: audit.maxEntries)
                try self.node.execution.jobStore.prune(olderThan: cutoff, keep: ExecutionService.keptJobs)
            } catch {
                self.node.logger.warn("upkeep failed: \(error)")
            }
            self.rateLimiter.prune()
            self.upkeep()
        }
    }
}
