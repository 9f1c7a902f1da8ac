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
            // Set while the rest of a line past `maxLineBytes` is read and dropped.
            var dropping = false
            while true {
                let count = retryingInterrupts { read(0, &buffer, buffer.count) }
                if count <= 0 { break }
                var start = 0
                for index in 0..<count where buffer[index] == UInt8(ascii: "\n") {
                    if !dropping {
                        line.append(contentsOf: buffer[start..<index])
                        if !line.isEmpty { Self.received(line, state: state, continuation: continuation) }
                    }
                    dropping = false
                    start = index + 1
                    line = Data()
                }
                guard !dropping else { continue }
                line.append(contentsOf: buffer[start..<count])
                if line.count > Self.maxLineBytes {
                    dropping = true
                    line = Data()
                }
            }
            // A last message without its newline is still a message.
            if !dropping && !line.isEmpty { Self.received(line, state: state, continuation: continuation) }
            let done = state.lock.withLock { state -> Bool in
                state.inputEnded = true
                return state.pending.isEmpty
            }
            if done { continuation.finish() }
        }
        reader.start()
    }

    /// The longest message taken (the client is Claude Code, which sends small ones; a longer
    /// line is dropped whole rather than held).
    static let maxLineBytes = 64 << 20

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

    private struct Envelope: Decodable {
        var id: ID?
        var method: String?
    }

    private struct Cancelled: Decodable {
        struct Parameters: Decodable { var requestId: ID }
        var params: Parameters
    }

    /// The id and method of a JSON-RPC message, read as the SDK reads them: an id that is not a
    /// string or an integer (an object, true, 1.5) is no request the SDK answers, so it is not
    /// waited for (it kept loopsy-mcp running after stdin closed).
    private static func requestInfo(_ data: Data) -> (ID?, String?)? {
        guard let envelope = try? JSONDecoder().decode(Envelope.self, from: data) else { return nil }
        return (envelope.id, envelope.method)
    }

    private static func cancelledId(_ data: Data) -> ID? {
        (try? JSONDecoder().decode(Cancelled.self, from: data))?.params.requestId
    }
}

final class PendingState: Sendable {
    let lock = PlainMutex<(pending: Set<ID>, inputEnded: Bool)>(([], false))
}
