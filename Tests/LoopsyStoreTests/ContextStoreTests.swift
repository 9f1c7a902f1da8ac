import Foundation
import LoopsyAPI
import Testing
@testable import LoopsyStore

@Suite struct ContextStoreTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-ctx-\(UUID().uuidString)").path
    let store: ContextStore
    let audit: AuditStore

    init() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let migrations = try Migration.load(from: try Migration.locateDirectory(environment: [:], executablePath: nil))
        let pool = try DatabasePool(path: directory + "/t.db", migrations: migrations)
        store = ContextStore(pool: pool)
        audit = AuditStore(pool: pool)
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: directory) }

    /// Writes each key with a value of `valueBytes` bytes, in order.
    func put(_ keys: [String], valueBytes: Int) throws {
        for key in keys {
            _ = try store.put(key: key, value: String(repeating: "x", count: valueBytes), ttl: nil, fromNodeId: "n",
                              maxEntries: 100, now: 0)
        }
    }

    @Test func putGetAndRevisionGrowsOnEveryWrite() throws {
        defer { cleanUp() }
        let first = try store.put(key: "k", value: "v1", ttl: nil, fromNodeId: "n", maxEntries: 10, now: 1000)
        #expect(first.revision == 1)
        #expect(first.createdAt == 1000)
        let second = try store.put(key: "k", value: "v2", ttl: 5, fromNodeId: "n", maxEntries: 10, now: 2000)
        #expect(second.revision == 2)
        #expect(second.createdAt == 1000)
        #expect(second.updatedAt == 2000)
        #expect(second.expiresAt == 7000)
        #expect(try store.get(key: "k", now: 2500) == second)
    }

    @Test func expiredEntriesAreInvisibleThenSwept() throws {
        defer { cleanUp() }
        _ = try store.put(key: "short", value: "x", ttl: 1, fromNodeId: "n", maxEntries: 10, now: 0)
        _ = try store.put(key: "long", value: "y", ttl: nil, fromNodeId: "n", maxEntries: 10, now: 0)
        #expect(try store.get(key: "short", now: 999) != nil)
        #expect(try store.get(key: "short", now: 1000) == nil)
        #expect(try store.list(now: 1000).map(\.key) == ["long"])
        #expect(try store.count(now: 1000) == 1)
        #expect(try store.delete(key: "short", now: 1000) == false)
        #expect(try store.sweepExpired(now: 1000) == 0)  // delete above already removed the row
        _ = try store.put(key: "again", value: "x", ttl: 1, fromNodeId: "n", maxEntries: 10, now: 0)
        #expect(try store.sweepExpired(now: 5000) == 1)
    }

    /// A sweep goes in transactions of a few rows (each one holds the writer's lock, which
    /// requests wait for): oldest expiry first, each chunk's expiries logged in key order with
    /// the revision that went, and a row that has not expired yet, or was written again with a
    /// later expiry, stays.
    @Test func sweepingGoesInChunksOldestExpiryFirst() throws {
        defer { cleanUp() }
        // Expiries 1000 (e, d), 2000 (c, b), 3000 (a); "live" never; "later" at 9000.
        for (key, ttl) in [("e", 1), ("d", 1), ("c", 2), ("b", 2), ("a", 3), ("later", 9)] {
            _ = try store.put(key: key, value: "v", ttl: ttl, fromNodeId: "n", maxEntries: 100, now: 0)
        }
        _ = try store.put(key: "a", value: "v2", ttl: 3, fromNodeId: "n", maxEntries: 100, now: 0)
        _ = try store.put(key: "live", value: "v", ttl: nil, fromNodeId: "n", maxEntries: 100, now: 0)
        let before = try store.changes(prefix: "", after: 0, now: 0).cursor
        #expect(try store.sweepExpired(now: 5000, chunk: 2) == 5)
        let expired = try store.changes(prefix: "", after: before, now: 5000).changes
        #expect(expired.map(\.kind) == Array(repeating: "expire", count: 5))
        // Chunks [d, e] (expiry 1000), [b, c] (2000), [a] (3000), each in key order.
        #expect(expired.map(\.key) == ["d", "e", "b", "c", "a"])
        #expect(expired.map(\.revision) == [1, 1, 1, 1, 2])
        #expect(expired.allSatisfy { $0.at == 5000 })
        #expect(try store.list(now: 0).map(\.key).sorted() == ["later", "live"])
        #expect(try store.count(now: 5000) == 2)
        #expect(try store.sweepExpired(now: 5000, chunk: 2) == 0)
        #expect(try store.sweepExpired(now: 9000) == 1)
        // A chunk below 1 is 1 (LIMIT 0 would never finish).
        for key in ["x", "y"] { _ = try store.put(key: key, value: "v", ttl: 1, fromNodeId: "n", maxEntries: 100, now: 10_000) }
        #expect(try store.sweepExpired(now: 20_000, chunk: 0) == 2)
        // Chunks hold about 64 MiB of values at most, and 64 rows of small ones.
        #expect(ContextStore.sweepChunk(forValuesUpTo: 1 << 20) == 64)
        #expect(ContextStore.sweepChunk(forValuesUpTo: 4 << 20) == 16)
        #expect(ContextStore.sweepChunk(forValuesUpTo: 64 << 20) == 1)
        #expect(ContextStore.sweepChunk(forValuesUpTo: 100) == 64)
    }

    @Test func recreatingAnExpiredKeyStartsOver() throws {
        defer { cleanUp() }
        _ = try store.put(key: "k", value: "old", ttl: 1, fromNodeId: "n", maxEntries: 10, now: 0)
        let fresh = try store.put(key: "k", value: "new", ttl: nil, fromNodeId: "n", maxEntries: 10, now: 5000)
        #expect(fresh.revision == 1)
        #expect(fresh.createdAt == 5000)
    }

    /// A write sees the same boundary as a read: at its expiresAt an entry is gone, and writing
    /// the key then starts a new entry in place of the expired row (counted once).
    @Test func aWriteAtTheExpiryInstantStartsANewEntry() throws {
        defer { cleanUp() }
        _ = try store.put(key: "k", value: "old", ttl: 1, fromNodeId: "n", maxEntries: 10, now: 0)
        #expect(try store.put(key: "k", value: "kept", ttl: 1, fromNodeId: "n", maxEntries: 10, now: 999).revision == 2)
        // Written at 999 with a TTL of 1 s: live until 1998, gone at 1999.
        #expect(try store.get(key: "k", now: 1998) != nil)
        #expect(try store.get(key: "k", now: 1999) == nil)
        let fresh = try store.put(key: "k", value: "new", ttl: nil, fromNodeId: "n", maxEntries: 10, now: 1999)
        #expect(fresh.revision == 1)
        #expect(fresh.createdAt == 1999)
        #expect(try store.count(now: 2000) == 1)
        #expect(try store.list(limit: 10, includeMirrors: false, now: 2000).map(\.value) == ["new"])
        // With ifRevision, the expired entry is no entry (revision 0).
        _ = try store.put(key: "t", value: "old", ttl: 1, fromNodeId: "n", maxEntries: 10, now: 0)
        #expect(throws: ContextStoreError.self) {
            try store.put(key: "t", value: "x", ttl: nil, fromNodeId: "n", maxEntries: 10, ifRevision: 1, now: 1000)
        }
        #expect(try store.put(key: "t", value: "x", ttl: nil, fromNodeId: "n", maxEntries: 10, ifRevision: 0, now: 1000).revision == 1)
        #expect(try store.count(now: 1000) == 2)
    }

    @Test func entryLimitRefusesNewKeysButAllowsUpdates() throws {
        defer { cleanUp() }
        _ = try store.put(key: "a", value: "1", ttl: nil, fromNodeId: "n", maxEntries: 2, now: 0)
        _ = try store.put(key: "b", value: "2", ttl: 1, fromNodeId: "n", maxEntries: 2, now: 0)
        #expect(throws: ContextStoreError.full(limit: 2)) {
            try store.put(key: "c", value: "3", ttl: nil, fromNodeId: "n", maxEntries: 2, now: 10)
        }
        #expect(try store.put(key: "a", value: "updated", ttl: nil, fromNodeId: "n", maxEntries: 2, now: 10).revision == 2)
        // Once "b" has expired it no longer counts.
        #expect(try store.put(key: "c", value: "3", ttl: nil, fromNodeId: "n", maxEntries: 2, now: 2000).revision == 1)
        #expect(try store.get(key: "a", now: 2000)?.value == "updated")
    }

    /// The entry count is kept by triggers (0010), not counted per write: it must stay equal to
    /// a count of the table through every kind of write.
    @Test func keptEntryCountMatchesTheTableThroughEveryKindOfWrite() throws {
        defer { cleanUp() }
        func counted(_ now: Int64) throws -> Int {
            try store.list(limit: 1_000_000, includeMirrors: false, now: now).count
        }
        for i in 0..<20 {
            _ = try store.put(key: "k\(i)", value: "v", ttl: i % 2 == 0 ? 1 : nil, fromNodeId: "n", maxEntries: 100, now: 0)
        }
        _ = try store.put(key: "inbox:m1", value: "mirror", ttl: 1, fromNodeId: "n", maxEntries: 100, now: 0)
        _ = try store.put(key: "outbox:m2", value: "mirror", ttl: nil, fromNodeId: "n", maxEntries: 100, now: 0)
        #expect(try store.count(now: 0) == 20)
        // Overwrites (with and without TTL) are updates: the count does not move.
        for i in 0..<20 { _ = try store.put(key: "k\(i)", value: "w", ttl: nil, fromNodeId: "n", maxEntries: 100, now: 10) }
        #expect(try store.count(now: 10) == 20)
        #expect(try store.delete(key: "k0", now: 10))
        #expect(try store.count(now: 10) == 19)
        for i in 1..<6 { _ = try store.put(key: "k\(i)", value: "x", ttl: 1, fromNodeId: "n", maxEntries: 100, now: 20) }
        // Expired but not swept: out of the live count at once.
        #expect(try store.count(now: 5000) == 14)
        #expect(try counted(5000) == 14)
        // Re-creating an expired key replaces its row.
        _ = try store.put(key: "k1", value: "again", ttl: nil, fromNodeId: "n", maxEntries: 100, now: 5000)
        #expect(try store.count(now: 5000) == 15)
        #expect(try store.sweepExpired(now: 5000) == 5)
        #expect(try store.count(now: 5000) == 15)
        #expect(try counted(5000) == 15)
        // The limit sees the kept count: 15 live, a limit of 16 admits one more key and no second.
        _ = try store.put(key: "new", value: "v", ttl: nil, fromNodeId: "n", maxEntries: 16, now: 5000)
        #expect(throws: ContextStoreError.full(limit: 16)) {
            try store.put(key: "newer", value: "v", ttl: nil, fromNodeId: "n", maxEntries: 16, now: 5000)
        }
        // Mirrors are never counted nor refused.
        _ = try store.put(key: "inbox:m3", value: "mirror", ttl: nil, fromNodeId: "n", maxEntries: 16, now: 5000)
        #expect(try store.count(now: 5000) == 16)
        // A mirror prefix followed by a combining mark is still a mirror, byte for byte as in SQL
        // (Swift's hasPrefix says no: the mark joins the colon into one character).
        #expect(ContextStore.isMirror("inbox:\u{301}x") && ContextStore.isMirror("outbox:\u{301}"))
        #expect(!ContextStore.isMirror("inbo") && !ContextStore.isMirror("inboxes"))
        _ = try store.put(key: "inbox:\u{301}x", value: "v", ttl: nil, fromNodeId: "n", maxEntries: 16, now: 5000)
        #expect(try store.count(now: 5000) == 16)
    }

    @Test func prefixListingIsExactAndOrdered() throws {
        defer { cleanUp() }
        for key in ["inbox:b:2", "inbox:a:1", "inbox", "inboy", "outbox:1", "inbox:ü:3"] {
            _ = try store.put(key: key, value: key, ttl: nil, fromNodeId: "n", maxEntries: 100, now: 0)
        }
        #expect(try store.list(prefix: "inbox:", now: 0).map(\.key) == ["inbox:a:1", "inbox:b:2", "inbox:ü:3"])
        #expect(try store.list(prefix: "", now: 0).count == 6)
        #expect(try store.list(prefix: "inbox", limit: 2, now: 0).map(\.key) == ["inbox", "inbox:a:1"])
        #expect(try store.list(prefix: "%", now: 0).isEmpty)
    }

    /// A listing read page by page (each capped by bytes or by count) gives every entry once,
    /// in order; a page always holds at least one entry, however large.
    @Test func pagesByBytesAndCountCoverTheListingOnce() throws {
        defer { cleanUp() }
        let keys = ["a", "b", "b\u{301}", "c", "é", "e\u{301}", "z"].map { "p/" + $0 }
        for (index, key) in keys.enumerated() {
            _ = try store.put(key: key, value: String(repeating: "v", count: 100 * (index + 1)), ttl: nil, fromNodeId: "n",
                              maxEntries: 100, now: 0)
        }
        _ = try store.put(key: "q", value: "outside the prefix", ttl: nil, fromNodeId: "n", maxEntries: 100, now: 0)
        let sorted = keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        for (limit, maxBytes) in [(100, 1), (100, 250), (100, 700), (2, .max), (3, 1000), (100, .max)] {
            var seen: [String] = []
            var afterKey: String?
            var pages = 0
            while true {
                let page = try store.page(prefix: "p/", afterKey: afterKey, limit: limit, maxBytes: maxBytes, now: 0)
                pages += 1
                #expect(!page.entries.isEmpty && page.entries.count <= limit)
                let bytes = page.entries.map { $0.key.utf8.count + $0.value.utf8.count }
                #expect(page.entries.count == 1 || bytes.reduce(0, +) <= maxBytes)
                seen += page.entries.map(\.key)
                guard page.more else { break }
                afterKey = page.entries.last?.key
                #expect(pages < 20)
                if pages >= 20 { break }
            }
            #expect(seen == sorted, "limit \(limit), maxBytes \(maxBytes)")
        }
        // One byte per page: one entry per page.
        #expect(try store.page(prefix: "p/", limit: 100, maxBytes: 1, now: 0).entries.map(\.key) == [sorted[0]])
        // afterKey before the prefix starts at the prefix; past the last key there is nothing.
        #expect(try store.page(prefix: "p/", afterKey: "a", now: 0).entries.map(\.key) == sorted)
        let end = try store.page(prefix: "p/", afterKey: sorted.last, now: 0)
        #expect(end.entries.isEmpty && !end.more)
        // A key that is not stored still starts the page after where it would be (byte-wise:
        // "p/b" + U+0301 sorts after "p/bb").
        #expect(try store.page(prefix: "p/", afterKey: "p/bb", now: 0).entries.map(\.key)
            == sorted.filter { "p/bb".utf8.lexicographicallyPrecedes($0.utf8) })
        #expect(try store.page(prefix: "p/", afterKey: "p/bb", now: 0).entries.first?.key.utf8.elementsEqual("p/b\u{301}".utf8) == true)
    }

    /// Keys with U+10FFFF in them are in their prefix's range (the range once ended at the
    /// prefix + U+10FFFF, and left them out of every listing and watch).
    @Test func keysWithTheHighestScalarAreListedAndWatched() throws {
        defer { cleanUp() }
        let start = try store.lastChange()
        let keys = ["x", "x\u{10FFFF}", "x\u{10FFFF}y", "y", "\u{10FFFF}", "\u{10FFFF}\u{10FFFF}z", "\u{D7FF}", "\u{E000}"]
        for key in keys { _ = try store.put(key: key, value: "v", ttl: nil, fromNodeId: "n", maxEntries: 100, now: 0) }
        let bytes = { (list: [String]) in list.map { Array($0.utf8) } }
        let sorted = keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        #expect(bytes(try store.page(prefix: "", now: 0).entries.map(\.key)) == bytes(sorted))
        #expect(bytes(try store.page(prefix: "x", now: 0).entries.map(\.key)) == bytes(["x", "x\u{10FFFF}", "x\u{10FFFF}y"]))
        #expect(bytes(try store.page(prefix: "x\u{10FFFF}", now: 0).entries.map(\.key)) == bytes(["x\u{10FFFF}", "x\u{10FFFF}y"]))
        #expect(bytes(try store.page(prefix: "\u{10FFFF}", now: 0).entries.map(\.key))
            == bytes(["\u{10FFFF}", "\u{10FFFF}\u{10FFFF}z"]))
        #expect(bytes(try store.page(prefix: "\u{D7FF}", now: 0).entries.map(\.key)) == bytes(["\u{D7FF}"]))
        #expect(bytes(try store.changes(prefix: "x", after: start, now: 0).changes.map(\.key))
            == bytes(["x", "x\u{10FFFF}", "x\u{10FFFF}y"]))
        #expect(ContextStore.rangeEnd("a\u{D7FF}").unicodeScalars.map(\.value) == [0x61, 0xE000])
        #expect(ContextStore.rangeEnd("ab\u{10FFFF}\u{10FFFF}") == "ac")
        #expect(ContextStore.rangeEnd("").utf8.count > ContextLimits.maxKeyBytes)
    }

    /// A watch that may not see the message mirrors has them left out by the query, so a page
    /// of them takes none of its room.
    @Test func changesWithoutMirrorsLeaveThemOutOfThePage() throws {
        defer { cleanUp() }
        let start = try store.lastChange()
        try put((0..<5).map { "inbox:p:\($0)" }, valueBytes: 1000)
        _ = try store.put(key: "k", value: "v", ttl: nil, fromNodeId: "n", maxEntries: 100, now: 0)
        let hidden = try store.changes(prefix: "", after: start, limit: 100, maxBytes: 1500, includeMirrors: false, now: 0)
        #expect(hidden.changes.map(\.key) == ["k"])
        let all = try store.changes(prefix: "", after: start, limit: 100, maxBytes: 1500, now: 0)
        #expect(all.changes.map(\.key) == ["inbox:p:0"])
    }

    /// A watch's changes are capped by bytes too, and its cursor then points at the last change
    /// returned: following cursors gives every change once.
    @Test func changesCappedByBytesContinueFromTheirCursor() throws {
        defer { cleanUp() }
        let start = try store.lastChange()
        try put((0..<6).map { "w/\($0)" }, valueBytes: 1000)
        var cursor = start
        var seen: [String] = []
        for _ in 0..<10 {
            let (changes, next) = try store.changes(prefix: "w/", after: cursor, limit: 100, maxBytes: 2100, now: 0)
            if changes.isEmpty { break }
            #expect(changes.count <= 2)
            #expect(next == changes.last?.seq)
            #expect(changes.allSatisfy { $0.value?.utf8.count == 1000 })
            seen += changes.map(\.key)
            cursor = next
        }
        #expect(seen == (0..<6).map { "w/\($0)" })
        // A single change larger than the cap still comes (alone).
        let (one, _) = try store.changes(prefix: "w/", after: start, limit: 100, maxBytes: 10, now: 0)
        #expect(one.map(\.key) == ["w/0"])
    }

    @Test func auditAppendsReadsAndPrunes() throws {
        defer { cleanUp() }
        let entries = (0..<5).map {
            AuditEntry(id: 0, time: Int64($0) * 1000, requestId: "r\($0)", caller: "local", method: "GET",
                       path: "/p", status: 200, durationMs: 0.5, remote: "127.0.0.1")
        }
        try audit.append(entries)
        #expect(try audit.recent(limit: 2).map(\.requestId) == ["r3", "r4"])
        #expect(try audit.recent(limit: 10, afterId: 3).map(\.requestId) == ["r3", "r4"])
        try audit.prune(olderThan: 1000, keep: 3)
        #expect(try audit.recent(limit: 10).map(\.requestId) == ["r2", "r3", "r4"])
    }

    /// Rows stored many to a statement keep every field, in order, as those stored one at a time.
    @Test func auditRowsKeepEveryFieldWhetherInsertedManyOrOneAtATime() throws {
        defer { cleanUp() }
        let count = AuditStore.rowsPerInsert * 2 + 3
        let entries = (0..<count).map {
            AuditEntry(id: 0, time: 1_000 + Int64($0), requestId: "request-\($0)", caller: "peer:\($0 % 3)",
                       method: $0 % 2 == 0 ? "PUT" : "DELETE", path: "/api/v1/context/k\($0)", status: 200 + $0,
                       durationMs: Double($0) / 4, remote: "10.0.0.\($0)", count: 1 + $0 % 5)
        }
        try audit.append(entries)
        let stored = try audit.recent(limit: count)
        #expect(stored.count == count)
        for (row, entry) in zip(stored, entries) {
            #expect(row.time == entry.time && row.requestId == entry.requestId && row.caller == entry.caller)
            #expect(row.method == entry.method && row.path == entry.path && row.status == entry.status)
            #expect(row.durationMs == entry.durationMs && row.remote == entry.remote && row.count == entry.count)
        }
        #expect(zip(stored, stored.dropFirst()).allSatisfy { $0.id + 1 == $1.id })
    }

    /// Batches larger than one transaction keep their order; prunes larger than one chunk
    /// remove exactly what they should, oldest first, however many chunks it takes.
    @Test func largeAppendsAndPrunesGoInPiecesAndKeepTheirOrder() throws {
        defer { cleanUp() }
        let count = AuditStore.rowsPerTransaction * 2 + DatabasePool.pruneChunk * 2 + 37
        let entries = (0..<count).map {
            AuditEntry(id: 0, time: Int64($0), requestId: "r\($0)", caller: "local", method: "PUT",
                       path: "/p", status: 200, durationMs: 0.5, remote: "127.0.0.1")
        }
        try audit.append(entries)
        let all = try audit.recent(limit: count + 10)
        #expect(all.map(\.requestId) == entries.map(\.requestId))
        #expect(zip(all, all.dropFirst()).allSatisfy { $0.id + 1 == $1.id })
        // By age: everything before time 1,500 (more than one chunk); then by count.
        #expect(try audit.prune(olderThan: 1_500, keep: count) == 1_500)
        #expect(try audit.recent(limit: 1).first?.requestId == "r\(count - 1)")
        #expect(try audit.prune(olderThan: 0, keep: 10) == count - 1_500 - 10)
        #expect(try audit.recent(limit: count).map(\.requestId) == entries.suffix(10).map(\.requestId))
        #expect(try audit.prune(olderThan: 0, keep: 10) == 0)
    }

    /// Ids with gaps (rows whose times are out of id order leave by age first) do not cut a
    /// prune by count short: it removes every row but those among the newest `keep` ids, as
    /// one DELETE did, however many chunks that takes.
    @Test func pruningByCountIgnoresGapsInTheIds() throws {
        defer { cleanUp() }
        let count = DatabasePool.pruneChunk * 3
        // Every 50th row is older than its neighbours.
        let entries = (0..<count).map {
            AuditEntry(id: 0, time: $0 % 50 == 7 ? 0 : 10_000 + Int64($0), requestId: "r\($0)", caller: "local",
                       method: "PUT", path: "/p", status: 200, durationMs: 0.5, remote: "127.0.0.1")
        }
        try audit.append(entries)
        #expect(try audit.prune(olderThan: 1, keep: count) == count / 50)
        let left = count - count / 50
        // Ids are 1...count; the newest 100 ids hold the rows left among the last 100 entries.
        let newest = (count - 100..<count).filter { $0 % 50 != 7 }.map { "r\($0)" }
        #expect(try audit.prune(olderThan: 0, keep: 100) == left - newest.count)
        #expect(try audit.recent(limit: count).map(\.requestId) == newest)
    }

    /// Pruned by age when every row is old (an idle node), the log keeps its newest row, so the
    /// next id follows it: a client's `after=` cursor is never handed out again.
    @Test func aPruneByAgeKeepsTheNewestRowSoIdsAreNeverReused() throws {
        defer { cleanUp() }
        let entries = (0..<5).map {
            AuditEntry(id: 0, time: Int64($0), requestId: "r\($0)", caller: "local", method: "PUT",
                       path: "/p", status: 200, durationMs: 0.5, remote: "127.0.0.1")
        }
        try audit.append(entries)
        let newest = try #require(try audit.recent(limit: 1).first)
        #expect(try audit.prune(olderThan: 1_000_000, keep: 100) == 4)
        #expect(try audit.recent(limit: 10).map(\.id) == [newest.id])
        try audit.append([entries[0]])
        #expect(try audit.recent(limit: 10, afterId: newest.id).map(\.id) == [newest.id + 1])
        // By count, at least one stays too.
        #expect(try audit.prune(olderThan: 0, keep: 0) == 1)
        try audit.append([entries[1]])
        #expect(try audit.recent(limit: 10).map(\.id) == [newest.id + 1, newest.id + 2])
    }

    /// The change log is pruned in chunks too, down to exactly the newest `keep`.
    @Test func theChangeLogIsPrunedInChunks() throws {
        defer { cleanUp() }
        let writes = DatabasePool.pruneChunk * 2 + 250
        for index in 0..<writes {
            _ = try store.put(key: "k\(index % 7)", value: "v\(index)", ttl: nil, fromNodeId: "n", maxEntries: 100, now: 0)
        }
        try store.pruneChanges(keep: 100)
        let changes = try store.changes(prefix: "", after: 0, limit: 10_000).changes
        #expect(changes.count == 100)
        #expect(changes.last?.revision == Int64((writes - 1) / 7 + 1))
    }

    /// A GET's JSON is kept with the cached entry and follows every write: a new value, an
    /// expiry, a delete.
    @Test func theJSONKeptWithAnEntryFollowsItsWrites() throws {
        defer { cleanUp() }
        func encoded(_ entry: ContextEntry?) -> [UInt8]? {
            guard let entry else { return nil }
            var writer = JSONWriter()
            entry.write(to: &writer)
            return writer.bytes
        }
        #expect(try store.getJSON(key: "k", now: 0) == nil)
        _ = try store.put(key: "k", value: "1", ttl: nil, fromNodeId: "n", maxEntries: 10, now: 0)
        let first = try store.getJSON(key: "k", now: 0)
        #expect(try first != nil && first == encoded(store.get(key: "k", now: 0)))
        #expect(try store.getJSON(key: "k", now: 0) == first)
        _ = try store.put(key: "k", value: "2", ttl: 1, fromNodeId: "n", maxEntries: 10, now: 0)
        let second = try store.getJSON(key: "k", now: 500)
        #expect(try second == encoded(store.get(key: "k", now: 500)))
        #expect(second.map { String(decoding: $0, as: UTF8.self).contains("\"value\":\"2\"") } == true)
        #expect(try store.getJSON(key: "k", now: 1000) == nil)
        _ = try store.put(key: "k", value: "3", ttl: nil, fromNodeId: "n", maxEntries: 10, now: 2000)
        #expect(try store.getJSON(key: "k", now: 2000) == encoded(store.get(key: "k", now: 2000)))
        #expect(try store.delete(key: "k", now: 2000))
        #expect(try store.getJSON(key: "k", now: 2000) == nil)
    }
}

@Suite struct ContextCacheCoherenceTests {
    @Test func readsSeeEveryCommittedWrite() throws {
        let (directory, migrations) = try scratch("loopsy-cache")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ContextStore(pool: try DatabasePool(path: directory + "/t.db", migrations: migrations))
        _ = try store.put(key: "k", value: "1", ttl: nil, fromNodeId: "n", maxEntries: 10, now: 0)
        #expect(try store.get(key: "k", now: 0)?.value == "1")  // now cached
        _ = try store.put(key: "k", value: "2", ttl: 1, fromNodeId: "n", maxEntries: 10, now: 0)
        #expect(try store.get(key: "k", now: 500)?.value == "2")
        #expect(try store.get(key: "k", now: 1000) == nil)  // the cached copy expires too
        _ = try store.put(key: "k", value: "3", ttl: nil, fromNodeId: "n", maxEntries: 10, now: 2000)
        #expect(try store.delete(key: "k", now: 2000))
        #expect(try store.get(key: "k", now: 2000) == nil)

        // Readers racing a writer never end up with an older value than the last write.
        func race(_ rounds: ClosedRange<Int>, read: @Sendable () -> Void) {
            DispatchQueue.concurrentPerform(iterations: 4) { worker in
                for round in rounds {
                    if worker == 0 {
                        _ = try? store.put(key: "race", value: String(round), ttl: nil, fromNodeId: "n", maxEntries: 10)
                    } else {
                        read()
                    }
                }
            }
        }
        race(1...200) { _ = try? store.get(key: "race") }
        #expect(try store.get(key: "race")?.value == "200")
        #expect(try store.get(key: "race")?.revision == 200)

        // Keys SQLite tells apart are told apart by the cache too, though Swift's String calls
        // them equal (canonically equivalent): each is answered with its own entry.
        let (composed, decomposed) = ("caf\u{e9}", "cafe\u{301}")
        _ = try store.put(key: composed, value: "nfc", ttl: nil, fromNodeId: "n", maxEntries: 10, now: 0)
        #expect(try store.get(key: composed, now: 0)?.value == "nfc")
        #expect(try store.get(key: decomposed, now: 0) == nil)
        #expect(try store.getJSON(key: decomposed, now: 0) == nil)
        _ = try store.put(key: decomposed, value: "nfd", ttl: nil, fromNodeId: "n", maxEntries: 10, now: 0)
        #expect(try store.get(key: decomposed, now: 0)?.value == "nfd")
        #expect(try store.get(key: composed, now: 0)?.value == "nfc")
        #expect(try store.getJSON(key: composed, now: 0).map { String(decoding: $0, as: UTF8.self).contains("\"nfc\"") } == true)

        // The same for the JSON a GET answers (kept with the cached entry).
        race(201...400) { _ = try? store.getJSON(key: "race") }
        let json = try store.getJSON(key: "race").map { String(decoding: $0, as: UTF8.self) } ?? ""
        #expect(json.contains("\"revision\":400") && json.contains("\"value\":\"400\""))
    }
}

@Suite struct ContextCacheWriteTests {
    /// A write keeps a cached key current and leaves an uncached key uncached: keys written
    /// once and never read took the cache's whole bound (32 MB at 100,000 new keys).
    @Test func aWriteUpdatesACachedKeyAndCachesNoOther() {
        func entry(_ key: String, _ value: String) -> ContextEntry {
            ContextEntry(key: key, value: value, fromNodeId: "n", createdAt: 0, updatedAt: 0, ttl: nil, expiresAt: nil, revision: 1)
        }
        let cache = ContextCache()
        cache.written("new", entry("new", "1"))
        #expect(cache.lookup("new", now: 0).entry == nil)
        cache.fill(entry("read", "1"), generation: cache.lookup("read", now: 0).generation)
        #expect(cache.lookup("read", now: 0).entry?.value == "1")
        cache.written("read", entry("read", "2"))
        #expect(cache.lookup("read", now: 0).entry?.value == "2")
        // A read that began before the write does not put its older value back.
        let before = cache.lookup("new", now: 0).generation
        cache.written("new", entry("new", "2"))
        cache.fill(entry("new", "1"), generation: before)
        #expect(cache.lookup("new", now: 0).entry == nil)
        cache.written("read", nil)
        #expect(cache.lookup("read", now: 0).entry == nil)
    }
}

@Suite struct ContextCacheBoundTests {
    /// The cache counts what an entry holds in memory (its strings and about 380 bytes more),
    /// not only its value: entries past the bound start it over, and never more are kept.
    @Test func holdsNoMoreThanItsBound() {
        func entry(_ index: Int) -> ContextEntry {
            ContextEntry(key: "key-\(100 + index)", value: "the plan is to ship on friday", fromNodeId: String(repeating: "a", count: 32),
                         createdAt: 0, updatedAt: 0, ttl: nil, expiresAt: nil, revision: 1)
        }
        #expect(ContextCache.cost(entry(1)) >= 2 * 7 + 29 + 32 + 380)
        let cache = ContextCache(maxBytes: 10 * ContextCache.cost(entry(1)))
        var most = 0
        for index in 1...25 {
            cache.fill(entry(index), generation: cache.lookup("none", now: 0).generation)
            let held = (1...index).filter { cache.lookup("key-\(100 + $0)", now: 0).entry != nil }.count
            most = max(most, held)
            #expect(cache.lookup("key-\(100 + index)", now: 0).entry == entry(index))
        }
        #expect(most == 10)

        // An entry's JSON counts too (its buffer and header): with it, fewer entries fit.
        let json = [UInt8](repeating: 0x20, count: ContextCache.cost(entry(1)))
        let perEntry = ContextCache.cost(entry(1)) + json.capacity + 32
        let withJSON = ContextCache(maxBytes: 10 * ContextCache.cost(entry(1)))
        most = 0
        for index in 1...25 {
            withJSON.fill(entry(index), json: json, generation: withJSON.lookup("none", now: 0).generation)
            let held = (1...index).filter { withJSON.lookupJSON("key-\(100 + $0)", now: 0).json == json }.count
            most = max(most, held)
        }
        #expect(most == 10 * ContextCache.cost(entry(1)) / perEntry)
        #expect(most == 4)
        // With its JSON kept, a key gives the JSON alone; without, the entry.
        let kept = withJSON.lookupJSON("key-125", now: 0)
        #expect(kept.json == json && kept.entry == nil)
        let plain = cache.lookupJSON("key-125", now: 0)
        #expect(plain.json == nil && plain.entry == entry(25))
        #expect(withJSON.lookupJSON("key-999", now: 0).json == nil && withJSON.lookupJSON("key-999", now: 0).entry == nil)
    }
}

@Suite struct ChangeLogMigrationTests {
    /// A scratch database with the migrations before `id` applied, every migration there is
    /// (`id` among them), and the directory to remove.
    private func migrated(before id: Int) throws -> (database: Database, all: [Migration], directory: String) {
        let (directory, all) = try scratch("loopsy-mig\(id)")
        #expect(all.contains { $0.id == id })
        let database = try Database(path: directory + "/t.db")
        try Migrator(migrations: all.filter { $0.id < id }).migrate(database)
        return (database, all, directory)
    }

    /// 0012 drops AUTOINCREMENT from the change log: every change keeps its number, nothing is
    /// left in sqlite_sequence for it, and numbering goes on after the newest change (a cursor
    /// a watcher holds stays meaningful).
    @Test func numbersAreKeptAndContinueAfterTheNewest() throws {
        let (directory, all) = try scratch("loopsy-mig")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(all.contains { $0.id == 12 })
        let database = try Database(path: directory + "/t.db")
        try Migrator(migrations: all.filter { $0.id <= 11 }).migrate(database)
        for index in 1...50 {
            try database.prepare("INSERT INTO context_changes (key, kind, revision, at) VALUES (?, 'put', 1, 0)")
                .run([.text("k\(index)")])
        }
        // Pruned from the oldest end, as the daemon does.
        try database.execute("DELETE FROM context_changes WHERE seq <= 20")
        let before = try database.prepare("SELECT seq, key FROM context_changes ORDER BY seq").rows { "\($0.int(0)):\($0.text(1))" }
        #expect(try Migrator(migrations: all).migrate(database).contains(12))
        let after = try database.prepare("SELECT seq, key FROM context_changes ORDER BY seq").rows { "\($0.int(0)):\($0.text(1))" }
        #expect(after == before && after.count == 30)
        #expect(try database.prepare("SELECT count(*) FROM sqlite_sequence WHERE name = 'context_changes'")
            .rows { $0.int(0) } == [0])
        try database.prepare("INSERT INTO context_changes (key, kind, revision, at) VALUES ('next', 'put', 1, 0)").run()
        #expect(try database.prepare("SELECT max(seq) FROM context_changes").rows { $0.int(0) } == [51])
        // 0012 put the key index back; 0015 drops it (a watch reads the log in seq order).
        #expect(try database.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'context_changes_key'")
            .rows { $0.int(0) } == [0])
    }
    /// 0014 drops AUTOINCREMENT from the audit log: rows keep their ids, sqlite_sequence
    /// forgets the table, and no number handed out before is handed out again. When the row
    /// with the last number handed out is gone (pruned, or the log emptied), a row takes the
    /// next number, so numbering goes on after it.
    @Test func auditIdsAreKeptAndContinueAfterTheLastHandedOut() throws {
        for deleted in ["id <= 10", "id <= 10 OR id = 30", "1"] {
            let (database, all, directory) = try migrated(before: 14)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let insert = """
                INSERT INTO audit (time, request_id, caller, method, path, status, duration_ms, remote)
                VALUES (?, ?, 'local', 'PUT', '/p', 200, 0.5, '127.0.0.1')
                """
            for index in 1...30 { try database.prepare(insert).run([.integer(Int64(index)), .text("r\(index)")]) }
            try database.execute("DELETE FROM audit WHERE " + deleted)
            let before = try database.prepare("SELECT id, request_id FROM audit ORDER BY id").rows { "\($0.int(0)):\($0.text(1))" }
            #expect(try Migrator(migrations: all.filter { $0.id <= 14 }).migrate(database) == [14])
            let after = try database.prepare("SELECT id, request_id FROM audit ORDER BY id").rows { "\($0.int(0)):\($0.text(1))" }
            let marked = before.last != "30:r30"
            #expect(after == (marked ? before + ["31:migration-0014"] : before))
            #expect(try database.prepare("SELECT count(*) FROM sqlite_sequence WHERE name = 'audit'").rows { $0.int(0) } == [0])
            try database.prepare(insert).run([.integer(99), .text("next")])
            // AUTOINCREMENT handed out 30 already: without the marker the next id would be the
            // newest left plus one (30 when only it was pruned, 1 in an emptied log).
            #expect(try database.prepare("SELECT id FROM audit WHERE request_id = 'next'").rows { $0.int(0) }
                == [marked ? 32 : 31])
            #expect(try database.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'audit_time'").rows { $0.int(0) } == [1])
        }
    }

    /// 0015 drops the change log's key index, which every context write updated and no read
    /// used: a watch's question (changes after a cursor, of keys in a prefix's range, oldest
    /// first) reads the log in seq order from the cursor, before and after, with the same answers.
    @Test func theChangeLogIsWrittenWithoutAKeyIndexAndReadInSeqOrder() throws {
        let (database, all, directory) = try migrated(before: 15)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let insert = "INSERT INTO context_changes (key, kind, revision, at) VALUES (?, 'put', 1, 0)"
        for index in 1...300 { try database.prepare(insert).run([.text("\(["a", "b", "c"][index % 3])/\(index)")]) }
        func indexWrites() throws -> Int { try database.prepare("EXPLAIN " + insert).rows { $0.text(1) }.filter { $0 == "IdxInsert" }.count }
        let watch = """
            SELECT ch.seq, ch.key, c.value FROM context_changes ch
            LEFT JOIN context c ON c.key = ch.key AND c.revision = ch.revision AND ch.kind = 'put'
            WHERE ch.seq > ? AND ch.key >= ? AND ch.key < ? ORDER BY ch.seq LIMIT ?
            """
        func plan() throws -> String {
            try database.prepare("EXPLAIN QUERY PLAN " + watch).rows { $0.text(3) }.joined(separator: "; ")
        }
        func answers() throws -> [[String]] {
            try [(290, "", "\u{10FFFF}", 100), (0, "b/", "b/\u{10FFFF}", 5), (250, "a/", "a/\u{10FFFF}", 100), (0, "z", "z\u{10FFFF}", 10)]
                .map { after, low, high, limit in
                    try database.prepare(watch).rows([.integer(Int64(after)), .text(low), .text(high), .integer(Int64(limit))]) {
                        "\($0.int(0)):\($0.text(1))"
                    }
                }
        }
        #expect(try indexWrites() == 1)
        let planBefore = try plan(), before = try answers()
        #expect(try Migrator(migrations: all.filter { $0.id <= 15 }).migrate(database) == [15])
        #expect(try indexWrites() == 0)
        let planAfter = try plan()
        #expect(planBefore == planAfter && planAfter.contains("INTEGER PRIMARY KEY (rowid>?)"), "\(planBefore) / \(planAfter)")
        #expect(!planAfter.contains("TEMP B-TREE"))
        #expect(try answers() == before)
        #expect(before[0] == (291...300).map { "\($0):\(["a", "b", "c"][$0 % 3])/\($0)" })
        #expect(before[1] == ["1:b/1", "4:b/4", "7:b/7", "10:b/10", "13:b/13"])
        #expect(before[3].isEmpty)
    }

    /// 0013 checks a change's kind with comparisons: the rows stay, the rule is the same, and
    /// an insert no longer builds a temporary b-tree for the IN list (what EXPLAIN shows).
    @Test func theKindCheckKeepsItsRuleWithoutATemporaryTable() throws {
        let (database, all, directory) = try migrated(before: 13)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let insert = "INSERT INTO context_changes (key, kind, revision, at) VALUES (?, ?, 1, 0)"
        func opcodes() throws -> [String] { try database.prepare("EXPLAIN " + insert).rows { $0.text(1) } }
        #expect(try opcodes().contains("OpenEphemeral"))
        for (index, kind) in ["put", "delete", "expire"].enumerated() {
            try database.prepare(insert).run([.text("k\(index)"), .text(kind)])
        }
        #expect(try Migrator(migrations: all.filter { $0.id <= 13 }).migrate(database) == [13])
        #expect(try !opcodes().contains("OpenEphemeral"))
        #expect(try database.prepare("SELECT seq, key, kind FROM context_changes ORDER BY seq")
            .rows { "\($0.int(0)):\($0.text(1)):\($0.text(2))" } == ["1:k0:put", "2:k1:delete", "3:k2:expire"])
        for kind in ["put", "delete", "expire"] { try database.prepare(insert).run([.text("ok"), .text(kind)]) }
        for kind in ["PUT", "", "removed"] {
            #expect(throws: DatabaseError.self) { try database.prepare(insert).run([.text("bad"), .text(kind)]) }
        }
        #expect(try database.prepare("SELECT count(*) FROM context_changes").rows { $0.int(0) } == [6])
        #expect(try database.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'context_changes_key'")
            .rows { $0.int(0) } == [1])
    }
}
