import FoundationEssentials
import LoopsyAPI

/// The `approvals` table: permission prompts of this node's Claude Code sessions. A row moves
/// once, from pending to allowed, denied or expired; the first answer wins.
public struct ApprovalStore: Sendable {
    private let pool: DatabasePool

    public init(pool: DatabasePool) { self.pool = pool }

    private static let columns = """
        id, request_id, tool_name, description, input_preview, state, sent_to, answered_by, created_at, expires_at,
        answered_at
        """

    private static func row(_ row: Statement) -> ApprovalInfo {
        ApprovalInfo(id: row.text(0), requestId: row.text(1), toolName: row.text(2), description: row.text(3),
                     inputPreview: row.text(4), state: ApprovalState(rawValue: row.text(5)),
                     sentTo: PeerStore.paths(row.text(6)) ?? [], answeredBy: row.isNull(7) ? nil : row.text(7),
                     createdAt: row.int64(8), expiresAt: row.int64(9), answeredAt: row.optionalInt64(10))
    }

    public func insert(_ approval: ApprovalInfo) throws {
        let sentTo = (try? JSONEncoder().encode(approval.sentTo)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
        try pool.write { db in
            try db.cached("""
                INSERT INTO approvals (\(Self.columns)) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, NULL)
                """).run([.text(approval.id), .text(approval.requestId), .text(approval.toolName),
                          .text(approval.description), .text(approval.inputPreview), .text(approval.state.rawValue),
                          .text(sentTo), .integer(approval.createdAt), .integer(approval.expiresAt)])
        }
    }

    /// The approval, with a pending one past its time turned expired first.
    public func get(_ id: String, now: Int64) throws -> ApprovalInfo? {
        try expire(now: now)
        return try pool.read { db in
            try db.cached("SELECT \(Self.columns) FROM approvals WHERE id = ?").rows([.text(id)], Self.row).first
        }
    }

    public func list(state: ApprovalState?, limit: Int, now: Int64) throws -> [ApprovalInfo] {
        try expire(now: now)
        return try pool.read { db in
            try db.cached("""
                SELECT \(Self.columns) FROM approvals WHERE (?1 IS NULL OR state = ?1) ORDER BY created_at DESC LIMIT ?2
                """).rows([state.map { .text($0.rawValue) }, .integer(Int64(limit))], Self.row)
        }
    }

    /// Answers a pending approval; nil when it was not pending any more (answered or expired).
    public func answer(_ id: String, state: ApprovalState, by caller: String, now: Int64) throws -> ApprovalInfo? {
        try expire(now: now)
        return try pool.write { db in
            try db.transaction {
                try db.cached("""
                    UPDATE approvals SET state = ?, answered_by = ?, answered_at = ? WHERE id = ? AND state = 'pending'
                    """).run([.text(state.rawValue), .text(caller), .integer(now), .text(id)])
                guard db.changes == 1 else { return nil }
                return try db.cached("SELECT \(Self.columns) FROM approvals WHERE id = ?").rows([.text(id)], Self.row).first
            }
        }
    }

    /// Pending approvals past their time become expired; returns how many.
    @discardableResult
    public func expire(now: Int64) throws -> Int {
        try pool.write { db in
            try db.cached("UPDATE approvals SET state = 'expired' WHERE state = 'pending' AND expires_at <= ?")
                .run([.integer(now)])
            return db.changes
        }
    }

    /// Answered and expired approvals older than `cutoff` go.
    public func prune(before cutoff: Int64) throws {
        try pool.write { db in
            try db.cached("DELETE FROM approvals WHERE state != 'pending' AND created_at < ?").run([.integer(cutoff)])
        }
    }

    public func pendingCount() throws -> Int {
        try pool.read { db in
            try db.cached("SELECT count(*) FROM approvals WHERE state = 'pending'").rows([]) { $0.int(0) }.first ?? 0
        }
    }
}
