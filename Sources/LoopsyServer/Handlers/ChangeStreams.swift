import Dispatch
import LoopsyAPI
import LoopsyCore
import LoopsyHTTP
import LoopsyPOSIX

/// `GET /events`: the node's change notifications (LoopsyCore's ChangeBus) as Server-Sent
/// Events streams of `change` events, for live views such as the dashboard.
///
/// A subscriber that falls behind by a full buffer is dropped (its EventSource reconnects and
/// refetches).
public final class ChangeStreams: Sendable {
    private struct State {
        var subscribers: [ObjectIdentifier: HTTPStream] = [:]
        var heartbeat: (any DispatchSourceTimer)?
        var unsubscribe: (@Sendable () -> Void)?
    }
    private let state = PlainMutex(State())
    private let bus: ChangeBus
    /// Limits the subscribers, so open streams cannot pile up without bound.
    public let maxSubscribers: Int

    public init(bus: ChangeBus, maxSubscribers: Int = 64) {
        self.bus = bus
        self.maxSubscribers = maxSubscribers
    }

    /// A new subscriber's stream, or nil when `maxSubscribers` are connected. (The dispatcher's
    /// CredentialWatch ends it, as every stream, when the credential that opened it ends.)
    public func subscribe() -> HTTPStream? {
        let stream = HTTPStream(bufferLimit: 256 * 1024)
        let id = ObjectIdentifier(stream)
        let admitted: Bool = state.withLock { state in
            guard state.subscribers.count < maxSubscribers else { return false }
            state.subscribers[id] = stream
            if state.heartbeat == nil { state.heartbeat = startHeartbeat() }
            if state.unsubscribe == nil { state.unsubscribe = bus.subscribe { [weak self] in self?.send($0) } }
            return true
        }
        guard admitted else { return nil }
        stream.onClose { [weak self] in self?.remove(id) }
        // The first bytes tell the client the stream is live (and carry the reconnect delay).
        _ = stream.write(Array("retry: 2000\nevent: ready\ndata: {}\n\n".utf8))
        return stream
    }

    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    /// One change to every stream, as one line of JSON (an SSE data line ends at a newline).
    private func send(_ change: ChangeBus.Change) {
        let subscribers = state.withLock { Array($0.subscribers.values) }
        guard !subscribers.isEmpty else { return }
        var json = JSONWriter()
        json.openObject()
        var fields = change.detail
        fields["topic"] = change.topic.rawValue
        for (name, value) in fields.sorted(by: { $0.key < $1.key }) { json.field(named: name, value) }
        json.field("time", change.time)
        json.closeObject()
        let event = Array("id: \(change.sequence)\nevent: change\ndata: ".utf8) + json.bytes + Array("\n\n".utf8)
        for stream in subscribers where !stream.write(event) { drop(stream) }
    }

    /// Ends every stream (daemon stop).
    public func finishAll() {
        let subscribers = state.withLock { state -> [HTTPStream] in
            state.heartbeat?.cancel()
            state.heartbeat = nil
            state.unsubscribe?()
            state.unsubscribe = nil
            defer { state.subscribers.removeAll() }
            return Array(state.subscribers.values)
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
                state.unsubscribe?()
                state.unsubscribe = nil
            }
        }
    }

    /// Every 15 s a comment line keeps proxies from closing idle streams and finds clients that
    /// left.
    private func startHeartbeat() -> any DispatchSourceTimer {
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + 15, repeating: 15, leeway: .milliseconds(500))
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            for stream in state.withLock({ Array($0.subscribers.values) })
            where !stream.write(Array(": ping\n\n".utf8)) {
                drop(stream)
            }
        }
        timer.resume()
        return timer
    }
}
