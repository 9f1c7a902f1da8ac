extension StringProtocol {
    /// A–Z folded to a–z and nothing else: how HTTP header names (RFC 9110 tokens) and host
    /// names (RFC 4343) compare. Unicode folding would also turn "K" (U+212A, the Kelvin sign)
    /// into "k", so a name that is not `cookie` could be read as one. Runs on every request:
    /// text without capitals is returned as it is.
    public func asciiLowercased() -> String {
        let isUpper = { (byte: UInt8) in byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") }
        guard utf8.contains(where: isUpper) else { return String(self) }
        return String(decoding: utf8.map { isUpper($0) ? $0 + 32 : $0 }, as: UTF8.self)
    }
}
