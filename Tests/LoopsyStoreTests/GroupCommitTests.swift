import Dispatch
import Foundation
import LoopsyAPI
import Synchronization
import Testing
@testable import LoopsyStore

/// Writes that meet in one commit: each is answered as if it had its own transaction.
@Suite struct GroupCommitTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-group-\(UUID().uuidString)").path
    let pool: DatabasePool
    let store: ContextStore

    init() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let migrations = try Migration.load(from: try Migration.locateDirectory(environment: [:], executablePath: nil))
        pool = try DatabasePool(path: directory + "/t.db", migrations: migrations)
        store = ContextStore(pool: pool)
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: directory) }

    /// Queues every write at once (so they share groups) and waits for all the answers.
    private func putAll(_ writes: [(key: String, value: String, ifRevision: Int64?)], maxEntries: Int)
        -> [Result<ContextEntry, any Error>] {
        let answers = Mutex<[Int: [Result<ContextEntry, any Error>]]>([:])
        let finished = DispatchSemaphore(value: 0)
        for (index, write) in writes.enumerated() {
            store.put(key: write.key, value: write.value, ttl: nil, fromNodeId: "n", maxEntries: maxEntries,
                      ifRevision: write.ifRevision) { result in
                answers.withLock { $0[index, default: []].append(result) }
                finished.signal()
            }
        }
        for _ in writes { #expect(finished.wait(timeout: .now() + 30) == .success) }
        // Each write is answered once.
        #expect(finished.wait(timeout: .now() + 0.05) == .timedOut)
        return answers.withLock { answers in
            writes.indices.map { index in
                #expect(answers[index]?.count == 1, "write \(index) was answered \(answers[index]?.count ?? 0) times")
                return answers[index]![0]
            }
        }
    }

    /// Holds the writer for `seconds` from now on another thread, so the writes queued
    /// meanwhile (all but the first, which the commit thread takes at once) meet in one group.
    private func holdWriter(seconds: Double) {
        let held = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            self.pool.write { _ in
                held.signal()
                _ = release.wait(timeout: .now() + 30)
            }
        }
        held.wait()
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { release.signal() }
    }

    @Test func everyWriteIsAnsweredAndStoredAndOneKeysRevisionsFollowTheQueue() throws {
        defer { cleanUp() }
        let writes = (0..<500).map { (key: "k\($0 % 50)", value: "v\($0)", ifRevision: Int64?.none) }
        let answers = putAll(writes, maxEntries: 1000)
        for (index, answer) in answers.enumerated() {
            let entry = try answer.get()
            // Write i is key i % 50's (i / 50 + 1)th write: revisions follow the order of the queue.
            #expect(entry.key == "k\(index % 50)" && entry.value == "v\(index)" && entry.revision == Int64(index / 50 + 1))
        }
        for key in 0..<50 {
            let stored = try #require(try store.get(key: "k\(key)"))
            #expect(stored.value == "v\(450 + key)" && stored.revision == 10)
        }
        #expect(try store.count() == 50)
        // Every committed write is in the change log, once.
        #expect(try store.changes(prefix: "k", after: 0, limit: 10_000).changes.count == 500)
    }

    /// A write that fails is undone alone: the writes before and after it in its group stay.
    @Test func aFailedWriteIsUndoneAloneAndItsNeighboursStay() throws {
        defer { cleanUp() }
        let answers = putAll([("a", "1", nil), ("b", "1", 5), ("c", "1", nil), ("a", "2", 1), ("a", "3", 1)],
                             maxEntries: 100)
        #expect(try answers[0].get().revision == 1)
        #expect(throws: ContextStoreError.self) { try answers[1].get() }
        #expect(try answers[2].get().revision == 1)
        #expect(try answers[3].get().revision == 2)
        // The compare-and-set that lost sees the entry as the one before it in the queue left it.
        guard case .failure(ContextStoreError.revisionMismatch(let expected, let current)) = answers[4] else {
            Issue.record("a stale compare-and-set was not refused: \(answers[4])")
            return
        }
        #expect(expected == 1 && current?.revision == 2 && current?.value == "2")
        #expect(try store.get(key: "b") == nil)
        #expect(try store.get(key: "a")?.value == "2")
        #expect(try store.changes(prefix: "", after: 0, limit: 100).changes.map(\.key) == ["a", "c", "a"])
    }

    /// A write refused for room in a group leaves an expired row under its key where it was
    /// (the limit is checked before the row would be replaced), and its neighbours stay.
    @Test func aWriteRefusedForRoomLeavesTheExpiredRowUnderItsKey() throws {
        defer { cleanUp() }
        _ = try store.put(key: "old", value: "x", ttl: 1, fromNodeId: "n", maxEntries: 2,
                          now: Clock.nowMillis() - 10_000)
        holdWriter(seconds: 0.3)
        let answers = putAll([("first", "1", nil), ("a", "1", nil), ("old", "2", nil), ("b", "1", nil),
                              ("a", "2", 1)], maxEntries: 2)
        #expect(try answers[0].get().revision == 1)
        #expect(try answers[1].get().revision == 1)
        for index in [2, 3] {
            guard case .failure(let error) = answers[index] else {
                Issue.record("write \(index) was stored past the limit: \(answers[index])")
                continue
            }
            #expect(error as? ContextStoreError == .full(limit: 2))
        }
        #expect(try answers[4].get().revision == 2)
        let oldRows = try pool.read { db in
            try db.cached("SELECT count(*) FROM context WHERE key = 'old'").rows([]) { $0.int(0) }.first
        }
        #expect(oldRows == 1)
        #expect(try store.get(key: "old") == nil)
        #expect(try store.changes(prefix: "", after: 0, limit: 100).changes.map(\.key) == ["old", "first", "a", "a"])
    }

    /// A write that fails after it changed rows is undone alone: its group, which ran without
    /// a savepoint per write, starts over with them. The rows of the writes around it stay,
    /// each write is answered once, and `committed` runs once for each write kept.
    @Test func aWriteThatFailsAfterChangingRowsIsUndoneAlone() throws {
        defer { cleanUp() }
        struct Refused: Error {}
        let group = GroupCommit(pool: pool)
        let insert = "INSERT INTO context (key, value, from_node_id, created_at, updated_at, revision) VALUES (?, 'x', 'n', 0, 0, 1)"
        holdWriter(seconds: 0.3)
        let keys = ["first", "a", "refused", "b", "c"]
        let answers = Mutex<[String: [Bool]]>([:])
        let committed = Mutex<[String: Int]>([:])
        let finished = DispatchSemaphore(value: 0)
        for key in keys {
            group.write({ database -> String in
                try database.cached(insert).run([.text(key)])
                if key == "refused" { throw Refused() }
                return key
            }, committed: { key in
                committed.withLock { $0[key, default: 0] += 1 }
            }, done: { result in
                answers.withLock { $0[key, default: []].append((try? result.get()) != nil) }
                finished.signal()
            })
        }
        for _ in keys { #expect(finished.wait(timeout: .now() + 30) == .success) }
        #expect(finished.wait(timeout: .now() + 0.05) == .timedOut)
        #expect(answers.withLock { $0 } == ["first": [true], "a": [true], "refused": [false], "b": [true], "c": [true]])
        #expect(committed.withLock { $0 } == ["first": 1, "a": 1, "b": 1, "c": 1])
        let stored = try pool.read { db in
            try db.cached("SELECT key FROM context ORDER BY key").rows([]) { $0.text(0) }
        }
        #expect(stored == ["a", "b", "c", "first"])
    }

    /// The entry limit holds across the writes of one group: exactly the room left is used.
    @Test func theEntryLimitHoldsWithinAGroup() throws {
        defer { cleanUp() }
        _ = try store.put(key: "already", value: "x", ttl: nil, fromNodeId: "n", maxEntries: 5)
        let answers = putAll((0..<40).map { (key: "new\($0)", value: "x", ifRevision: nil) }, maxEntries: 5)
        let stored = answers.filter { (try? $0.get()) != nil }.count
        #expect(stored == 4)
        for answer in answers {
            if case .failure(let error) = answer { #expect(error as? ContextStoreError == .full(limit: 5)) }
        }
        #expect(try store.count() == 5)
    }

    /// What a write reads in its group is what the cache serves after: a read right after an
    /// answer sees that write (the cache is updated before the caller is answered).
    @Test func anAnsweredWriteIsWhatTheNextReadSees() throws {
        defer { cleanUp() }
        for round in 1...20 {
            let answers = putAll((0..<8).map { (key: "shared", value: "r\(round)-\($0)", ifRevision: nil) },
                                 maxEntries: 10)
            let last = try answers[7].get()
            #expect(try store.get(key: "shared") == last)
        }
    }

    /// A group that cannot be committed (another process holds the database's write lock past
    /// the busy timeout) answers every write of it with the error and stores none; the next
    /// group works.
    @Test func aGroupThatCannotCommitAnswersEveryWriteWithTheError() throws {
        defer { cleanUp() }
        let other = try Database(path: directory + "/t.db")
        try other.execute("BEGIN IMMEDIATE")
        let answers = putAll((0..<3).map { (key: "k\($0)", value: "x", ifRevision: nil) }, maxEntries: 10)
        for answer in answers {
            guard case .failure(let error) = answer else {
                Issue.record("a write was stored while the database was locked")
                continue
            }
            #expect(error is DatabaseError)
        }
        try other.execute("ROLLBACK")
        #expect(try store.count() == 0)
        #expect(try putAll([("k0", "y", nil)], maxEntries: 10)[0].get().revision == 1)
    }

    /// The commit thread ends after two idle seconds; the next write starts it again.
    @Test func aWriteAfterTheThreadWentIdleIsCommitted() throws {
        defer { cleanUp() }
        #expect(try putAll([("k", "1", nil)], maxEntries: 10)[0].get().revision == 1)
        usleep(2_500_000)
        #expect(try putAll([("k", "2", nil)], maxEntries: 10)[0].get().revision == 2)
    }

    /// Closing (a daemon stopping) waits for what is queued to be committed and answered, then
    /// refuses: no caller is told to retry a write that was kept, or told it was kept when not.
    @Test func closingCommitsWhatIsQueuedThenRefuses() throws {
        defer { cleanUp() }
        let answered = Mutex<[Result<ContextEntry, any Error>]>([])
        for index in 0..<200 {
            store.put(key: "k\(index)", value: String(repeating: "v", count: 50_000), ttl: nil, fromNodeId: "n",
                      maxEntries: 1000) { result in answered.withLock { $0.append(result) } }
        }
        store.finishWrites()
        // Everything queued before the close was answered by the time it returned, and stored.
        #expect(answered.withLock { $0.count } == 200)
        #expect(answered.withLock { $0.allSatisfy { (try? $0.get()) != nil } })
        #expect(try store.count() == 200)
        let refused = putAll([("late", "x", nil)], maxEntries: 1000)
        #expect(throws: GroupCommitClosed.self) { try refused[0].get() }
        #expect(try store.get(key: "late") == nil)
    }

    /// Closing with the writer lock held past the deadline: writes not yet begun are refused
    /// (and not stored), the group already begun is still committed and answered, and after
    /// `reopenWrites` writes are taken again.
    @Test func closingPastItsDeadlineRefusesWhatHasNotBegun() throws {
        defer { cleanUp() }
        let holding = DispatchSemaphore(value: 0)
        let holder = Thread {
            self.pool.write { _ in
                holding.signal()
                usleep(1_500_000)
            }
        }
        holder.start()
        #expect(holding.wait(timeout: .now() + 30) == .success)
        let answered = Mutex<[String: Result<ContextEntry, any Error>]>([:])
        let put = { (key: String) in
            store.put(key: key, value: "v", ttl: nil, fromNodeId: "n", maxEntries: 1000) { result in
                answered.withLock { $0[key] = result }
            }
        }
        // The commit thread takes "first" and waits for the writer lock with it.
        put("first")
        usleep(200_000)
        for index in 0..<20 { put("later\(index)") }
        store.finishWrites(waitingUpTo: 0.3)
        let answers = answered.withLock { $0 }
        #expect(answers.count == 21)
        #expect((try? answers["first"]?.get())?.value == "v")
        for index in 0..<20 {
            #expect(throws: GroupCommitClosed.self) { try answers["later\(index)"]?.get() }
            #expect(try store.get(key: "later\(index)") == nil)
        }
        #expect(try store.count() == 1)
        store.reopenWrites()
        #expect(try putAll([("again", "v", nil)], maxEntries: 1000)[0].get().revision == 1)
    }
}
