#if canImport(Glibc)
import Glibc
#endif

/// An incremental `multipart/form-data` parser: bytes in as they arrive, part events out.
/// Part bodies are never held whole, so a 1 GiB file part streams through in constant memory.
struct MultipartParser {
    enum Event: Equatable {
        case partStart(name: String, filename: String?)
        case data([UInt8])
        case partEnd
    }

    struct Failure: Error, Equatable {
        var message: String
    }

    private enum State { case preamble, headers, body, done }

    private let delimiter: [UInt8]  // "\r\n--" + boundary
    private var buffer: [UInt8] = []
    private var state = State.preamble
    private static let maxHeaderBytes = 8192

    var isComplete: Bool { state == .done }

    init(boundary: String) {
        delimiter = Array("\r\n--\(boundary)".utf8)
        // The first delimiter may come without the leading CRLF.
        buffer = Array("\r\n".utf8)
    }

    /// The boundary of a `multipart/form-data; boundary=...` content type.
    static func boundary(fromContentType contentType: String) -> String? {
        guard contentType.lowercased().hasPrefix("multipart/form-data") else { return nil }
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimming().lowercased() == "boundary" else { continue }
            var value = pair[1].trimming()
            if value.hasPrefix("\"") && value.hasSuffix("\"") && value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            return value.isEmpty || value.count > 200 ? nil : value
        }
        return nil
    }

    mutating func feed(_ bytes: UnsafeBufferPointer<UInt8>) throws -> [Event] {
        buffer.append(contentsOf: bytes)
        var events: [Event] = []
        var progress = true
        while progress {
            progress = false
            switch state {
            case .preamble:
                guard let found = find(delimiter, in: buffer, from: 0) else {
                    // Keep only what could still be the start of the delimiter.
                    if buffer.count > delimiter.count { buffer.removeFirst(buffer.count - delimiter.count) }
                    break
                }
                guard buffer.count >= found + delimiter.count + 2 else { break }
                let after = Array(buffer[(found + delimiter.count)..<(found + delimiter.count + 2)])
                buffer.removeFirst(found + delimiter.count + 2)
                if after == Array("--".utf8) { state = .done } else if after == Array("\r\n".utf8) { state = .headers } else {
                    throw Failure(message: "malformed multipart boundary line")
                }
                progress = true
            case .headers:
                guard let end = find(Array("\r\n\r\n".utf8), in: buffer, from: 0) else {
                    if buffer.count > Self.maxHeaderBytes { throw Failure(message: "multipart part headers are too large") }
                    break
                }
                let text = String(decoding: buffer[..<end], as: UTF8.self)
                buffer.removeFirst(end + 4)
                events.append(try Self.partStart(headers: text))
                state = .body
                progress = true
            case .body:
                if let found = find(delimiter, in: buffer, from: 0) {
                    guard buffer.count >= found + delimiter.count + 2 else {
                        if found > 0 {
                            events.append(.data(Array(buffer[..<found])))
                            buffer.removeFirst(found)
                        }
                        break
                    }
                    if found > 0 { events.append(.data(Array(buffer[..<found]))) }
                    events.append(.partEnd)
                    let after = Array(buffer[(found + delimiter.count)..<(found + delimiter.count + 2)])
                    buffer.removeFirst(found + delimiter.count + 2)
                    if after == Array("--".utf8) { state = .done } else if after == Array("\r\n".utf8) { state = .headers } else {
                        throw Failure(message: "malformed multipart boundary line")
                    }
                    progress = true
                } else if buffer.count > delimiter.count {
                    // Everything but a possible partial delimiter at the end is part data.
                    let safe = buffer.count - delimiter.count
                    events.append(.data(Array(buffer[..<safe])))
                    buffer.removeFirst(safe)
                }
            case .done:
                buffer.removeAll()
            }
        }
        return events
    }

    private static func partStart(headers: String) throws -> Event {
        for line in headers.split(separator: "\r\n") {
            let pair = line.split(separator: ":", maxSplits: 1)
            guard pair.count == 2, pair[0].trimming().lowercased() == "content-disposition" else { continue }
            var name: String?, filename: String?
            for parameter in pair[1].split(separator: ";").dropFirst() {
                let field = parameter.split(separator: "=", maxSplits: 1)
                guard field.count == 2 else { continue }
                var value = field[1].trimming()
                if value.hasPrefix("\"") && value.hasSuffix("\"") && value.count >= 2 { value = String(value.dropFirst().dropLast()) }
                switch field[0].trimming().lowercased() {
                case "name": name = value
                case "filename": filename = value
                default: break
                }
            }
            guard let name else { break }
            return .partStart(name: name, filename: filename)
        }
        throw Failure(message: "a multipart part has no Content-Disposition name")
    }

    /// Index of `needle` in `haystack` at or after `start` (memchr finds candidates: this runs
    /// over every byte of an upload).
    private func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard let first = needle.first, haystack.count >= needle.count else { return nil }
        return haystack.withUnsafeBufferPointer { bytes -> Int? in
            guard let base = bytes.baseAddress else { return nil }
            var index = start
            let last = bytes.count - needle.count
            while index <= last {
                guard let hit = memchr(base + index, Int32(first), last - index + 1) else { return nil }
                index = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                if memcmp(base + index, needle, needle.count) == 0 { return index }
                index += 1
            }
            return nil
        }
    }
}
