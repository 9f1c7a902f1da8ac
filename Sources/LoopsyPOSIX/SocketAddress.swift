#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 socket address built from a literal, for binding.
public struct SocketAddress: Sendable {
    private var storage = sockaddr_storage()
    public let isIPv6: Bool

    /// nil unless `host` is an IPv4 or IPv6 literal (or "localhost").
    public init?(host: String, port: UInt16) {
        let literal = host == "localhost" ? "127.0.0.1" : host
        var v4 = sockaddr_in()
        var v6 = sockaddr_in6()
        if inet_pton(AF_INET, literal, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &storage) { target in
                withUnsafeBytes(of: v4) { target.copyMemory(from: $0) }
            }
            isIPv6 = false
        } else if inet_pton(AF_INET6, literal.trimmingBrackets, &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &storage) { target in
                withUnsafeBytes(of: v6) { target.copyMemory(from: $0) }
            }
            isIPv6 = true
        } else {
            return nil
        }
    }

    public var length: socklen_t {
        socklen_t(isIPv6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
    }

    public func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>) -> T) -> T {
        withUnsafeBytes(of: storage) { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self))
        }
    }

    public static func port(of storage: sockaddr_storage) -> UInt16? {
        var copy = storage
        return withUnsafeBytes(of: &copy) { raw -> UInt16? in
            switch Int32(storage.ss_family) {
            case AF_INET: return UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port)
            case AF_INET6: return UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port)
            default: return nil
            }
        }
    }

    /// The network the 16 bytes of an IPv6 address count as where one host must not count as
    /// many (connection budgets, rate limits): its /64, which one host usually holds whole. Nil
    /// for an IPv4-mapped address, an IPv4 client.
    public static func network64(_ bytes: [UInt8]) -> String? {
        guard bytes.count == 16 else { return nil }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF { return nil }
        return bytes[0..<8].map { String($0, radix: 16) }.joined(separator: ":") + "::/64"
    }

    /// Runs for every request: the text is formatted in a buffer on the stack.
    public static func describe(_ address: UnsafePointer<sockaddr>) -> String {
        let family = Int32(address.pointee.sa_family)
        guard family == AF_INET || family == AF_INET6 else { return "unknown" }
        let size = Int(INET6_ADDRSTRLEN) + 1
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: size) { buffer -> String in
            guard let base = buffer.baseAddress else { return "unknown" }
            base.initialize(repeating: 0, count: size)
            if family == AF_INET {
                let address = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                return dottedQuad(UInt32(bigEndian: address.s_addr))
            }
            var copy = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
            guard inet_ntop(AF_INET6, &copy, base, socklen_t(size)) != nil else { return "unknown" }
            let text = String(cString: base)
            // IPv4-mapped clients of a dual-stack socket read as plain IPv4.
            return text.hasPrefix("::ffff:") && text.contains(".") ? String(text.dropFirst(7)) : text
        }
    }
}

/// "a.b.c.d" for an IPv4 address in host order (inet_ntop's text, without its formatting
/// machinery: this runs for every request).
func dottedQuad(_ address: UInt32) -> String {
    String(unsafeUninitializedCapacity: 15) { buffer in
        var count = 0
        for shift in [24, 16, 8, 0] as [UInt32] {
            let octet = UInt8(truncatingIfNeeded: address >> shift)
            if shift != 24 {
                buffer[count] = UInt8(ascii: ".")
                count += 1
            }
            if octet >= 100 {
                buffer[count] = UInt8(ascii: "0") + octet / 100
                count += 1
            }
            if octet >= 10 {
                buffer[count] = UInt8(ascii: "0") + octet / 10 % 10
                count += 1
            }
            buffer[count] = UInt8(ascii: "0") + octet % 10
            count += 1
        }
        return count
    }
}

extension String {
    /// "[::1]" → "::1".
    public var trimmingBrackets: String {
        hasPrefix("[") && hasSuffix("]") ? String(dropFirst().dropLast()) : self
    }
}

/// Probing whether a TCP port can be listened on.
public enum Port {
    /// True when nothing else listens on host:port. Listeners that share a port (SO_REUSEPORT)
    /// would otherwise quietly share it with another process of the same user.
    public static func isFree(host: String, port: UInt16) -> Bool {
        guard let address = SocketAddress(host: host, port: port) else { return false }
        let fd = socket(address.isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var on: Int32 = 1
        // SO_REUSEADDR alone only skips TIME_WAIT leftovers; a live listener still conflicts.
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        return address.withSockaddr { bind(fd, $0, address.length) } == 0
    }
}

/// The machine's network interfaces.
public enum NetworkInterfaces {
    /// Every IPv4 address of this machine's interfaces (loopback included), once each, in
    /// dotted decimal; empty if the kernel would not list them.
    public static func ipv4Addresses() -> [String] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var addresses: [String] = []
        var entry: UnsafeMutablePointer<ifaddrs>? = first
        while let current = entry {
            defer { entry = current.pointee.ifa_next }
            guard let address = current.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            let text = SocketAddress.describe(address)
            if !addresses.contains(text) { addresses.append(text) }
        }
        return addresses
    }
}
