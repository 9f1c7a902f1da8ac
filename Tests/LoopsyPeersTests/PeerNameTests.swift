import Testing
@testable import LoopsyPeers

/// A handshake's name is kept only when no reference `resolve` reads would name another peer
/// too: compared exactly, "Alice" and "alice.local" kept their names beside "alice", and every
/// message, relay and approval for "alice" failed as ambiguous (or went to the newcomer).
@Suite struct PeerNameTests {
    @Test func namesClashAsResolveReadsThem() {
        for (one, other) in [("alice", "Alice"), ("alice", "alice.local"), ("ALICE.LOCAL", "alice"),
                             ("Alice.Local", "aLiCe"), ("bravo-2", "BRAVO-2.local")] {
            #expect(PeerService.namesClash(one, other), "\(one) / \(other)")
            #expect(PeerService.namesClash(other, one), "\(other) / \(one)")
        }
        for (one, other) in [("alice", "alice2"), ("alice", "alice.lan"), ("alice.local.local", "alice"),
                             ("alic", "alice"), ("local", "")] {
            #expect(!PeerService.namesClash(one, other), "\(one) / \(other)")
        }
    }
}
