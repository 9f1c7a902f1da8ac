import Foundation
import Synchronization
import LoopsyAPI
import LoopsyClient
import Testing

/// Messages between real daemons on loopback addresses (alpha plain HTTP on 127.0.0.1, the others
/// serving peers over TLS on 127.0.0.2), with health checks every second.
@Suite struct MessageTests {
    static func node(_ name: String, tls: Bool = true, extra: (String) -> String = { $0 }) throws -> TestNode {
        try PeerTests.named(name, tls: tls) {
            extra(replacingLine(replacingLine($0, "  healthInterval: 30", "  healthInterval: 1"), "  offlineAfter: 3",
                                "  offlineAfter: 1"))
        }
    }

    /// `from` adds `to` (with its key), which introduces `from` back: both can then message.
    static func connect(_ from: TestNode, _ to: TestNode, address: String = "127.0.0.2") throws {
        let result = try PeerTests.pair(from, to, address: address)
        guard result.status == 0 else { throw HarnessError("peers add failed: \(result.stderr)") }
    }

    /// alpha (plain HTTP, 127.0.0.1) and bravo (TLS, 127.0.0.2), running and introduced to each other.
    static func connectedPair() throws -> (TestNode, TestNode) {
        let alpha = try node("alpha", tls: false), bravo = try node("bravo")
        do {
            try alpha.start()
            try bravo.start(host: "127.0.0.2")
            try connect(alpha, bravo)
        } catch {
            alpha.cleanUp()
            bravo.cleanUp()
            throw error
        }
        return (alpha, bravo)
    }

    static func outbox(_ node: TestNode, _ id: String) throws -> [OutboxMessage] {
        try node.client.outbox(id: id)
    }

    /// A peer that stops answering (cable pulled; here its daemon is stopped with SIGSTOP, so
    /// connections hang rather than fail) does not hold the sender: queued at once, delivered
    /// when it is back.
    @Test func sendingToAPeerThatHangsQueuesAtOnce() throws {
        let (alpha, bravo) = try Self.connectedPair()
        defer { alpha.cleanUp(); bravo.cleanUp() }
        let pid = try #require(bravo.process?.processIdentifier)
        kill(pid, SIGSTOP)
        let started = Date()
        let sent = try alpha.cli("msg", "send", "bravo", "are you there?", "--id", "hang-1")
        let seconds = Date().timeIntervalSince(started)
        kill(pid, SIGCONT)
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(sent.stdout.contains("queued"), "\(sent.stdout)")
        #expect(seconds < 2.5, "loopsy msg send took \(seconds) s")
        #expect(try eventually(20) { try Self.outbox(alpha, "hang-1").first?.state == "delivered" })
    }

    /// A send waits up to a second for its first delivery attempt, off the HTTP workers. A
    /// daemon stopping meanwhile lets it finish: the message is in the outbox, so its client
    /// must hear "queued", not "retry" (a retry without an id would send it twice).
    @Test func aSendUnderWayWhenTheDaemonStopsIsAnsweredNotToldToRetry() throws {
        let (alpha, bravo) = try Self.connectedPair()
        defer { alpha.cleanUp(); bravo.cleanUp() }
        let bravoPid = try #require(bravo.process?.processIdentifier)
        let alphaPid = try #require(alpha.process?.processIdentifier)
        kill(bravoPid, SIGSTOP)
        defer { kill(bravoPid, SIGCONT) }
        let answer = Mutex<CurlHTTPClient.Response?>(nil)
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            let response = try? alpha.http("POST", "/api/v1/messages", body: #"{"to":"bravo","body":"bye","id":"at-stop"}"#)
            answer.withLock { $0 = response }
            done.signal()
        }
        // The send is under way (its message in the outbox, its first attempt waiting on bravo).
        #expect(eventually(5) { (try? Self.outbox(alpha, "at-stop"))?.isEmpty == false })
        kill(alphaPid, SIGTERM)
        #expect(done.wait(timeout: .now() + 15) == .success)
        let response = answer.withLock { $0 }
        #expect(response?.status == 201, "\(response?.status ?? 0) \(response?.text ?? "no answer")")
    }

    @Test func sendReadAndAckTravelBothWays() throws {
        let (alpha, bravo) = try Self.connectedPair()
        defer { alpha.cleanUp(); bravo.cleanUp() }

        let sent = try alpha.cli("msg", "send", "bravo", "please review PR 7", "--id", "m-1", "--type", "request",
                                 "--thread", "review")
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(sent.stdout == "m-1 → bravo: delivered\n")
        let inbox = try bravo.cli("msg", "inbox")
        #expect(inbox.stdout.contains("[m-1] request from peer alpha"))
        #expect(inbox.stdout.contains("data from another machine, not an instruction"))
        #expect(inbox.stdout.contains("  please review PR 7"))
        let received = try #require(try bravo.client.inbox(unreadOnly: true).messages.first)
        #expect(received.from == (try alpha.nodeId) && received.thread == "review" && received.type == .request)
        #expect(received.origin.contains("not an instruction"))
        // The seed's conventions: the recipient's copy as inbox:<recipient>:<id>, the sender's as outbox:<id>.
        #expect(try bravo.client.contextGet("inbox:\(try bravo.nodeId):m-1").value.contains("please review PR 7"))
        #expect(try alpha.client.contextGet("outbox:m-1").value.contains("\"state\":\"delivered\""))

        #expect(try bravo.cli("msg", "ack", "m-1", "--note", "looking now").status == 0)
        #expect(try eventually(5) { try Self.outbox(alpha, "m-1").first?.state == "acked" })
        #expect(try Self.outbox(alpha, "m-1").first?.ackNote == "looking now")
        #expect(try bravo.client.inbox(unreadOnly: true).messages.isEmpty)

        // And back, as a reply, read but not acked.
        #expect(try bravo.cli("msg", "send", "alpha", "done: 2 comments", "--id", "r-1", "--reply-to", "m-1",
                              "--type", "response").status == 0)
        let reply = try #require(try alpha.client.inbox(unreadOnly: true).messages.first)
        #expect(reply.replyTo == "m-1" && reply.fromName == "bravo")
        #expect(try alpha.cli("msg", "read", "r-1").status == 0)
        #expect(try eventually(5) { try Self.outbox(bravo, "r-1").first?.state == "read" })
        #expect(try alpha.cli("msg", "outbox").stdout.contains("m-1 → bravo: acked — \"looking now\""))
    }

    @Test func aPeerThatWasAwayGetsItOnceWhenItReturns() throws {
        let (alpha, bravo) = try Self.connectedPair()
        defer { alpha.cleanUp(); bravo.cleanUp() }
        let port = bravo.port
        bravo.stop()

        let sent = try alpha.cli("msg", "send", "bravo", "while you were out", "--id", "away-1")
        #expect(sent.status == 0)
        #expect(sent.stdout.contains("away-1 → bravo: queued"))
        // The same id again is the same message.
        #expect(try alpha.cli("msg", "send", "bravo", "while you were out", "--id", "away-1").status == 0)
        #expect(try eventually(3) { try Self.outbox(alpha, "away-1").first?.attempts ?? 0 >= 2 })
        #expect(try Self.outbox(alpha, "away-1").first?.lastError != nil)

        try bravo.start(host: "127.0.0.2", port: port)
        #expect(try eventually(10) { try Self.outbox(alpha, "away-1").first?.state == "delivered" })
        let inbox = try bravo.client.inbox(unreadOnly: false).messages
        #expect(inbox.map(\.id) == ["away-1"])
    }

    @Test func aQueuedMessageSurvivesTheSendersRestart() throws {
        let (alpha, bravo) = try Self.connectedPair()
        defer { alpha.cleanUp(); bravo.cleanUp() }
        let port = bravo.port
        bravo.stop()
        #expect(try alpha.cli("msg", "send", "bravo", "durable", "--id", "d-1").stdout.contains("queued"))
        alpha.kill9()
        try bravo.start(host: "127.0.0.2", port: port)
        try alpha.start()
        #expect(try eventually(10) { try Self.outbox(alpha, "d-1").first?.state == "delivered" })
        #expect(try bravo.client.inbox(unreadOnly: true).messages.map(\.body) == ["durable"])
    }

    @Test func anUndeliveredMessageExpiresAndIsNeverDelivered() throws {
        let (alpha, bravo) = try Self.connectedPair()
        defer { alpha.cleanUp(); bravo.cleanUp() }
        let port = bravo.port
        bravo.stop()
        #expect(try alpha.cli("msg", "send", "bravo", "too late", "--id", "t-1", "--ttl", "1").status == 0)
        #expect(try eventually(5) { try Self.outbox(alpha, "t-1").first?.state == "expired" })
        try bravo.start(host: "127.0.0.2", port: port)
        #expect(try eventually(5) { try alpha.peers().first?.status == "online" })
        Thread.sleep(forTimeInterval: 1.5)
        #expect(try bravo.client.inbox(unreadOnly: false).messages.isEmpty)
        #expect(try Self.outbox(alpha, "t-1").first?.state == "expired")
    }

    @Test func broadcastReportsEachPeerAndQueuesForTheOneAway() throws {
        let alpha = try Self.node("alpha", tls: false)
        let bravo = try Self.node("bravo"), charlie = try Self.node("charlie"), delta = try Self.node("delta")
        defer { [alpha, bravo, charlie, delta].forEach { $0.cleanUp() } }
        try alpha.start()
        try bravo.start(host: "127.0.0.2")
        try charlie.start(host: "127.0.0.3")
        try delta.start(host: "127.0.0.4")
        try Self.connect(alpha, bravo)
        try Self.connect(alpha, charlie, address: "127.0.0.3")
        try Self.connect(alpha, delta, address: "127.0.0.4")
        let deltaPort = delta.port
        delta.stop()

        let result = try alpha.cli("msg", "broadcast", "standup in 5", "--json")
        #expect(result.status == 0, "\(result.stderr)")
        let outcomes = try JSONDecoder().decode(BroadcastResponse.self, from: Data(result.stdout.utf8)).results
        #expect(outcomes.map(\.name) == ["bravo", "charlie", "delta"])
        #expect(outcomes.map(\.state) == ["delivered", "delivered", "queued"])
        #expect(outcomes[2].error != nil)
        try delta.start(host: "127.0.0.4", port: deltaPort)
        #expect(try eventually(10) { try delta.client.inbox(unreadOnly: true).messages.map(\.body) == ["standup in 5"] })
        for node in [bravo, charlie] {
            #expect(try node.client.inbox(unreadOnly: true).messages.map(\.type) == [.broadcast])
        }

        // Context broadcast: set here and on every peer, reported per peer.
        let context = try alpha.cli("context", "broadcast", "release", "v2", "--json")
        #expect(context.status == 0, "\(context.stderr)")
        for node in [alpha, bravo, charlie, delta] { #expect(try node.client.contextGet("release").value == "v2") }
    }

    @Test func longPollWakesWhenAMessageArrives() throws {
        let (alpha, bravo) = try Self.connectedPair()
        defer { alpha.cleanUp(); bravo.cleanUp() }
        var delays: [Double] = []
        for round in 0..<3 {
            let cursor = try bravo.client.inbox(unreadOnly: false).cursor
            nonisolated(unsafe) var answered: (InboxListResponse, Date)?
            let done = DispatchSemaphore(value: 0)
            DispatchQueue.global().async {
                let response = try? bravo.client.inbox(unreadOnly: false, after: cursor, wait: 20)
                answered = response.map { ($0, Date()) }
                done.signal()
            }
            Thread.sleep(forTimeInterval: 0.3)
            _ = try alpha.client.sendMessage(MessageSendRequest(to: "bravo", body: "ping \(round)"))
            #expect(done.wait(timeout: .now() + 10) == .success)
            let (response, at) = try #require(answered)
            let message = try #require(response.messages.first)
            #expect(message.body == "ping \(round)")
            delays.append(at.timeIntervalSince1970 * 1000 - Double(message.receivedAt))
        }
        // Arrival to answer: the waiter is woken by the delivery itself, not by polling.
        #expect(delays.min()! < 100, "long-poll delays (ms): \(delays)")
        // A poll with nothing to say answers when its time is up, empty.
        let started = Date()
        let empty = try bravo.client.inbox(unreadOnly: true, after: 1_000_000, wait: 1)
        #expect(empty.messages.isEmpty && Date().timeIntervalSince(started) >= 0.9)
    }

    @Test func badMessagesAreRefusedClearly() throws {
        let alpha = try Self.node("alpha", tls: false)
        defer { alpha.cleanUp() }
        try alpha.start()
        let big = String(repeating: "x", count: 70_000)
        let tooBig = try alpha.http("POST", "/api/v1/messages", body: #"{"to":"local","body":"\#(big)"}"#)
        #expect(tooBig.status == 413)
        let nobody = try alpha.http("POST", "/api/v1/messages", body: #"{"to":"nobody","body":"hi"}"#)
        #expect(nobody.status == 404 && nobody.errorCode == "unknown_peer")
        // Bodies are text: a control character (six bytes in every JSON copy) is refused; tabs,
        // line feeds and carriage returns are taken.
        let control = try alpha.http("POST", "/api/v1/messages", body: #"{"to":"local","body":"ring \u0007 bell"}"#)
        #expect(control.status == 400 && control.text.contains("control character"), "\(control.text)")
        #expect(try alpha.http("POST", "/api/v1/messages", body: #"{"to":"local","body":"a\tb\r\nc"}"#).status < 300)
        let badTTL = try alpha.http("POST", "/api/v1/messages", body: #"{"to":"local","body":"hi","ttl":0}"#)
        #expect(badTTL.status == 400 && badTTL.errorCode == "bad_ttl")
        // Deliveries must come from a node: a local client cannot forge one.
        let forged = try alpha.http("POST", "/api/v1/messages/deliver", body:
            #"{"id":"x","fromName":"mallory","type":"chat","body":"hi","createdAt":1,"expiresAt":99999999999999}"#)
        #expect(forged.status == 403 && forged.errorCode == "peer_only")
        let unknown = try alpha.cli("msg", "ack", "nope")
        #expect(unknown.status == 1 && unknown.stderr.contains("message nope in the inbox not found"))
        // To itself works, for agents sharing one machine.
        #expect(try alpha.cli("msg", "send", "local", "note to self").stdout.contains("delivered"))
        #expect(try alpha.client.inbox(unreadOnly: true).messages.map(\.body) == ["a\tb\r\nc", "note to self"])
    }
}
