/// Where a stream of bytes can be cut without splitting a UTF-8 character (job output is sent
/// as text in pieces).
public enum UTF8Boundary {
    /// The index up to which `bytes` holds only complete UTF-8 sequences (invalid bytes count as
    /// complete, so they are not held back forever).
    public static func lastComplete(_ bytes: [UInt8]) -> Int {
        var index = bytes.count
        var continuation = 0
        while index > 0 && continuation < 3 && bytes[index - 1] & 0xC0 == 0x80 {
            index -= 1
            continuation += 1
        }
        guard index > 0 else { return bytes.count }
        let lead = bytes[index - 1]
        let needed: Int
        switch lead {
        case 0xF0...0xF7: needed = 3
        case 0xE0...0xEF: needed = 2
        case 0xC0...0xDF: needed = 1
        default: needed = 0
        }
        return needed > continuation ? index - 1 : bytes.count
    }
}

extension StringProtocol {
    /// At most `maxBytes` of its UTF-8 from the start, cut between scalars. A limit in bytes must
    /// not be applied with `prefix(_:)`, which counts Characters: one Character can be megabytes
    /// of combining marks.
    public func prefix(utf8Bytes maxBytes: Int) -> String {
        guard utf8.count > maxBytes else { return String(self) }
        let bytes = Array(utf8.prefix(Swift.max(0, maxBytes)))
        return String(decoding: bytes[..<UTF8Boundary.lastComplete(bytes)], as: UTF8.self)
    }

    /// At most `maxBytes` of its UTF-8 from the end, cut between scalars (see `prefix(utf8Bytes:)`).
    public func suffix(utf8Bytes maxBytes: Int) -> String {
        guard utf8.count > maxBytes else { return String(self) }
        var bytes = Array(utf8.suffix(Swift.max(0, maxBytes)))
        // Continuation bytes of a sequence cut at the front are dropped.
        let lead = bytes.prefix(3).prefix { $0 & 0xC0 == 0x80 }.count
        bytes.removeFirst(lead)
        return String(decoding: bytes, as: UTF8.self)
    }
}
