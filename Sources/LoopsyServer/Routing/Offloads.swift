import LoopsyAPI
import LoopsyCore
import LoopsyPOSIX
import LoopsyStore
import Synchronization

/// Threads for handlers that wait on other machines (probing a peer, a pairing exchange, a
/// broadcast): HTTP workers never do. Three probes of a host that does not answer once held
/// both workers of a 2-core node for 19 s, and /health with them.
public final class Offloads: Sendable {
    let pool = WorkPool(name: "loopsy-outbound", threads: 16, queueLimit: 64)
    private let open = Atomic<Bool>(true)

    public init() {}

    /// Runs `work` unless the pool is full or the daemon is stopping; false (nothing done) then.
    func submit(_ work: @escaping @Sendable () -> Void) -> Bool {
        guard open.load(ordering: .acquiring) else { return false }
        return pool.submit(work)
    }

    var isOpen: Bool { open.load(ordering: .acquiring) }
    var load: Int { pool.load }

    /// A stopping daemon refuses new work and waits (up to `seconds`) for what runs: a message
    /// stored in the outbox, or a key written by a broadcast, must not be answered "retry".
    /// True when everything finished.
    @discardableResult
    public func finish(waitingUpTo seconds: Double) -> Bool {
        open.store(false, ordering: .releasing)
        return Clock.waitUntil(seconds) { pool.load == 0 }
    }

    /// Takes work again (a daemon started again in the same process).
    public func reopen() { open.store(true, ordering: .releasing) }
}
