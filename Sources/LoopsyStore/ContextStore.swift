import LoopsyAPI

public enum ContextStoreError: Error, Equatable {
    /// Creating another key would pass the configured entry limit.
    case full(limit: Int)
    /// A compare-and-set found another revision (0: the key is absent); `current` is the entry now.
    case revisionMismatch(expected: Int64, current: ContextEntry?)
}

/// The `context` table: a key-value store whose entries may expire.
///
/// Expired rows are invisible to every read at once and removed later by `sweepExpired`.
public struct ContextStore: Sendable {
    private let pool: DatabasePool
    private let group: GroupCommit
    private let cache = ContextCache()
    /// Told the keys that changed, after each write commits (watches wait on it).
    public let changed = ChangeSignal()
    /// Changes kept in the log for watches.
    public static let keptChanges: Int64 = 100_000

    public init(pool: DatabasePool) {
        self.pool = pool
        group = GroupCommit(pool: pool)
    }

    /// Statements are built once: `Database.cached` keys its cache by the SQL text.
    private enum SQL {
        static let columns = "key, value, from_node_id, created_at, updated_at, ttl, expires_at, revision"
        static let live = "(expires_at IS NULL OR expires_at > ?)"
        static let fetch = "SELECT \(columns) FROM context WHERE key = ? AND \(live)"
        /// The row under a key, expired or not: a write then knows whether an expired row is
        /// there to be replaced without a second statement to find out.
        static let stored = "SELECT \(columns) FROM context WHERE key = ?"
        static let deleteKey = "DELETE FROM context WHERE key = ?"
        /// The message mirrors (`inbox:…`, `outbox:…`, written by the messaging service) are the
        /// node's own bookkeeping: they neither count against context.maxEntries nor show in
        /// listings unless asked for by prefix.
        static let notMirror = """
            NOT (key >= 'inbox:' AND key < 'inbox;') AND NOT (key >= 'outbox:' AND key < 'outbox;')
            """
        /// Rows that count against the limit, expired ones included (kept by triggers, 0010).
        static let entries = "SELECT entries FROM context_stats WHERE id = 1"
        /// Expired rows not yet swept that count against the limit (from the expires_at index).
        static let expiredEntries = """
            SELECT count(*) FROM context WHERE expires_at IS NOT NULL AND expires_at <= ? AND \(notMirror)
            """
        /// An update of an existing key, not a delete and insert, so the count triggers stay exact.
        static let upsert = """
            INSERT INTO context (\(columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (key) DO UPDATE SET value = excluded.value, from_node_id = excluded.from_node_id,
                created_at = excluded.created_at, updated_at = excluded.updated_at, ttl = excluded.ttl,
                expires_at = excluded.expires_at, revision = excluded.revision
            """
        static let list = """
            SELECT \(columns) FROM context
            WHERE key >= ? AND key < ? AND \(live) ORDER BY key LIMIT ?
            """
        static let listWithoutMirrors = """
            SELECT \(columns) FROM context
            WHERE key >= ? AND key < ? AND \(live) AND \(notMirror) ORDER BY key LIMIT ?
            """
        /// Up to ?2 expired rows, found by the expires_at index, oldest expiry first.
        static let sweepChunk = """
            DELETE FROM context WHERE key IN (
                SELECT key FROM context WHERE expires_at IS NOT NULL AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2)
            RETURNING key, revision
            """
        static let logChange = "INSERT INTO context_changes (key, kind, revision, at) VALUES (?, ?, ?, ?)"
        static let changes = """
            SELECT ch.seq, ch.key, ch.kind, ch.revision, ch.at, c.value FROM context_changes ch
            LEFT JOIN context c ON c.key = ch.key AND c.revision = ch.revision AND ch.kind = 'put'
                AND (c.expires_at IS NULL OR c.expires_at > ?)
            WHERE ch.seq > ? AND ch.key >= ? AND ch.key < ? ORDER BY ch.seq LIMIT ?
            """
        static let changesWithoutMirrors = """
            SELECT ch.seq, ch.key, ch.kind, ch.revision, ch.at, c.value FROM context_changes ch
            LEFT JOIN context c ON c.key = ch.key AND c.revision = ch.revision AND ch.kind = 'put'
                AND (c.expires_at IS NULL OR c.expires_at > ?)
            WHERE ch.seq > ? AND ch.key >= ? AND ch.key < ?
                AND NOT (ch.key >= 'inbox:' AND ch.key < 'inbox;') AND NOT (ch.key >= 'outbox:' AND ch.key < 'outbox;')
            ORDER BY ch.seq LIMIT ?
            """
        static let lastSeq = "SELECT coalesce(max(seq), 0) FROM context_changes"
        /// The oldest changes past the newest `?1`, at most `?2` of them (see `deleteInChunks`):
        /// a number of rows, not a range of numbers, which a gap would cut short.
        static let prune = """
            DELETE FROM context_changes WHERE seq IN (
                SELECT seq FROM context_changes WHERE seq <= (SELECT max(seq) FROM context_changes) - ? ORDER BY seq LIMIT ?)
            """
    }

    /// Creates or replaces `key`, bumping its revision; a new key is refused once `maxEntries`
    /// live entries exist (message mirrors are not counted, and never refused).
    /// With `ifRevision`, only when the key's live revision is that (0: only when absent).
    public func put(key: String, value: String, ttl: Int?, fromNodeId: String, maxEntries: Int,
                    ifRevision: Int64? = nil, now: Int64 = Clock.nowMillis()) throws -> ContextEntry {
        let written = try pool.write { db in
            let entry = try db.transaction {
                try Self.insert(db, key: key, value: value, ttl: ttl, fromNodeId: fromNodeId,
                                maxEntries: maxEntries, ifRevision: ifRevision, now: now)
            }
            // Still under the writer lock, so cache updates happen in commit order.
            cache.written(key, entry)
            return entry
        }
        changed.signal([key])
        return written
    }

    /// `put` without waiting: the write joins the next group commit (with the writes of other
    /// callers), and `done` gets its answer on the commit thread once the group is committed.
    /// The time of the write is taken when the group runs, so revisions and times stay in
    /// commit order.
    public func put(key: String, value: String, ttl: Int?, fromNodeId: String, maxEntries: Int,
                    ifRevision: Int64? = nil, done: @escaping @Sendable (Result<ContextEntry, any Error>) -> Void) {
        let cache = cache
        let changed = changed
        group.write(bytes: key.utf8.count + value.utf8.count, { db in
            try Self.insert(db, key: key, value: value, ttl: ttl, fromNodeId: fromNodeId, maxEntries: maxEntries,
                            ifRevision: ifRevision, now: Clock.nowMillis())
        }, committed: { entry in
            cache.written(key, entry)
        }, done: { result in
            if case .success = result { changed.signal([key]) }
            done(result)
        })
    }

    /// Refuses further `put(…, done:)` writes and waits for those queued to be committed and
    /// answered (a stopping daemon calls this while it still serves their connections).
    public func finishWrites(waitingUpTo seconds: Double = 10) { group.close(waitingUpTo: seconds) }

    /// Takes `put(…, done:)` writes again after `finishWrites`.
    public func reopenWrites() { group.reopen() }

    /// Writes one entry; the caller holds a transaction (or a savepoint in one).
    private static func insert(_ db: Database, key: String, value: String, ttl: Int?, fromNodeId: String,
                               maxEntries: Int, ifRevision: Int64?, now: Int64) throws -> ContextEntry {
        let stored = try db.cached(SQL.stored).rows([.text(key)], entry).first
        let existing = stored?.isLive(at: now) == true ? stored : nil
        if let ifRevision, ifRevision != (existing?.revision ?? 0) {
            throw ContextStoreError.revisionMismatch(expected: ifRevision, current: existing)
        }
        if existing == nil && !Self.isMirror(key) {
            // Checked before anything changes, so a write refused for room leaves nothing to
            // undo (see GroupCommit). An expired row under this key counts neither before its
            // delete (it is among the rows and among the expired ones) nor after.
            if try Self.liveEntries(db, atLeast: maxEntries, now: now) >= maxEntries {
                throw ContextStoreError.full(limit: maxEntries)
            }
            // The expired row is replaced below. (A new key, the usual case, has no row.)
            if stored != nil { try db.cached(SQL.deleteKey).run([.text(key)]) }
        }
        let entry = ContextEntry(
            key: key, value: value, fromNodeId: fromNodeId, createdAt: existing?.createdAt ?? now,
            updatedAt: now, ttl: ttl, expiresAt: ttl.map { now + Int64($0) * 1000 },
            revision: (existing?.revision ?? 0) + 1)
        try db.cached(SQL.upsert)
            .run([.text(entry.key), .text(entry.value), .text(entry.fromNodeId), .integer(entry.createdAt),
                  .integer(entry.updatedAt), .int(entry.ttl), .int(entry.expiresAt),
                  .integer(entry.revision)])
        try db.cached(SQL.logChange).run([.text(key), .text("put"), .integer(entry.revision), .integer(now)])
        return entry
    }

    public func get(key: String, now: Int64 = Clock.nowMillis()) throws -> ContextEntry? {
        let (cached, generation) = cache.lookup(key, now: now)
        if let cached { return cached }
        let entry = try pool.read { db in try Self.fetch(db, key: key, now: now) }
        if let entry { cache.fill(entry, generation: generation) }
        return entry
    }

    /// `get`, as the JSON `ContextEntry.write(to:)` writes (what a GET answers): kept with the
    /// cached entry, so a key read again is not encoded again.
    public func getJSON(key: String, now: Int64 = Clock.nowMillis()) throws -> [UInt8]? {
        let (json, cached, generation) = cache.lookupJSON(key, now: now)
        if let json { return json }
        let found = try cached ?? pool.read { db in try Self.fetch(db, key: key, now: now) }
        guard let entry = found else { return nil }
        var writer = JSONWriter()
        entry.write(to: &writer)
        // Kept only if no write came since the lookup (as `get` keeps what it read).
        cache.fill(entry, json: writer.bytes, generation: generation)
        return writer.bytes
    }

    /// Removes `key`; true if a live entry was there. With `ifRevision`, only when the live
    /// entry has that revision.
    public func delete(key: String, ifRevision: Int64? = nil, now: Int64 = Clock.nowMillis()) throws -> Bool {
        let existed = try pool.write { db in
            let existed = try db.transaction {
                let current = try Self.fetch(db, key: key, now: now)
                if let ifRevision, ifRevision != (current?.revision ?? 0) {
                    throw ContextStoreError.revisionMismatch(expected: ifRevision, current: current)
                }
                let existed = current != nil
                try db.cached(SQL.deleteKey).run([.text(key)])
                if let current {
                    try db.cached(SQL.logChange).run([.text(key), .text("delete"), .integer(current.revision),
                                                      .integer(now)])
                }
                return existed
            }
            cache.written(key, nil)
            return existed
        }
        if existed { changed.signal([key]) }
        return existed
    }

    /// The least string above every key that starts with `prefix` (byte-wise, as SQLite
    /// compares keys): the prefix without its trailing U+10FFFF, its last scalar one higher.
    /// `prefix + U+10FFFF` left out keys with U+10FFFF there. With nothing left (an empty
    /// prefix), one above every key a store can hold (at most `maxKeyBytes`).
    static func rangeEnd(_ prefix: String) -> String {
        var scalars = Array(prefix.unicodeScalars)
        while scalars.last?.value == 0x10FFFF { scalars.removeLast() }
        guard let last = scalars.popLast() else {
            return String(repeating: "\u{10FFFF}", count: ContextLimits.maxKeyBytes / 4 + 1)
        }
        // The scalar after U+D7FF is U+E000 (the surrogates are no scalars).
        let next = last.value == 0xD7FF ? 0xE000 : last.value + 1
        var end = String.UnicodeScalarView()
        end.append(contentsOf: scalars)
        if let scalar = Unicode.Scalar(next) { end.append(scalar) }
        return String(end)
    }

    /// Whether `key` is one of the message mirrors (`inbox:…`, `outbox:…`). Byte-wise, as the SQL
    /// that counts entries (`hasPrefix` compares characters: "inbox:" + U+0301 would not match
    /// there, and such keys would be neither reserved nor counted).
    public static func isMirror(_ key: String) -> Bool {
        key.utf8.starts(with: "inbox:".utf8) || key.utf8.starts(with: "outbox:".utf8)
    }

    /// Live entries whose key starts with `prefix`, in key order; without the message mirrors
    /// when `includeMirrors` is false.
    public func list(prefix: String = "", limit: Int = 10_000, includeMirrors: Bool = true,
                     now: Int64 = Clock.nowMillis()) throws -> [ContextEntry] {
        try page(prefix: prefix, limit: limit, includeMirrors: includeMirrors, now: now).entries
    }

    /// Live entries whose key starts with `prefix` and sorts after `afterKey` (byte-wise), in
    /// key order: at most `limit` of them, and past the first, no more than `maxBytes` of keys
    /// and values together (as stored). `more`: entries remain past the last one (continue with
    /// its key as `afterKey`). Without the message mirrors when `includeMirrors` is false.
    public func page(prefix: String = "", afterKey: String? = nil, limit: Int = 10_000, maxBytes: Int = .max,
                     includeMirrors: Bool = true,
                     now: Int64 = Clock.nowMillis()) throws -> (entries: [ContextEntry], more: Bool) {
        let sql = includeMirrors ? SQL.list : SQL.listWithoutMirrors
        // The range starts at the prefix, or just past `afterKey` when that sorts later:
        // `afterKey` + U+0000 is the least string above it, byte-wise, as SQLite compares keys.
        var start = prefix
        if let afterKey, prefix.utf8.lexicographicallyPrecedes(afterKey.utf8) { start = afterKey + "\u{0}" }
        return try pool.read { db in
            // A byte-wise range keeps the primary key index in use.
            let (entries, more) = try db.cached(sql).rows(
                [.text(start), .text(Self.rangeEnd(prefix)), .integer(now)],
                limit: limit, maxBytes: maxBytes, size: { Int($0.byteCount(0)) + Int($0.byteCount(1)) }, Self.entry)
            return (entries, more)
        }
    }

    /// Live entries that count against `context.maxEntries`.
    public func count(now: Int64 = Clock.nowMillis()) throws -> Int {
        try pool.read { db in try db.transaction(mode: .deferred) { try Self.liveEntries(db, now: now) } }
    }

    /// Live entries that count against the limit: the kept row count minus expired rows not yet
    /// swept. With `atLeast`, a count below it is returned without looking for expired rows
    /// (the common case when creating a key: one row read, however large the table).
    private static func liveEntries(_ db: Database, atLeast: Int = 0, now: Int64) throws -> Int {
        let entries = try db.cached(SQL.entries).rows([]) { $0.int(0) }.first ?? 0
        if entries < atLeast { return entries }
        let expired = try db.cached(SQL.expiredEntries).rows([.integer(now)]) { $0.int(0) }.first ?? 0
        return entries - expired
    }

    /// Rows a sweep deletes per transaction, with values of up to 1 MiB (the default
    /// `context.maxValueBytes`). Deleting a value reads its overflow pages: one transaction for
    /// every expired row held the writer's lock, which requests wait for on their worker
    /// threads, for as long as a peer could make it by letting gigabytes expire in the same ten
    /// seconds.
    public static let sweepChunk = 64

    /// Rows per transaction for values of up to `maxValueBytes`: about 64 MiB of them at most.
    public static func sweepChunk(forValuesUpTo maxValueBytes: Int) -> Int {
        DatabasePool.chunk(forRowsUpTo: maxValueBytes, atMost: sweepChunk)
    }

    /// Deletes expired rows, oldest expiry first, in transactions of `chunk` rows
    /// (`DatabasePool.inChunks`); each logs its rows' expiries in key order and tells watchers.
    /// Returns how many went.
    @discardableResult
    public func sweepExpired(now: Int64 = Clock.nowMillis(), chunk: Int = sweepChunk) throws -> Int {
        try pool.inChunks(of: chunk) { size in
            let keys = try pool.write { db -> [String] in
                try db.transaction {
                    let rows = try db.cached(SQL.sweepChunk).rows([.integer(now), .integer(Int64(size))]) {
                        (key: $0.text(0), revision: $0.int64(1))
                    }
                    // Bytewise, as keys are ordered everywhere else.
                    for row in rows.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
                        try db.cached(SQL.logChange).run([.text(row.key), .text("expire"), .integer(row.revision),
                                                          .integer(now)])
                        // Only the keys that went: hot keys stay cached through a long sweep.
                        cache.written(row.key, nil)
                    }
                    return rows.map(\.key)
                }
            }
            if !keys.isEmpty { changed.signal(keys) }
            return keys.count
        }
    }

    /// Changes after cursor `after` of keys starting with `prefix`, oldest first, and the cursor
    /// to continue from (the last change returned, or the newest change when none matched): at
    /// most `limit`, and past the first, no more than `maxBytes` of keys and values together.
    public func changes(prefix: String, after: Int64, limit: Int = 1000, maxBytes: Int = .max,
                        includeMirrors: Bool = true,
                        now: Int64 = Clock.nowMillis()) throws -> (changes: [ContextChange], cursor: Int64) {
        try pool.read { db in
            try db.transaction(mode: .deferred) {
                // Without the mirrors, they are left out by the query: hidden rows take no room
                // in a page (a page of them shows nothing and makes a watch wait it out).
                let (changes, more) = try db.cached(includeMirrors ? SQL.changes : SQL.changesWithoutMirrors).rows(
                    [.integer(now), .integer(after), .text(prefix), .text(Self.rangeEnd(prefix))],
                    limit: limit, maxBytes: maxBytes, size: { Int($0.byteCount(1)) + Int($0.byteCount(5)) }) {
                    ContextChange(seq: $0.int64(0), key: $0.text(1), kind: $0.text(2), revision: $0.int64(3),
                                  at: $0.int64(4), value: $0.isNull(5) ? nil : $0.text(5))
                }
                // Cut short (by `limit` or by bytes): the next read starts after the last one.
                if more, let last = changes.last { return (changes, last.seq) }
                let newest = try db.cached(SQL.lastSeq).rows([]) { $0.int64(0) }.first ?? 0
                return (changes, max(after, newest))
            }
        }
    }

    /// The newest change's cursor (0 before the first).
    public func lastChange() throws -> Int64 {
        try pool.read { db in try db.cached(SQL.lastSeq).rows([]) { $0.int64(0) }.first ?? 0 }
    }

    /// Keeps the newest `keptChanges` changes.
    public func pruneChanges(keep: Int64 = ContextStore.keptChanges) throws {
        _ = try pool.deleteInChunks(SQL.prune, [.integer(keep)])
    }

    private static func fetch(_ db: Database, key: String, now: Int64) throws -> ContextEntry? {
        try db.cached(SQL.fetch)
            .rows([.text(key), .integer(now)], entry).first
    }

    private static func entry(_ row: Statement) -> ContextEntry {
        ContextEntry(key: row.text(0), value: row.text(1), fromNodeId: row.text(2), createdAt: row.int64(3),
                     updatedAt: row.int64(4), ttl: row.optionalInt64(5).map { Int($0) },
                     expiresAt: row.optionalInt64(6), revision: row.int64(7))
    }
}

extension ContextEntry {
    /// Whether the entry is still there at `now` (epoch ms): it expires at its `expiresAt`, not
    /// a millisecond after, as `SQL.live` has it in the store's queries.
    func isLive(at now: Int64) -> Bool { expiresAt.map { $0 > now } ?? true }
}
