import Testing
@testable import LoopsyPeers

/// A handshake's name is kept only when no reference `resolve` reads would name another peer
/// too: compared exactly, "Alice", "alice.local" or the start of alice's nodeId kept their
/// names beside alice, and every message, relay and approval for that reference failed as
/// ambiguous (or went to the newcomer).
@Suite struct PeerNameTests {
    static let nodeId = "3f9a2c1d00112233445566778899aabb"

    func clashes(_ name: String, _ otherName: String, address: String = "10.0.0.5") -> Bool {
        PeerService.nameClashes(name, withName: otherName, nodeId: Self.nodeId, address: address)
    }

    @Test func namesClashAsResolveReadsThem() {
        for (name, other) in [("alice", "Alice"), ("alice", "alice.local"), ("ALICE.LOCAL", "alice"),
                              ("Alice.Local", "aLiCe"), ("bravo-2", "BRAVO-2.local"), ("x.local.local", "x.local"),
                              ("x.local", "x.local.local")] {
            #expect(clashes(name, other), "\(name) / \(other)")
        }
        for (name, other) in [("alice", "alice2"), ("alice", "alice.lan"), ("alice.local.local", "alice"),
                              ("alic", "alice"), ("local", "")] {
            #expect(!clashes(name, other), "\(name) / \(other)")
        }
    }

    @Test func aNameThatIsAnotherPeersNodeIdPrefixOrAddressClashes() {
        for name in ["3f9a2c", "3F9A2C1D", "3f9a2c1d.local", Self.nodeId, "10.0.0.5", "10.0.0.5.local"] {
            #expect(clashes(name, "alice"), "\(name)")
        }
        // Five characters name no nodeId; another prefix or address is another peer.
        for name in ["3f9a2", "3f9a2d", "10.0.0.50", "a3f9a2c1d"] {
            #expect(!clashes(name, "alice"), "\(name)")
        }
        #expect(clashes("FE80::1", "x", address: "fe80::1"))
    }
}
