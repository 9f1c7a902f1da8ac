import Foundation
import Logging
import LoopsyPOSIX
import MCP

/// MCP over stdin/stdout, one JSON message per line, that knows which requests are still
/// unanswered. At end of input it keeps the stream open until every in-flight request has its
/// response (or was cancelled), so a client that closes stdin right after sending still gets
/// its answers; the SDK's StdioTransport ends at once and drops them.
actor StdioLineTransport: Transport {
    nonisolated let logger = Logger(label: "loopsy-mcp.stdio", factory: { _ in SwiftLogNoOpLogHandler() })

    private let stream: AsyncThrowingStream<Data, any Swift.Error>
    private let continuation: AsyncThrowingStream<Data, any Swift.Error>.Continuation
    /// Requests without a response yet, and whether stdin has ended. Touched by the reader
    /// thread and by `send`, so it is locked rather than actor state.
    private let state = PendingState()
    private var connected = false

    init() {
        (stream, continuation) = AsyncThrowingStream.makeStream()
    }

    func connect() async throws {
        guard !connected else { return }
        connected = true
        // Blocking reads on a thread of their own (the cooperative pool is not held up); lines
        // are yielded from this one thread, so they arrive in order.
        let reader = Thread { [continuation, state] in
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            var line = Data()
            while true {
                let count = retryingInterrupts { read(0, &buffer, buffer.count) }
                if count <= 0 { break }
                var start = 0
                for index in 0..<count where buffer[index] == UInt8(ascii: "\n") {
                    line.append(contentsOf: buffer[start..<index])
                    start = index + 1
                    if !line.isEmpty { Self.received(line, state: state, continuation: continuation) }
                    line = Data()
                }
                line.append(contentsOf: buffer[start..<count])
            }
            let done = state.lock.withLock { state -> Bool in
                state.inputEnded = true
                return state.pending.isEmpty
            }
            if done { continuation.finish() }
        }
        reader.start()
    }

    private static func received(_ message: Data, state: PendingState,
                                 continuation: AsyncThrowingStream<Data, any Swift.Error>.Continuation) {
        if let (id, method) = requestInfo(message) {
            if method == "notifications/cancelled" {
                if let cancelled = cancelledId(message) { _ = state.lock.withLock { $0.pending.remove(cancelled) } }
            } else if let id, method != nil {
                _ = state.lock.withLock { $0.pending.insert(id) }
            }
        }
        continuation.yield(message)
    }

    func disconnect() async {
        connected = false
        continuation.finish()
    }

    func send(_ data: Data) async throws {
        // The initialize result declares the channel capabilities (claude/channel, …/permission).
        var message = ChannelCapabilities.declare(in: data)
        message.append(UInt8(ascii: "\n"))
        do {
            try FileIO.writeAll(1, Array(message))
        } catch {
            throw MCPError.internalError("stdout closed (\(error))")
        }
        // A response (result or error) answers its request.
        if let (id, method) = Self.requestInfo(data), method == nil, let id {
            let done = state.lock.withLock { state -> Bool in
                state.pending.remove(id)
                return state.inputEnded && state.pending.isEmpty
            }
            if done { continuation.finish() }
        }
    }

    func receive() -> AsyncThrowingStream<Data, any Swift.Error> { stream }

    /// The id (as text) and method of a JSON-RPC message.
    private static func requestInfo(_ data: Data) -> (String?, String?)? {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return (object["id"].map { "\($0)" }, object["method"] as? String)
    }

    private static func cancelledId(_ data: Data) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let params = object["params"] as? [String: Any], let id = params["requestId"] else { return nil }
        return "\(id)"
    }
}

final class PendingState: Sendable {
    let lock = PlainMutex<(pending: Set<String>, inputEnded: Bool)>(([], false))
}
