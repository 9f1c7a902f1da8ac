import CSQLite
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// SQLite's process-wide settings, made once before the first connection opens (see
/// csqlite_configure). A failure only leaves SQLite's default in place.
let sqliteConfigured: Int32 = csqlite_configure()

/// One SQLite connection, opened NOMUTEX: it must be used by one thread at a time, which
/// `DatabasePool` guarantees by handing it out under a lock (hence `@unchecked Sendable`).
public final class Database: @unchecked Sendable {
    let handle: OpaquePointer
    private var statementCache: [StatementKey: Statement] = [:]

    /// `create`: a missing file is created (else opening it fails).
    public init(path: String, readOnly: Bool = false, create: Bool = true) throws {
        _ = sqliteConfigured
        var pointer: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0))
            | SQLITE_OPEN_NOMUTEX
        let code = sqlite3_open_v2(path, &pointer, flags, nil)
        guard code == SQLITE_OK, let pointer else {
            let message = pointer.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close_v2(pointer)
            throw DatabaseError(resultCode: code, message: "\(message): \(path)")
        }
        handle = pointer
        sqlite3_extended_result_codes(handle, 1)
        try execute("PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;")
    }

    deinit {
        statementCache.removeAll()
        sqlite3_close_v2(handle)
    }

    /// Runs one or more statements that return no rows.
    public func execute(_ sql: String) throws {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let code = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if code != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? lastErrorMessage
            sqlite3_free(errorMessage)
            throw DatabaseError(resultCode: code, message: message, sql: sql)
        }
    }

    /// Runs one statement that returns no rows, prepared once per connection: for the
    /// transaction control every write runs (BEGIN, SAVEPOINT, RELEASE, COMMIT), which
    /// `execute` would parse again each time.
    public func run(_ sql: String) throws {
        try cached(sql).run()
    }

    public func prepare(_ sql: String) throws -> Statement {
        try Statement(database: self, sql: sql)
    }

    /// A prepared statement kept for the life of the connection; reset before it is returned.
    public func cached(_ sql: String) throws -> Statement {
        let key = StatementKey(sql: sql)
        if let statement = statementCache[key] {
            statement.reset()
            return statement
        }
        let statement = try prepare(sql)
        statementCache[key] = statement
        return statement
    }

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT`, rolling back if it throws.
    /// `mode` DEFERRED gives a reader one consistent snapshot for several statements.
    /// How a transaction takes its locks (SQLite's BEGIN DEFERRED / IMMEDIATE / EXCLUSIVE).
    public enum TransactionMode: String, Sendable {
        /// Reads see one snapshot; the write lock is taken at the first write (readers use it).
        case deferred = "DEFERRED"
        /// The write lock now, so a read-then-write never fails halfway with SQLITE_BUSY.
        case immediate = "IMMEDIATE"
        case exclusive = "EXCLUSIVE"

        /// The statement that begins such a transaction (constant, so it is prepared once).
        var begin: String {
            switch self {
            case .deferred: "BEGIN DEFERRED"
            case .immediate: "BEGIN IMMEDIATE"
            case .exclusive: "BEGIN EXCLUSIVE"
            }
        }
    }

    public func transaction<T>(mode: TransactionMode = .immediate, _ body: () throws -> T) throws -> T {
        try run(mode.begin)
        do {
            let result = try body()
            try run("COMMIT")
            return result
        } catch {
            try? run("ROLLBACK")
            throw error
        }
    }

    public var changes: Int { Int(sqlite3_changes(handle)) }
    /// False while a transaction is open.
    public var isAutocommit: Bool { sqlite3_get_autocommit(handle) != 0 }
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
    /// Rows changed by every statement (triggers included) since the connection opened.
    public var totalChanges: Int64 { sqlite3_total_changes64(handle) }
    var lastErrorMessage: String { String(cString: sqlite3_errmsg(handle)) }

    func check(_ code: Int32, sql: String? = nil) throws {
        guard code == SQLITE_OK || code == SQLITE_ROW || code == SQLITE_DONE else {
            throw DatabaseError(resultCode: code, message: lastErrorMessage, sql: sql)
        }
    }
}

/// A statement cache key: the SQL text, hashed by its length and a few of its bytes rather than
/// all of them. Hashing the whole text (a few hundred bytes for an upsert) and comparing it was
/// about 2,000 instructions a lookup, five lookups for every context write; the texts come from
/// constants, so equal keys are usually the same string and compare by address at once. Keys
/// are equal when their bytes are (SQLite reads bytes, not canonically equivalent text).
struct StatementKey: Hashable {
    let sql: String

    static func == (left: StatementKey, right: StatementKey) -> Bool {
        left.withBytes { a in
            right.withBytes { b in
                guard a.count == b.count else { return false }
                guard a.count > 0, let x = a.baseAddress, let y = b.baseAddress, x != y else { return true }
                return memcmp(x, y, a.count) == 0
            }
        }
    }

    func hash(into hasher: inout Hasher) {
        withBytes { bytes in
            hasher.combine(bytes.count)
            // The first 8 and last 16 bytes (statements differ most at both ends: the verb and
            // table, the conditions), read a word at a time.
            guard bytes.count >= 16, let base = UnsafeRawPointer(bytes.baseAddress) else {
                for byte in bytes { hasher.combine(byte) }
                return
            }
            hasher.combine(base.loadUnaligned(as: UInt64.self))
            hasher.combine(base.loadUnaligned(fromByteOffset: bytes.count - 16, as: UInt64.self))
            hasher.combine(base.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self))
        }
    }

    /// The text's UTF-8 bytes (in place: a native string is contiguous).
    private func withBytes<T>(_ body: (UnsafeBufferPointer<UInt8>) -> T) -> T {
        if let result = sql.utf8.withContiguousStorageIfAvailable(body) { return result }
        return Array(sql.utf8).withUnsafeBufferPointer(body)
    }
}

/// The daemon's connections to one database file: a single writer, serialised, and a pool of
/// readers that WAL lets run beside it.
public final class DatabasePool: Sendable {
    public let path: String
    private let writer: PlainMutex<Database>
    private let readers = PlainMutex<[Database]>([])
    /// Takes the writer's checkpoints off its commits.
    private let checkpointer: Checkpointer

    /// Opens (creating if needed) the database in WAL mode and applies `migrations`.
    /// `willMigrate` hears of the migrations about to run (none: not called) before they do.
    public init(path: String, migrations: [Migration], willMigrate: ([Migration]) -> Void = { _ in }) throws {
        self.path = path
        let database = try Database(path: path)
        // The WAL is cut back to 64 MiB whenever it starts over (a large transaction, or a
        // long stretch of writes without a complete checkpoint, would otherwise leave it at
        // its largest for good).
        try database.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = 67108864;")
        // Migrations that ran leave every page they wrote in this connection's cache (about
        // 200 KiB for a new database), which nothing reads again soon: given back.
        if try !Migrator(migrations: migrations).migrate(database, willApply: willMigrate).isEmpty {
            sqlite3_db_release_memory(database.handle)
        }
        checkpointer = Checkpointer(path: path)
        checkpointer.attach(to: database)
        writer = PlainMutex(database)
    }

    deinit {
        writer.withLock { checkpointer.detach(from: $0) }
    }

    /// Runs `body` with exclusive use of the writer connection.
    public func write<T>(_ body: (Database) throws -> T) rethrows -> T {
        try writer.withLock { database in try body(database) }
    }

    /// Rows a bulk delete removes per transaction (`deleteInChunks`).
    public static let pruneChunk = 1_000

    /// Rows per transaction for rows of up to `maxRowBytes` (a value's, a body's configured
    /// limit): about 64 MiB of them, and never more than `rows`.
    public static func chunk(forRowsUpTo maxRowBytes: Int, atMost rows: Int = pruneChunk) -> Int {
        max(1, min(rows, (64 << 20) / max(1, maxRowBytes)))
    }

    /// Runs `step`, one chunk of a bulk change (at most the count it is given, at least 1, in
    /// a write of its own; it returns how many rows it changed), again and again until a step
    /// changes fewer: the writer lock, which every write waits for, is given up between chunks
    /// (a chunk holds it a few milliseconds). Returns the rows changed in all.
    public func inChunks(of chunk: Int, _ step: (Int) throws -> Int) rethrows -> Int {
        let chunk = max(1, chunk)
        var changed = 0
        while true {
            let count = try step(chunk)
            changed += count
            if count < chunk { return changed }
            // The lock is not fair: taken again at once, it went to this loop chunk after chunk
            // while the writes woken for it slept on (a 3 s round of context writes read a
            // 100-140 ms p99 with each upkeep). A pause lets a waiting write in first.
            usleep(200)
        }
    }

    /// Runs `sql`, a DELETE of at most `?N` rows whose last parameter is that N, with
    /// `parameters` and then the chunk's size, in `inChunks`. Returns the rows removed.
    public func deleteInChunks(_ sql: String, _ parameters: [DatabaseValue?], chunk: Int = pruneChunk) throws -> Int {
        try inChunks(of: chunk) { size in
            try write { database -> Int in
                try database.cached(sql).run(parameters + [.integer(Int64(size))])
                return database.changes
            }
        }
    }

    /// Copies the WAL into the database file and empties it. A stopping daemon calls this last:
    /// the file alone then holds everything (a copy of it is a backup), and the next start does
    /// not read back a WAL that grew over many runs (opening replays the whole WAL). It waits
    /// (up to the busy timeout) for readers still in a transaction, and throws if one kept it
    /// from finishing (SQLite reports that as success with a busy flag, not as an error).
    public func checkpoint() throws {
        try write { database in
            let code = checkpointer.exclusively {
                sqlite3_wal_checkpoint_v2(database.handle, nil, SQLITE_CHECKPOINT_TRUNCATE, nil, nil)
            }
            if code == SQLITE_BUSY {
                throw DatabaseError(resultCode: code, message: "a reader kept the WAL checkpoint from finishing")
            }
            try database.check(code)
        }
    }

    /// Runs `body` on a reader connection, opened on first need and reused afterwards.
    public func read<T>(_ body: (Database) throws -> T) throws -> T {
        let database = try readers.withLock { $0.popLast() } ?? Database(path: path)
        defer { readers.withLock { $0.append(database) } }
        return try body(database)
    }
}

