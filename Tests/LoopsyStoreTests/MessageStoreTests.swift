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
