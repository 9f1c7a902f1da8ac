import FoundationEssentials

/// Decoding of JSON that came from elsewhere (request bodies, peers' answers, files).
///
/// Foundation's JSONDecoder (swift-foundation, Swift 6.x on Linux) traps instead of throwing
/// when nesting exceeds its limit of 512: found by the `json` fuzz target, and one request of
/// 513 `[` to an open route stopped loopsyd. Nesting is therefore checked here first, in one
/// pass over the bytes, against a limit no message of ours comes near.
public enum SafeJSON {
    public static let maxDepth = 64

    /// How the daemon writes JSON (answers, stored mirrors): sorted keys, slashes unescaped.
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    public struct TooDeep: Error, CustomStringConvertible {
        public var description: String { "JSON nested more than \(SafeJSON.maxDepth) levels deep" }
    }

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data,
                                            decoder: JSONDecoder = JSONDecoder()) throws -> T {
        try checkDepth(data)
        let value = try decoder.decode(type, from: data)
        // Numbers from outside are range-checked here, where they are decoded (see WireRange).
        if let checked = value as? any RangeChecked { try checked.checkRanges() }
        return value
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try decode(type, from: Data(bytes))
    }

    /// Throws `TooDeep` when arrays and objects nest deeper than `maxDepth` (brackets inside
    /// strings do not count).
    public static func checkDepth<Bytes: Sequence>(_ bytes: Bytes) throws where Bytes.Element == UInt8 {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > maxDepth { throw TooDeep() }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
    }
}
