import Foundation
import LoopsyAPI
import LoopsyClient
import LoopsyStore
import Synchronization
import Testing

/// Stored data survives crashes and a full disk.
@Suite(.serialized) struct DurabilityTests {
    /// Writes keep coming while loopsyd is killed with SIGKILL, 100 times; after each restart every
    /// write that was acknowledged is there and the database passes `PRAGMA integrity_check`.
    @Test func acknowledgedWritesSurviveKillNine() throws {
        let node = try TestNode { $0.replacingOccurrences(of: "  context: 60\n", with: "  context: 0\n") }
        defer { node.cleanUp() }
        var acknowledged: [String: String] = [:]
        for round in 0..<100 {
            try node.start()
            let client = node.client
            let acked = Mutex<[String: String]>([:])
            let stop = Atomic<Bool>(false)
            let writer = DispatchGroup()
            writer.enter()
            DispatchQueue.global().async {
                var index = 0
                while !stop.load(ordering: .relaxed) {
                    let key = "r\(round)-k\(index)", value = "value \(round).\(index)"
                    if (try? client.contextSet(key, value: value, ttl: nil)) != nil {
                        acked.withLock { $0[key] = value }
                    }
                    index += 1
                }
                writer.leave()
            }
            Thread.sleep(forTimeInterval: Double.random(in: 0.02...0.08))
            node.kill9()
            stop.store(true, ordering: .relaxed)
            writer.wait()
            acknowledged.merge(acked.withLock { $0 }) { $1 }
        }
        // A last restart recovers the WAL; then read everything straight from SQLite.
        try node.start()
        #expect(try node.client.contextGet(try #require(acknowledged.keys.first)).value == acknowledged.values.first)
        node.stop()
        let database = try Database(path: node.dataDir + "/loopsy.db")
        #expect(try database.prepare("PRAGMA integrity_check").rows { $0.text(0) } == ["ok"])
        let stored = Dictionary(uniqueKeysWithValues: try database.prepare("SELECT key, value FROM context")
            .rows { ($0.text(0), $0.text(1)) })
        let lost = acknowledged.filter { stored[$0.key] != $0.value }.count
        #expect(acknowledged.count > 1000)
        #expect(lost == 0, "\(lost) of \(acknowledged.count) acknowledged writes were lost")
    }

    /// On a full disk, writes fail with 507 and a clear message; what was stored stays readable.
    @Test func fullDiskGives507AndKeepsData() throws {
        let mountPoint = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-full-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mounted = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mountPoint])
        try #require(mounted.status == 0, "mounting a small tmpfs needs root: \(mounted.stderr)")
        defer {
            _ = try? run("/bin/umount", [mountPoint])
            try? FileManager.default.removeItem(atPath: mountPoint)
        }
        let node = try TestNode(dataDir: mountPoint + "/data") {
            $0.replacingOccurrences(of: "  context: 60\n", with: "  context: 0\n")
        }
        defer { node.stop() }
        try node.start()
        let client = node.client
        var stored: [String: String] = [:]
        var refusal: CurlHTTPClient.Response?
        for index in 0..<200 {
            let value = String(repeating: Character(UnicodeScalar(UInt8(65 + index % 26))), count: 100_000)
            let response = try node.http("PUT", "/api/v1/context/big\(index)", body: #"{"value":"\#(value)"}"#)
            if response.status == 200 {
                stored["big\(index)"] = value
            } else {
                refusal = response
                break
            }
        }
        let full = try #require(refusal, "the 2 MiB disk never filled")
        #expect(full.status == 507)
        #expect(full.errorCode == "insufficient_storage")
        #expect(full.text.contains("disk is full"))
        #expect(!stored.isEmpty)
        for (key, value) in stored { #expect(try client.contextGet(key).value == value) }
        #expect(try client.health().status == "ok")
    }
}
