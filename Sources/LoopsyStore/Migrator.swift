import FoundationEssentials
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// One schema change: `migrations/NNNN_name.sql`, immutable once landed.
public struct Migration: Sendable, Equatable {
    public var id: Int
    public var name: String
    public var sql: String

    public init(id: Int, name: String, sql: String) {
        self.id = id
        self.name = name
        self.sql = sql
    }

    /// Reads every `NNNN_name.sql` in `directory`, sorted by number.
    public static func load(from directory: String) throws -> [Migration] {
        let files: [String]
        do {
            files = try Directory.entries(directory).map(\.name).filter { $0.hasSuffix(".sql") }
        } catch {
            throw SystemCallFailure("reading the migrations directory \(directory)", error)
        }
        var migrations: [Migration] = []
        for file in files {
            let stem = file.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"), let id = Int(stem[..<underscore]),
                  stem.distance(from: stem.startIndex, to: underscore) == 4 else {
                throw MigrationError.badFileName(file)
            }
            let sql: String
            do {
                sql = String(decoding: try FileIO.readAll(path: directory + "/" + file), as: UTF8.self)
            } catch {
                throw SystemCallFailure("reading the migration \(directory)/\(file) (\(error.call))", error.errno)
            }
            migrations.append(Migration(id: id, name: String(stem[stem.index(after: underscore)...]), sql: sql))
        }
        migrations.sort { $0.id < $1.id }
        for (first, second) in zip(migrations, migrations.dropFirst()) where first.id == second.id {
            throw MigrationError.duplicateID(first.id)
        }
        return migrations
    }

    /// Finds the migrations directory: $LOOPSY_MIGRATIONS_DIR, beside an installed binary
    /// (`../share/loopsy/migrations`), `/usr/share/loopsy/migrations`, then the source checkout
    /// this binary was built from.
    public static func locateDirectory(environment: [String: String] = ProcessInfo.processInfo.environment,
                                       executablePath: String? = "/proc/self/exe") throws -> String {
        var candidates: [String] = []
        if let explicit = environment["LOOPSY_MIGRATIONS_DIR"] { candidates.append(explicit) }
        // The binary's real directory (a symlink in /usr/local/bin leads to where it lives;
        // /proc/self/exe names it however it was started, by a bare name through PATH too).
        if let executable = executablePath, let resolved = realpath(executable, nil) {
            let path = String(cString: resolved)
            free(resolved)
            candidates.append(parent(of: parent(of: path)) + "/share/loopsy/migrations")
        }
        candidates.append("/usr/share/loopsy/migrations")
        candidates.append(parent(of: parent(of: parent(of: #filePath))) + "/migrations")
        for candidate in candidates where (try? Directory.entries(candidate)) != nil {
            return candidate
        }
        throw MigrationError.directoryNotFound(searched: candidates)
    }

    /// The path without its last component ("/a/b" → "/a", "/a" → "/").
    private static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}

/// Applies migrations in order, each in its own `BEGIN IMMEDIATE` transaction together with
/// its row in `schema_migrations`, and refuses databases written by a newer build.
public struct Migrator {
    public var migrations: [Migration]

    public init(migrations: [Migration]) { self.migrations = migrations }

    /// Applies the migrations not applied yet, in order; returns their ids. `willApply` hears
    /// of them first (only when there are any): an index built over a large table can take
    /// minutes on a slow disk, longer than a service manager waits for a start.
    @discardableResult
    public func migrate(_ database: Database, willApply: ([Migration]) -> Void = { _ in }) throws -> [Int] {
        try database.execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                id INTEGER PRIMARY KEY NOT NULL, name TEXT NOT NULL, applied_at INTEGER NOT NULL)
            """)
        let applied = try database.prepare("SELECT id, name FROM schema_migrations ORDER BY id")
            .rows { (id: $0.int(0), name: $0.text(1)) }
        let known = Set(migrations.map(\.id))
        if let unknown = applied.first(where: { !known.contains($0.id) }) {
            throw MigrationError.unknownApplied(id: unknown.id, name: unknown.name)
        }
        let done = Set(applied.map(\.id))
        let pending = migrations.filter { !done.contains($0.id) }
        if !pending.isEmpty { willApply(pending) }
        var newlyApplied: [Int] = []
        for migration in pending {
            try database.transaction {
                try database.execute(migration.sql)
                try database.prepare("INSERT INTO schema_migrations (id, name, applied_at) VALUES (?, ?, ?)")
                    .run([.integer(Int64(migration.id)), .text(migration.name), .integer(Clock.nowMillis())])
            }
            newlyApplied.append(migration.id)
        }
        return newlyApplied
    }
}
