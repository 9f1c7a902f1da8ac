import Dispatch
import LoopsyAPI
import LoopsyMessaging
import LoopsyPeers
import LoopsyRun
import LoopsyConfig
import LoopsyHTTP
import LoopsyPOSIX
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
    /// The process's environment, for what it says of a service manager (NOTIFY_SOCKET).
    public var environment: [String: String]

    public init(dataDir: DataDir, port: Int? = nil, host: String? = nil, environment: [String: String] = [:]) {
        self.dataDir = dataDir
        self.port = port
        self.host = host
        self.environment = environment
    }
}

public struct DaemonError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// loopsyd wired together: config, identity, database, HTTP server and background upkeep.
public final class Daemon: Sendable {
    public let node: NodeServices
    /// The first binds the port; with TLS, the second is plain HTTP on loopback at the same port.
    private let servers: [HTTPServer]
    private var auditLog: AuditLog { node.auditLog }
    private let rateLimiter: RateLimiter
    private let options: DaemonOptions
    private let host: String
    private let running = Atomic<Bool>(false)
    private let discovery = PlainMutex<Discovery?>(nil)
    /// The upkeep's thread while the daemon runs: its passes block (SQLite writes, pauses
    /// between prune chunks), so not on the shared dispatch pool.
    private let upkeepThread = PlainMutex<PeriodicThread?>(nil)

    public init(options: DaemonOptions) throws {
        self.options = options
        let dataDir = options.dataDir
        let (config, warnings) = try ConfigFile.load(dataDir)
        let logger = Logger(level: config.logging.level, maxFileBytes: config.logging.maxFileBytes)
        for warning in warnings { logger.warn(warning) }
        guard SecureFile.exists(dataDir.identityKeyFile) else {
            throw DaemonError("no node identity at \(dataDir.identityKeyFile); run `loopsy init`")
        }
        let identity = try NodeIdentity.load(from: dataDir.identityKeyFile)
        let host = options.host ?? config.server.host
        // Peers get HTTPS when tls.enabled; local clients always have plain HTTP on 127.0.0.1
        // (a second listener when server.host is anything else).
        let servesTLS = config.tls.enabled && !["127.0.0.1", "localhost", "::1"].contains(host)
        var tlsCredentials: TLSCredentials?
        if servesTLS {
            let files = try TLSFiles.ensure(dataDir, identity: identity)
            tlsCredentials = TLSCredentials(keyPEM: files.key, certificatePEM: files.certificate)
        }
        // Migrations may build an index over every message body (0017): a service manager is
        // told to wait longer for this start (systemd's default is 90 s, then a restart loop).
        let environment = options.environment
        let pool = try DatabasePool(path: dataDir.databaseFile,
                                    migrations: try Migration.load(from: try Migration.locateDirectory())) { pending in
            SystemdNotify.send("EXTEND_TIMEOUT_USEC=3600000000\nSTATUS=applying \(pending.count) database migration(s)",
                               environment: environment)
        }
        node = NodeServices(config: config, dataDir: dataDir, identity: identity, pool: pool, logger: logger,
                            servesTLS: servesTLS, monitorPeers: true)
        rateLimiter = RateLimiter(perMinute: [.execute: config.rateLimits.execute,
                                              .transfer: config.rateLimits.transfer,
                                              .context: config.rateLimits.context,
                                              .pairing: config.rateLimits.pairing])
        let dispatcher = Dispatcher(routes: Routes.table(config: config), node: node, authenticator: node.authenticator,
                                    rateLimiter: rateLimiter, auditLog: node.auditLog)
        let threads = config.server.threads > 0 ? config.server.threads : max(2, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let port = UInt16(options.port ?? config.server.port)
        let server = config.server
        Self.raiseDescriptorLimit(for: (server.maxConnections + server.loopbackReserve) * (servesTLS ? 2 : 1),
                                  logger: logger)
        func serverOptions(host: String, threads: Int, tls: TLSCredentials?) -> HTTPServerOptions {
            HTTPServerOptions(host: host, port: port, threads: threads, connectionTimeout: server.connectionTimeout,
                              connectionLimit: server.maxConnections, connectionsPerAddress: server.maxConnectionsPerAddress,
                              loopbackReserve: server.loopbackReserve, headerTimeout: server.headerTimeout,
                              tls: tls, sharePort: servesTLS, log: { logger.warn($0) },
                              connectionMemory: server.connectionMemoryKiB << 10,
                              poolMessage: "a request too large for server.connectionMemoryKiB: \(server.connectionMemoryKiB)")
        }
        var servers = [HTTPServer(handler: dispatcher, options: serverOptions(host: host, threads: threads, tls: tlsCredentials))]
        if servesTLS {
            servers.append(HTTPServer(handler: dispatcher,
                                      options: serverOptions(host: "127.0.0.1", threads: max(2, threads / 2), tls: nil)))
        }
        self.servers = servers
        self.host = host
    }

    /// Every connection is a descriptor: the soft limit (often 1024) is raised to the hard one, so
    /// that the connection limits, not EMFILE, decide who is served; a hard limit too low for
    /// them is reported.
    static func raiseDescriptorLimit(for connections: Int, logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        // Jobs, the database, listeners and pipes need some too.
        let needed = UInt64(connections + 512)
        if UInt64(limit.rlim_cur) < needed {
            logger.warn("the open-file limit (\(limit.rlim_cur)) is below what server.maxConnections and "
                + "server.loopbackReserve need (\(needed)); raise it (LimitNOFILE= in the unit, ulimit -n) or lower them")
        }
    }

    /// Binds, writes daemon.pid and daemon.port, and starts upkeep. Returns the bound port.
    @discardableResult
    public func start() throws -> Int {
        let dataDir = options.dataDir
        if let pid = dataDir.runningDaemonPid(), pid != getpid() {
            throw DaemonError("loopsyd is already running for \(dataDir.root) (pid \(pid)); stop it with `loopsy stop`")
        }
        // Orphans of jobs and tasks come to loopsyd, which kills and reaps them: set before the
        // first request can start a job.
        ChildProcesses.shared.startReaper(logger: node.logger)
        do {
            try bind()
        } catch let error as DaemonError {
            servers.forEach { $0.stop() }
            throw error
        } catch {
            servers.forEach { $0.stop() }
            throw DaemonError("\(error)")
        }
        let port = servers[0].port
        node.port = Int(port)
        // Not fsynced: they describe this process only, and after a crash `runningDaemonPid`
        // and the clients' health check tell a stale one (two fsyncs were ~8 ms of the start).
        try SecureFile.write(dataDir.pidFile, contents: "\(getpid())\n", mode: 0o644, durable: false)
        try SecureFile.write(dataDir.portFile, contents: "\(port)\n", mode: 0o644, durable: false)
        running.store(true, ordering: .relaxed)
        node.offloads.reopen()
        node.contextStore.reopenWrites()
        node.transfer.reopenStores()
        auditLog.start()
        node.monitor?.start()
        node.messages.start()
        addManualPeers()
        if node.config.discovery.enabled {
            let discovery = Discovery(service: node.peers, monitor: node.monitor, limits: node.config.discovery,
                                      logger: node.logger)
            discovery.start()
            self.discovery.withLock { $0 = discovery }
        }
        let upkeep = PeriodicThread.start("loopsy-upkeep", every: .seconds(10)) { [weak self] in
            guard let self else { return false }
            self.upkeep()
            return true
        }
        PeriodicThread.replace(in: upkeepThread, with: upkeep)
        node.logger.info("loopsyd \(LoopsyVersion.current) listening on \(host):\(port)"
            + (servers.count > 1 ? " (HTTPS for peers, HTTP on 127.0.0.1)" : "")
            + " node \(node.identity.nodeId) data \(dataDir.root)")
        return Int(port)
    }

    /// Binds the listeners. With TLS there are two on one port, sharing it through SO_REUSEPORT,
    /// which would also let another process of this user quietly share it: so the port is
    /// checked free first (a fixed port), or the loopback listener takes a kernel-chosen port
    /// first and the peer-facing one follows only if nothing else holds that port there.
    private func bind() throws {
        let configured = options.port ?? node.config.server.port
        guard servers.count == 2 else {
            try servers[0].start()
            return
        }
        let peerFacing = servers[0], loopback = servers[1]
        let wildcard = host == "0.0.0.0" || host == "::"
        func inUse(_ port: Int, on address: String) -> DaemonError {
            DaemonError("port \(port) is in use on \(address); stop whatever listens there or change server.port")
        }
        if configured == 0 {
            try loopback.start()
            let port = loopback.port
            // A wildcard address cannot be probed here (our own loopback listener conflicts);
            // the kernel picked a port no one listens on at all, so it is free there too.
            guard wildcard || Port.isFree(host: host, port: port) else { throw inUse(Int(port), on: host) }
            try peerFacing.start(port: port)
            return
        }
        guard Port.isFree(host: host, port: UInt16(configured)) else { throw inUse(configured, on: host) }
        if !wildcard, !Port.isFree(host: "127.0.0.1", port: UInt16(configured)) {
            throw inUse(configured, on: "127.0.0.1")
        }
        try peerFacing.start()
        try loopback.start()
    }

    /// `discovery.manualPeers`: probed in the background, recorded when they answer.
    private func addManualPeers() {
        for peer in node.config.discovery.manualPeers {
            DispatchQueue.global().async { [node] in
                do {
                    _ = try node.peers.add(PeerAddRequest(address: peer.address, port: peer.port))
                } catch {
                    node.logger.warn("discovery.manualPeers \(peer.address):\(peer.port): \(error)")
                }
            }
        }
    }

    /// Stops serving (in-flight requests finish), flushes the audit log, removes the pid file.
    public func stop() {
        guard running.exchange(false, ordering: .relaxed) else { return }
        // Work waiting on other machines (a message being sent, a broadcast, a probe) finishes
        // first, while everything it uses still runs; new such work is refused. At most 3 s:
        // the rest of the stop must fit in the 10 s `loopsy stop` gives before SIGKILL.
        if !node.offloads.finish(waitingUpTo: 3) {
            node.logger.warn("stopping with calls to other machines still under way; their clients are told to retry")
        }
        // Jobs first: their streams finish, which resumes every suspended connection before
        // MHD is stopped.
        discovery.withLock { discovery in
            discovery?.stop()
            discovery = nil
        }
        node.execution.shutdown()
        node.tasks.shutdown()
        ChildProcesses.shared.killEverything()
        node.messages.stop()
        node.locks.finishAll()
        node.contextWatch.finishAll()
        node.approvals.shutdown()
        node.events.finishAll()
        node.monitor?.stop()
        // Queued context writes are committed and answered while their connections still
        // stand: a client must not be told "retry" for a write that was kept.
        node.contextStore.finishWrites()
        // Pushed files being stored likewise: answered, or removed and refused.
        node.transfer.finishStores()
        servers.forEach { $0.stop() }
        // Uploads cut off by the stop remove their partial files.
        node.transfer.finishDiscards()
        auditLog.stop()
        // Upkeep that began before `running` went false writes to the end: then the checkpoint.
        PeriodicThread.replace(in: upkeepThread, with: nil)
        do {
            try node.pool.checkpoint()
        } catch {
            node.logger.warn("could not checkpoint the database at stop (the next start replays its WAL): \(error)")
        }
        unlink(options.dataDir.pidFile)
        unlink(options.dataDir.portFile)
        node.logger.info("loopsyd stopped")
    }

    /// Expired context entries, old audit rows and idle rate-limit buckets: one pass, every 10
    /// seconds on the upkeep's thread.
    private func upkeep() {
        guard running.load(ordering: .relaxed) else { return }
        // Each step on its own: one that fails (a sweep on a full disk) must not skip the
        // prunes after it, which are what frees room.
        let node = self.node
        func step(_ name: String, _ work: () throws -> Void) {
            do { try work() } catch { node.logger.warn("upkeep: \(name) failed: \(error)") }
        }
        let audit = node.config.audit
        // The parser bounds retentionDays (36,500); a Config made in code is held in range too.
        let cutoff = Clock.nowMillis() - Int64(min(max(audit.retentionDays, 0), 36_500)) * 86_400_000
        step("expired context entries") {
            try node.contextStore.sweepExpired(chunk: ContextStore.sweepChunk(forValuesUpTo: node.config.context.maxValueBytes))
        }
        step("the context change log") { try node.contextStore.pruneChanges() }
        step("expired locks") { try node.locks.store.sweepExpired() }
        step("the audit log") { try node.auditStore.prune(olderThan: cutoff, keep: audit.maxEntries) }
        step("finished jobs") { try node.execution.prune(olderThan: cutoff) }
        step("expired messages") {
            try node.messages.store.prune(now: Clock.nowMillis(), graceMillis: 7 * 86_400_000,
                                          maxBodyBytes: node.config.messages.maxBodyBytes)
        }
        step("old acked messages") { try node.messages.forgetAcked() }
        node.tasks.prune()
        step("unseen mDNS peers") {
            let unseen = Clock.nowMillis() - Int64(node.config.discovery.unpairedExpiry) * 1000
            let forgotten = try node.peers.store.forgetUnseenUnpaired(before: unseen)
            if forgotten > 0 { node.logger.info("mDNS: forgot \(forgotten) unpaired peer(s) unseen for a while") }
        }
        rateLimiter.prune()
        // What libmicrohttpd or the runtime wrote to the log past its limit.
        node.logger.checkFileSize()
    }
}
