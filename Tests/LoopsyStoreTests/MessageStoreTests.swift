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

    /// Each sender keeps its newest acked messages, as many as it may have unacked; older acked
    /// ones go, a receipt still owed for them too (a sender that refused its receipts would
    /// otherwise keep them all). Unacked ones stay.
    @Test func eachSenderKeepsItsNewestAckedMessages() throws {
        func ack(_ id: String, from sender: String, receiptSent: Bool = true) throws {
            let (message, _) = try store.receive(delivery(id), from: sender, now: 10_000)
            _ = try store.mark(seq: message.seq, state: "acked", note: nil, now: 11_000)
            if receiptSent { try store.receiptSent(seq: message.seq, state: "acked") }
        }
        try ack("a1", from: "alpha-node", receiptSent: false)
        for index in 2...6 { try ack("a\(index)", from: "alpha-node") }
        _ = try store.receive(delivery("a7"), from: "alpha-node", now: 10_000)
        for index in 1...2 { try ack("b\(index)", from: "bravo-node") }
        let gone = try store.forgetAcked(keepingPerSender: 3)
        // alpha's newest three acked are a4, a5 and a6: a1 (its receipt owed) to a3 go. bravo has two.
        #expect(gone.map(\.id).sorted() == ["a1", "a2", "a3"])
        #expect(gone.allSatisfy { $0.from == "alpha-node" })
        #expect(try store.inbox(unreadOnly: false, after: 0, limit: 100).messages.map(\.id) == ["a4", "a5", "a6", "a7", "b1", "b2"])
        #expect(try store.dueReceipts(now: .max).isEmpty, "the owed receipt went with its message")
        #expect(try store.forgetAcked(keepingPerSender: 3).isEmpty, "nothing more to forget")
        // Acking the unacked one makes four acked: the oldest goes.
        _ = try store.mark(seq: try #require(try store.inboxMessages(id: "a7", from: nil).first).seq, state: "acked",
                           note: nil, now: 12_000)
        #expect(try store.forgetAcked(keepingPerSender: 3).map(\.id) == ["a4"])
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
