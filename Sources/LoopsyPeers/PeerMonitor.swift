import Dispatch
import LoopsyAPI
import LoopsyCore
import LoopsyClient
import LoopsyConfig
import LoopsyPOSIX
import LoopsyStore
import Synchronization

/// Periodic health checks. An online peer is checked every `discovery.healthInterval` seconds;
/// after `discovery.offlineAfter` failures in a row it is offline and re-checked with backoff
/// (doubling, at most 8 intervals apart) for as long as it is known, so it comes back by itself.
public final class PeerMonitor: Sendable {
    private let service: PeerService
    private let interval: Int
    private let offlineAfter: Int
    private let logger: Logger
    private let queue = DispatchQueue(label: "loopsy.peers.monitor")
    private let running = Atomic<Bool>(false)
    private let inFlight = PlainMutex<Set<String>>([])
    /// Wakes the loop early (a peer was added or seen).
    private let wakeups = DispatchSemaphore(value: 0)
    private let onlineListeners = PlainMutex<[@Sendable (String) -> Void]>([])
    private let changes: ChangeBus?
    /// Health checks run here, never on the shared dispatch pool: hundreds of unreachable peers
    /// (5 s timeouts each) then slow the checks down, not job I/O or long-poll wake-ups.
    private let checks = WorkPool(name: "loopsy-health", threads: 8, queueLimit: 4096)

    public init(service: PeerService, interval: Int, offlineAfter: Int, logger: Logger, changes: ChangeBus? = nil) {
        self.service = service
        self.changes = changes
        self.interval = interval
        self.offlineAfter = offlineAfter
        self.logger = logger
    }

    public func start() {
        guard !running.exchange(true, ordering: .relaxed) else { return }
        queue.async { [self] in
            while running.load(ordering: .relaxed) {
                checkDuePeers()
                _ = wakeups.wait(timeout: .now() + .milliseconds(500))
            }
        }
    }

    public func stop() {
        running.store(false, ordering: .relaxed)
        wakeups.signal()
    }

    /// Called with a peer's nodeId whenever a check finds it online after it was not.
    public func onPeerOnline(_ listener: @escaping @Sendable (String) -> Void) {
        onlineListeners.withLock { $0.append(listener) }
    }

    /// Check soon rather than at the next tick.
    public func wake() { wakeups.signal() }

    /// Seconds between checks for a peer with `failures` failed checks in a row.
    func delay(failures: Int) -> Int {
        guard failures >= offlineAfter else { return failures == 0 ? interval : 1 }
        return interval * (1 << min(failures - offlineAfter, 3))
    }

    private func checkDuePeers() {
        guard let peers = try? service.store.all() else { return }
        let now = Clock.nowMillis()
        for record in peers {
            let info = record.info
            if let checked = info.lastChecked, now - checked < Int64(delay(failures: info.failures)) * 1000 { continue }
            let claimed = inFlight.withLock { $0.insert(record.nodeId).inserted }
            guard claimed else { continue }
            let queued = checks.submit { [self] in
                defer { _ = inFlight.withLock { $0.remove(record.nodeId) } }
                check(record)
            }
            if !queued { _ = inFlight.withLock { $0.remove(record.nodeId) } }
        }
    }

    /// The longest reason for a failed check kept with the peer and logged.
    static let maxFailureBytes = 512

    /// One health check: the peer must answer /health with its own nodeId (over its pinned key).
    func check(_ record: PeerRecord) {
        var failure: String?
        do {
            // /health needs no credential: none is sent, so a peer reached over plain HTTP never sees one.
            let health = try service.client(for: record, timeoutSeconds: 5, authenticated: false).health()
            if health.nodeId != record.nodeId {
                failure = "another node (\(health.nodeId.cut(toUTF8Bytes: 64))) answers at "
                    + "\(record.info.address):\(record.info.port)"
            } else if record.publicKey == nil {
                learnIdentity(record)
            }
        } catch {
            failure = service.apiError(error, calling: record, context: "health check").message
            if !record.info.tls, case ClientError.network(_) = error { upgradeToTLS(record) }
        }
        // What the host answered is its own choice of up to 1 MiB: it is stored and logged cut.
        failure = failure?.cut(toUTF8Bytes: Self.maxFailureBytes)
        guard let change = try? service.store.recordCheck(record.nodeId, ok: failure == nil, error: failure,
                                                          offlineAfter: offlineAfter) else { return }
        if change.before != change.after {
            logger.info("peer \(record.info.name) (\(record.nodeId)) is \(change.after)"
                + (failure.map { ": \($0)" } ?? ""))
            changes?.publish(.peers, detail: ["nodeId": record.nodeId, "status": change.after.rawValue])
            if change.after == .online { for listener in onlineListeners.withLock({ $0 }) { listener(record.nodeId) } }
        }
    }

    /// Peers seen over mDNS come without a verified key: fetch and check it once.
    private func learnIdentity(_ record: PeerRecord) {
        guard let probe = try? service.probe(address: record.info.address, port: record.info.port),
              probe.identity.nodeId == record.nodeId else { return }
        _ = try? service.store.update(PeerSighting(
            nodeId: record.nodeId, name: probe.identity.hostname, address: record.info.address, port: record.info.port,
            platform: probe.identity.platform, version: probe.identity.version,
            capabilities: probe.identity.capabilities, publicKey: probe.identity.publicKey,
            fingerprint: probe.tls ? probe.fingerprint : nil, tls: probe.tls, source: record.info.source))
    }

    /// A plain-HTTP peer that now speaks TLS: pin the key its nodeId stands for, if it matches.
    private func upgradeToTLS(_ record: PeerRecord) {
        guard let probe = try? service.probe(address: record.info.address, port: record.info.port),
              probe.tls, probe.identity.nodeId == record.nodeId else { return }
        try? service.store.setPin(record.nodeId, fingerprint: probe.fingerprint)
        logger.info("peer \(record.info.name) (\(record.nodeId)) now serves TLS; its key is pinned")
    }
}
