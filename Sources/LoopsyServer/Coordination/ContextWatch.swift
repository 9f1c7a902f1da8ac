import Dispatch
import LoopsyAPI
import LoopsyHTTP
import LoopsyPOSIX
import LoopsyStore

/// Watches on the context store: a request that waits for a key or a prefix to change holds a
/// suspended connection (no thread), and is answered when a write, delete or expiry of a
/// matching key commits, or when its wait ends.
public final class ContextWatch: Sendable {
    /// Requests waiting at once, at most (each holds a suspended connection).
    public static let maxWatchers = 2_000

    private struct Watcher {
        /// Keys starting with this (a key watch uses the key and `exact`).
        var prefix: String
        var exact: Bool
        var answer: DeferredResponse
        /// The answer if there is one now; nil to keep waiting.
        var attempt: @Sendable () -> HTTPResponse?
        var timeout: @Sendable () -> HTTPResponse
    }
    private struct State {
        var next: UInt64 = 0
        var watchers: [UInt64: Watcher] = [:]
    }
    private let state = PlainMutex(State())
    private let queue = DispatchQueue(label: "loopsy.context.watch")

    init(store: ContextStore) {
        store.changed.observe { [weak self] keys in self?.changed(keys) }
    }

    var count: Int { state.withLock { $0.watchers.count } }

    /// Answers with `attempt()` if it has an answer now; otherwise waits up to `seconds` (and
    /// answers `timeout()` then). `recheckAt` (Unix ms) also wakes it, e.g. when an entry expires.
    func wait(prefix: String, exact: Bool, seconds: Int, recheckAt: Int64? = nil,
              attempt: @escaping @Sendable () -> HTTPResponse?,
              timeout: @escaping @Sendable () -> HTTPResponse) throws -> HTTPResponse {
        if let now = attempt() { return now }
        guard seconds > 0 else { return timeout() }
        let answer = DeferredResponse()
        let id = try state.withLock { state -> UInt64 in
            guard state.watchers.count < Self.maxWatchers else {
                throw APIError(status: 503, code: "too_many_watchers",
                               message: "\(Self.maxWatchers) watches are open already; retry later",
                               headers: ["Retry-After": "1"])
            }
            state.next += 1
            state.watchers[state.next] = Watcher(prefix: prefix, exact: exact, answer: answer, attempt: attempt,
                                                  timeout: timeout)
            return state.next
        }
        // A write may have landed between the first attempt and the registration.
        queue.async { [self] in check(id) }
        queue.asyncAfter(deadline: .now() + .seconds(seconds)) { [self] in
            guard let watcher = remove(id) else { return }
            watcher.answer.complete(watcher.attempt() ?? watcher.timeout())
        }
        if let recheckAt {
            let delay = max(0, Double(recheckAt - Clock.nowMillis()) / 1000) + 0.005
            queue.asyncAfter(deadline: .now() + delay) { [self] in check(id) }
        }
        return HTTPResponse(deferred: answer)
    }

    /// Daemon stop: every watcher is answered now.
    func finishAll() {
        let all = state.withLock { state -> [Watcher] in
            defer { state.watchers.removeAll() }
            return Array(state.watchers.values)
        }
        for watcher in all { watcher.answer.complete(watcher.timeout()) }
    }

    private func changed(_ keys: [String]) {
        let matching = state.withLock { state in
            state.watchers.filter { _, watcher in
                keys.contains { watcher.exact ? $0 == watcher.prefix : $0.hasPrefix(watcher.prefix) }
            }.map(\.key)
        }
        guard !matching.isEmpty else { return }
        queue.async { [self] in for id in matching { check(id) } }
    }

    private func check(_ id: UInt64) {
        guard let watcher = state.withLock({ $0.watchers[id] }) else { return }
        if watcher.answer.isAbandoned {
            _ = remove(id)
            watcher.answer.complete(watcher.timeout())
            return
        }
        guard let response = watcher.attempt(), remove(id) != nil else { return }
        watcher.answer.complete(response)
    }

    private func remove(_ id: UInt64) -> Watcher? {
        state.withLock { $0.watchers.removeValue(forKey: id) }
    }
}
