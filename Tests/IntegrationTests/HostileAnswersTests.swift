import Foundation
import LoopsyAPI
import LoopsyClient
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What the CLI does with answers no loopsyd sends but a peer can (the daemon relays a peer's
/// answer unchanged): numbers it would compute with that are out of every sane range. The CLI
/// talks to a server that answers each path with a canned body; every command must end with a
/// readable error naming the field, never stop on a trap (exit 132, SIGILL).
@Suite struct HostileAnswersTests {
    @Test func outOfRangeNumbersInAnswersAreRefusedWhereDecoded() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        let nodeId = try node.nodeId
        let health = HealthResponse(status: "ok", nodeId: nodeId, version: LoopsyVersion.current, uptime: 1)
        let encoder = JSONEncoder()
        func json(_ value: some Encodable) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }
        let task = AITaskInfo(id: "t1", state: .completed, prompt: "p", cwd: "/", caller: "owner", createdAt: 1,
                              startedAt: 1, finishedAt: 2, exitCode: 0, sessionId: nil, costUsd: 1e300, error: nil,
                              lastEvent: 0, pendingApprovals: [])
        let server = try CannedHTTPServer(answers: [
            "/api/v1/health": try json(health),
            "/api/v1/status": try json(StatusResponse(nodeId: nodeId, hostname: "h", version: LoopsyVersion.current, port: 1,
                                                      uptime: 1e300, pid: 1, dataDir: "/", peers: 0, peersOnline: 0,
                                                      jobs: 0, context: 0)),
            "/api/v1/locks": try json(LockListResponse(locks: [
                LockInfo(name: "l", holder: "h", token: 1, acquiredAt: 0, expiresAt: Int64.min)])),
            "/api/v1/ai-tasks": try json(AITaskListResponse(tasks: [task])),
            "/api/v1/audit": try json(AuditListResponse(entries: [
                AuditEntry(id: 1, time: 0, requestId: "r", caller: "c", method: "GET", path: "/", status: 200,
                           durationMs: -1, remote: "127.0.0.1")])),
            "/api/v1/context": try json(ContextListResponse(entries: [
                ContextEntry(key: "k", value: "v", fromNodeId: nodeId, createdAt: 0, updatedAt: 0, ttl: 1,
                             expiresAt: Int64.min, revision: 1)])),
        ])
        defer { server.close() }
        try Data("\(server.port)\n".utf8).write(to: URL(fileURLWithPath: node.dataDir + "/daemon.port"))

        let cases: [(arguments: [String], field: String)] = [
            (["status"], "field 'uptime'"),
            (["lock", "list"], "field 'locks[0].expiresAt'"),
            (["task", "list"], "field 'tasks[0].costUsd'"),
            (["logs"], "field 'entries[0].durationMs'"),
            (["context", "list"], "field 'entries[0].expiresAt'"),
        ]
        for (arguments, field) in cases {
            let result = try node.cli(arguments)
            #expect(result.status == 1, "loopsy \(arguments.joined(separator: " ")): \(result.status) \(result.stderr)")
            #expect(result.stderr.contains(field), "loopsy \(arguments.joined(separator: " ")): \(result.stderr)")
        }
        #expect(server.requests.count >= cases.count)
    }

    /// `loopsy pull -r` makes local paths only of plain names: judged on bytes, so a name whose
    /// "/" a combining mark follows (one Character, so `contains("/")` missed it) is skipped.
    @Test func pullTreeSkipsNamesThatAreNotPlainNames() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        let nodeId = try node.nodeId
        let entries = ["../\u{301}evil", "a/\u{301}b", "..", "", "x\0y"].map {
            FileEntry(name: $0, path: "/srv/tree/" + $0, type: "file", size: 1, modified: 0, mode: "0644")
        }
        let listing = String(decoding: try JSONEncoder().encode(TransferListResponse(files: entries)), as: UTF8.self)
        let health = HealthResponse(status: "ok", nodeId: nodeId, version: LoopsyVersion.current, uptime: 1)
        let server = try CannedHTTPServer(answers: [
            "/api/v1/health": String(decoding: try JSONEncoder().encode(health), as: UTF8.self),
            "/api/v1/transfer/list": listing,
        ])
        defer { server.close() }
        try Data("\(server.port)\n".utf8).write(to: URL(fileURLWithPath: node.dataDir + "/daemon.port"))
        let parent = node.dataDir + "/pulled"
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        let result = try node.cli("pull", "-r", "local", "/srv/tree", parent + "/tree")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("pulled 0 files"), "\(result.stdout)")
        for name in entries.map(\.name) {
            #expect(result.stderr.contains("(the peer listed it as '\(name)', not a plain file name)"), "\(name): \(result.stderr)")
        }
        // Nothing was asked for but listings: no pull of any of those names.
        #expect(server.requests.allSatisfy { !$0.contains("/transfer/pull") }, "\(server.requests)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent) == ["tree"])
    }

    /// An error's words may be a peer's (relayed) or a pairing host's: the CLI shows them with
    /// control and format characters escaped, so they cannot retitle the terminal, erase the
    /// line above or forge a "paired with …" line.
    @Test func errorMessagesFromElsewhereCannotRewriteTheScreen() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        let hostile = #"{"error":{"code":"conflict","message":"\u001b]0;OWNED\u0007\u001b[2K\rpaired with laptop \u202eexe.png\nsent x → y (1 B, sha256 verified)"}}"#
        let server = try CannedHTTPServer(answers: [:], failures: ["/api/v1/status": hostile])
        defer { server.close() }
        try Data("\(server.port)\n".utf8).write(to: URL(fileURLWithPath: node.dataDir + "/daemon.port"))
        let result = try node.cli("status")
        #expect(result.status != 0)
        #expect(!result.stderr.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x0D
            || $0.value == 0x202E }, "\(result.stderr.debugDescription)")
        #expect(result.stderr.contains(#"\u{1b}]0;OWNED\u{7}\u{1b}[2K\u{d}paired with laptop \u{202e}exe.png\nsent x"#),
                "\(result.stderr)")
        #expect(!result.stderr.contains("\nsent x"), "\(result.stderr)")
    }

    /// The daemon's own calls to a peer (deliveries, receipts, handshakes) keep at most
    /// `maxAnswerBytes` of its answer: a paired peer answering every delivery with 500 MiB held
    /// loopsyd at a gigabyte on each retry. Without the limit a keyed client takes large answers.
    @Test func anAnswerPastTheClientsLimitFailsTheCallAndIsNotKept() throws {
        let large = String(repeating: " ", count: (1 << 20) + 1) + "{}"
        let server = try CannedHTTPServer(answers: ["/api/v1/status": large])
        defer { server.close() }
        let limited = LoopsyClient(baseURL: "http://127.0.0.1:\(server.port)", apiKey: String(repeating: "k", count: 64),
                                   maxAnswerBytes: 1 << 20)
        #expect {
            _ = try limited.status()
        } throws: { error in
            "\(error)".contains("longer than 1048576 bytes")
        }
        let unlimited = LoopsyClient(baseURL: "http://127.0.0.1:\(server.port)", apiKey: String(repeating: "k", count: 64))
        #expect {
            _ = try unlimited.status()
        } throws: { error in
            !"\(error)".contains("longer than")
        }
    }

    /// Options that are numbers are checked where they are read: NaN passed `timeout <= 0` and
    /// `Int(nan * 1000)` stopped the program.
    @Test func execTimeoutMustBeAFiniteNumberInRange() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        for timeout in ["nan", "inf", "1e300", "0", "-1", "2592001"] {
            let result = try node.cli("exec", "--timeout=\(timeout)", "local", "true")
            #expect(result.status == 64, "--timeout \(timeout): \(result.status) \(result.stderr)")
            #expect(result.stderr.contains("--timeout must be a number of seconds more than 0 and at most 2592000"),
                    "--timeout \(timeout): \(result.stderr)")
        }
    }
}

/// A TCP server on an ephemeral loopback port that answers each request with the body that
/// `answers` holds for its path (query left out), as JSON, and 404 for any other path.
final class CannedHTTPServer: @unchecked Sendable {
    private let listener: Int32
    private let lock = NSLock()
    private var seen: [String] = []
    let port: Int

    /// The request lines it was sent.
    var requests: [String] { lock.withLock { seen } }

    /// `failures`: paths answered 409 with that body.
    init(answers: [String: String], failures: [String: String] = [:]) throws {
        (listener, port) = try listenOnLoopback()
        Thread { [self] in
            while true {
                let connection = accept(listener, nil, nil)
                if connection < 0 { break }
                answer(connection, answers, failures)
            }
        }.start()
    }

    private func answer(_ connection: Int32, _ answers: [String: String], _ failures: [String: String]) {
        defer { Glibc.close(connection) }
        var received = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        func headEnd() -> Int? {
            guard received.count >= 4 else { return nil }
            return (0...(received.count - 4)).first { received[$0..<($0 + 4)].elementsEqual("\r\n\r\n".utf8) }.map { $0 + 4 }
        }
        while headEnd() == nil && received.count < 65536 {
            let count = recv(connection, &buffer, buffer.count, 0)
            guard count > 0 else { return }
            received += buffer[0..<count]
        }
        guard let bodyStart = headEnd() else { return }
        let head = Array(received[..<bodyStart])
        // The body is read too: closing with unread bytes would reset the connection.
        let lines = String(decoding: head, as: UTF8.self).lowercased().split(separator: "\r\n")
        let length = lines.first { $0.hasPrefix("content-length:") }
            .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
        while received.count < bodyStart + length {
            let count = recv(connection, &buffer, buffer.count, 0)
            guard count > 0 else { return }
            received += buffer[0..<count]
        }
        let line = String(decoding: head.prefix { $0 != UInt8(ascii: "\r") }, as: UTF8.self)
        lock.withLock { seen.append(line) }
        let target = line.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
        let path = String(target.prefix { $0 != "?" })
        let (status, body) = answers[path].map { ("200 OK", $0) } ?? failures[path].map { ("409 Conflict", $0) }
            ?? ("404 Not Found", #"{"error":{"code":"not_found","message":"no canned answer"}}"#)
        let response = Array(("HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
            + "Connection: close\r\n\r\n" + body).utf8)
        _ = send(connection, response, response.count, Int32(MSG_NOSIGNAL))
    }

    func close() {
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
    }
}
