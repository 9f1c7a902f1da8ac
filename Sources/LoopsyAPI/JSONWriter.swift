/// A single-pass JSON writer for the responses on hot paths, where Foundation's JSONEncoder
/// (which builds a tree first) costs more than the rest of the request. Output is what
/// JSONEncoder with `.sortedKeys, .withoutEscapingSlashes` gives, so callers write keys sorted.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    private var needsComma = false

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func openObject() { separate(); bytes.append(UInt8(ascii: "{")); needsComma = false }
    public mutating func closeObject() { bytes.append(UInt8(ascii: "}")); needsComma = true }
    public mutating func openArray() { separate(); bytes.append(UInt8(ascii: "[")); needsComma = false }
    public mutating func closeArray() { bytes.append(UInt8(ascii: "]")); needsComma = true }

    /// A key written in the code: a plain identifier, copied as it is (no escaping to look for).
    public mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    /// A key that comes from data: escaped like any string.
    public mutating func key(named name: String) {
        separate()
        appendEscaped(name)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    public mutating func string(_ value: String) { separate(); appendEscaped(value); needsComma = true }
    /// Digits written straight into the output (`String(value)` made a string of them first).
    public mutating func integer(_ value: Int64) {
        separate()
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var rest = value.magnitude
        // UInt64.max has 20 digits.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var start = digits.count
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
                rest /= 10
            } while rest > 0
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: digits[start...]))
        }
        needsComma = true
    }
    public mutating func bool(_ value: Bool) { separate(); bytes.append(contentsOf: (value ? "true" : "false").utf8); needsComma = true }
    public mutating func null() { separate(); bytes.append(contentsOf: "null".utf8); needsComma = true }

    public mutating func number(_ value: Double) {
        guard value.isFinite else { return null() }
        if abs(value) < 1e15 && value == Double(Int64(value)) { return integer(Int64(value)) }
        separate()
        bytes.append(contentsOf: "\(value)".utf8)
        needsComma = true
    }

    public mutating func field(_ name: StaticString, _ value: String) { key(name); string(value) }
    public mutating func field(named name: String, _ value: String) { key(named: name); string(value) }
    public mutating func field(_ name: StaticString, _ value: Int64) { key(name); integer(value) }
    /// Absent values are left out, as JSONEncoder does.
    public mutating func field(_ name: StaticString, _ value: Int64?) {
        if let value { key(name); integer(value) }
    }
    public mutating func field(_ name: StaticString, _ value: Double) { key(name); number(value) }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    private mutating func appendEscaped(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        // Most strings need no escaping: they are copied as they are, from contiguous UTF-8.
        var text = text
        let plain = text.withUTF8 { utf8 -> Bool in
            guard !utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else {
                return false
            }
            bytes.append(contentsOf: utf8)
            return true
        }
        if plain {
            bytes.append(UInt8(ascii: "\""))
            return
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                          hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// Types that write themselves with `JSONWriter` (keys in sorted order).
public protocol JSONWritable: Encodable {
    func write(to writer: inout JSONWriter)
}

extension ContextEntry: JSONWritable {
    public func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.field("createdAt", createdAt)
        writer.field("expiresAt", expiresAt)
        writer.field("fromNodeId", fromNodeId)
        writer.field("key", key)
        writer.field("revision", revision)
        writer.field("ttl", ttl.map(Int64.init))
        writer.field("updatedAt", updatedAt)
        writer.field("value", value)
        writer.closeObject()
    }
}

extension ContextListResponse: JSONWritable {
    public func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.key("entries")
        writer.openArray()
        for entry in entries { entry.write(to: &writer) }
        writer.closeArray()
        writer.key("more")
        writer.bool(more)
        if let nextAfterKey { writer.field("nextAfterKey", nextAfterKey) }
        writer.closeObject()
    }
}

extension HealthResponse: JSONWritable {
    public func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.field("nodeId", nodeId)
        writer.field("status", status)
        writer.field("uptime", uptime)
        writer.field("version", version)
        writer.closeObject()
    }
}

extension ErrorBody: JSONWritable {
    public func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.key("error")
        writer.openObject()
        writer.field("code", error.code)
        writer.field("message", error.message)
        writer.closeObject()
        writer.closeObject()
    }
}

public enum Hex {
    /// Lowercase hex of bytes (digests, keys).
    public static func encode<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of hex text (either case), or nil if it is not whole hex pairs.
    public static func decode(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    /// The value of one hex digit.
    public static func value(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
