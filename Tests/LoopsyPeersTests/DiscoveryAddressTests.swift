import Testing
@testable import LoopsyPeers

/// mDNS is unauthenticated: an advert may name any address, and the daemon health-checks what
/// it finds. Only another host's unicast IPv4 address is taken.
@Suite struct DiscoveryAddressTests {
    @Test func onlyAnotherHostsUnicastAddressIsTaken() {
        for address in ["10.0.0.5", "192.168.1.20", "172.16.0.1", "169.254.10.3", "1.1.1.1", "223.255.255.254"] {
            #expect(Discovery.isPeerAddress(address), "\(address)")
        }
        for address in ["127.0.0.1", "127.5.6.7", "0.0.0.0", "0.1.2.3", "224.0.0.251", "239.1.1.1", "255.255.255.255",
                        "240.0.0.1", "::1", "fe80::1", "localhost", "10.0.0", "10.0.0.256", "", "10.0.0.5.6"] {
            #expect(!Discovery.isPeerAddress(address), "\(address)")
        }
    }
}
