import Foundation
import LoopsyAPI
import Testing
@testable import LoopsyStore

/// A task's stored events, read back in pages.
@Suite struct TaskStoreTests {
    let scratch: ScratchDatabase
    let store: TaskStore

    init() throws {
        scratch = try ScratchDatabase("loopsy-task")
        store = TaskStore(pool: scratch.pool)
    }

    /// Events are up to a line of output each: a page holds as many as fit its byte budget (not
    /// a thousand megabyte lines read at once), at least one, and says whether more remain.
    @Test func aPageStopsAtItsByteBudgetAndAlwaysMovesOn() throws {
        try store.create(id: "t1", caller: "owner", prompt: "p", cwd: "/", options: "{}", now: 1)
        let line = String(repeating: "y", count: 100_000)
        for _ in 0..<10 { _ = try store.append("t1", type: "text", data: line, now: 2) }
        _ = try store.append("t1", type: "text", data: String(repeating: "z", count: 1_000_000), now: 3)
        _ = try store.append("t1", type: "exit", data: "{}", now: 4)

        let first = try store.eventsPage("t1", after: 0, limit: 1000, maxBytes: 350_000)
        #expect(first.events.map(\.seq) == [1, 2, 3])
        #expect(first.more)
        // Larger than the budget on its own: it comes alone, so a reader is never stuck.
        let big = try store.eventsPage("t1", after: 10, limit: 1000, maxBytes: 350_000)
        #expect(big.events.map(\.seq) == [11])
        #expect(big.events.first?.data.utf8.count == 1_000_000)
        #expect(big.more)
        let last = try store.eventsPage("t1", after: 11, limit: 1000, maxBytes: 350_000)
        #expect(last.events.map(\.type) == ["exit"])
        #expect(!last.more)
        // The count limit still holds; the store is left readable (the statement was reset).
        let counted = try store.eventsPage("t1", after: 0, limit: 4)
        #expect(counted.events.map(\.seq) == [1, 2, 3, 4] && counted.more)
        #expect(try store.eventsPage("t1", after: 0, limit: 100).events.count == 12)
    }
}
