import LoopsyAPI

/// The `audit` table: a row per request (successful reads summarised, see `AuditEntry.count`),
/// bounded by age and count.
public struct AuditStore: Sendable {
    private let pool: DatabasePool

    public init(pool: DatabasePool) { self.pool = pool }

    /// Rows per transaction (`append`).
    static let rowsPerTransaction = 512

    /// Appends entries, in order (their ids are assigned here), at most `rowsPerTransaction` to
    /// a transaction: a large batch (a quarter second of writes at 12,000 a second, about 20,000
    /// instructions a row) does not hold the writer lock, and with it every context write, for
    /// tens of milliseconds at a time.
    public func append(_ entries: [AuditEntry]) throws {
        var start = entries.startIndex
        while start < entries.endIndex {
            let end = min(start + Self.rowsPerTransaction, entries.endIndex)
            try pool.write { db in
                try db.transaction {
                    // Rows go in `rowsPerInsert` to a statement (the last statement takes the
                    // rest): a statement's own work (opening the table and its index, ending)
                    // cost as much as a row's.
                    var values: [DatabaseValue?] = []
                    values.reserveCapacity(Self.rowsPerInsert * Self.columns)
                    var next = start
                    while next < end {
                        let count = min(Self.rowsPerInsert, end - next)
                        values.removeAll(keepingCapacity: true)
                        for entry in entries[next..<next + count] { Self.append(entry, to: &values) }
                        try db.cached(Self.inserts[count - 1]).run(values)
                        next += count
                    }
                }
            }
            start = end
        }
    }

    /// Rows per INSERT statement in `append`.
    static let rowsPerInsert = 16
    private static let columns = 9

    /// The INSERTs of 1 to `rowsPerInsert` rows; rows get ids in the order of their VALUES.
    private static let inserts = (1...rowsPerInsert).map { rows in
        "INSERT INTO audit (time, request_id, caller, method, path, status, duration_ms, remote, count) VALUES "
            + Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?, ?)", count: rows).joined(separator: ", ")
    }

    /// An entry's values, in the column order of `inserts`.
    private static func append(_ entry: AuditEntry, to values: inout [DatabaseValue?]) {
        values.append(.integer(entry.time))
        values.append(.text(entry.requestId))
        values.append(.text(entry.caller))
        values.append(.text(entry.method))
        values.append(.text(entry.path))
        values.append(.integer(Int64(entry.status)))
        values.append(.real(entry.durationMs))
        values.append(.text(entry.remote))
        values.append(.integer(Int64(max(1, entry.count))))
    }

    /// The newest `limit` entries with id greater than `afterId`, oldest first.
    public func recent(limit: Int, afterId: Int64 = 0) throws -> [AuditEntry] {
        try pool.read { db in
            try db.cached("""
                SELECT id, time, request_id, caller, method, path, status, duration_ms, remote, count FROM (
                    SELECT * FROM audit WHERE id > ? ORDER BY id DESC LIMIT ?) ORDER BY id
                """).rows([.integer(afterId), .integer(Int64(limit))]) { row in
                AuditEntry(id: row.int64(0), time: row.int64(1), requestId: row.text(2), caller: row.text(3),
                           method: row.text(4), path: row.text(5), status: row.int(6),
                           durationMs: row.double(7), remote: row.text(8), count: row.int(9))
            }
        }
    }

    /// Drops entries older than `olderThan` (epoch ms) and all but the newest `keep`.
    @discardableResult
    public func prune(olderThan: Int64, keep: Int) throws -> Int {
        // Oldest first, `DatabasePool.pruneChunk` rows to a transaction: at 12,000 writes a
        // second, the ten seconds of rows past the limit between two upkeeps went in one DELETE
        // that held the writer lock, and every context write, for about 190 ms here.
        // Each chunk is a number of rows, never a range of ids (ids have gaps: rows go in by time
        // and leave by age, and their times are not quite in id order). By time, the order the
        // `audit_time` index reads them in: no scan of the table when nothing is that old.
        // The newest row always stays, however old: ids are the newest plus one (0014), so a
        // cursor of `GET /audit?after=` is never handed out again.
        let byAge = try pool.deleteInChunks("""
            DELETE FROM audit WHERE id IN (
                SELECT id FROM audit WHERE time < ? AND id < (SELECT max(id) FROM audit) ORDER BY time LIMIT ?)
            """, [.integer(olderThan)])
        let byCount = try pool.deleteInChunks("""
            DELETE FROM audit WHERE id IN (
                SELECT id FROM audit WHERE id <= (SELECT max(id) FROM audit) - ? ORDER BY id LIMIT ?)
            """, [.integer(Int64(max(1, keep)))])
        return byAge + byCount
    }
}
