import LoopsyAPI
import LoopsyPOSIX
import LoopsyStore

/// Change notifications: which area of the node changed (context, peers, messages, …), for
/// live views. The dispatcher publishes one for every successful state-changing request;
/// background work (deliveries, health checks, tasks ending) publishes its own. A change says
/// *what* changed, not the new data: a view refetches what it shows.
///
/// Subscribers are called on the publisher's thread and must not block (the server's
/// subscriber writes into bounded per-client buffers).
public final class ChangeBus: Sendable {
    public struct Change: Sendable {
        /// 1, 2, 3, … in publishing order.
        public var sequence: UInt64
        public var topic: ChangeTopic
        public var detail: [String: String]
        /// Unix milliseconds.
        public var time: Int64
    }

    private struct State {
        var sequence: UInt64 = 0
        var next = 0
        var subscribers: [Int: @Sendable (Change) -> Void] = [:]
    }
    private let state = PlainMutex(State())

    public init() {}

    /// `detail` is made only when someone listens (a dashboard open): every successful write
    /// publishes.
    public func publish(_ topic: ChangeTopic, detail: @autoclosure () -> [String: String] = [:]) {
        let (sequence, subscribers) = state.withLock { state -> (UInt64, [@Sendable (Change) -> Void]) in
            state.sequence += 1
            return (state.sequence, Array(state.subscribers.values))
        }
        guard !subscribers.isEmpty else { return }
        let change = Change(sequence: sequence, topic: topic, detail: detail(), time: Clock.nowMillis())
        for subscriber in subscribers { subscriber(change) }
    }

    /// `receive` gets every change from now on, until the returned cancel is called.
    public func subscribe(_ receive: @escaping @Sendable (Change) -> Void) -> @Sendable () -> Void {
        let id = state.withLock { state -> Int in
            state.next += 1
            state.subscribers[state.next] = receive
            return state.next
        }
        return { [weak self] in self?.state.withLock { _ = $0.subscribers.removeValue(forKey: id) } }
    }
}
