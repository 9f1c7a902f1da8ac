import Glibc
import LoopsyPOSIX
import Testing

@Suite struct SocketAddressTests {
    /// IPv4 addresses are written without inet_ntop; the text must be exactly inet_ntop's.
    @Test func ipv4TextIsInetNtops() {
        var generator = SystemRandomNumberGenerator()
        let fixed: [UInt32] = [0, 0x7F00_0001, 0xFFFF_FFFF, 0x0A00_0009, 0xC0A8_6401, 0x0102_0304, 0x6463_0A00]
        for value in fixed + (0..<2000).map({ _ in UInt32.random(in: .min ... .max, using: &generator) }) {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = value.bigEndian
            var expected = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            var copy = address.sin_addr
            _ = inet_ntop(AF_INET, &copy, &expected, socklen_t(expected.count))
            let described = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress.describe($0) }
            }
            #expect(described == String(cString: expected), "\(value)")
        }
    }

    /// IPv6 stays inet_ntop's, and an IPv4-mapped client reads as plain IPv4.
    @Test func ipv6AndMappedAddresses() {
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        withUnsafeMutableBytes(of: &address.sin6_addr) { bytes in
            for index in 0..<16 { bytes[index] = 0 }
            bytes[15] = 1
        }
        let loopback = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress.describe($0) }
        }
        #expect(loopback == "::1")
        withUnsafeMutableBytes(of: &address.sin6_addr) { bytes in
            bytes[10] = 0xFF; bytes[11] = 0xFF; bytes[12] = 10; bytes[13] = 0; bytes[14] = 0; bytes[15] = 250
        }
        let mapped = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress.describe($0) }
        }
        #expect(mapped == "10.0.0.250")
    }
}
