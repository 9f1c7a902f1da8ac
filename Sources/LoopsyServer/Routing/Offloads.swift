import LoopsyAPI
import LoopsyCore
import LoopsyPOSIX
import LoopsyStore

/// Threads for handlers that wait on other machines (probing a peer, a pairing exchange, a
/// broadcast): HTTP workers never do. Three probes of a host that does not answer once held
/// both workers of a 2-core node for 19 s, and /health with them.
public final class Offloads: Sendable {
    let pool = WorkPool(name: "loopsy-outbound", threads: 16, queueLimit: 64)
    private struct State {
        var open = true
        /// Items submitted and not finished: `finish` waits for none, and a submit counts
        /// under the same lock that closes, so none slips in after the wait saw zero.
        var inFlight = 0
    }
    private let state = PlainMutex(State())

    public init() {}

    /// Runs `work` unless the pool is full or the daemon is stopping; false (nothing done) then.
    func submit(_ work: @escaping @Sendable () -> Void) -> Bool {
        let admitted = state.withLock { state -> Bool in
            guard state.open else { return false }
            state.inFlight += 1
            return true
        }
        guard admitted else { return false }
        let queued = pool.submit { [self] in
            work()
            state.withLock { $0.inFlight -= 1 }
        }
        if !queued { state.withLock { $0.inFlight -= 1 } }
        return queued
    }

    var isOpen: Bool { state.withLock { $0.open } }
    var load: Int { pool.load }

    /// A stopping daemon refuses new work and waits (up to `seconds`) for what runs: a message
    /// stored in the outbox, or a key a broadcast wrote, must not be answered "retry". True
    /// when everything finished.
    @discardableResult
    public func finish(waitingUpTo seconds: Double) -> Bool {
        state.withLock { $0.open = false }
        return Clock.waitUntil(seconds) { state.withLock { $0.inFlight == 0 } }
    }

    /// Takes work again (a daemon started again in the same process).
    public func reopen() { state.withLock { $0.open = true } }
}
