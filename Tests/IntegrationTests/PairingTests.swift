import Foundation
import LoopsyAPI
import Testing

/// `loopsy pair` between hosts of a lab, and what an attacker on the network can and cannot do.
@Suite(.serialized) struct PairingTests {
    /// A `loopsy pair` waiting on a host, its invite code read from its first line.
    final class Responder {
        let process = Process()
        private let output = Pipe()
        /// Its stdin stays open: the person's answer is written when the test decides.
        private let input = Pipe()
        private(set) var printed = ""
        let code: String

        init(_ node: TestNode, arguments: [String] = ["--yes"]) throws {
            let loopsy = try Binaries.path("loopsy")
            process.executableURL = URL(fileURLWithPath: node.launcher[0])
            process.arguments = Array(node.launcher.dropFirst()) + [loopsy, "pair"] + arguments
            process.environment = ProcessInfo.processInfo.environment.merging(node.environment) { $1 }
            process.standardOutput = output
            process.standardError = output
            process.standardInput = input
            try process.run()
            var text = ""
            while !text.contains("Waiting") {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            printed = text
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Invite code: ") }) else {
                throw HarnessError("loopsy pair printed no code: \(text)")
            }
            code = line.dropFirst("Invite code: ".count).prefix(7).filter(\.isNumber)
        }

        /// The address argument the printed command gives for `address` (with http:// when the
        /// responder serves plain HTTP).
        func target(_ address: String) -> String {
            let command = printed.split(separator: "\n").first { $0.contains("loopsy pair ") && $0.contains(address) }
            return command.flatMap { $0.components(separatedBy: "loopsy pair ").last?.split(separator: " ").first }
                .map(String.init) ?? address
        }

        /// What the person types at the prompt.
        func answer(_ text: String) {
            input.fileHandleForWriting.write(Data(text.utf8))
        }

        /// Waits for it to end; its whole output and exit status.
        func finish() -> (status: Int32, output: String) {
            process.waitUntilExit()
            printed += String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            return (process.terminationStatus, printed)
        }
    }

    static func node(_ lab: Lab, _ host: Int, tls: Bool = true, extra: @escaping (String) -> String = { $0 }) throws -> TestNode {
        try lab.node(host, hostname: "host\(host)") { text in
            var text = replacingLine(text, "  enabled: true            # mDNS", "  enabled: false            # mDNS")
            text = settingTLS(text, tls)
            return extra(text)
        }
    }

    /// curl inside a host: status and body.
    static func curl(_ lab: Lab, _ host: Int, _ method: String, _ url: String, body: String? = nil,
                     key: String? = nil) throws -> (status: Int, body: String) {
        var arguments = ["curl", "-sk", "-m", "10", "-X", method, "-w", "\n%{http_code}", url]
        if let body { arguments += ["-H", "Content-Type: application/json", "-d", body] }
        if let key { arguments += ["-H", "Authorization: Bearer \(key)"] }
        let result = try lab.exec(host, arguments)
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    static func status(_ lab: Lab, _ host: Int, _ node: TestNode) throws -> PairStatus {
        let response = try curl(lab, host, "GET", "http://127.0.0.1:19532/api/v1/pair/status", key: node.apiKey)
        return try JSONDecoder().decode(PairStatus.self, from: Data(response.body.utf8))
    }

    static func storedKeys(_ node: TestNode) throws -> [String] {
        try run("/usr/bin/sqlite3", [node.dataDir + "/loopsy.db", "SELECT api_key FROM peers WHERE api_key IS NOT NULL"])
            .stdout.split(separator: "\n").map(String.init)
    }

    @Test func pairedMachinesWorkTogetherOverPinnedTLS() throws {
        let lab = try Lab(hosts: 2)
        defer { lab.tearDown() }
        let one = try Self.node(lab, 1), two = try Self.node(lab, 2)
        try one.start(host: "0.0.0.0", port: 19532)
        try two.start(host: "0.0.0.0", port: 19532)
        let responder = try Responder(one)
        #expect(responder.printed.contains("On the other machine run:  loopsy pair \(lab.address(1))"))
        // host2's person lets host1 run programs there; host1's (the responder, --yes) gives host2
        // the defaults, so host2 gets exec on host1 below only once host1's owner grants it.
        let initiated = try two.cli("pair", lab.address(1), "--code", responder.code, "--yes", "--grant", "context,messages,exec")
        #expect(initiated.status == 0, "\(initiated.stdout)\(initiated.stderr)")
        #expect(initiated.stdout.contains("paired with host1"))
        let (status, output) = responder.finish()
        #expect(status == 0 && output.contains("paired with host2"), "\(output)")
        // Both showed the same verification code.
        let sas = { (text: String) in text.split(separator: "\n").first { $0.hasPrefix("Verification code:") } }
        #expect(sas(output) != nil && sas(output) == sas(initiated.stdout))

        for (node, other) in [(one, "host2"), (two, "host1")] {
            let peer = try #require(try node.peers().first { $0.name == other })
            #expect(peer.source == "paired" && peer.tls && peer.fingerprint != nil && peer.hasCredential
                    && peer.acceptsCredential)
        }
        // Neither node's own key is stored anywhere: each holds only the key the other made for it.
        #expect(try Self.storedKeys(one).allSatisfy { $0 != two.apiKey && $0 != one.apiKey })
        let before = try two.cli("exec", "host1", "true")
        #expect(before.status != 0 && before.stderr.contains("no 'exec' grant on host1"), "\(before.stderr)")
        #expect(try one.cli("peers", "grant", "host2", "exec").status == 0)
        let exec = try two.cli("exec", "host1", "sh", "-c", "hostname -I")
        #expect(exec.status == 0 && exec.stdout.contains(lab.address(1)))
        #expect(try one.cli("exec", "host2", "true").status == 0)
        #expect(try one.cli("msg", "send", "host2", "hello").stdout.contains("delivered"))
    }

    @Test func aWrongCodeClosesTheSessionForGood() throws {
        let lab = try Lab(hosts: 2)
        defer { lab.tearDown() }
        let one = try Self.node(lab, 1), two = try Self.node(lab, 2)
        try one.start(host: "0.0.0.0", port: 19532)
        try two.start(host: "0.0.0.0", port: 19532)
        let responder = try Responder(one)
        let wrong = responder.code == "000000" ? "111111" : "000000"
        let first = try two.cli("pair", lab.address(1), "--code", wrong, "--yes")
        #expect(first.status == 1)
        #expect(first.stderr.contains("the invite code was wrong"))
        // Even the right code no longer works: the session burnt with the first attempt.
        let second = try two.cli("pair", lab.address(1), "--code", responder.code, "--yes")
        #expect(second.status == 1)
        let (status, output) = responder.finish()
        #expect(status == 1 && output.contains("the invite code was wrong"), "\(output)")
        #expect(try one.peers().isEmpty && two.peers().isEmpty)
    }

    @Test func outOfOrderAndReplayedMessagesCloseTheSession() throws {
        let lab = try Lab(hosts: 2)
        defer { lab.tearDown() }
        let one = try Self.node(lab, 1, tls: false)
        try one.start(host: "0.0.0.0", port: 19532)
        let base = "http://\(lab.address(1)):19532/api/v1/pair"
        let key = Data(repeating: 4, count: 65).base64EncodedString(), nonce = Data(repeating: 1, count: 32).base64EncodedString()
        // A reveal before any commitment.
        #expect(try one.cli("pair", "--cancel").status == 0)
        var responder = try Responder(one, arguments: ["--yes"])
        var reply = try Self.curl(lab, 2, "POST", base + "/reveal", body: #"{"publicKey":"\#(key)","nonce":"\#(nonce)"}"#)
        #expect(reply.status == 404)
        #expect(try Self.status(lab, 1, one).state == "failed")
        _ = responder.finish()
        // A second commitment (a replay, or a second initiator).
        responder = try Responder(one, arguments: ["--yes"])
        let commit = #"{"commitment":"\#(String(repeating: "ab", count: 32))"}"#
        #expect(try Self.curl(lab, 2, "POST", base + "/commit", body: commit).status == 200)
        reply = try Self.curl(lab, 2, "POST", base + "/commit", body: commit)
        #expect(reply.status == 404)
        #expect(try Self.status(lab, 1, one).error?.contains("second commitment") == true)
        _ = responder.finish()
        // An exchange before the reveal, and a forged abort.
        responder = try Responder(one, arguments: ["--yes"])
        #expect(try Self.curl(lab, 2, "POST", base + "/commit", body: commit).status == 200)
        #expect(try Self.curl(lab, 2, "POST", base + "/abort", body: #"{"box":"AAAA"}"#).status == 404)
        #expect(try Self.curl(lab, 2, "POST", base + "/exchange", body: #"{"box":"AAAA"}"#).status == 404)
        #expect(try Self.status(lab, 1, one).state == "failed")
        _ = responder.finish()
        #expect(try one.peers().isEmpty)
    }

    @Test func aManInTheMiddleGetsTwoDifferentCodes() throws {
        let lab = try Lab(hosts: 3)
        defer { lab.tearDown() }
        let one = try Self.node(lab, 1, tls: false), two = try Self.node(lab, 2, tls: false)
        try one.start(host: "0.0.0.0", port: 19532)
        try two.start(host: "0.0.0.0", port: 19532)
        // The relay sits on host 3; host 2's person is led to it instead of host 1.
        let relay = Process()
        relay.executableURL = URL(fileURLWithPath: "/bin/bash")
        let script = URL(fileURLWithPath: Lab.script).deletingLastPathComponent().appendingPathComponent("pair_mitm.py").path
        relay.arguments = [Lab.script, "exec", lab.name, "3", "python3", script, lab.address(3), "19532",
                           "http://\(lab.address(1)):19532"]
        let relayLog = FileManager.default.temporaryDirectory.appendingPathComponent("mitm-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: relayLog.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: relayLog) }
        relay.standardOutput = FileHandle.nullDevice
        relay.standardError = try FileHandle(forWritingTo: relayLog)
        try relay.run()
        defer { kill(relay.processIdentifier, SIGKILL) }
        #expect(try eventually(10) {
            try Self.curl(lab, 2, "GET", "http://\(lab.address(3)):19532/api/v1/health").status == 200
        })

        let responder = try Responder(one, arguments: [])  // asks: the test answers over the API
        let initiated = try two.cli(["pair", lab.address(3), "--code", responder.code], stdin: "n\n")
        #expect(initiated.status == 1)
        #expect(initiated.stderr.contains("the codes differ"))
        let relayed = try Self.status(lab, 1, one)
        let shownToTwo = initiated.stdout.split(separator: "\n").first { $0.hasPrefix("Verification code:") }
            .map { $0.dropFirst("Verification code: ".count).filter(\.isNumber) }
        // The relay got host 1 as far as the SAS, with the code it brute-forced ...
        #expect(relayed.state == "sas")
        let sasOne = try #require(relayed.sas)
        // ... but the two people see different digits.
        #expect(shownToTwo != nil && shownToTwo != sasOne)
        responder.answer("n\n")  // host 1's person sees other digits too
        let (status, output) = responder.finish()
        #expect(status == 1 && output.contains("the codes differ"), "\(output)")
        let log = try String(contentsOf: relayLog, encoding: .utf8)
        #expect(log.contains("brute-forced the invite code: \(responder.code)"))
        #expect(try one.peers().isEmpty && two.peers().isEmpty)
    }

    @Test func onlyTheLocalPersonConfirmsAndACaptureHoldsNoKey() throws {
        let lab = try Lab(hosts: 2)
        defer { lab.tearDown() }
        // Plain HTTP on purpose: everything on the wire is readable, and still no key is in it.
        let one = try Self.node(lab, 1, tls: false), two = try Self.node(lab, 2, tls: false)
        try one.start(host: "0.0.0.0", port: 19532)
        try two.start(host: "0.0.0.0", port: 19532)
        let capture = FileManager.default.temporaryDirectory.appendingPathComponent("pair-\(UUID().uuidString).pcap").path
        defer { try? FileManager.default.removeItem(atPath: capture) }
        let tcpdump = Process()
        tcpdump.executableURL = URL(fileURLWithPath: "/bin/bash")
        tcpdump.arguments = [Lab.script, "exec", lab.name, "1", "tcpdump", "-i", "eth0", "-U", "-s", "0", "-w", capture,
                             "tcp port 19532"]
        tcpdump.standardError = FileHandle.nullDevice
        try tcpdump.run()
        #expect(eventually(5) { FileManager.default.fileExists(atPath: capture) })

        let responder = try Responder(one, arguments: [])
        let initiator = Process()
        initiator.executableURL = URL(fileURLWithPath: "/bin/bash")
        // As printed there: a responder without TLS is asked in plain HTTP.
        #expect(responder.target(lab.address(1)) == "http://" + lab.address(1))
        initiator.arguments = [Lab.script, "exec", lab.name, "2", try Binaries.path("loopsy"), "pair", responder.target(lab.address(1)),
                               "--code", responder.code, "--yes"]
        initiator.environment = ProcessInfo.processInfo.environment.merging(two.environment) { $1 }
        initiator.standardOutput = FileHandle.nullDevice
        try initiator.run()
        #expect(try eventually(10) { try Self.status(lab, 1, one).state == "sas" })
        // Host 2 cannot confirm for host 1: not without a key, not with its own.
        let base = "http://\(lab.address(1)):19532/api/v1/pair/confirm"
        #expect(try Self.curl(lab, 2, "POST", base, body: #"{"accept":true}"#).status == 401)
        #expect(try Self.curl(lab, 2, "POST", base, body: #"{"accept":true}"#, key: two.apiKey).status == 403)
        Thread.sleep(forTimeInterval: 1.5)
        let waiting = try Self.status(lab, 1, one)
        #expect(waiting.state == "sas" && !waiting.confirmedHere)
        #expect(try one.peers().isEmpty)
        // Host 1's person confirms on host 1.
        responder.answer("y\n")
        initiator.waitUntilExit()
        #expect(initiator.terminationStatus == 0)
        #expect(responder.finish().status == 0)
        Thread.sleep(forTimeInterval: 0.5)
        // SIGKILL: processes started from the test runner's threads inherit a mask that blocks
        // SIGINT/SIGTERM; -U has written every packet already.
        kill(tcpdump.processIdentifier, SIGKILL)
        tcpdump.waitUntilExit()

        let wire = try Data(contentsOf: URL(fileURLWithPath: capture))
        #expect(wire.range(of: Data("/api/v1/pair/exchange".utf8)) != nil, "the capture saw the pairing")
        // (Host 2's own key is on the wire once: the test sent it above, as the attacker.)
        let secrets = [one.apiKey] + (try Self.storedKeys(one)) + (try Self.storedKeys(two))
        #expect(secrets.count == 3)
        for secret in secrets {
            #expect(wire.range(of: Data(secret.utf8)) == nil, "a key crossed the network in clear")
        }
    }

    @Test func sessionsExpireAndPairingMessagesAreRateLimited() throws {
        let lab = try Lab(hosts: 2)
        defer { lab.tearDown() }
        let one = try Self.node(lab, 1, tls: false) {
            replacingLine(replacingLine($0, "  timeoutSeconds: 300", "  timeoutSeconds: 2"), "  pairing: 10 ", "  pairing: 3 ")
        }
        let two = try Self.node(lab, 2)
        try one.start(host: "0.0.0.0", port: 19532)
        try two.start(host: "0.0.0.0", port: 19532)
        let responder = try Responder(one)
        Thread.sleep(forTimeInterval: 2.5)
        let late = try two.cli("pair", responder.target(lab.address(1)), "--code", responder.code, "--yes")
        #expect(late.status == 1)
        let (status, output) = responder.finish()
        #expect(status == 1 && output.contains("expired"), "\(output)")
        // Three pairing messages a minute from one address, then 429 (the session does not matter).
        var statuses: [Int] = []
        for _ in 0..<3 {
            statuses.append(try Self.curl(lab, 2, "POST", "http://\(lab.address(1)):19532/api/v1/pair/commit",
                                          body: #"{"commitment":"00"}"#).status)
        }
        #expect(statuses.last == 429 || statuses.contains(429))
        _ = try Self.curl(lab, 2, "POST", "http://\(lab.address(1)):19532/api/v1/pair/commit", body: #"{"commitment":"00"}"#)
        #expect(try Self.curl(lab, 2, "POST", "http://\(lab.address(1)):19532/api/v1/pair/commit",
                              body: #"{"commitment":"00"}"#).status == 429)
    }
}

