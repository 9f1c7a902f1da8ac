import Dispatch
import LoopsyAPI
import LoopsyCore
import LoopsyPOSIX
import LoopsyStore

/// Watches on the context store: a caller that waits for a key or a prefix to change gets a
/// `Pending` answer (the server holds a suspended connection for it, no thread), completed when
/// a write, delete or expiry of a matching key commits, or when its wait ends.
public final class ContextWatch: Sendable {
    /// Requests waiting at once, at most (each holds a suspended connection).
    public static let maxWatchers = 2_000

    private struct Watcher {
        /// Keys starting with this (a key watch uses the key and `exact`).
        var prefix: String
        var exact: Bool
        /// What delivers the answer if there is one now; nil to keep waiting. Called by whoever
        /// removed the watcher, so it answers once.
        var tryNow: @Sendable () -> (@Sendable () -> Void)?
        /// Delivers the answer as it is when the wait ends.
        var timeout: @Sendable () -> Void
        var isCancelled: @Sendable () -> Bool
    }
    private struct State {
        var next: UInt64 = 0
        var watchers: [UInt64: Watcher] = [:]
    }
    private let state = PlainMutex(State())
    private let queue = DispatchQueue(label: "loopsy.context.watch")

    public init(store: ContextStore) {
        store.changed.observe { [weak self] keys in self?.changed(keys) }
    }

    var count: Int { state.withLock { $0.watchers.count } }

    /// Answers with `attempt()` if it has an answer now; otherwise waits up to `seconds` (and
    /// answers `timeout()` then). `recheckAt` (Unix ms) also wakes it, e.g. when an entry expires.
    public func wait<Value: Sendable>(prefix: String, exact: Bool, seconds: Int, recheckAt: Int64? = nil,
                                      attempt: @escaping @Sendable () throws -> Value?,
                                      timeout: @escaping @Sendable () throws -> Value) throws -> Answer<Value> {
        if let now = try attempt() { return .now(now) }
        guard seconds > 0 else { return .now(try timeout()) }
        let answer = Pending<Value>()
        // Only the one that removes the watcher answers: the closures below run after that.
        let tryNow: @Sendable () -> (@Sendable () -> Void)? = {
            do {
                guard let value = try attempt() else { return nil }
                return { answer.succeed(value) }
            } catch {
                return { answer.fail(error) }
            }
        }
        let id = try state.withLock { state -> UInt64 in
            guard state.watchers.count < Self.maxWatchers else {
                throw APIError(status: 503, code: .tooManyWatchers,
                               message: "\(Self.maxWatchers) watches are open already; retry later",
                               headers: ["Retry-After": "1"])
            }
            state.next += 1
            state.watchers[state.next] = Watcher(
                prefix: prefix, exact: exact, tryNow: tryNow,
                timeout: { answer.complete(Result { try timeout() }) }, isCancelled: { answer.isCancelled })
            return state.next
        }
        // A write may have landed between the first attempt and the registration.
        queue.async { [self] in check(id) }
        queue.asyncAfter(deadline: .now() + .seconds(seconds)) { [self] in
            guard let watcher = remove(id) else { return }
            (watcher.tryNow() ?? watcher.timeout)()
        }
        // Only a recheck that falls within the wait: one at an expiry years away would hold its
        // closure (and the answer) that long after the wait ended, one more per request.
        if let recheckAt, recheckAt - Clock.nowMillis() < Int64(seconds) * 1000 {
            let delay = max(0, Double(recheckAt - Clock.nowMillis()) / 1000) + 0.005
            queue.asyncAfter(deadline: .now() + delay) { [self] in check(id) }
        }
        return .later(answer)
    }

    /// Daemon stop: every watcher is answered now.
    public func finishAll() {
        let all = state.withLock { state -> [Watcher] in
            defer { state.watchers.removeAll() }
            return Array(state.watchers.values)
        }
        for watcher in all { watcher.timeout() }
    }

    private func changed(_ keys: [String]) {
        let matching = state.withLock { state in
            state.watchers.filter { _, watcher in
                // Bytes, as the store's ranges: String's == and hasPrefix compare characters
                // ("e" + U+0301 does not start with "e" there).
                keys.contains {
                    watcher.exact ? $0.utf8.elementsEqual(watcher.prefix.utf8) : $0.utf8.starts(with: watcher.prefix.utf8)
                }
            }.map(\.key)
        }
        guard !matching.isEmpty else { return }
        queue.async { [self] in for id in matching { check(id) } }
    }

    private func check(_ id: UInt64) {
        guard let watcher = state.withLock({ $0.watchers[id] }) else { return }
        if watcher.isCancelled() {
            remove(id)?.timeout()
            return
        }
        guard let deliver = watcher.tryNow(), remove(id) != nil else { return }
        deliver()
    }

    private func remove(_ id: UInt64) -> Watcher? {
        state.withLock { $0.watchers.removeValue(forKey: id) }
    }
}
