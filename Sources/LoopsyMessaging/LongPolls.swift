import Dispatch
import LoopsyPOSIX
import Synchronization

/// Long-poll requests waiting for something to happen (an inbox message, an approval's answer).
/// A waiter completes once: when `attempt` finds something to answer with, or when its time is up.
///
/// Work is proportional to the waiters an event can answer, never to all of them: registering a
/// waiter checks that waiter alone (for what happened between the caller's query and the
/// registration); an event names its topic and sequence number, and only the waiters of that
/// topic from before that number are tried.
final class LongPolls: Sendable {
    final class Waiter: Sendable {
        /// What it waits on (an approval id; "" for the inbox).
        let topic: String
        /// It waits for events numbered above this (the inbox cursor it was given).
        let after: Int64
        /// Answers if there is something to answer with; true when it did.
        let attempt: @Sendable () -> Bool
        let timeout: @Sendable () -> Void
        /// Held while one thread tries it (and for good once it is answered).
        let done = Atomic<Bool>(false)
        /// Events that may answer it so far: a try that finds another one running leaves this
        /// raised, and the running one tries again, so no event is lost in between.
        let events = Atomic<Int>(0)

        init(topic: String = "", after: Int64 = .min, attempt: @escaping @Sendable () -> Bool,
             timeout: @escaping @Sendable () -> Void) {
            self.topic = topic
            self.after = after
            self.attempt = attempt
            self.timeout = timeout
        }

        var id: ObjectIdentifier { ObjectIdentifier(self) }
    }

    private let waiting = PlainMutex<[String: [ObjectIdentifier: Waiter]]>([:])
    /// Timeouts and tries run here, not on `DispatchQueue.global()`: whatever blocks threads of
    /// the global pool (it grows by about one thread a second) must not delay an answer.
    private let queue = DispatchQueue(label: "loopsy.longpolls")

    /// Registers `waiter` for up to `seconds`, then checks it once off the caller's thread.
    func add(_ waiter: Waiter, timeout seconds: Int) {
        waiting.withLock { $0[waiter.topic, default: [:]][waiter.id] = waiter }
        queue.asyncAfter(deadline: .now() + .seconds(seconds)) { [self] in
            guard remove(waiter) else { return }
            waiter.timeout()
        }
        waiter.events.add(1, ordering: .releasing)
        queue.async { [self] in tryAnswer(waiter) }
    }

    /// Removes the waiter; true if this call is the one that ended it.
    @discardableResult
    func remove(_ waiter: Waiter) -> Bool {
        unregister(waiter)
        return !waiter.done.exchange(true, ordering: .acquiringAndReleasing)
    }

    /// Event `after` of `topic` happened: the waiters it may answer try to.
    func notify(topic: String = "", after seq: Int64 = .max) {
        let current = waiting.withLock { $0[topic]?.values.filter { $0.after < seq } ?? [] }
        guard !current.isEmpty else { return }
        for waiter in current { waiter.events.add(1, ordering: .releasing) }
        queue.async { [self] in
            for waiter in current { tryAnswer(waiter) }
        }
    }

    func finishAll() {
        let all = waiting.withLock { waiting -> [Waiter] in
            defer { waiting.removeAll() }
            return waiting.values.flatMap(\.values)
        }
        for waiter in all where !waiter.done.exchange(true, ordering: .acquiringAndReleasing) { waiter.timeout() }
    }

    private func unregister(_ waiter: Waiter) {
        waiting.withLock { waiting in
            waiting[waiter.topic]?.removeValue(forKey: waiter.id)
            if waiting[waiter.topic]?.isEmpty == true { waiting[waiter.topic] = nil }
        }
    }

    private func tryAnswer(_ waiter: Waiter) {
        while true {
            guard !waiter.done.load(ordering: .acquiring) else { return }
            // Claim first so a timeout cannot answer too; give the claim back if nothing matched.
            // Whoever holds the claim sees the events counted before it looks (below).
            guard !waiter.done.exchange(true, ordering: .acquiringAndReleasing) else { return }
            let seen = waiter.events.load(ordering: .acquiring)
            if waiter.attempt() {
                unregister(waiter)
                return
            }
            waiter.done.store(false, ordering: .releasing)
            // Its timer may have fired (or its client left) while we held the claim: answer for it.
            if waiting.withLock({ $0[waiter.topic]?[waiter.id] == nil }) {
                if !waiter.done.exchange(true, ordering: .acquiringAndReleasing) { waiter.timeout() }
                return
            }
            // An event came while this try ran (its own try found the claim taken): look again.
            if waiter.events.load(ordering: .acquiring) == seen { return }
        }
    }
}
