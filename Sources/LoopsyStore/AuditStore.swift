import LoopsyAPI

/// The `audit` table: a row per request (successful reads summarised, see `AuditEntry.count`),
/// bounded by age and count.
public struct AuditStore: Sendable {
    private let pool: DatabasePool

    public init(pool: DatabasePool) { self.pool = pool }

    /// Appends entries in one transaction (their ids are assigned here).
    public func append(_ entries: [AuditEntry]) throws {
        guard !entries.isEmpty else { return }
        try pool.write { db in
            try db.transaction {
                let insert = try db.cached("""
                    INSERT INTO audit (time, request_id, caller, method, path, status, duration_ms, remote, count)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                for entry in entries {
                    insert.reset()
                    try insert.run([.integer(entry.time), .text(entry.requestId), .text(entry.caller),
                                    .text(entry.method), .text(entry.path), .integer(Int64(entry.status)),
                                    .real(entry.durationMs), .text(entry.remote), .integer(Int64(max(1, entry.count)))])
                }
            }
        }
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
        try pool.write { db in
            try db.cached("DELETE FROM audit WHERE time < ?").run([.integer(olderThan)])
            var removed = db.changes
            try db.cached("DELETE FROM audit WHERE id <= (SELECT max(id) FROM audit) - ?")
                .run([.integer(Int64(keep))])
            removed += db.changes
            return removed
        }
    }
}
