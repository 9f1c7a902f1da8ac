/// What a host string (from a Host header, a peer's advert, the config) is, by its text alone.
public enum HostAddress {
    /// 127.0.0.0/8, ::1 or localhost.
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || (host.hasPrefix("127.") && isIPLiteral(host))
    }

    /// An IPv4 dotted quad or an IPv6 literal (no name lookup).
    public static func isIPLiteral(_ host: String) -> Bool {
        var host = host
        return host.withUTF8 { isIPLiteral(bytes: $0) }
    }

    /// The same on bytes (hex digits of IPv6 in lower case).
    public static func isIPLiteral(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        if bytes.contains(UInt8(ascii: ":")) {
            return bytes.allSatisfy { $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") || isHexDigit($0) }
        }
        var parts = 0, digits = 0, value = 0
        for byte in bytes {
            if byte == UInt8(ascii: ".") {
                guard digits > 0 && value <= 255 else { return false }
                parts += 1
                digits = 0
                value = 0
            } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                digits += 1
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
                if digits > 3 { return false }
            } else {
                return false
            }
        }
        // The last part has no "." after it.
        return digits > 0 && value <= 255 && parts == 3
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
    }
}
