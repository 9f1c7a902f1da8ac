import LoopsyAPI
#if canImport(Glibc)
import Glibc
#endif

/// The `ai_tasks` and `ai_task_events` tables. Events are numbered per task from 1, in the
/// order they happened; a stream resumes from any number.
public struct TaskStore: Sendable {
    private let pool: DatabasePool

    public init(pool: DatabasePool) { self.pool = pool }

    private static let columns = """
        id, state, prompt, cwd, caller, created_at, started_at, finished_at, exit_code, session_id, cost_usd, error,
        last_seq
        """

    private static func row(_ row: Statement) -> AITaskInfo {
        AITaskInfo(id: row.text(0), state: TaskState(rawValue: row.text(1)), prompt: row.text(2), cwd: row.text(3), caller: row.text(4),
                   createdAt: row.int64(5), startedAt: row.optionalInt64(6), finishedAt: row.optionalInt64(7),
                   exitCode: row.optionalInt64(8).map { Int($0) }, sessionId: row.isNull(9) ? nil : row.text(9),
                   costUsd: row.isNull(10) ? nil : row.double(10), error: row.isNull(11) ? nil : row.text(11),
                   lastEvent: row.int64(12), pendingApprovals: [])
    }

    public func create(id: String, caller: String, prompt: String, cwd: String, options: String, now: Int64) throws {
        try pool.write { db in
            try db.cached("""
                INSERT INTO ai_tasks (id, caller, prompt, cwd, options, state, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?)
                """).run([.text(id), .text(caller), .text(prompt), .text(cwd), .text(options), .integer(now)])
        }
    }

    public func get(_ id: String) throws -> AITaskInfo? {
        try pool.read { db in try db.cached("SELECT \(Self.columns) FROM ai_tasks WHERE id = ?").rows([.text(id)], Self.row).first }
    }

    /// Tasks, newest first (only `caller`'s when given): at most `limit`, and past the first,
    /// no more than `maxBytes` of prompts, directories, session ids and errors together. `more`: older ones
    /// were left out.
    public func list(limit: Int, caller: String? = nil, maxBytes: Int = .max) throws -> (tasks: [AITaskInfo], more: Bool) {
        try pool.read { db in
            let page = try db.cached("SELECT \(Self.columns) FROM ai_tasks WHERE ?1 IS NULL OR caller = ?1 ORDER BY created_at DESC LIMIT ?2")
                .rows([caller.map { .text($0) }], limit: limit, maxBytes: maxBytes,
                      size: { row in [2, 3, 9, 11].reduce(0) { $0 + Int(row.byteCount($1)) } }, Self.row)
            return (page.rows, page.more)
        }
    }

    /// Sets the state (and, when given, the other columns). A finished task stays finished.
    public func update(_ id: String, state: TaskState, startedAt: Int64? = nil, finishedAt: Int64? = nil,
                       exitCode: Int? = nil, error: String? = nil) throws {
        try pool.write { db in
            try db.cached("""
                UPDATE ai_tasks SET state = ?, started_at = coalesce(?, started_at), finished_at = coalesce(?, finished_at),
                    exit_code = coalesce(?, exit_code), error = coalesce(?, error)
                WHERE id = ? AND state NOT IN ('completed', 'failed', 'cancelled')
                """).run([.text(state.rawValue), .int(startedAt), .int(finishedAt), .int(exitCode), error.map { .text($0) },
                          .text(id)])
        }
    }

    /// Whether a task of `caller` ran in this session.
    public func hasSession(_ sessionId: String, caller: String) throws -> Bool {
        try pool.read { db in
            try db.cached("SELECT 1 FROM ai_tasks WHERE session_id = ? AND caller = ? LIMIT 1")
                .rows([.text(sessionId), .text(caller)]) { _ in true }.first ?? false
        }
    }

    public func recordResult(_ id: String, sessionId: String?, costUsd: Double?) throws {
        try pool.write { db in
            try db.cached("UPDATE ai_tasks SET session_id = coalesce(?, session_id), cost_usd = coalesce(?, cost_usd) WHERE id = ?")
                .run([sessionId.map { .text($0) }, costUsd.map { .real($0) }, .text(id)])
        }
    }

    /// Appends an event with the next number; returns it.
    public func append(_ id: String, type: String, data: String, now: Int64) throws -> AITaskEvent {
        try pool.write { db in
            try db.transaction {
                try db.cached("UPDATE ai_tasks SET last_seq = last_seq + 1 WHERE id = ?").run([.text(id)])
                let seq = try db.cached("SELECT last_seq FROM ai_tasks WHERE id = ?").rows([.text(id)]) { $0.int64(0) }.first ?? 0
                try db.cached("INSERT INTO ai_task_events (task_id, seq, time, type, data) VALUES (?, ?, ?, ?, ?)")
                    .run([.text(id), .integer(seq), .integer(now), .text(type), .text(data)])
                return AITaskEvent(seq: seq, time: now, type: type, data: data)
            }
        }
    }

    /// The task's events after `after`, in order: at most `limit` of them, and no more than
    /// `maxBytes` of event data unless the first alone is larger (a page always moves a reader
    /// on). `more`: events past the page remain. Events are up to a line of output each
    /// (megabytes): a page of many is read up to its byte budget, not in full.
    public func eventsPage(_ id: String, after: Int64, limit: Int,
                           maxBytes: Int = .max) throws -> (events: [AITaskEvent], more: Bool) {
        try pool.read { db in
            let (events, more) = try db.cached(
                "SELECT seq, time, type, data FROM ai_task_events WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?")
                .rows([.text(id), .integer(after)], limit: limit, maxBytes: maxBytes,
                      size: { Int($0.byteCount(2)) + Int($0.byteCount(3)) }) {
                    AITaskEvent(seq: $0.int64(0), time: $0.int64(1), type: $0.text(2), data: $0.text(3))
                }
            return (events, more)
        }
    }

    /// Deletes a task and its events. The events (up to `aiTasks.maxEventBytes`, 64 MiB) go
    /// first, `DatabasePool.pruneChunk` a transaction: in one, the writer's lock, which requests
    /// wait for on their worker threads, was held while all of them were read and freed.
    public func delete(_ id: String) throws {
        _ = try pool.deleteInChunks("""
            DELETE FROM ai_task_events WHERE task_id = ?1
                AND seq IN (SELECT seq FROM ai_task_events WHERE task_id = ?1 ORDER BY seq LIMIT ?2)
            """, [.text(id)])
        try pool.write { db in
            try db.cached("DELETE FROM ai_tasks WHERE id = ?").run([.text(id)])
        }
    }

    /// Tasks a previous daemon run left unfinished: they ended with it.
    @discardableResult
    public func failInterrupted(now: Int64) throws -> [String] {
        try pool.write { db in
            let ids = try db.cached("SELECT id FROM ai_tasks WHERE state NOT IN ('completed', 'failed', 'cancelled')")
                .rows([]) { $0.text(0) }
            try db.cached("""
                UPDATE ai_tasks SET state = 'failed', finished_at = ?, error = 'the daemon stopped while the task ran'
                WHERE state NOT IN ('completed', 'failed', 'cancelled')
                """).run([.integer(now)])
            return ids
        }
    }

    /// Keeps finished tasks for `retentionMillis` and at most `keep` of them (events go along),
    /// each deleted as `delete` does: one statement cascading to every pruned task's events held
    /// the writer's lock for up to 64 MiB of events a task.
    @discardableResult
    public func prune(now: Int64, retentionMillis: Int64, keep: Int) throws -> Int {
        let finished = try pool.read { db in
            try db.cached("""
                SELECT id FROM ai_tasks WHERE state IN ('completed', 'failed', 'cancelled') AND
                    (finished_at < ? OR id NOT IN (SELECT id FROM ai_tasks ORDER BY created_at DESC LIMIT ?))
                """).rows([.integer(now - retentionMillis), .integer(Int64(keep))]) { $0.text(0) }
        }
        // A finished task stays finished: those found are still to go. Between tasks, a pause:
        // the writer's lock is not fair (see `DatabasePool.inChunks`).
        for (index, id) in finished.enumerated() {
            if index > 0 { usleep(200) }
            try delete(id)
        }
        return finished.count
    }
}
