#if canImport(Glibc)
import Glibc
#endif

extension StringProtocol {
    /// A–Z folded to a–z and nothing else: how HTTP header names (RFC 9110 tokens) and host
    /// names (RFC 4343) compare. Unicode folding would also turn "K" (U+212A, the Kelvin sign)
    /// into "k", so a name that is not `cookie` could be read as one. Runs on every request:
    /// text without capitals is returned as it is.
    public func asciiLowercased() -> String {
        guard utf8.contains(where: ASCIICase.isUpper) else { return String(self) }
        let bytes = utf8
        return String(unsafeUninitializedCapacity: bytes.count) { buffer in
            var count = 0
            for byte in bytes {
                buffer[count] = ASCIICase.lower(byte)
                count += 1
            }
            return count
        }
    }
}

extension String {
    /// The same for a String, on its bytes in place (the generic one above walks the UTF-8
    /// view through a witness table: thousands of instructions for a short header name).
    public func asciiLowercased() -> String {
        var text = self
        return text.withUTF8 { bytes in
            guard bytes.contains(where: ASCIICase.isUpper) else { return self }
            return String(unsafeUninitializedCapacity: bytes.count) { buffer in
                for index in bytes.indices { buffer[index] = ASCIICase.lower(bytes[index]) }
                return bytes.count
            }
        }
    }
}

enum ASCIICase {
    static func isUpper(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") }
    static func lower(_ byte: UInt8) -> UInt8 { isUpper(byte) ? byte + 32 : byte }
}

extension String {
    /// A NUL-terminated header name, lower-cased as it is copied (one pass, no second string).
    init(asciiLowercasing name: UnsafePointer<CChar>) {
        let length = strlen(name)
        self.init(unsafeUninitializedCapacity: length) { buffer in
            for index in 0..<length { buffer[index] = ASCIICase.lower(UInt8(bitPattern: name[index])) }
            return length
        }
    }
}
