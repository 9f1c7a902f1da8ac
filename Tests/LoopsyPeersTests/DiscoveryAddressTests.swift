import Testing
@testable import LoopsyPeers

/// mDNS is unauthenticated: an advert may name any address, and the daemon health-checks what
/// it finds. Only a unicast IPv4 address that is not link-local is taken (and not one of this
/// machine's own: AttackTests.anAdvertPointingAtThisHostIsIgnored).
@Suite struct DiscoveryAddressTests {
    @Test func onlyAnotherHostsUnicastAddressIsTaken() {
        for address in ["10.0.0.5", "192.168.1.20", "172.16.0.1", "169.253.1.1", "1.1.1.1", "223.255.255.254"] {
            #expect(Discovery.isPeerAddress(address), "\(address)")
        }
        for address in ["127.0.0.1", "127.5.6.7", "0.0.0.0", "169.254.169.254", "169.254.10.3", "0.1.2.3", "224.0.0.251", "239.1.1.1", "255.255.255.255",
                        "240.0.0.1", "::1", "fe80::1", "localhost", "10.0.0", "10.0.0.256", "", "10.0.0.5.6"] {
            #expect(!Discovery.isPeerAddress(address), "\(address)")
        }
    }
}
