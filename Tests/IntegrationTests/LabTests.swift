import Foundation
import LoopsyAPI
import Testing

/// Daemons on separate hosts (network namespaces with their own avahi-daemon), as on a LAN.
@Suite(.serialized) struct LabTests {
    /// Fast health checks so offline/online changes show within seconds.
    static func fastChecks(_ text: String) -> String {
        var text = replacingLine(text, "  healthInterval: 30", "  healthInterval: 1")
        text = replacingLine(text, "  offlineAfter: 3", "  offlineAfter: 2")
        return settingTLS(text, true)
    }

    @Test func nodesFindEachOtherOverMDNSAndHealthFollowsTheDaemon() throws {
        let lab = try Lab(hosts: 3)
        defer { lab.tearDown() }
        let one = try lab.node(1, hostname: "one", configure: Self.fastChecks)
        let two = try lab.node(2, hostname: "two", configure: Self.fastChecks)
        let three = try lab.node(3, hostname: "three") {
            replacingLine(Self.fastChecks($0), "  enabled: true            # mDNS", "  enabled: false            # mDNS")
        }
        try one.start(host: "0.0.0.0", port: 19532)
        try two.start(host: "0.0.0.0", port: 19532)
        try three.start(host: "0.0.0.0", port: 19532)

        // Both ways, with the address each is reachable at; three has discovery off.
        var seenByOne: [PeerInfo] = []
        #expect(try eventually(15) {
            seenByOne = try one.peers()
            return seenByOne.contains { $0.nodeId == (try? two.nodeId) && $0.status == "online" }
        })
        let two_ = try #require(seenByOne.first { $0.nodeId == (try two.nodeId) })
        #expect(two_.address == lab.address(2) && two_.port == 19532 && two_.source == "mdns")
        #expect(two_.name == "two" && two_.tls)
        // The first health check fetched its key over TLS and pinned it.
        #expect(try eventually(5) {
            try one.peers().first { $0.nodeId == (try? two.nodeId) }?.fingerprint != nil
        })
        #expect(try eventually(15) { try two.peers().contains { $0.nodeId == (try? one.nodeId) } })
        #expect(try one.peers().allSatisfy { $0.nodeId != (try? three.nodeId) })

        // two stops: offline after two failed checks; back online when it returns.
        two.stop()
        #expect(try eventually(10) { try one.peers().first { $0.nodeId == (try? two.nodeId) }?.status == "offline" })
        let offline = try #require(try one.peers().first { $0.nodeId == (try two.nodeId) })
        #expect(offline.failures >= 2 && offline.lastError != nil)
        try two.start(host: "0.0.0.0", port: 19532)
        #expect(try eventually(15) { try one.peers().first { $0.nodeId == (try? two.nodeId) }?.status == "online" })
    }

    @Test func workIsForwardedAcrossHostsOverPinnedTLS() throws {
        let lab = try Lab(hosts: 2)
        defer { lab.tearDown() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-lab-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let one = try lab.node(1, hostname: "one", configure: Self.fastChecks)
        let two = try lab.node(2, hostname: "two") {
            replacingLine(Self.fastChecks($0), #"allowedPaths: ["~"]"#, #"allowedPaths: ["\#(directory.path)"]"#)
        }
        try one.start(host: "0.0.0.0", port: 19532)
        try two.start(host: "0.0.0.0", port: 19532)
        let added = try one.cli(["peers", "add", lab.address(2), "--key-stdin", "--grant", "all"], stdin: two.apiKey + "\n")
        #expect(added.status == 0, "\(added.stderr)")
        #expect(added.stdout.contains("TLS key pinned"))
        #expect(try two.cli("peers", "grant", "one", "all").status == 0)

        let exec = try one.cli("exec", "two", "sh", "-c", "hostname -I; echo done")
        #expect(exec.status == 0, "\(exec.stderr)")
        #expect(exec.stdout.contains(lab.address(2)) && exec.stdout.hasSuffix("done\n"))
        #expect(try one.cli("context", "set", "shared", "across", "--peer", "two").status == 0)
        #expect(try two.cli("context", "get", "shared").stdout == "across\n")
        // And back: two got a credential for one during the handshake.
        let back = try two.cli("exec", "one", "sh", "-c", "hostname -I")
        #expect(back.status == 0, "\(back.stderr)")
        #expect(back.stdout.contains(lab.address(1)))

        let payload = Data((0..<2_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        try payload.write(to: directory.appendingPathComponent("a.bin"))
        #expect(try one.cli("send", "two", directory.path + "/a.bin", directory.path + "/b.bin").status == 0)
        #expect(try one.cli("pull", "two", directory.path + "/b.bin", directory.path + "/c.bin").status == 0)
        #expect(try Data(contentsOf: directory.appendingPathComponent("c.bin")) == payload)

        // Messages across hosts, acked back.
        #expect(try one.cli("msg", "send", "two", "from one", "--id", "x-1").stdout == "x-1 → two: delivered\n")
        #expect(try two.cli("msg", "ack", "x-1").status == 0)
        #expect(try eventually(5) { try one.cli("msg", "outbox").stdout.contains("x-1 → two: acked") })

        // On the wire between the hosts the key is never in clear: the peer only speaks TLS.
        let plain = try lab.exec(1, ["curl", "-s", "-m", "3", "http://\(lab.address(2)):19532/api/v1/health"])
        #expect(plain.status != 0)
    }

    /// Adverts are unauthenticated: a host announcing a pinned peer at addresses where nothing
    /// answers moves nothing (the peer must answer there with its pinned key), and those
    /// probes, up to 5 s each, wait on threads of their own. They ran on discovery's queue,
    /// so every other advert (a new node here) waited behind them all.
    @Test func advertsOfAPinnedPeerAtDeadAddressesHoldUpNoOtherSighting() throws {
        let lab = try Lab(hosts: 3)
        defer { lab.tearDown() }
        let one = try lab.node(1, hostname: "one", configure: Self.fastChecks)
        let two = try lab.node(2, hostname: "two", configure: Self.fastChecks)
        try one.start(host: "0.0.0.0", port: 19532)
        try two.start(host: "0.0.0.0", port: 19532)
        let twoId = try two.nodeId
        #expect(try eventually(20) {
            try one.peers().first { $0.nodeId == twoId }?.fingerprint != nil
        }, "one did not find and pin two")
        // From host 3: two announced at eight addresses nobody has, each under its own name.
        var publishers: [Lab.Spawned] = []
        defer { for publisher in publishers { publisher.process.terminate() } }
        for index in 0..<8 {
            publishers.append(try lab.spawn(3, ["avahi-publish-address", "-R", "ghost\(index).local", "10.77.0.\(200 + index)"]))
            publishers.append(try lab.spawn(3, ["avahi-publish-service", "-H", "ghost\(index).local", "ghost-\(index)",
                                                "_loopsy._tcp", "19532", "nodeId=\(twoId)", "tls=1", "name=two"]))
        }
        #expect(try eventually(20) {
            try lab.exec(1, ["avahi-browse", "-rpt", "_loopsy._tcp"]).stdout.components(separatedBy: "ghost").count > 8
        }, "the ghost adverts did not reach host 1")
        // A real node appears meanwhile: found as fast as without the ghosts (not after 8 × 5 s).
        let three = try lab.node(3, hostname: "three", configure: Self.fastChecks)
        try three.start(host: "0.0.0.0", port: 19532)
        let threeId = try three.nodeId
        #expect(try eventually(12) { try one.peers().contains { $0.nodeId == threeId } }, "three was not found in time")
        // two stayed where it answers with its key, and is still online there.
        let seen = try #require(try one.peers().first { $0.nodeId == twoId })
        #expect(seen.address == lab.address(2) && seen.status == "online", "\(seen)")
        one.stop()
        let log = one.stderrText()
        #expect(!log.contains("moved to"), "\(log)")
    }

    @Test func withoutAvahiTheDaemonWarnsOnceAndManualPeersWork() throws {
        let lab = try Lab(hosts: 2)
        defer { lab.tearDown() }
        try lab.avahi(1, "stop")
        let one = try lab.node(1, hostname: "one", configure: Self.fastChecks)
        let two = try lab.node(2, hostname: "two", configure: Self.fastChecks)
        try one.start(host: "0.0.0.0", port: 19532)
        try two.start(host: "0.0.0.0", port: 19532)
        #expect(try one.cli(["peers", "add", lab.address(2), "--key-stdin"], stdin: two.apiKey + "\n").status == 0)
        #expect(try two.cli("peers", "grant", "one", "exec").status == 0)
        #expect(try one.cli("exec", "two", "true").status == 0)
        // avahi comes back: one publishes itself without a restart (host two's avahi sees it).
        try lab.avahi(1, "start")
        let oneId = try one.nodeId
        #expect(try eventually(20) {
            try lab.exec(2, ["avahi-browse", "-rpt", "_loopsy._tcp"]).stdout.contains("nodeId=\(oneId)")
        })
        one.stop()
        let log = one.stderrText()
        let warnings = log.components(separatedBy: "no avahi-daemon is reachable").count - 1
        #expect(warnings == 1, "\(log)")
        #expect(log.contains("mDNS: published 'one'"))
    }
}
