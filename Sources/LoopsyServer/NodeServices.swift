import LoopsyAPI
import LoopsyMessaging
import LoopsyPeers
import LoopsyConfig
import LoopsyRun
import LoopsyCore
import LoopsyTransfer
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
    /// Collects the audit entries of requests and writes them in batches (started by the daemon).
    public let auditLog: AuditLog
    public let execution: ExecutionService
    public let transfer: TransferService
    public let logger: Logger
    public let peers: PeerService
    public let messages: MessageService
    public let pairing: PairingService
    public let tasks: TaskService
    /// Health checks of peers (nil in tests that build a node without them).
    public let monitor: PeerMonitor?
    /// What changed, for whoever follows along (GET /events streams it).
    public let changes = ChangeBus()
    /// The `GET /events` streams of `changes`.
    public let events: ChangeStreams
    /// Locks with leases (coordination between agents).
    public let locks: LockService
    /// Requests waiting for context keys to change.
    public let contextWatch: ContextWatch
    /// Dashboard browser sessions.
    public let dashboard: DashboardSessions
    /// Checks keys and dashboard sessions; keys are re-read when config.yaml changes.
    public let authenticator: Authenticator
    /// Grants of the extra keys (peers hold theirs in the peer table).
    public let keyGrants: KeyGrantStore
    /// Permission prompts of live Claude Code sessions.
    public let approvals: ApprovalService
    /// Where handlers that wait on other machines run (`RequestContext.offload`).
    public let offloads = Offloads()
    public let startedAt = Clock.monotonicSeconds()
    private let portCell = PortCell()

    /// `servesTLS`: whether peers reach this node over HTTPS.
    public init(config: LoopsyConfig, dataDir: DataDir, identity: NodeIdentity, pool: DatabasePool, logger: Logger,
                servesTLS: Bool = false, monitorPeers: Bool = false) {
        self.config = config
        self.dataDir = dataDir
        self.identity = identity
        self.pool = pool
        self.logger = logger
        hostname = config.server.hostname ?? Programs.hostname()
        events = ChangeStreams(bus: changes)
        contextStore = ContextStore(pool: pool)
        locks = LockService(store: LockStore(pool: pool), changes: changes)
        contextWatch = ContextWatch(store: contextStore)
        auditStore = AuditStore(pool: pool)
        auditLog = AuditLog(store: auditStore, logger: logger)
        execution = ExecutionService(config: config.execution, pool: pool, logger: logger)
        transfer = TransferService(config: config.transfer, dataDir: dataDir)
        let host = config.server.host
        let advertised = host == "0.0.0.0" || host == "::" || HostAddress.isLoopback(host) ? "" : host
        peers = PeerService(
            store: PeerStore(pool: pool),
            local: LocalNodeInfo(identity: identity, hostname: hostname, tls: servesTLS, advertisedAddress: advertised,
                                 portCell: portCell),
            pinnedCerts: config.tls.pinnedCerts, auditStore: auditStore, logger: logger)
        monitor = monitorPeers ? PeerMonitor(service: peers, interval: config.discovery.healthInterval,
                                             offlineAfter: config.discovery.offlineAfter, logger: logger, changes: changes) : nil
        messages = MessageService(pool: pool, peers: peers, context: contextStore, config: config, logger: logger,
                                  changes: changes)
        monitor?.onPeerOnline { [messages] in messages.peerOnline($0) }
        approvals = ApprovalService(pool: pool, messages: messages, peers: peers, config: config.channels,
                                    hostname: hostname, logger: logger, changes: changes)
        pairing = PairingService(peers: peers, timeoutSeconds: config.pairing.timeoutSeconds, logger: logger)
        tasks = TaskService(pool: pool, config: config.aiTasks, execution: execution, dataDir: dataDir, logger: logger,
                            changes: changes)
        dashboard = DashboardSessions(cookieName: "loopsy_" + identity.nodeId.prefix(12))
        let peerStore = peers.store
        let keyGrants = KeyGrantStore(pool: pool)
        self.keyGrants = keyGrants
        authenticator = Authenticator(auth: config.auth, defaultGrants: config.peers.defaultGrants,
                                      configPath: dataDir.configFile, logger: logger, sessions: dashboard,
                                      peerForKeyHash: { try? peerStore.acceptedPeer(forKeyHash: $0) },
                                      keyGrants: { try? keyGrants.get($0) })
    }

    /// The port the server actually listens on.
    public var port: Int {
        get { portCell.value }
        set { portCell.value = newValue }
    }

    public var uptime: Double { Clock.monotonicSeconds() - startedAt }
}
