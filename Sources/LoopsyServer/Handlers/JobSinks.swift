import FoundationEssentials
import LoopsyAPI
import LoopsyRun
import LoopsyHTTP
import LoopsyPOSIX

/// Collects a job's output for `POST /execute` and writes one JSON result at the end.
/// Heartbeats are single spaces (JSON allows leading whitespace): they let a vanished client
/// be noticed, which cancels the job.
final class CollectingSink: JobSink {
    private let stream: HTTPStream
    private let output = PlainMutex<(stdout: [UInt8], stderr: [UInt8])>(([], []))

    init(stream: HTTPStream) { self.stream = stream }

    func output(_ name: OutputStreamName, _ bytes: [UInt8]) -> Bool {
        output.withLock { output in
            if name == .stdout { output.stdout += bytes } else { output.stderr += bytes }
        }
        return !stream.isClosed
    }

    func heartbeat() -> Bool { stream.write([UInt8(ascii: " ")]) || !stream.isClosed }

    func clientGone() -> Bool { stream.clientHungUp }

    func finished(_ result: ExecuteResult) {
        var complete = result
        output.withLock { output in
            complete.stdout = String(decoding: output.stdout, as: UTF8.self)
            complete.stderr = String(decoding: output.stderr, as: UTF8.self)
        }
        if let body = try? HTTPResponse.json(complete).body { stream.write(body, bounded: false) }
        stream.finish()
    }
}

/// Streams a job as Server-Sent Events: `start`, then `stdout`/`stderr` chunks as they
/// arrive, then `exit`. Every event has an increasing id so a client can tell what it missed.
final class EventStreamSink: JobSink {
    private struct State {
        var nextId = 1
        var pending: [OutputStreamName: [UInt8]] = [:]
        var dropped = false
    }

    private let stream: HTTPStream
    private let state = PlainMutex(State())

    init(stream: HTTPStream) { self.stream = stream }

    func started(_ info: JobInfo) {
        send(event: .start, data: Self.encode(ExecuteStreamEvent.Start(jobId: info.jobId, pid: info.pid)))
    }

    func output(_ name: OutputStreamName, _ bytes: [UInt8]) -> Bool {
        // Hold back an incomplete UTF-8 sequence at the end so text is never split mid-character.
        let payload = state.withLock { state -> [UInt8] in
            let joined = (state.pending[name] ?? []) + bytes
            let cut = UTF8Boundary.lastComplete(joined)
            state.pending[name] = Array(joined[cut...])
            return Array(joined[..<cut])
        }
        guard !payload.isEmpty else { return !stream.isClosed }
        return sendOutput(name, payload)
    }

    func heartbeat() -> Bool { stream.write(Array(": keepalive\n\n".utf8)) || !stream.isClosed }

    func clientGone() -> Bool { stream.clientHungUp }

    func finished(_ result: ExecuteResult) {
        let leftovers = state.withLock { state -> [(OutputStreamName, [UInt8])] in
            defer { state.pending = [:] }
            return state.pending.filter { !$0.value.isEmpty }.map { ($0.key, $0.value) }
        }
        for (name, bytes) in leftovers { _ = sendOutput(name, bytes) }
        var final = result
        if state.withLock({ $0.dropped }) { final.truncated = true }
        send(event: .exit, data: Self.encode(final), bounded: false)
        stream.finish()
    }

    private func sendOutput(_ name: OutputStreamName, _ bytes: [UInt8]) -> Bool {
        let event: ExecuteStreamEvent.Output
        if let text = String(validating: bytes, as: UTF8.self) {
            event = .init(text: text, base64: nil)
        } else {
            event = .init(text: nil, base64: Data(bytes).base64EncodedString())
        }
        return send(event: name == .stdout ? .stdout : .stderr, data: Self.encode(event))
    }

    @discardableResult
    private func send(event: ExecuteStreamEvent.Name, data: [UInt8], bounded: Bool = true) -> Bool {
        let frame = state.withLock { state -> [UInt8] in
            defer { state.nextId += 1 }
            return Array("id: \(state.nextId)\nevent: \(event.rawValue)\ndata: ".utf8) + data + Array("\n\n".utf8)
        }
        if stream.write(frame, bounded: bounded) { return true }
        if stream.isClosed { return false }
        // The client reads slower than the job writes: drop and say so in the exit event.
        state.withLock { $0.dropped = true }
        return true
    }

    private static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        (try? HTTPResponse.json(value).body) ?? Array("{}".utf8)
    }
}
