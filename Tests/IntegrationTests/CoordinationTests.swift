import Foundation
import LoopsyAPI
import LoopsyClient
import Synchronization
import Testing

/// Compare-and-set and locks with leases, against real daemons and concurrent clients.
@Suite struct CoordinationTests {
    static func request(_ node: TestNode, _ method: String, _ path: String, body: String? = nil,
                        seconds: Int = 30) throws -> CurlHTTPClient.Response {
        var headers = ["Authorization": "Bearer \(node.apiKey)"]
        if body != nil { headers["Content-Type"] = "application/json" }
        return try CurlHTTPClient(timeoutSeconds: seconds).send(method: method, url: node.baseURL + path, headers: headers,
                                                                body: body.map { Array($0.utf8) })
    }

    /// Runs `work(index)` on `count` threads of their own at once and waits for all.
    static func concurrently(_ count: Int, _ work: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            Thread.detachNewThread {
                work(index)
                group.leave()
            }
        }
        group.wait()
    }

    @Test func compareAndSetUnderTwentyWritersLosesNoUpdate() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let conflicts = Atomic<Int>(0), failures = Mutex<[String]>([])
        Self.concurrently(20) { _ in
            for _ in 0..<10 {
                while true {
                    guard let read = try? Self.request(node, "GET", "/api/v1/context/counter") else { continue }
                    let entry = read.status == 200 ? try? read.json(ContextEntry.self) : nil
                    let value = Int(entry?.value ?? "0") ?? 0
                    let body = #"{"value":"\#(value + 1)","ifRevision":\#(entry?.revision ?? 0)}"#
                    guard let written = try? Self.request(node, "PUT", "/api/v1/context/counter", body: body) else { continue }
                    if written.status == 200 { break }
                    if written.status == 412 && written.errorCode == "revision_mismatch" {
                        conflicts.add(1, ordering: .relaxed)
                        continue
                    }
                    failures.withLock { $0.append("\(written.status) \(written.text)") }
                    return
                }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        let final = try node.client.contextGet("counter")
        #expect(final.value == "200" && final.revision == 200, "\(final)")
        #expect(conflicts.load(ordering: .relaxed) > 0, "20 writers never met: the test proved nothing")
    }

    @Test func compareAndSetAnswersWithTheCurrentEntry() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        #expect(try node.cli("context", "set", "claim", "alpha", "--if-absent").status == 0)
        let lost = try node.cli("context", "set", "claim", "bravo", "--if-absent")
        #expect(lost.status == 1 && lost.stderr.contains("revision 1"), "\(lost.stderr)")
        let mismatch = try Self.request(node, "PUT", "/api/v1/context/claim", body: #"{"value":"x","ifRevision":5}"#)
        #expect(mismatch.status == 412 && mismatch.errorCode == "revision_mismatch")
        let body = try mismatch.json(RevisionMismatchBody.self)
        #expect(body.current?.value == "alpha" && body.current?.revision == 1)
        #expect(try node.cli("context", "set", "claim", "bravo", "--if-revision", "1").status == 0)
        #expect(try Self.request(node, "DELETE", "/api/v1/context/claim?ifRevision=1").status == 412)
        #expect(try Self.request(node, "DELETE", "/api/v1/context/claim?ifRevision=2").status == 200)
        let absent = try Self.request(node, "PUT", "/api/v1/context/other", body: #"{"value":"x","ifRevision":3}"#)
        #expect(absent.status == 412)
        #expect(try absent.json(RevisionMismatchBody.self).current == nil)
        let negative = try Self.request(node, "PUT", "/api/v1/context/other", body: #"{"value":"x","ifRevision":-1}"#)
        #expect(negative.errorCode == "bad_revision")
    }

    @Test func fiftyClientsRacingForOneLockGetOneHolderAtATimeAndGrowingTokens() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        // At once, without waiting: exactly one wins.
        let winners = Atomic<Int>(0), held = Mutex<[Int]>([])
        Self.concurrently(50) { index in
            let response = try? Self.request(node, "POST", "/api/v1/locks/job", body: #"{"holder":"c\#(index)","ttl":30}"#)
            if response?.status == 201 { winners.add(1, ordering: .relaxed) }
            if response?.status == 409 { held.withLock { $0.append(index) } }
        }
        #expect(winners.load(ordering: .relaxed) == 1 && held.withLock { $0.count } == 49)
        let first = try #require(try node.client.locks().first)
        try node.client.lockRelease("job", token: first.token)

        // Waiting: each gets it in turn, never two at once, tokens growing.
        let holding = Atomic<Int>(0), overlaps = Atomic<Int>(0)
        let tokens = Mutex<[Int64]>([]), failures = Mutex<[String]>([])
        Self.concurrently(50) { index in
            guard let response = try? Self.request(node, "POST", "/api/v1/locks/job?wait=60",
                                                   body: #"{"holder":"c\#(index)","ttl":30}"#, seconds: 90),
                  response.status == 201, let lock = try? response.json(LockInfo.self) else {
                failures.withLock { $0.append("client \(index) did not get the lock") }
                return
            }
            if holding.add(1, ordering: .sequentiallyConsistent).newValue != 1 { overlaps.add(1, ordering: .relaxed) }
            tokens.withLock { $0.append(lock.token) }
            Thread.sleep(forTimeInterval: 0.01)
            holding.subtract(1, ordering: .sequentiallyConsistent)
            if (try? Self.request(node, "DELETE", "/api/v1/locks/job?token=\(lock.token)"))?.status != 200 {
                failures.withLock { $0.append("client \(index) could not release") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        #expect(overlaps.load(ordering: .relaxed) == 0)
        let order = tokens.withLock { $0 }
        #expect(order.count == 50 && zip(order, order.dropFirst()).allSatisfy { $0 < $1 } && order[0] > first.token,
                "\(order)")
        #expect(try node.client.locks().isEmpty)
    }

    @Test func anExpiredLeaseWakesItsWaiterWithinASecond() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let crashed = try node.client.lockAcquire("migration", holder: "crashed agent", ttl: 2)
        let waited = try Self.request(node, "POST", "/api/v1/locks/migration?wait=10",
                                      body: #"{"holder":"next agent","ttl":30}"#)
        #expect(waited.status == 201)
        let lock = try waited.json(LockInfo.self)
        let late = lock.acquiredAt - crashed.expiresAt
        #expect(late >= 0 && late < 1000, "taken \(late) ms after the lease ended")
        #expect(lock.token > crashed.token && lock.holder == "next agent")
        // The old holder's token no longer works.
        #expect(try Self.request(node, "DELETE", "/api/v1/locks/migration?token=\(crashed.token)").errorCode
                    == "lock_not_held")
        // Without a token, the caller is told to send one (not that "token 0" does not hold it).
        let tokenless = try Self.request(node, "DELETE", "/api/v1/locks/migration")
        #expect(tokenless.status == 400 && tokenless.errorCode == "bad_query" && tokenless.text.contains("token=N"))
        // A wait that ends first is answered 409 with the holder.
        let gaveUp = try Self.request(node, "POST", "/api/v1/locks/migration?wait=1", body: #"{"holder":"x","ttl":5}"#)
        #expect(gaveUp.status == 409 && gaveUp.text.contains("next agent"))
    }

    @Test func locksAreTakenOnAPeerAndHeldWhileACommandRuns() throws {
        let (alpha, bravo) = try MessageTests.connectedPair()
        defer { alpha.cleanUp(); bravo.cleanUp() }
        let taken = try alpha.cli("lock", "acquire", "build", "--peer", "bravo", "--ttl", "60", "--json")
        #expect(taken.status == 0, "\(taken.stderr)")
        let lock = try JSONDecoder().decode(LockInfo.self, from: Data(taken.stdout.utf8))
        #expect(try bravo.client.locks().map(\.name) == ["build"])
        let again = try alpha.cli("lock", "acquire", "build", "--peer", "bravo")
        #expect(again.status == 1 && again.stderr.contains("is held by"), "\(again.stderr)")
        #expect(try alpha.cli("lock", "release", "build", "--peer", "bravo", "--token", String(lock.token)).status == 0)
        #expect(try bravo.client.locks().isEmpty)

        // Compare-and-set and watches through the same forwarding.
        #expect(try alpha.cli("context", "set", "owner", "alpha", "--if-absent", "--peer", "bravo").status == 0)
        let lost = try alpha.cli("context", "set", "owner", "again", "--if-absent", "--peer", "bravo")
        #expect(lost.status == 1 && lost.stderr.contains("revision 1"), "\(lost.stderr)")
        let viaPeer = alpha.client.throughPeer("bravo")
        let cursor = try viaPeer.contextChanges(prefix: "owner", after: nil, wait: 0).cursor
        _ = try bravo.client.contextSet("owner", value: "bravo", ttl: nil)
        let page = try viaPeer.contextChanges(prefix: "owner", after: cursor, wait: 5)
        #expect(page.changes.map(\.value) == ["bravo"] && page.cursor > cursor)

        // `lock run`: a 2 s lease renewed while a 3.5 s command runs, released after, its exit code passed on.
        let started = Date()
        let ran = try alpha.cli("lock", "run", "deploy", "--peer", "bravo", "--ttl", "2", "--", "sh", "-c",
                                "sleep 3.5; exit 7")
        #expect(ran.status == 7, "\(ran.stderr)")
        #expect(Date().timeIntervalSince(started) >= 3.5)
        #expect(ran.stderr.contains("holding deploy") && ran.stderr.contains("released deploy")
                && !ran.stderr.contains("lost"), "\(ran.stderr)")
        #expect(try bravo.client.locks().isEmpty)
    }

    /// A watch reads on from where its last read ended: one by a caller who is not the owner,
    /// whose first `limit` changes are all message mirrors (not shown to it), is answered at once
    /// with the change after them, where it waited out its time and got nothing.
    @Test func aWatchGetsPastChangesItIsNotShown() throws {
        let helper = String(repeating: "h", count: 40)
        let node = try TestNode { replacingLine($0, "  allowedKeys: {}", "  allowedKeys: {helper: \(helper)}") }
        defer { node.cleanUp() }
        try node.start()
        let cursor = try node.client.contextChanges(prefix: "", after: nil, wait: 0).cursor
        for key in ["inbox:one", "outbox:two", "plan"] {
            #expect(try node.http("PUT", "/api/v1/context/\(key)", body: #"{"value":"v"}"#).status == 200)
        }
        let started = Date()
        let page = try node.http("GET", "/api/v1/context?prefix=&after=\(cursor)&limit=2&wait=10", key: helper)
        #expect(page.status == 200, "\(page.text)")
        let changes = try page.json(ContextChangesResponse.self)
        #expect(changes.changes.map(\.key) == ["plan"], "\(page.text)")
        #expect(changes.cursor == cursor + 3)
        #expect(Date().timeIntervalSince(started) < 5)
        // The owner sees the mirrors when its prefix asks for them.
        let owner = try node.client.contextChanges(prefix: "inbox:", after: cursor, wait: 0)
        #expect(owner.changes.map(\.key) == ["inbox:one"])
    }

    /// A watcher that follows the change log by cursor sees every revision once and in order,
    /// while the daemon restarts under it.
    @Test func aWatchSeesEveryRevisionInOrderAcrossADaemonRestart() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let port = node.port
        let client = node.client
        let cursor = try client.contextChanges(prefix: "w:", after: nil, wait: 0).cursor
        let seen = Mutex<[Int64]>([]), done = Atomic<Bool>(false)
        let watcher = Thread {
            var after: Int64? = cursor
            while !done.load(ordering: .relaxed) || seen.withLock({ $0.count }) < 30 {
                guard let page = try? LoopsyClient(baseURL: node.baseURL, apiKey: node.apiKey, timeoutSeconds: 10)
                    .contextChanges(prefix: "w:", after: after, wait: 2) else {
                    Thread.sleep(forTimeInterval: 0.1)
                    continue
                }
                seen.withLock { $0 += page.changes.filter { $0.key == "w:k" }.map(\.revision) }
                after = page.cursor
                if seen.withLock({ $0.count }) >= 30 { break }
            }
        }
        watcher.start()
        for index in 1...30 {
            _ = try client.contextSet("w:k", value: "v\(index)", ttl: nil)
            if index == 15 {
                node.stop()
                try node.start(port: port)
            }
        }
        done.store(true, ordering: .relaxed)
        #expect(eventually(20) { seen.withLock { $0.count } >= 30 })
        #expect(seen.withLock { $0 } == Array(1...30), "\(seen.withLock { $0 })")
    }

    @Test func aKeyWatchWakesOnWriteDeleteAndExpiry() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let client = node.client
        _ = try client.contextSet("job", value: "queued", ttl: nil)
        // Written by someone else while we wait.
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 0.5)
            _ = try? client.contextSet("job", value: "running", ttl: 1)
        }
        var started = Date()
        let written = try client.contextWatch("job", afterRevision: 1, wait: 10)
        #expect(written?.value == "running" && written?.revision == 2 && Date().timeIntervalSince(started) < 3)
        // Its ttl passes: the watch answers that it is gone, about when it expires.
        started = Date()
        #expect(try client.contextWatch("job", afterRevision: 2, wait: 10) == nil)
        #expect(Date().timeIntervalSince(started) < 2)
        // Nothing happens: the wait ends with the key as it is.
        _ = try client.contextSet("job", value: "again", ttl: nil)
        started = Date()
        // Written again after it expired, it starts again at revision 1: other than 2, so at once.
        #expect(try client.contextWatch("job", afterRevision: 2, wait: 5)?.value == "again")
        #expect(Date().timeIntervalSince(started) < 0.5, "a revision other than afterRevision answers at once")
        started = Date()
        let quiet = try client.contextWatch("job", afterRevision: 1, wait: 1)
        #expect(quiet?.revision == 1 && quiet?.value == "again" && Date().timeIntervalSince(started) >= 0.9)
    }

    @Test func theCLIPrintsChangesAsTheyHappen() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let watch = Process()
        watch.executableURL = URL(fileURLWithPath: try Binaries.path("loopsy"))
        watch.arguments = ["context", "watch", "--prefix", "team:", "--json"]
        watch.environment = ProcessInfo.processInfo.environment.merging(node.environment) { $1 }
        let out = Pipe()
        watch.standardOutput = out
        try watch.run()
        // SIGKILL: the test runner's blocked SIGTERM is inherited by what it starts.
        defer { kill(watch.processIdentifier, SIGKILL); watch.waitUntilExit() }
        Thread.sleep(forTimeInterval: 0.5)
        _ = try node.client.contextSet("team:claim", value: "alpha", ttl: nil)
        _ = try node.client.contextSet("other", value: "x", ttl: nil)
        try node.client.contextDelete("team:claim")
        var text = ""
        #expect(eventually(5) {
            text += String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
            return text.split(separator: "\n").count >= 2
        })
        let changes = text.split(separator: "\n").compactMap {
            try? JSONDecoder().decode(ContextChange.self, from: Data($0.utf8))
        }
        #expect(changes.map(\.kind) == ["put", "delete"] && changes.allSatisfy { $0.key == "team:claim" }, "\(text)")
    }
}
