import FoundationEssentials
import LoopsyAPI

/// The `jobs` table: finished executions, newest first, bounded by age and count.
public struct JobStore: Sendable {
    private let pool: DatabasePool

    public init(pool: DatabasePool) { self.pool = pool }

    public func record(_ info: JobInfo, result: ExecuteResult, finishedAt: Int64 = Clock.nowMillis()) throws {
        let args = String(decoding: try JSONEncoder().encode(info.args), as: UTF8.self)
        try pool.write { db in
            try db.cached("""
                INSERT OR REPLACE INTO jobs (id, caller, command, args, cwd, pid, streamed, started_at, finished_at,
                    exit_code, signal, timed_out, truncated, cancelled, duration_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).run([.text(info.jobId), .text(info.caller), .text(info.command), .text(args), .text(info.cwd),
                          .integer(Int64(info.pid)), .integer(info.streamed ? 1 : 0), .integer(info.startedAt),
                          .integer(finishedAt), .int(result.exitCode), result.signal.map { .text($0) },
                          .integer(result.timedOut ? 1 : 0), .integer(result.truncated ? 1 : 0),
                          .integer(result.cancelled ? 1 : 0), .real(result.durationMs)])
        }
    }

    /// Finished jobs, newest first (only `caller`'s when given): at most `limit`, and past the
    /// first, no more than `maxBytes` of commands and arguments together. `more`: older ones
    /// were left out.
    public func recent(limit: Int, caller: String? = nil, maxBytes: Int = .max) throws -> (rows: [JobInfo], more: Bool) {
        try pool.read { db in
            try db.cached("""
                SELECT id, caller, command, args, cwd, pid, streamed, started_at, finished_at, exit_code, signal,
                       timed_out, truncated, cancelled, duration_ms
                FROM jobs WHERE ?1 IS NULL OR caller = ?1 ORDER BY finished_at DESC LIMIT ?2
                """).rows([caller.map { .text($0) }], limit: limit, maxBytes: maxBytes,
                          size: { Int($0.byteCount(2)) + Int($0.byteCount(3)) + Int($0.byteCount(4)) }) { row in
                let args = (try? SafeJSON.decode([String].self, from: Data(row.text(3).utf8))) ?? []
                return JobInfo(jobId: row.text(0), command: row.text(2), args: args, cwd: row.text(4), pid: row.int(5),
                               startedAt: row.int64(7), caller: row.text(1), streamed: row.int(6) == 1,
                               state: .finished, finishedAt: row.int64(8),
                               exitCode: row.optionalInt64(9).map { Int($0) },
                               signal: row.isNull(10) ? nil : row.text(10), durationMs: row.double(14),
                               timedOut: row.int(11) == 1, truncated: row.int(12) == 1, cancelled: row.int(13) == 1)
            }
        }
    }

    @discardableResult
    public func prune(olderThan: Int64, keep: Int) throws -> Int {
        try pool.write { db in
            try db.cached("DELETE FROM jobs WHERE finished_at < ?").run([.integer(olderThan)])
            var removed = db.changes
            try db.cached("""
                DELETE FROM jobs WHERE id NOT IN (SELECT id FROM jobs ORDER BY finished_at DESC LIMIT ?)
                """).run([.integer(Int64(keep))])
            removed += db.changes
            return removed
        }
    }
}
