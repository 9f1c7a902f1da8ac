import FoundationEssentials
import LoopsyAPI
import LoopsyRun
import LoopsyHTTP
import LoopsyPOSIX

/// Collects a job's output for `POST /execute` and writes one JSON result at the end.
/// Heartbeats are single spaces (JSON allows leading whitespace): they let a vanished client
/// be noticed, which cancels the job.
///
/// Each stream's text is kept as the answer will carry it, and capped there: at most
/// `maxTextBytes` of JSON string per stream, escapes counted (a control byte is six bytes
/// escaped, a stray non-UTF-8 byte three as U+FFFD). Counting raw bytes let a command's 10 MiB of
/// control bytes become a 60 MiB answer held for a client that reads slowly.
final class CollectingSink: JobSink {
    private struct Collected {
        var text = ["", ""]
        /// An incomplete UTF-8 sequence at the end of each stream, until its next bytes come.
        var pending: [[UInt8]] = [[], []]
        /// Bytes of escaped JSON each stream's text may still take.
        var room: [Int]
        var cut = false
    }

    private let stream: HTTPStream
    private let collected: PlainMutex<Collected>

    init(stream: HTTPStream, maxTextBytes: Int) {
        self.stream = stream
        collected = PlainMutex(Collected(room: [maxTextBytes, maxTextBytes]))
    }

    func output(_ name: OutputStreamName, _ bytes: [UInt8]) -> Bool {
        collected.withLock { collected in
            let index = name == .stdout ? 0 : 1
            guard collected.room[index] > 0 else {
                collected.cut = collected.cut || !bytes.isEmpty
                return
            }
            let joined = collected.pending[index] + bytes
            let end = UTF8Boundary.lastComplete(joined)
            collected.pending[index] = Array(joined[end...])
            Self.append(String(decoding: joined[..<end], as: UTF8.self), to: &collected, index)
        }
        return !stream.isClosed
    }

    func heartbeat() -> Bool { stream.write([UInt8(ascii: " ")]) || !stream.isClosed }

    func clientGone() -> Bool { stream.clientHungUp }

    func whenDelivered(_ action: @escaping @Sendable () -> Void) { stream.whenDone(action) }

    func finished(_ result: ExecuteResult) {
        var complete = result
        collected.withLock { collected in
            for index in 0..<2 where !collected.pending[index].isEmpty {
                Self.append(String(decoding: collected.pending[index], as: UTF8.self), to: &collected, index)
            }
            complete.stdout = collected.text[0]
            complete.stderr = collected.text[1]
            if collected.cut { complete.truncated = true }
        }
        if let body = try? HTTPResponse.json(complete).body { stream.write(body, bounded: false) }
        stream.finish()
    }

    /// Adds what of `piece` fits in the stream's room, whole scalars only.
    private static func append(_ piece: String, to collected: inout Collected, _ index: Int) {
        var room = collected.room[index]
        var end = piece.unicodeScalars.startIndex
        for scalar in piece.unicodeScalars {
            let cost = escapedLength(scalar)
            guard cost <= room else {
                collected.cut = true
                room = 0
                break
            }
            room -= cost
            end = piece.unicodeScalars.index(after: end)
        }
        collected.room[index] = room
        collected.text[index] += end == piece.unicodeScalars.endIndex ? piece : String(piece.unicodeScalars[..<end])
    }

    /// Bytes the scalar takes inside a JSON string as the daemon writes it.
    static func escapedLength(_ scalar: Unicode.Scalar) -> Int {
        switch scalar.value {
        case 0x08, 0x09, 0x0A, 0x0C, 0x0D, 0x22, 0x5C: return 2
        case 0..<0x20: return 6
        default: return UTF8.width(scalar)
        }
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

    func whenDelivered(_ action: @escaping @Sendable () -> Void) { stream.whenDone(action) }

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
