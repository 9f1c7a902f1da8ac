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

    /// A listing holds the caller's own tasks (not the newest of everyone's, filtered after),
    /// newest first, and past the first no more prompt bytes than its budget.
    @Test func aListingIsTheCallersAndStopsAtItsByteBudget() throws {
        let prompt = String(repeating: "p", count: 100_000)
        for index in 0..<10 {
            try store.create(id: "t\(index)", caller: index < 3 ? "peer" : "owner", prompt: prompt, cwd: "/", options: "{}",
                             now: Int64(index))
        }
        #expect(try store.list(limit: 100).tasks.map(\.id) == (0..<10).reversed().map { "t\($0)" })
        #expect(try store.list(limit: 2, caller: "peer").tasks.map(\.id) == ["t2", "t1"])
        #expect(try store.list(limit: 100, caller: "peer").tasks.map(\.id) == ["t2", "t1", "t0"])
        #expect(try store.list(limit: 100, caller: "nobody").tasks.isEmpty)
        #expect(try store.list(limit: 100, maxBytes: 350_000).tasks.map(\.id) == ["t9", "t8", "t7"])
        #expect(try store.list(limit: 100, maxBytes: 1).tasks.map(\.id) == ["t9"])
        // Whether older tasks were left out, by the limit or by the budget.
        #expect(try store.list(limit: 2, caller: "peer").more)
        #expect(try !store.list(limit: 3, caller: "peer").more)
        #expect(try !store.list(limit: 100).more)
        #expect(try store.list(limit: 100, maxBytes: 350_000).more)
    }

    /// A task's events (up to 64 MiB) go a chunk per transaction, when the task is deleted or
    /// pruned, and only finished tasks past their retention (or past the newest `keep`) go.
    @Test func deletingAndPruningTakeEveryEventInChunks() throws {
        func events(_ id: String) throws -> Int {
            try scratch.pool.read { db in
                try db.cached("SELECT count(*) FROM ai_task_events WHERE task_id = ?").rows([.text(id)]) { $0.int(0) }.first ?? -1
            }
        }
        for (id, created) in [("old", 1), ("recent", 2), ("running", 3)] {
            try store.create(id: id, caller: "owner", prompt: "p", cwd: "/", options: "{}", now: Int64(created))
        }
        try store.update("old", state: .completed, finishedAt: 10)
        try store.update("recent", state: .failed, finishedAt: 5_000)
        try store.update("running", state: .running, startedAt: 3)
        let chunks = DatabasePool.pruneChunk
        for _ in 0..<(2 * chunks + 1) { _ = try store.append("old", type: "text", data: "line", now: 10) }
        for _ in 0..<(chunks + 1) { _ = try store.append("recent", type: "text", data: "line", now: 10) }
        _ = try store.append("running", type: "text", data: "line", now: 10)
        // Retention 1 s at 5,500: "old" goes with all its events; "recent" and "running" stay.
        #expect(try store.prune(now: 5_500, retentionMillis: 1_000, keep: 1000) == 1)
        #expect(try store.get("old") == nil && events("old") == 0)
        #expect(try events("recent") == chunks + 1 && events("running") == 1)
        // Past the newest `keep`, a finished task goes however recent; a running one never.
        #expect(try store.prune(now: 5_500, retentionMillis: 1_000_000, keep: 1) == 1)
        #expect(try store.get("recent") == nil && events("recent") == 0)
        #expect(try store.get("running") != nil && events("running") == 1)
        try store.delete("running")
        #expect(try store.get("running") == nil && events("running") == 0)
    }

    /// Finished jobs likewise: the caller's, newest first, within a byte budget of arguments.
    @Test func finishedJobsAreTheCallersAndStopAtTheirByteBudget() throws {
        let jobs = JobStore(pool: scratch.pool)
        let argument = String(repeating: "a", count: 100_000)
        for index in 0..<6 {
            let id = "j\(index)"
            try jobs.record(JobInfo(jobId: id, command: "echo", args: [argument], cwd: "/", pid: 1, startedAt: 0,
                                    caller: index % 2 == 0 ? "peer" : "owner", streamed: false, state: .finished),
                            result: ExecuteResult(jobId: id, exitCode: 0, signal: nil, stdout: "", stderr: "",
                                                  durationMs: 1, timedOut: false, truncated: false, cancelled: false),
                            finishedAt: Int64(index))
        }
        #expect(try jobs.recent(limit: 100).rows.map(\.jobId) == ["j5", "j4", "j3", "j2", "j1", "j0"])
        #expect(try jobs.recent(limit: 100, caller: "peer").rows.map(\.jobId) == ["j4", "j2", "j0"])
        #expect(try jobs.recent(limit: 1, caller: "owner").rows.map(\.jobId) == ["j5"])
        let capped = try jobs.recent(limit: 100, maxBytes: 250_000).rows
        #expect(capped.map(\.jobId) == ["j5", "j4"] && capped.allSatisfy { $0.args == [argument] })
        #expect(try jobs.recent(limit: 100, maxBytes: 1).rows.map(\.jobId) == ["j5"])
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
