import Foundation
import Synchronization
import LoopsyAPI
import LoopsyClient
import Testing

/// Two or three daemons on loopback addresses: alpha on 127.0.0.1 (plain HTTP), bravo serving
/// peers over TLS on 127.0.0.2 (and its local clients over HTTP on 127.0.0.1, same port).
@Suite struct PeerTests {
    static func named(_ name: String, tls: Bool = false, extra: (String) -> String = { $0 }) throws -> TestNode {
        try TestNode { text in
            var text = text.replacingOccurrences(of: "  # hostname: my-laptop", with: "  hostname: \(name)")
            text = replacingLine(text, "  enabled: true            # mDNS", "  enabled: false            # mDNS")
            text = settingTLS(text, tls)
            return extra(text)
        }
    }

    /// alpha adds bravo with bravo's key (read from stdin), which also introduces alpha to bravo.
    static func pair(_ alpha: TestNode, _ bravo: TestNode, address: String = "127.0.0.2") throws -> CommandResult {
        try alpha.cli(["peers", "add", address, String(bravo.port), "--key-stdin"], stdin: bravo.apiKey + "\n")
    }

    @Test func addedPeerIsPinnedAndWorkIsForwardedBothWays() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-peer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let alpha = try Self.named("alpha")
        let bravo = try Self.named("bravo", tls: true) {
            replacingLine($0, #"allowedPaths: ["~"]"#, #"allowedPaths: ["\#(directory.path)"]"#)
        }
        defer { alpha.cleanUp(); bravo.cleanUp() }
        try alpha.start()
        try bravo.start(host: "127.0.0.2")

        let added = try Self.pair(alpha, bravo)
        #expect(added.status == 0, "\(added.stderr)")
        #expect(added.stdout.contains("added bravo (\(try bravo.nodeId))"))
        #expect(added.stdout.contains("TLS key pinned: "))
        #expect(added.stdout.contains("it was given its own key for calling back"))

        let peer = try #require(try alpha.peers().first)
        #expect(peer.nodeId == (try bravo.nodeId))
        #expect(peer.tls && peer.status == "online" && peer.source == "manual" && peer.hasCredential)
        let identity = try bravo.client.identity()
        #expect(peer.fingerprint == identity.fingerprint)
        // The pin is the SHA-256 of the certificate's key, as openssl computes it.
        let openssl = try run("/bin/sh", ["-c", "openssl x509 -in '\(bravo.dataDir)/tls/cert.pem' -pubkey -noout "
            + "| openssl pkey -pubin -outform der | sha256sum"])
        #expect(openssl.stdout.hasPrefix(identity.fingerprint))
        #expect(try alpha.cli("peers").stdout.contains("tls, pinned"))

        // bravo's owner lets alpha run programs and move files there (context is a default grant).
        let granted = try bravo.cli("peers", "grant", "alpha", "exec", "transfer")
        #expect(granted.status == 0 && granted.stdout.contains("alpha may now: context:read, context:write, messages, exec, transfer"),
                "\(granted.stdout)\(granted.stderr)")

        // exec, context, send and pull through alpha's daemon, by name, nodeId prefix and address.
        let exec = try alpha.cli("exec", "bravo", "sh", "-c", "echo on-$0; exit 3")
        #expect(exec.stdout == "on-sh\n")
        #expect(exec.status == 3)
        // Revoked, it is refused at alpha's very next call (no restart), and granted again works again.
        #expect(try bravo.cli("peers", "revoke", "alpha", "exec").status == 0)
        let revoked = try alpha.cli("exec", "bravo", "true")
        #expect(revoked.status != 0 && revoked.stderr.contains("no 'exec' grant on bravo"), "\(revoked.stderr)")
        #expect(try bravo.cli("peers").stdout.contains("context:read,context:write,messages,transfer"))
        #expect(try bravo.cli("peers", "grant", "alpha", "exec").status == 0)
        #expect(try alpha.cli("exec", "bravo", "true").status == 0)
        #expect(try alpha.cli("context", "set", "k", "v1", "--peer", String(try bravo.nodeId.prefix(6))).status == 0)
        #expect(try bravo.client.contextGet("k").value == "v1")
        #expect(try bravo.client.contextGet("k").fromNodeId == (try alpha.nodeId))
        #expect(try alpha.cli("context", "get", "k", "--peer", "127.0.0.2").stdout == "v1\n")

        let payload = Data((0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try payload.write(to: directory.appendingPathComponent("in.bin"))
        let sent = try alpha.cli("send", "bravo", directory.path + "/in.bin", directory.path + "/remote.bin")
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(try Data(contentsOf: directory.appendingPathComponent("remote.bin")) == payload)
        let pulled = try alpha.cli("pull", "bravo", directory.path + "/remote.bin", directory.path + "/back.bin")
        #expect(pulled.status == 0, "\(pulled.stderr)")
        #expect(try Data(contentsOf: directory.appendingPathComponent("back.bin")) == payload)
        // A tree with a repository in it: bravo keeps .git from its peers, the rest of the tree
        // goes, and the command says what was refused and ends non-zero.
        let tree = directory.appendingPathComponent("tree")
        try FileManager.default.createDirectory(at: tree.appendingPathComponent(".git/hooks"), withIntermediateDirectories: true)
        try Data("[core]\n".utf8).write(to: tree.appendingPathComponent(".git/config"))
        try Data("#!/bin/sh\n".utf8).write(to: tree.appendingPathComponent(".git/hooks/pre-commit"))
        try Data("code\n".utf8).write(to: tree.appendingPathComponent("main.swift"))
        let copied = try alpha.cli("send", "-r", "bravo", tree.path, directory.path + "/copy")
        #expect(copied.status != 0 && copied.stdout.contains("sent 1 files"), "\(copied.stdout)\(copied.stderr)")
        #expect(copied.stderr.contains("skipped .git/config (bravo refuses it") && copied.stderr.contains("2 file(s) were refused"),
                "\(copied.stderr)")
        #expect(FileManager.default.fileExists(atPath: directory.path + "/copy/main.swift"))
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/copy/.git"))

        // bravo's audit log names alpha as the caller (by the key bravo gave it); alpha's own key never
        // left alpha, and bravo's is not kept by alpha.
        #expect(try eventually(5) {
            try bravo.client.audit(limit: 200).contains { $0.caller == "peer:\(try alpha.nodeId)" && $0.path == "/api/v1/execute/stream" }
        })

        // bravo calls alpha back with the credential alpha gave it: alpha sees peer:<bravo>.
        let back = try bravo.cli("context", "set", "from-bravo", "hello", "--peer", "alpha")
        #expect(back.status == 0, "\(back.stderr)")
        #expect(try alpha.client.contextGet("from-bravo").fromNodeId == (try bravo.nodeId))
        #expect(try eventually(5) {
            try alpha.client.audit(limit: 200).contains { $0.caller == "peer:\(try bravo.nodeId)" }
        })
        #expect(try alpha.cli("status").stdout.contains("peers:    1 (1 online)"))
    }

    @Test func aNodeWithAnotherKeyAtAPinnedAddressIsRefused() throws {
        let alpha = try Self.named("alpha"), bravo = try Self.named("bravo", tls: true)
        let impostor = try Self.named("bravo", tls: true)
        defer { alpha.cleanUp(); bravo.cleanUp(); impostor.cleanUp() }
        try alpha.start()
        try bravo.start(host: "127.0.0.2")
        #expect(try Self.pair(alpha, bravo).status == 0)
        let port = bravo.port
        bravo.stop()
        // Same address, same port, same name, another identity (and so another TLS key).
        try impostor.start(host: "127.0.0.2", port: port)

        let exec = try alpha.cli("exec", "bravo", "true")
        #expect(exec.status == 1)
        #expect(exec.stderr.contains("does not match its pinned fingerprint"))
        let response = try alpha.http("POST", "/api/v1/peers/bravo/execute", body: #"{"command":"true"}"#)
        #expect(response.status == 502)
        #expect(response.errorCode == "peer_pin_mismatch")
        // Audited as a TLS event, and the health check marks the peer offline with the reason.
        #expect(try eventually(5) {
            try alpha.client.audit(limit: 500).contains { $0.method == "TLS" && $0.status == 495 }
        })
        #expect(try impostor.client.audit(limit: 500).allSatisfy { !$0.path.contains("execute") })
    }

    /// A peer that stops reading what it is sent holds none of our HTTP threads. Relayed bodies
    /// flow through a pipe to curl; when curl cannot send, the uploader's connection waits
    /// suspended instead of a worker waiting on the full pipe (with one thread, one stalled
    /// upload used to stop the whole daemon, for as long as the peer kept its connection). When
    /// the peer goes, each upload is answered 502 and nothing is left waiting.
    @Test func aPeerThatStopsReadingHoldsNoWorkerThread() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-stall-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let alpha = try Self.named("alpha") {
            replacingLine($0, "  connectionTimeout: 30", "  threads: 1\n  connectionTimeout: 30")
        }
        let bravo = try Self.named("bravo")
        defer { alpha.cleanUp(); bravo.cleanUp() }
        try alpha.start()
        try bravo.start(host: "127.0.0.2")
        // Plain HTTP, so that the stalling peer below needs no TLS. `peers add` tries a TLS
        // handshake first, which bravo logs as a malformed request.
        bravo.sendsMalformedRequests = true
        let added = try alpha.cli(["peers", "add", "127.0.0.2", String(bravo.port), "--key-stdin", "--insecure-http"],
                                  stdin: bravo.apiKey + "\n")
        #expect(added.status == 0, "\(added.stderr)")
        let port = bravo.port
        bravo.stop()
        // In bravo's place: a peer that takes connections and never reads from them.
        let stall = try StallingListener(host: "127.0.0.2", port: port)
        defer { stall.close() }

        let payload = directory.appendingPathComponent("big.bin")
        try Data(count: 32 << 20).write(to: payload)
        let header = directory.appendingPathComponent("auth")
        try Data("Authorization: Bearer \(alpha.apiKey)\n".utf8).write(to: header)
        let uploads = try (0..<3).map { index -> (Process, Pipe) in
            let process = Process(), out = Pipe()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            process.arguments = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "120", "-X", "POST",
                                 "-H", "@" + header.path, "-H", "Content-Type: application/octet-stream", "-T", payload.path,
                                 alpha.baseURL + "/api/v1/peers/bravo/transfer/push?destPath=/tmp/stalled-\(index)"]
            process.standardOutput = out
            try process.run()
            return (process, out)
        }
        #expect(eventually(20) { stall.connections >= 3 })
        // Time for every buffer on the way to fill (32 MiB each; loopback moves that in well under a second).
        usleep(1_500_000)
        for round in 0..<5 {
            let health = try run("/usr/bin/curl", ["-sf", "--max-time", "5", alpha.baseURL + "/api/v1/health"])
            #expect(health.status == 0, "health check \(round) while uploads stall: \(health.stderr)")
            #expect(try alpha.cli("context", "set", "during-stall-\(round)", "ok").status == 0)
        }
        #expect(uploads.allSatisfy { $0.0.isRunning })

        stall.close()
        for (process, out) in uploads {
            process.waitUntilExit()
            #expect(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == "502")
        }
        #expect(try alpha.client.contextGet("during-stall-4").value == "ok")
    }

    /// Whoever answers decides how long the answer is. A host that answers the identity probe
    /// (and every health check after) with an endless 200 took loopsyd to 4 GB of memory; calls
    /// without a credential now keep at most 1 MiB of an answer and give up past it.
    @Test func aHostThatAnswersWithGigabytesIsCutOffAtOneMebibyte() throws {
        let flood = try FloodingListener(bytes: 600 << 20)
        defer { flood.close() }
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let pid = try #require(node.process?.processIdentifier)
        let started = Date()
        let added = try node.http("POST", "/api/v1/peers", body: #"{"address":"127.0.0.1","port":\#(flood.port)}"#)
        #expect(!(200..<300).contains(added.status), "a host that is no loopsyd is not added")
        #expect(Date().timeIntervalSince(started) < 8, "it gave up at the limit, not at the 10 s probe timeout")
        let peakMiB = ExecuteTests.peakRSSKiB(pid) / 1024
        #expect(peakMiB < 200, "peak \(peakMiB) MiB")
        #expect(try node.http("GET", "/api/v1/health").status == 200)
    }

    /// A peer's status line is read where it arrives. `Int` of it took -5 or 4294967296 (curl
    /// passes both on), and the daemon stopped on sending that status back (UInt32 of it). A
    /// peer answering so now gets its caller a 502; the daemon goes on.
    @Test(arguments: ["status", "relay"])
    func aPeerWhoseStatusLineIsNotHTTPGetsA502(mode: String) throws {
        let bravo = try Self.named("bravo"), alpha = try Self.named("alpha")
        defer { alpha.cleanUp(); bravo.cleanUp() }
        try bravo.start()
        try alpha.start()
        let proxy = Process()
        proxy.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        proxy.arguments = [URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Support/bad_status_peer.py").path, String(bravo.port), mode]
        let output = Pipe()
        proxy.standardOutput = output
        try proxy.run()
        // SIGKILL: a signal mask inherited from the test runner may block SIGTERM.
        defer { kill(proxy.processIdentifier, SIGKILL); proxy.waitUntilExit() }
        var ready = ""
        while !ready.contains("\n") {
            let data = output.fileHandleForReading.availableData
            if data.isEmpty { break }  // it ended
            ready += String(decoding: data, as: UTF8.self)
        }
        let port = try #require(ready.split(separator: "\n").first?.split(separator: " ").last.flatMap { Int($0) },
                                "bad_status_peer.py said: \(ready)")
        let add = #"{"address":"127.0.0.1","port":\#(port),"apiKey":"\#(bravo.apiKey)","allowInsecure":true}"#
        let added = try alpha.http("POST", "/api/v1/peers", body: add)
        guard mode == "relay" else {
            // Its /status answers "-5": adding it fails with a 502 that says so.
            #expect(added.status == 502 && added.text.contains("not HTTP"), "\(added.status) \(added.text)")
            #expect(try alpha.http("GET", "/api/v1/health").status == 200)
            return
        }
        #expect((200..<300).contains(added.status), "\(added.text)")
        let peer = try bravo.nodeId
        #expect(try alpha.http("GET", "/api/v1/peers/\(peer)/context/nothing").status == 404, "a good answer is relayed")
        // bad-5: a status curl reads as 200 and we do not; its body went on under no head.
        for broken in ["bad-1", "bad-2", "bad-3", "bad-4", "bad-5"] {
            let relayed = try alpha.http("GET", "/api/v1/peers/\(peer)/context/\(broken)")
            #expect(relayed.status == 502, "\(broken): \(relayed.status) \(relayed.text)")
            #expect(try alpha.http("GET", "/api/v1/health").status == 200, "after \(broken)")
        }
    }

    /// Calls that wait on other machines run off the HTTP workers: three probes of a host that
    /// accepts and never answers (10 s each) held both workers of a 2-core node, and /health
    /// with them, for 19 s.
    @Test func probesOfAHostThatNeverAnswersHoldNoWorker() throws {
        let silent = try StallingListener(host: "127.0.0.1", port: 0)
        defer { silent.close() }
        let node = try TestNode { replacingLine($0, "  maxConnections: 1000", "  maxConnections: 1000\n  threads: 2") }
        defer { node.cleanUp() }
        try node.start()
        let group = DispatchGroup()
        let answered = Mutex<[Int]>([])
        let port = silent.port
        for _ in 0..<3 {
            DispatchQueue.global().async(group: group) {
                let status = (try? node.http("POST", "/api/v1/peers", body: #"{"address":"127.0.0.1","port":\#(port)}"#).status) ?? -1
                answered.withLock { $0.append(status) }
            }
        }
        #expect(eventually(5) { silent.connections >= 3 }, "the three probes are under way")
        let started = Date()
        #expect(try node.client.health().status == "ok")
        #expect(try node.http("GET", "/api/v1/context/nothing").status == 404)
        #expect(Date().timeIntervalSince(started) < 2, "answered while the probes wait")
        // A stop waits a little for them (3 s), then answers them: well within the 10 s
        // `loopsy stop` gives before it kills the daemon.
        let stopping = Date()
        #expect(node.stop() == 0)
        #expect(Date().timeIntervalSince(stopping) < 7, "the stop took \(Date().timeIntervalSince(stopping)) s")
        group.wait()
        let statuses = answered.withLock { $0 }
        // Refused (503) or cut off by the stop (-1: no answer); none added.
        #expect(statuses.count == 3 && statuses.allSatisfy { $0 >= 400 || $0 == -1 }, "\(statuses)")
    }

    @Test func removingAPeerRevokesItsCredentialAtOnce() throws {
        let alpha = try Self.named("alpha"), bravo = try Self.named("bravo", tls: true)
        defer { alpha.cleanUp(); bravo.cleanUp() }
        try alpha.start()
        try bravo.start(host: "127.0.0.2")
        #expect(try Self.pair(alpha, bravo).status == 0)
        #expect(try bravo.cli("context", "set", "a", "1", "--peer", "alpha").status == 0)

        let removed = try alpha.cli("peers", "remove", "bravo")
        #expect(removed.status == 0)
        #expect(try alpha.peers().isEmpty)
        let refused = try bravo.cli("context", "set", "a", "2", "--peer", "alpha")
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("invalid API key"))
        #expect(try alpha.client.contextGet("a").value == "1")
    }

    @Test func peerCredentialsAreBoundToTheirNodeAndCannotRelay() throws {
        let alpha = try Self.named("alpha"), bravo = try Self.named("bravo", tls: true)
        let charlie = try Self.named("charlie")
        defer { alpha.cleanUp(); bravo.cleanUp(); charlie.cleanUp() }
        try alpha.start()
        try bravo.start(host: "127.0.0.2")
        try charlie.start()
        #expect(try Self.pair(alpha, bravo).status == 0)
        #expect(try alpha.cli(["peers", "add", "127.0.0.1", String(charlie.port), "--key-stdin", "--insecure-http"],
                              stdin: charlie.apiKey + "\n").status == 0)
        // alpha no longer keeps bravo's own key: it got a key of its own for calling bravo.
        let alphaDB = alpha.dataDir + "/loopsy.db"
        let alphaHolds = try run("/usr/bin/sqlite3", [alphaDB, "SELECT api_key FROM peers WHERE name = 'bravo'"]).stdout
        #expect(!alphaHolds.contains(bravo.apiKey) && alphaHolds.count > 64)
        // The key alpha gave bravo, read from bravo's database the way bravo's daemon uses it.
        let database = bravo.dataDir + "/loopsy.db"
        let key = try run("/usr/bin/sqlite3", [database, "SELECT api_key FROM peers"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(key.count == 64)
        // Presented with another node's id it is refused; and no peer may relay through alpha.
        let spoofed = try alpha.http("GET", "/api/v1/status", key: key, headers: ["X-Loopsy-Node-Id": try charlie.nodeId])
        #expect(spoofed.status == 403)
        #expect(spoofed.errorCode == "credential_node_mismatch")
        let relay = try alpha.http("GET", "/api/v1/peers/charlie/status", key: key)
        #expect(relay.status == 403)
        #expect(relay.errorCode == "owner_only")
        let manage = try alpha.http("DELETE", "/api/v1/peers/charlie", key: key)
        #expect(manage.status == 403)
        #expect(try alpha.peers().count == 2)
        // A peer may use the shared context store, but not read this node's messages.
        #expect(try alpha.http("PUT", "/api/v1/context/shared", body: #"{"value":"ok"}"#, key: key).status == 200)
        #expect(try alpha.http("GET", "/api/v1/messages/inbox", key: key).status == 403)
        #expect(try alpha.http("GET", "/api/v1/messages/outbox", key: key).status == 403)
        let reserved = try alpha.http("GET", "/api/v1/context/inbox:\(try alpha.nodeId):x", key: key)
        #expect(reserved.status == 403 && reserved.errorCode == "reserved_key")
        // Nor write past context.maxEntries with a key the store would take for a mirror:
        // "inbox:" + a combining mark (U+0301, %CC%81) is reserved too.
        let lookalike = try alpha.http("PUT", "/api/v1/context/inbox:%CC%81x", body: #"{"value":"x"}"#, key: key)
        #expect(lookalike.status == 403 && lookalike.errorCode == "reserved_key")
        // And deliveries are from the node the key belongs to, whatever a header says.
        let forged = try alpha.http("POST", "/api/v1/messages/deliver", body:
            #"{"id":"f","fromName":"x","type":"chat","body":"hi","createdAt":1,"expiresAt":99999999999999}"#,
            key: alpha.apiKey, headers: ["X-Loopsy-Node-Id": try charlie.nodeId])
        #expect(forged.status == 403 && forged.errorCode == "peer_only")
    }

    @Test func aPeersRateLimitsApplyToForwardedCalls() throws {
        let alpha = try Self.named("alpha")
        let bravo = try Self.named("bravo", tls: true) { replacingLine($0, "  context: 60\n", "  context: 3\n") }
        defer { alpha.cleanUp(); bravo.cleanUp() }
        try alpha.start()
        try bravo.start(host: "127.0.0.2")
        #expect(try Self.pair(alpha, bravo).status == 0)
        var statuses: [Int] = []
        var retryAfter: String?
        for index in 0..<4 {
            let response = try alpha.http("PUT", "/api/v1/peers/bravo/context/k\(index)", body: #"{"value":"x"}"#)
            statuses.append(response.status)
            if response.status == 429 { retryAfter = response.headers["retry-after"] }
        }
        #expect(statuses == [200, 200, 200, 429])
        #expect(retryAfter != nil)
        let limited = try alpha.cli("context", "set", "more", "x", "--peer", "bravo")
        #expect(limited.status == 1)
        #expect(limited.stderr.contains("rate limit"))
    }

    @Test func namesThatFitSeveralPeersAreAnError() throws {
        let alpha = try Self.named("alpha")
        let first = try Self.named("twin"), second = try Self.named("twin")
        defer { alpha.cleanUp(); first.cleanUp(); second.cleanUp() }
        try alpha.start()
        try first.start()
        try second.start()
        #expect(try alpha.cli("peers", "add", "127.0.0.1", String(first.port)).status == 0)
        #expect(try alpha.cli("peers", "add", "127.0.0.1", String(second.port)).status == 0)
        let ambiguous = try alpha.cli("exec", "twin", "true")
        #expect(ambiguous.status == 1)
        #expect(ambiguous.stderr.contains("'twin' names 2 peers"))
        let (firstId, secondId) = (try first.nodeId, try second.nodeId)
        #expect(ambiguous.stderr.contains(firstId) && ambiguous.stderr.contains(secondId))
        // Without a key the peer is known but cannot be called; plain HTTP is shown as such.
        #expect(try alpha.cli("peers").stdout.contains("plain http"))
        let unknown = try alpha.cli("peers", "remove", "nobody")
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("no known peer is named 'nobody'"))
        let bad = try alpha.cli("peers", "add", "127.0.0.1", "1")
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("nothing answers at 127.0.0.1:1"))
        // A key is never sent to a peer without TLS unless the user says so.
        let noTLS = try alpha.cli(["peers", "add", "127.0.0.1", String(first.port), "--key-stdin"], stdin: first.apiKey + "\n")
        #expect(noTLS.status == 1)
        #expect(noTLS.stderr.contains("the key is not sent over plain HTTP"))
        let wrongKey = try alpha.cli(["peers", "add", "127.0.0.1", String(first.port), "--key-stdin", "--insecure-http"],
                                     stdin: "nope\n")
        #expect(wrongKey.status == 1)
        #expect(wrongKey.stderr.contains("the peer refused the key"))
        let wrongPrint = try alpha.cli("peers", "add", "127.0.0.1", String(first.port), "--insecure-http",
                                       "--fingerprint", String(repeating: "0", count: 64))
        #expect(wrongPrint.stderr.contains("not the expected"))
    }

    @Test func connectWizardTakesFlagsAndVerifiesByCalling() throws {
        let alpha = try Self.named("alpha"), bravo = try Self.named("bravo", tls: true)
        defer { alpha.cleanUp(); bravo.cleanUp() }
        try alpha.start()
        try bravo.start(host: "127.0.0.2")
        let fingerprint = try bravo.client.identity().fingerprint
        let result = try alpha.cli(["connect", "--address", "127.0.0.2", "--port", String(bravo.port), "--key-stdin",
                                    "--fingerprint", fingerprint, "--yes"], stdin: bravo.apiKey + "\n")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("verified: called bravo through the local daemon"))
        // The key never appears in argv or output.
        #expect(!result.stdout.contains(bravo.apiKey))
    }
}

/// A TCP listener on an ephemeral loopback port that answers whatever it is sent with a 200
/// promising 100 GB and sends up to `bytes` of it as fast as it can: a hostile peer.
final class FloodingListener: @unchecked Sendable {
    private let listener: Int32
    let port: Int

    init(bytes: Int) throws {
        (listener, port) = try listenOnLoopback()
        let listening = listener
        Thread {
            while true {
                let connection = accept(listening, nil, nil)
                if connection < 0 { break }
                Thread {
                    defer { Glibc.close(connection) }
                    var request = [UInt8](repeating: 0, count: 4096)
                    guard recv(connection, &request, request.count, 0) > 0 else { return }
                    let head = Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000000000\r\n\r\n".utf8)
                    guard send(connection, head, head.count, Int32(MSG_NOSIGNAL)) == head.count else { return }
                    let chunk = [UInt8](repeating: UInt8(ascii: "7"), count: 1 << 20)
                    var sent = 0
                    while sent < bytes, send(connection, chunk, chunk.count, Int32(MSG_NOSIGNAL)) > 0 { sent += chunk.count }
                }.start()
            }
        }.start()
    }

    func close() {
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
    }
}

/// A TCP listener that accepts connections and never reads from them: a peer that stalls.
final class StallingListener: @unchecked Sendable {
    private let listener: Int32
    private let lock = NSLock()
    private var accepted: [Int32] = []
    private var closed = false
    /// The bound port (the one asked for, or the kernel's choice for 0).
    private(set) var port = 0

    init(host: String, port: Int) throws {
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        // A small window: what it never reads fills up sooner.
        var small: Int32 = 4096
        setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        inet_pton(AF_INET, host, &address.sin_addr)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 16) == 0 else {
            Glibc.close(listener)
            throw HarnessError("cannot listen on \(host):\(port)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        self.port = Int(UInt16(bigEndian: address.sin_port))
        let listening = listener
        Thread { [self] in
            while true {
                let connection = accept(listening, nil, nil)
                if connection < 0 { break }
                lock.lock()
                if closed { Glibc.close(connection) } else { accepted.append(connection) }
                lock.unlock()
            }
        }.start()
    }

    var connections: Int {
        lock.lock()
        defer { lock.unlock() }
        return accepted.count
    }

    /// Drops every connection, unread (the other side sees a reset), and stops listening.
    func close() {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { return }
        closed = true
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
        accepted.forEach { _ = Glibc.close($0) }
        accepted = []
    }
}
