import Dispatch
import LoopsyAPI
import LoopsyHTTP
import LoopsyPOSIX
import LoopsyStore

/// Change notifications for live views (the dashboard): a Server-Sent Events stream of
/// `change` events naming the API area that changed (context, messages, peers, ai-tasks,
/// execute). The dispatcher publishes one for every successful state-changing request;
/// background work (deliveries, health checks, tasks ending) publishes its own.
///
/// Events say *what* changed, not the new data: a view refetches what it shows, through the
/// same authenticated API. A subscriber that falls behind by a full buffer is dropped (its
/// EventSource reconnects and refetches).
public final class EventHub: Sendable {
    private struct Subscriber {
        var stream: HTTPStream
        /// False once the credential that opened the stream no longer holds (logout, new key).
        var stillValid: @Sendable () -> Bool
    }
    private struct State {
        var subscribers: [ObjectIdentifier: Subscriber] = [:]
        var sequence: UInt64 = 0
        var heartbeat: (any DispatchSourceTimer)?
        var ticks = 0
    }
    private let state = PlainMutex(State())
    /// Limits the subscribers, so open streams cannot pile up without bound.
    public let maxSubscribers: Int

    public init(maxSubscribers: Int = 64) {
        self.maxSubscribers = maxSubscribers
    }

    /// Areas a path (without its query) belongs to: the segment after /api/v1/ (a relayed call
    /// counts as `peers`).
    public static func topic(forPath path: String) -> String? {
        let parts = path.split(separator: "/")
        guard parts.count >= 3, parts[0] == "api", parts[1] == "v1" else { return nil }
        switch parts[2] {
        case "context", "messages", "peers", "ai-tasks", "execute", "transfer", "pair", "locks", "approvals", "grants":
            return String(parts[2])
        default: return nil
        }
    }

    /// A new subscriber's stream, or nil when `maxSubscribers` are connected. The stream ends
    /// within about half a second once `stillValid` says no.
    public func subscribe(while stillValid: @escaping @Sendable () -> Bool = { true }) -> HTTPStream? {
        let stream = HTTPStream(bufferLimit: 256 * 1024)
        let id = ObjectIdentifier(stream)
        let admitted: Bool = state.withLock { state in
            guard state.subscribers.count < maxSubscribers else { return false }
            state.subscribers[id] = Subscriber(stream: stream, stillValid: stillValid)
            if state.heartbeat == nil { state.heartbeat = startHeartbeat() }
            return true
        }
        guard admitted else { return nil }
        stream.onClose { [weak self] in self?.remove(id) }
        // The first bytes tell the client the stream is live (and carry the reconnect delay).
        _ = stream.write(Array("retry: 2000\nevent: ready\ndata: {}\n\n".utf8))
        return stream
    }

    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    /// Tells every subscriber that `topic` changed.
    public func publish(_ topic: String, detail: [String: String] = [:]) {
        let (sequence, subscribers) = state.withLock { state -> (UInt64, [HTTPStream]) in
            state.sequence += 1
            return (state.sequence, state.subscribers.values.map(\.stream))
        }
        guard !subscribers.isEmpty else { return }
        // One line of JSON: an SSE data line ends at the first newline.
        var json = JSONWriter()
        json.openObject()
        var fields = detail
        fields["topic"] = topic
        for (name, value) in fields.sorted(by: { $0.key < $1.key }) { json.field(name, value) }
        json.field("time", Clock.nowMillis())
        json.closeObject()
        let event = Array("id: \(sequence)\nevent: change\ndata: ".utf8) + json.bytes + Array("\n\n".utf8)
        for stream in subscribers where !stream.write(event) { drop(stream) }
    }

    /// Ends every stream (daemon stop).
    public func finishAll() {
        let subscribers = state.withLock { state -> [HTTPStream] in
            state.heartbeat?.cancel()
            state.heartbeat = nil
            defer { state.subscribers.removeAll() }
            return state.subscribers.values.map(\.stream)
        }
        subscribers.forEach { $0.finish() }
    }

    private func drop(_ stream: HTTPStream) {
        remove(ObjectIdentifier(stream))
        stream.abort()
    }

    private func remove(_ id: ObjectIdentifier) {
        state.withLock { state in
            state.subscribers[id] = nil
            if state.subscribers.isEmpty {
                state.heartbeat?.cancel()
                state.heartbeat = nil
            }
        }
    }

    /// Twice a second: streams whose credential ended are closed. Every 15 s a comment line
    /// keeps proxies from closing idle streams and finds clients that left.
    private func startHeartbeat() -> any DispatchSourceTimer {
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + 0.5, repeating: 0.5, leeway: .milliseconds(50))
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            let (subscribers, ping) = state.withLock { state -> ([Subscriber], Bool) in
                state.ticks += 1
                return (Array(state.subscribers.values), state.ticks % 30 == 0)
            }
            for subscriber in subscribers {
                if !subscriber.stillValid() {
                    remove(ObjectIdentifier(subscriber.stream))
                    subscriber.stream.finish()
                } else if ping, !subscriber.stream.write(Array(": ping\n\n".utf8)) {
                    drop(subscriber.stream)
                }
            }
        }
        timer.resume()
        return timer
    }
}
