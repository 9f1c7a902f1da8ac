/// A reader for the one body shape the hot write path sees almost always: a flat JSON object
/// whose members are strings without escapes, integers or null. Anything else (escapes,
/// fractions, exponents, nesting, duplicate or unknown keys, odd bytes) makes it give up, and
/// the caller decodes with JSONDecoder, which also words the errors; so what it accepts, it
/// reads exactly as JSONDecoder would. For `PUT /context/{key}` it replaces about 20,000
/// instructions of JSONDecoder with a few hundred.
public enum SimpleJSONObject {
    public enum Member: Equatable, Sendable {
        case string(String)
        case integer(Int64)
        case null
    }

    /// The members of `bytes` if it is such an object with keys only from `allowed`, else nil.
    public static func parse(_ bytes: UnsafeRawBufferPointer, allowed: [StaticString]) -> [(Int, Member)]? {
        var index = 0
        let count = bytes.count
        func skipSpace() {
            while index < count, bytes[index] == 0x20 || bytes[index] == 0x09 || bytes[index] == 0x0A || bytes[index] == 0x0D {
                index += 1
            }
        }
        func take(_ byte: UInt8) -> Bool {
            guard index < count, bytes[index] == byte else { return false }
            index += 1
            return true
        }
        /// The bytes of a string without escapes or control characters, after its opening quote.
        func plainString() -> Range<Int>? {
            let start = index
            while index < count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    index += 1
                    return start..<(index - 1)
                }
                guard byte >= 0x20, byte != UInt8(ascii: "\\") else { return nil }
                index += 1
            }
            return nil
        }
        var members: [(Int, Member)] = []
        skipSpace()
        guard take(UInt8(ascii: "{")) else { return nil }
        skipSpace()
        if take(UInt8(ascii: "}")) { return nil }  // {} (JSONDecoder reports what is missing)
        while true {
            skipSpace()
            guard take(UInt8(ascii: "\"")), let keyRange = plainString() else { return nil }
            guard let slot = allowed.firstIndex(where: { name in
                name.utf8CodeUnitCount == keyRange.count
                    && keyRange.indices.allSatisfy { bytes[$0] == name.utf8Start[$0 - keyRange.lowerBound] }
            }), !members.contains(where: { $0.0 == slot }) else { return nil }
            skipSpace()
            guard take(UInt8(ascii: ":")) else { return nil }
            skipSpace()
            guard index < count else { return nil }
            switch bytes[index] {
            case UInt8(ascii: "\""):
                index += 1
                guard let range = plainString(),
                      let text = String(validating: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
                else { return nil }
                members.append((slot, .string(text)))
            case UInt8(ascii: "n"):
                guard count - index >= 4, bytes[index + 1] == UInt8(ascii: "u"), bytes[index + 2] == UInt8(ascii: "l"),
                      bytes[index + 3] == UInt8(ascii: "l") else { return nil }
                index += 4
                members.append((slot, .null))
            default:
                let negative = take(UInt8(ascii: "-"))
                let start = index
                var value: Int64 = 0
                while index < count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                    // 18 digits always fit; longer numbers are left to JSONDecoder.
                    guard index - start < 18 else { return nil }
                    value = value * 10 + Int64(bytes[index] - UInt8(ascii: "0"))
                    index += 1
                }
                let digits = index - start
                // No digits, or a leading zero JSON does not allow ("01").
                guard digits > 0, !(digits > 1 && bytes[start] == UInt8(ascii: "0")) else { return nil }
                members.append((slot, .integer(negative ? -value : value)))
            }
            // What follows a member: the next one or the end (a '.', 'e' or anything else: give up).
            skipSpace()
            if take(UInt8(ascii: ",")) { continue }
            guard take(UInt8(ascii: "}")) else { return nil }
            skipSpace()
            return index == count ? members : nil
        }
    }
}

extension ContextPutRequest {
    /// The body read by `SimpleJSONObject`, or nil when JSONDecoder must read it.
    public static func simplyDecoded(_ bytes: UnsafeRawBufferPointer) -> ContextPutRequest? {
        guard let members = SimpleJSONObject.parse(bytes, allowed: ["value", "ttl", "ifRevision"]) else { return nil }
        var request = ContextPutRequest(value: "")
        var hasValue = false
        for (slot, member) in members {
            switch (slot, member) {
            case (0, .string(let text)):
                request.value = text
                hasValue = true
            case (1, .integer(let number)):
                guard let ttl = Int(exactly: number) else { return nil }
                request.ttl = ttl
            case (1, .null): request.ttl = nil
            case (2, .integer(let number)): request.ifRevision = number
            case (2, .null): request.ifRevision = nil
            default: return nil  // a wrong type: JSONDecoder words the error
            }
        }
        return hasValue ? request : nil
    }
}
