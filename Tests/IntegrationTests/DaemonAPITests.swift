import Foundation
import LoopsyAPI
import LoopsyClient
import LoopsyStore
import Testing

/// Real loopsyd processes on ephemeral ports, driven over HTTP.
@Suite struct DaemonAPITests {
    @Test func healthIsOpenAndEverythingElseNeedsTheKey() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let health = try node.http("GET", "/api/v1/health", key: "").json(HealthResponse.self)
        #expect(health.status == "ok")
        #expect(health.version == LoopsyVersion.current)
        let missing = try node.http("GET", "/api/v1/status", key: "")
        #expect(missing.status == 401)
        #expect(missing.errorCode == "unauthorized")
        #expect(missing.headers["www-authenticate"] == "Bearer")
        let wrong = try node.http("GET", "/api/v1/status", key: String(repeating: "0", count: 64))
        #expect(wrong.status == 403)
        #expect(wrong.errorCode == "invalid_credentials")
        let status = try node.http("GET", "/api/v1/status").json(StatusResponse.self)
        #expect(status.nodeId == health.nodeId)
        #expect(status.port == node.port)
        let identity = try node.http("GET", "/api/v1/identity").json(IdentityResponse.self)
        #expect(identity.nodeId == health.nodeId)
        #expect(identity.capabilities.contains("context"))
    }

    @Test func nodeIdSurvivesRestartAndStopIsClean() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let first = try node.client.health().nodeId
        _ = try node.client.contextSet("kept", value: "in the file", ttl: nil)
        #expect(FileManager.default.fileExists(atPath: node.dataDir + "/daemon.pid"))
        #expect(node.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: node.dataDir + "/daemon.pid"))
        // The stop checkpointed: the WAL is empty and loopsy.db alone holds everything (a copy of
        // it is a whole backup), so the next start has no WAL to replay.
        let wal = (try? FileManager.default.attributesOfItem(atPath: node.dataDir + "/loopsy.db-wal")[.size] as? Int) ?? 0
        #expect(wal == 0)
        let copy = node.dataDir + "/copy.db"
        try FileManager.default.copyItem(atPath: node.dataDir + "/loopsy.db", toPath: copy)
        let values = try Database(path: copy).prepare("SELECT value FROM context WHERE key = 'kept'")
            .rows { $0.text(0) }
        #expect(values == ["in the file"])
        try node.start()
        #expect(try node.client.health().nodeId == first)
    }

    /// A listing, and a watch, are answered a page at a time: at most about 4 MiB of keys and
    /// values each (a caller with context rights once filled 100 keys of 1 MiB, and every
    /// listing of them made the daemon build 629 MB of JSON and peak at 1.3 GB). Following
    /// `nextAfterKey`, and a watch's cursor, gives every entry once; the client follows them.
    @Test func contextListingsAndWatchesComeInPagesOfAFewMegabytes() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let cursor = try node.http("GET", "/api/v1/context?after=0&prefix=big/").json(ContextChangesResponse.self).cursor
        let value = String(repeating: "x", count: 1_000_000)
        for index in 0..<10 { _ = try node.client.contextSet("big/\(index)", value: value, ttl: nil) }
        _ = try node.client.contextSet("small", value: "s", ttl: nil)
        // At most 4 MiB of keys and values (4 of these entries) and the JSON around them.
        let pageLimit = (4 << 20) + 4096
        var keys: [String] = []
        var afterKey: String?
        for _ in 0..<10 {
            let query = "?prefix=big/" + (afterKey.map { "&afterKey=" + PathEncoding.segment($0) } ?? "")
            let answer = try node.http("GET", "/api/v1/context" + query)
            #expect(answer.status == 200 && answer.body.count <= pageLimit)
            let page = try answer.json(ContextListResponse.self)
            #expect(page.entries.count == (keys.count < 8 ? 4 : 2))
            #expect(page.entries.allSatisfy { $0.value == value })
            keys += page.entries.map(\.key)
            #expect(page.more == (keys.count < 10))
            #expect(page.nextAfterKey == (page.more ? page.entries.last?.key : nil))
            guard page.more else { break }
            afterKey = page.nextAfterKey
        }
        #expect(keys == (0..<10).map { "big/\($0)" })
        #expect(try node.client.contextList(prefix: "big/").map(\.key) == keys)
        #expect(try node.client.contextList(prefix: nil).map(\.key) == keys + ["small"])
        #expect(try node.client.contextList(prefix: nil, limit: 5).map(\.key) == Array(keys.prefix(5)))
        #expect(try node.http("GET", "/api/v1/context?afterKey=" + String(repeating: "k", count: 513)).errorCode == "bad_key")
        // A watch from before the writes: its changes carry their values, 4 at a time.
        var changes: [String] = []
        var after = cursor
        for _ in 0..<10 {
            let answer = try node.http("GET", "/api/v1/context?prefix=big/&after=\(after)")
            #expect(answer.status == 200 && answer.body.count <= pageLimit)
            let page = try answer.json(ContextChangesResponse.self)
            if page.changes.isEmpty { break }
            #expect(page.changes.count <= 4 && page.changes.allSatisfy { $0.value == value })
            changes += page.changes.map(\.key)
            after = page.cursor
        }
        #expect(changes == keys)
    }

    @Test func everyContextRouteRoundTrips() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let client = node.client
        let created = try client.contextSet("team/plan ü", value: "ship it", ttl: nil)
        #expect(created.revision == 1)
        #expect(created.key == "team/plan ü")
        #expect(created.fromNodeId == (try client.health().nodeId))
        let updated = try client.contextSet("team/plan ü", value: "ship it now", ttl: 3600)
        #expect(updated.revision == 2)
        #expect(updated.expiresAt == updated.updatedAt + 3_600_000)
        #expect(try client.contextGet("team/plan ü").value == "ship it now")
        _ = try client.contextSet("team/other", value: "x", ttl: nil)
        _ = try client.contextSet("teams", value: "y", ttl: nil)
        #expect(try client.contextList(prefix: "team/").map(\.key) == ["team/other", "team/plan ü"])
        #expect(try client.contextList(prefix: nil).count == 3)
        try client.contextDelete("team/plan ü")
        let gone = try node.http("GET", "/api/v1/context/team%2Fplan%20%C3%BC")
        #expect(gone.status == 404)
        #expect(gone.errorCode == "not_found")
        #expect(try node.http("DELETE", "/api/v1/context/team%2Fplan%20%C3%BC").status == 404)
        #expect(try client.status().context == 2)
    }

    @Test func expiredEntriesDisappear() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        _ = try node.client.contextSet("short", value: "soon gone", ttl: 1)
        _ = try node.client.contextSet("long", value: "stays", ttl: 60)
        #expect(try node.client.contextGet("short").value == "soon gone")
        Thread.sleep(forTimeInterval: 1.2)
        #expect(try node.http("GET", "/api/v1/context/short").status == 404)
        #expect(try node.client.contextList(prefix: nil).map(\.key) == ["long"])
    }

    @Test func dataPersistsAcrossRestartAndKill() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        _ = try node.client.contextSet("kept", value: "across restarts", ttl: nil)
        node.stop()
        try node.start()
        #expect(try node.client.contextGet("kept").value == "across restarts")
        _ = try node.client.contextSet("acked", value: "before kill", ttl: nil)
        node.kill9()
        try node.start()  // a stale daemon.pid from the killed process must not block this
        #expect(try node.client.contextGet("acked").value == "before kill")
    }

    @Test func badRequestsGetTheRightStatusAndJSON() throws {
        let node = try TestNode { $0.replacingOccurrences(of: "maxValueBytes: 1048576", with: "maxValueBytes: 100") }
        defer { node.cleanUp() }
        try node.start()
        let badJSON = try node.http("PUT", "/api/v1/context/k", body: "{not json")
        #expect(badJSON.status == 400)
        #expect(badJSON.errorCode == "bad_json")
        let wrongType = try node.http("PUT", "/api/v1/context/k", body: #"{"value": 5}"#)
        #expect(wrongType.status == 400)
        #expect(wrongType.text.contains("field 'value' must be a string"))
        #expect(try node.http("PUT", "/api/v1/context/k", body: #"{"value":"x","ttl":"soon"}"#).status == 400)
        #expect(try node.http("PUT", "/api/v1/context/k", body: "value=x",
                              headers: ["Content-Type": "application/x-www-form-urlencoded"]).status == 415)
        let tooBig = try node.http("PUT", "/api/v1/context/k", body: #"{"value":"\#(String(repeating: "x", count: 101))"}"#)
        #expect(tooBig.status == 413)
        #expect(tooBig.text.contains("context.maxValueBytes"))
        // Far over the route's body limit: refused from Content-Length, before the body is read.
        let huge = try node.http("PUT", "/api/v1/context/k", body: String(repeating: " ", count: 2_000_000))
        #expect(huge.status == 413)
        #expect(huge.errorCode == "payload_too_large")
        let wrongMethod = try node.http("POST", "/api/v1/context/k", body: "{}")
        #expect(wrongMethod.status == 405)
        #expect(wrongMethod.headers["allow"]?.contains("PUT") == true)
        let unknown = try node.http("GET", "/api/v1/nope")
        #expect(unknown.status == 404)
        #expect(unknown.errorCode == "not_found")
        #expect(try node.http("GET", "/api/v1/context/%E0%A4").errorCode == "bad_path")
        // Nothing above changed the store.
        #expect(try node.client.contextList(prefix: nil).isEmpty)
    }

    @Test func entryLimitGives409AndKeepsData() throws {
        let node = try TestNode { $0.replacingOccurrences(of: "maxEntries: 10000\n", with: "maxEntries: 2\n") }
        defer { node.cleanUp() }
        try node.start()
        _ = try node.client.contextSet("a", value: "1", ttl: nil)
        _ = try node.client.contextSet("b", value: "2", ttl: nil)
        let full = try node.http("PUT", "/api/v1/context/c", body: #"{"value":"3"}"#)
        #expect(full.status == 409)
        #expect(full.errorCode == "context_full")
        #expect(try node.client.contextSet("a", value: "updated", ttl: nil).revision == 2)
        #expect(try node.client.contextList(prefix: nil).map(\.value) == ["updated", "2"])
    }

    @Test func rateLimitGives429WithRetryAfterPerCaller() throws {
        let node = try TestNode {
            $0.replacingOccurrences(of: "  context: 60\n", with: "  context: 5\n")
                .replacingOccurrences(of: "allowedKeys: {}", with: "allowedKeys: {helper: \(String(repeating: "h", count: 40))}")
                .replacingOccurrences(of: "  exemptLocalOwner: true", with: "  exemptLocalOwner: false")
        }
        defer { node.cleanUp() }
        try node.start()
        for index in 0..<5 {
            #expect(try node.http("GET", "/api/v1/context/k\(index)").status == 404)
        }
        let limited = try node.http("GET", "/api/v1/context/k")
        #expect(limited.status == 429)
        #expect(limited.errorCode == "rate_limited")
        #expect(Int(limited.headers["retry-after"] ?? "") ?? 0 >= 1)
        // Another caller has its own budget; routes outside the category are not limited.
        #expect(try node.http("GET", "/api/v1/context/k", key: String(repeating: "h", count: 40)).status == 404)
        #expect(try node.http("GET", "/api/v1/status").status == 200)
    }

    /// By default limits protect the node from others: its own key on loopback is not limited,
    /// every other caller is.
    @Test func theLocalOwnerIsNotRateLimitedByDefault() throws {
        let helper = String(repeating: "h", count: 40)
        let node = try TestNode {
            $0.replacingOccurrences(of: "  context: 60\n", with: "  context: 5\n")
                .replacingOccurrences(of: "allowedKeys: {}", with: "allowedKeys: {helper: \(helper)}")
        }
        defer { node.cleanUp() }
        try node.start()
        for index in 0..<20 {
            #expect(try node.http("PUT", "/api/v1/context/k\(index)", body: #"{"value":"v"}"#).status == 200)
        }
        #expect(try node.cli("context", "get", "k3").status == 0)
        for _ in 0..<5 { #expect(try node.http("GET", "/api/v1/context/k1", key: helper).status == 200) }
        #expect(try node.http("GET", "/api/v1/context/k1", key: helper).status == 429)
    }

    /// JSON allows "\u0000" in a string. Such a value was cut at the NUL on disk while the
    /// answer and the cache showed all of it: a list, or any read after a restart, lost the rest.
    @Test func aValueHoldingNULIsStoredWhole() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let put = try node.http("PUT", "/api/v1/context/nul", body: #"{"value":"keep\u0000this part too"}"#)
        #expect(put.status == 200)
        let listed = try node.http("GET", "/api/v1/context?prefix=nul")
        #expect(listed.status == 200)
        #expect(String(decoding: listed.body, as: UTF8.self).contains(#""value":"keep\u0000this part too""#))
        node.stop()
        try node.start()
        let entry = try node.client.contextGet("nul")
        #expect(entry.value == "keep\u{0}this part too")
    }

    @Test func foreignHostAndCrossOriginAreRefused() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let rebound = try node.http("GET", "/api/v1/status", headers: ["Host": "attacker.example:\(node.port)"])
        #expect(rebound.status == 403)
        #expect(rebound.errorCode == "host_forbidden")
        let crossSite = try node.http("PUT", "/api/v1/context/k", body: #"{"value":"x"}"#,
                                      headers: ["Origin": "http://attacker.example"])
        #expect(crossSite.status == 403)
        #expect(crossSite.errorCode == "origin_forbidden")
        #expect(try node.http("GET", "/api/v1/status", headers: ["Host": "localhost:\(node.port)"]).status == 200)
        #expect(try node.http("GET", "/api/v1/context/k").status == 404)
    }

    @Test func keepAliveServesSeveralRequestsOnOneConnection() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let request = "GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        let replies = try RawHTTP.exchange(port: node.port, requests: [request, request, request])
        #expect(replies.count == 3)
        for reply in replies {
            #expect(reply.hasPrefix("HTTP/1.1 200"))
            #expect(!reply.lowercased().contains("connection: close"))
        }
    }

    @Test func auditRecordsRequestsWithoutSecrets() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        _ = try node.client.contextSet("audited", value: "secret-value-123", ttl: nil)
        _ = try node.http("GET", "/api/v1/status", key: "wrong-key-456")
        Thread.sleep(forTimeInterval: 0.6)  // the audit log flushes every 250 ms
        let entries = try node.client.audit(limit: 100)
        let put = try #require(entries.first { $0.method == "PUT" })
        #expect(put.path == "/api/v1/context/audited")
        #expect(put.caller == "local")
        #expect(put.status == 200)
        #expect(put.requestId.count == 16)
        #expect(entries.contains { $0.status == 403 && $0.caller.hasPrefix("anonymous@") })
        node.stop()
        let database = try String(contentsOfFile: node.dataDir + "/loopsy.db", encoding: .isoLatin1)
        #expect(!database.contains(node.apiKey))
        #expect(!database.contains("wrong-key-456"))
        #expect(!node.stderrText().contains(node.apiKey))
    }

    /// Successful reads are summarised (one row per caller, path and status per flush, with a
    /// count); writes and failed reads keep a row each. No request goes unrecorded.
    @Test func auditSummarisesSuccessfulReadsAndKeepsEveryOtherRequest() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        for round in 0..<3 { _ = try node.client.contextSet("counted", value: "v\(round)", ttl: nil) }
        for _ in 0..<40 { _ = try node.client.contextGet("counted") }
        for _ in 0..<5 { #expect(throws: (any Error).self) { try node.client.contextGet("missing") } }
        let entries = try node.client.audit(limit: 1000)
        let reads = entries.filter { $0.method == "GET" && $0.path == "/api/v1/context/counted" }
        #expect(reads.reduce(0) { $0 + $1.count } == 40)
        #expect(reads.count < 40 && reads.allSatisfy { $0.status == 200 && $0.caller == "local" })
        let writes = entries.filter { $0.method == "PUT" && $0.path == "/api/v1/context/counted" }
        #expect(writes.count == 3 && writes.allSatisfy { $0.count == 1 })
        let misses = entries.filter { $0.path == "/api/v1/context/missing" }
        #expect(misses.count == 5 && misses.allSatisfy { $0.count == 1 && $0.status == 404 })
        #expect(Set(entries.map(\.requestId)).count == entries.count)
    }

    @Test func openAPIDocumentIsServed() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let response = try node.http("GET", "/api/v1/openapi.json")
        #expect(response.status == 200)
        let document = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
        #expect(document["openapi"] as? String == "3.1.0")
        let paths = try #require(document["paths"] as? [String: Any])
        #expect(paths["/api/v1/context/{key}"] != nil)
    }

    @Test func wrongConfigTypeStopsStartupNamingTheKey() throws {
        let node = try TestNode { $0.replacingOccurrences(of: "  port: 19532", with: "  port: lots") }
        defer { node.cleanUp() }
        #expect(throws: HarnessError.self) { try node.start() }
        let result = try run(try Binaries.path("loopsyd"), ["--data-dir", node.dataDir, "--port", "0"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("'server.port'"))
    }

    @Test func databaseFromANewerBuildIsRefused() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        node.stop()
        let database = try Database(path: node.dataDir + "/loopsy.db")
        try database.execute("INSERT INTO schema_migrations (id, name, applied_at) VALUES (9999, 'from_the_future', 0)")
        let result = try run(try Binaries.path("loopsyd"), ["--data-dir", node.dataDir, "--port", "0"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("newer loopsy"))
    }

    @Test func secondDaemonOnTheSameDataDirIsRefused() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let second = try run(try Binaries.path("loopsyd"), ["--data-dir", node.dataDir, "--port", "0"])
        #expect(second.status != 0)
        #expect(second.stderr.contains("already running"))
        #expect(try node.client.health().status == "ok")
    }

    @Test func readinessIsReportedToSystemd() throws {
        let socketPath = FileManager.default.temporaryDirectory.appendingPathComponent("notify-\(UUID().uuidString.prefix(8))").path
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd); unlink(socketPath) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in socketPath.utf8.enumerated() { buffer[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        func message() -> String {
            var buffer = [UInt8](repeating: 0, count: 256)
            let count = recv(fd, &buffer, buffer.count, 0)
            return String(decoding: buffer[0..<max(0, count)], as: UTF8.self)
        }
        let node = try TestNode()
        defer { node.cleanUp() }
        // A new database: its migrations run first, and systemd is told to wait longer for
        // them (an index built over every message of a large inbox outlasts its 90 s default).
        try node.start(environment: ["NOTIFY_SOCKET": socketPath])
        let migrating = message()
        #expect(migrating.hasPrefix("EXTEND_TIMEOUT_USEC=3600000000\nSTATUS=applying "), "\(migrating)")
        #expect(migrating.hasSuffix(" database migration(s)"), "\(migrating)")
        let ready = message()
        #expect(ready.hasPrefix("READY=1\n"))
        #expect(ready.contains("port \(node.port)"))
        // Started again with nothing to migrate: no longer wait asked for (the first daemon's
        // STOPPING=1 may come first).
        #expect(node.stop() == 0)
        try node.start(environment: ["NOTIFY_SOCKET": socketPath])
        var again: [String] = []
        while again.count < 5, !(again.last ?? "").hasPrefix("READY=1") { again.append(message()) }
        #expect(again.last?.hasPrefix("READY=1\n") == true && again.last?.contains("port \(node.port)") == true, "\(again)")
        #expect(!again.contains { $0.contains("EXTEND_TIMEOUT_USEC") }, "\(again)")
    }

    @Test func filesHoldingSecretsArePrivate() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        _ = try node.client.contextSet("k", value: "v", ttl: nil)
        for file in ["config.yaml", "identity.pem", "loopsy.db", "."] {
            let attributes = try FileManager.default.attributesOfItem(atPath: node.dataDir + "/" + file)
            let mode = (attributes[.posixPermissions] as? Int ?? 0o777) & 0o077
            #expect(mode == 0, "\(file) is readable by others")
        }
    }
}

/// Several requests written on one TCP connection, replies read back in order.
enum RawHTTP {
    static func exchange(port: Int, requests: [String]) throws -> [String] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw HarnessError("connect failed") }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var replies: [String] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        for request in requests {
            _ = request.withCString { send(fd, $0, strlen($0), 0) }
            var reply = ""
            // Read until the headers and the Content-Length body have arrived.
            while true {
                let count = recv(fd, &buffer, buffer.count, 0)
                if count <= 0 { break }
                reply += String(decoding: buffer[0..<count], as: UTF8.self)
                if let headerEnd = reply.range(of: "\r\n\r\n") {
                    let head = reply[..<headerEnd.lowerBound].lowercased()
                    let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                        .flatMap { Int($0.dropFirst("content-length:".count).trimming()) } ?? 0
                    if reply.utf8.count - reply[..<headerEnd.upperBound].utf8.count >= length { break }
                }
            }
            if reply.isEmpty { break }
            replies.append(reply)
        }
        return replies
    }
}
