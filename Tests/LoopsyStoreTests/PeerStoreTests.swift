import Foundation
import LoopsyAPI
import Testing
@testable import LoopsyStore

/// The peers table on a real SQLite database.
@Suite struct PeerStoreTests {
    let scratch: ScratchDatabase
    let store: PeerStore

    init() throws {
        scratch = try ScratchDatabase("loopsy-peers")
        store = PeerStore(pool: scratch.pool)
    }

    func sighting(_ name: String, address: String = "10.0.0.2", fingerprint: String? = nil, tls: Bool = false,
                  source: PeerSource = "mdns") -> PeerSighting {
        PeerSighting(nodeId: String(repeating: "a", count: 32), name: name, address: address, port: 19532, platform: "linux",
                     version: "1", capabilities: [], publicKey: nil, fingerprint: fingerprint, tls: tls, source: source)
    }

    @Test func namesFromOtherMachinesLoseControlCharacters() throws {
        let stored = try store.upsert(sighting("evil\u{1B}[2J\u{07}name\u{9B}" + String(repeating: "x", count: 100)))
        #expect(stored.info.name == "evil[2Jname" + String(repeating: "x", count: 53))
        #expect(try store.upsert(sighting("\u{1B}\u{07}")).info.name == "unnamed")
    }

    @Test func aPinIsNeverReplacedOrDowngradedBySightings() throws {
        let pin = String(repeating: "1", count: 64)
        _ = try store.upsert(sighting("bob", fingerprint: pin, tls: true, source: "manual"))
        let later = try store.upsert(sighting("bob", address: "10.0.0.9", fingerprint: String(repeating: "2", count: 64),
                                              tls: false))
        #expect(later.info.fingerprint == pin && later.info.tls && later.info.source == "manual")
        #expect(later.info.addresses == ["10.0.0.2", "10.0.0.9"])
        // A removed peer stays removed when a late update comes.
        #expect(try store.remove(later.nodeId))
        #expect(try store.update(sighting("bob")) == nil)
        #expect(try store.get(later.nodeId) == nil)
    }

    @Test func acceptedKeysAreFoundByHashAndRevokedWithThePeer() throws {
        let peer = try store.upsert(sighting("carol", source: "paired"))
        try store.setAcceptedCredential(peer.nodeId, keyHash: "hash-1")
        #expect(try store.nodeId(forKeyHash: "hash-1") == peer.nodeId)
        #expect(try store.nodeId(forKeyHash: "hash-2") == nil)
        try store.remove(peer.nodeId)
        #expect(try store.nodeId(forKeyHash: "hash-1") == nil)
    }
}
