import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// An incremental `multipart/form-data` parser: bytes in as they arrive, part events out.
/// Part bodies are never held whole, so a 1 GiB file part streams through in constant memory.
/// A part's bytes are handed on where they lie, in the bytes fed, whenever they can be: the
/// parser copies only what could still begin a delimiter (usually nothing), and the headers.
final class MultipartParser {
    enum Event: Equatable {
        case partStart(name: String, filename: String?)
        case data([UInt8])
        case partEnd
    }

    /// An event as `feed(_:_:)` reports it: `data` points into the bytes fed or the parser's
    /// own buffer, valid only during the call.
    enum Piece {
        case partStart(name: String, filename: String?)
        case data(UnsafeBufferPointer<UInt8>)
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
    /// What ends a part's headers.
    private static let headersEnd = Array("\r\n\r\n".utf8)

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

    /// Feeds `bytes`, returning the events as values (tests and the fuzzer use this).
    func feed(_ bytes: UnsafeBufferPointer<UInt8>) throws -> [Event] {
        var events: [Event] = []
        try feed(bytes) { piece in
            switch piece {
            case .partStart(let name, let filename): events.append(.partStart(name: name, filename: filename))
            case .data(let data): events.append(.data(Array(data)))
            case .partEnd: events.append(.partEnd)
            }
        }
        return events
    }

    /// Feeds `bytes`, calling `handle` with each event in order.
    func feed(_ bytes: UnsafeBufferPointer<UInt8>, _ handle: (Piece) throws -> Void) throws {
        guard state == .body, buffer.isEmpty else {
            buffer.append(contentsOf: bytes)
            return try parseBuffer(handle)
        }
        // Inside a part with nothing held back: its bytes go on from where they lie.
        if let found = ByteSearch.firstIndex(of: delimiter, in: bytes) {
            if found > 0 { try handle(.data(UnsafeBufferPointer(rebasing: bytes[..<found]))) }
            buffer.append(contentsOf: bytes[found...])
            return try parseBuffer(handle)
        }
        let kept = Self.delimiterStart(delimiter, in: bytes)
        if kept > 0 { try handle(.data(UnsafeBufferPointer(rebasing: bytes[..<kept]))) }
        buffer.append(contentsOf: bytes[kept...])
    }

    private func parseBuffer(_ handle: (Piece) throws -> Void) throws {
        var progress = true
        while progress {
            progress = false
            switch state {
            case .preamble:
                guard let found = buffer.withUnsafeBufferPointer({ ByteSearch.firstIndex(of: delimiter, in: $0) }) else {
                    // Keep only what could still be the start of the delimiter.
                    if buffer.count > delimiter.count { buffer.removeFirst(buffer.count - delimiter.count) }
                    break
                }
                guard buffer.count >= found + delimiter.count + 2 else { break }
                try boundaryLine(after: found)
                progress = true
            case .headers:
                guard let end = buffer.withUnsafeBufferPointer({ ByteSearch.firstIndex(of: Self.headersEnd, in: $0) }) else {
                    if buffer.count > Self.maxHeaderBytes { throw Failure(message: "multipart part headers are too large") }
                    break
                }
                let text = String(decoding: buffer[..<end], as: UTF8.self)
                buffer.removeFirst(end + 4)
                let (name, filename) = try Self.partStart(headers: text)
                try handle(.partStart(name: name, filename: filename))
                state = .body
                progress = true
            case .body:
                let found = buffer.withUnsafeBufferPointer { ByteSearch.firstIndex(of: delimiter, in: $0) }
                // Part data: all before a delimiter, or else all that cannot be the start of one.
                let data = found ?? buffer.withUnsafeBufferPointer { Self.delimiterStart(delimiter, in: $0) }
                if data > 0 {
                    try buffer.withUnsafeBufferPointer { try handle(.data(UnsafeBufferPointer(rebasing: $0[..<data]))) }
                    buffer.removeFirst(data)
                }
                guard found != nil, buffer.count >= delimiter.count + 2 else { break }
                try handle(.partEnd)
                try boundaryLine(after: 0)
                progress = true
            case .done:
                buffer.removeAll()
            }
        }
    }

    /// Consumes the delimiter at `found` and the two bytes after it: CRLF before a part's
    /// headers, or "--" at the end of the body.
    private func boundaryLine(after found: Int) throws {
        let after = (buffer[found + delimiter.count], buffer[found + delimiter.count + 1])
        buffer.removeFirst(found + delimiter.count + 2)
        switch after {
        case (UInt8(ascii: "-"), UInt8(ascii: "-")): state = .done
        case (UInt8(ascii: "\r"), UInt8(ascii: "\n")): state = .headers
        default: throw Failure(message: "malformed multipart boundary line")
        }
    }

    private static func partStart(headers: String) throws -> (name: String, filename: String?) {
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
            return (name, filename)
        }
        throw Failure(message: "a multipart part has no Content-Disposition name")
    }

    /// Where the longest end of `haystack` that could begin `needle` (a proper prefix of it)
    /// starts; `haystack.count` when none does. The part data before it is safe to hand on.
    private static func delimiterStart(_ needle: [UInt8], in haystack: UnsafeBufferPointer<UInt8>) -> Int {
        guard let first = needle.first, let base = haystack.baseAddress else { return haystack.count }
        var index = max(0, haystack.count - (needle.count - 1))
        while index < haystack.count {
            guard let hit = memchr(base + index, Int32(first), haystack.count - index) else { break }
            index = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            if memcmp(base + index, needle, haystack.count - index) == 0 { return index }
            index += 1
        }
        return haystack.count
    }
}
