import Foundation
import LoopsyAPI
import Testing
@testable import LoopsyStore

/// What the inbox keeps of other nodes' messages, and for how long.
@Suite struct MessageStoreTests {
    let scratch: ScratchDatabase
    let store: MessageStore

    init() throws {
        scratch = try ScratchDatabase("loopsy-msg")
        store = MessageStore(pool: scratch.pool)
    }

    func delivery(_ id: String, lifetime: Int64 = 60_000) -> MessageDelivery {
        MessageDelivery(id: id, fromName: "alpha", type: .chat, body: "hi", replyTo: nil, thread: nil,
                        createdAt: 1_000, expiresAt: 1_000 + lifetime)
    }

    /// A page holds at most maxPageBytes of what senders wrote past its first message (one peer
    /// may store a thousand bodies of 64 KiB, each six times larger once escaped in JSON), says
    /// when it was cut, and a limit of 0 gives the newest cursor alone.
    @Test func pagesAreBoundedByBytesAndSayWhenMoreFollow() throws {
        let large = String(repeating: "x", count: MessageStore.maxPageBytes / 2 + 1)
        for id in ["a", "b", "c"] {
            var message = delivery(id)
            message.body = large
            _ = try store.receive(message, from: "alpha-node", now: 10_000, maxPerSender: 10)
        }
        _ = try store.receive(delivery("d"), from: "alpha-node", now: 10_000, maxPerSender: 10)
        var cursor: Int64 = 0
        var pages: [[String]] = []
        while pages.count < 10 {
            let page = try store.inbox(unreadOnly: false, after: cursor, limit: 100)
            pages.append(page.messages.map(\.id))
            cursor = page.cursor
            if !page.more { break }
        }
        #expect(pages == [["a"], ["b"], ["c", "d"]])
        let newest = try store.inbox(unreadOnly: false, after: 0, limit: 0)
        #expect(newest.messages.isEmpty && !newest.more && newest.cursor == cursor)
        // The row limit still cuts too, and says so.
        let first = try store.inbox(unreadOnly: false, after: 0, limit: 1)
        #expect(first.messages.map(\.id) == ["a"] && first.more && first.cursor < cursor)
    }

    /// Expired messages are found by the expiry indexes (0017), no row read to find them, and
    /// deleted a chunk per transaction: past `pruneChunk` of them, every one goes and only they.
    @Test func expiredMessagesAreFoundByIndexAndDroppedInChunks() throws {
        let expired = DatabasePool.pruneChunk + 5
        for index in 0..<expired {
            _ = try store.receive(delivery("old\(index)", lifetime: 1_000), from: "alpha-node", now: 10_000,
                                  maxPerSender: 10_000)
        }
        for index in 0..<3 {
            _ = try store.receive(delivery("live\(index)", lifetime: 30 * 86_400_000), from: "alpha-node", now: 10_000,
                                  maxPerSender: 10_000)
        }
        #expect(try store.prune(now: 11_000 + 7 * 86_400_000 + 1, graceMillis: 7 * 86_400_000) == expired)
        #expect(try store.inbox(unreadOnly: false, after: 0, limit: 100).messages.map(\.id) == ["live0", "live1", "live2"])
        #expect(try store.prune(now: 11_000 + 7 * 86_400_000 + 1, graceMillis: 7 * 86_400_000) == 0)
        let plans = try scratch.pool.read { db in
            try [
                "SELECT seq FROM inbox WHERE expires_at < 1 ORDER BY expires_at LIMIT 10",
                "SELECT id, to_node FROM outbox WHERE expires_at < 1 AND state != 'queued' ORDER BY expires_at LIMIT 10",
            ].map { query in try db.prepare("EXPLAIN QUERY PLAN " + query).rows { $0.text(3) }.joined(separator: "; ") }
        }
        #expect(plans[0].contains("COVERING INDEX inbox_expires"), "\(plans[0])")
        #expect(plans[1].contains("COVERING INDEX outbox_expires"), "\(plans[1])")
    }

    /// A message that expired is still held (a week), so it still counts against the sender's limit.
    @Test func expiredMessagesCountUntilTheyAreDropped() throws {
        _ = try store.receive(delivery("m1"), from: "alpha-node", now: 10_000, maxPerSender: 2)
        _ = try store.receive(delivery("m2", lifetime: 1_000), from: "alpha-node", now: 10_000, maxPerSender: 2)
        #expect(throws: MessageStoreError.self) {
            try store.receive(delivery("m3"), from: "alpha-node", now: 20_000, maxPerSender: 2)
        }
        // Another sender has its own limit.
        #expect(try store.receive(delivery("m3"), from: "bravo-node", now: 20_000, maxPerSender: 2).duplicate == false)
        // Once the expired one is dropped, there is room again.
        #expect(try store.prune(now: 11_000 + 7 * 86_400_000 + 1, graceMillis: 7 * 86_400_000) == 1)
        #expect(try store.receive(delivery("m3"), from: "alpha-node", now: 20_000, maxPerSender: 2).duplicate == false)
    }

    /// Each sender keeps the messages it acked last, as many as it may have unacked; older acked
    /// ones go. One whose receipt is still owed stays until twice as many acked ones are newer
    /// (a sender that refused its receipts would otherwise keep them all). Unacked ones stay.
    @Test func eachSenderKeepsTheMessagesAckedLast() throws {
        var clock: Int64 = 11_000
        func receive(_ id: String, from sender: String = "alpha-node") throws -> Int64 {
            try store.receive(delivery(id), from: sender, now: 10_000).message.seq
        }
        func ack(_ seq: Int64, receiptSent: Bool = true) throws {
            clock += 1
            _ = try store.mark(seq: seq, state: "acked", note: nil, now: clock)
            if receiptSent { try store.receiptSent(seq: seq, state: "acked") }
        }
        func held() throws -> [String] { try store.inbox(unreadOnly: false, after: 0, limit: 100).messages.map(\.id) }
        let early = try receive("a0")  // left unread while later ones are acked
        for index in 1...5 { try ack(try receive("a\(index)"), receiptSent: index != 1) }
        for index in 1...2 { try ack(try receive("b\(index)", from: "bravo-node")) }
        _ = try receive("unacked")
        try ack(early)
        // alpha acked a0, a5 and a4 last: a3 and a2 go. a1's receipt is owed and only 5 acked
        // ones are newer (at most 2 × 3): it stays. bravo has two.
        var gone: [(seq: Int64, id: String, from: String)] = []
        #expect(try store.forgetAcked(keepingPerSender: 3) { gone += $0 } == 2)
        #expect(gone.map(\.id).sorted() == ["a2", "a3"] && gone.allSatisfy { $0.from == "alpha-node" })
        #expect(try held() == ["a0", "a1", "a4", "a5", "b1", "b2", "unacked"])
        #expect(try store.forgetAcked(keepingPerSender: 3) == 0, "nothing more to forget")
        #expect(try store.dueReceipts(now: .max).map(\.id) == ["a1"])
        // Four more acked: a0, a5, a4 and a6 go, and a1, now the eighth newest, with its owed
        // receipt: five rows in chunks of 2, each chunk told as it is committed.
        for index in 6...9 { try ack(try receive("a\(index)")) }
        var chunks: [[String]] = []
        #expect(try store.forgetAcked(keepingPerSender: 3, chunk: 2) { chunks.append($0.map(\.id)) } == 5)
        #expect(chunks.map(\.count) == [2, 2, 1] && chunks.joined().sorted() == ["a0", "a1", "a4", "a5", "a6"], "\(chunks)")
        #expect(try held() == ["b1", "b2", "unacked", "a7", "a8", "a9"])
        #expect(try store.dueReceipts(now: .max).isEmpty)
    }

    /// A receipt the sender never takes is not owed forever: it goes with its message.
    @Test func aReceiptStillOwedGoesWithItsExpiredMessage() throws {
        let (message, _) = try store.receive(delivery("m1"), from: "alpha-node", now: 10_000)
        _ = try store.mark(seq: message.seq, state: "acked", note: nil, now: 11_000)
        #expect(try store.dueReceipts(now: 11_000).map(\.id) == ["m1"])
        #expect(try store.prune(now: 70_000 + 7 * 86_400_000 - 1, graceMillis: 7 * 86_400_000) == 0, "kept a week")
        #expect(try store.prune(now: 70_000 + 7 * 86_400_000 + 1, graceMillis: 7 * 86_400_000) == 1)
        #expect(try store.dueReceipts(now: .max).isEmpty)
    }
}
