import LoopsyAPI

extension Database {
    /// Reads the database at `path` without writing to it: integrity, and how far its schema
    /// is behind this build's migrations.
    public static func check(path: String) throws -> DatabaseCheck {
        let database = try Database(path: path, readOnly: true)
        let integrity = try database.prepare("PRAGMA integrity_check").rows([]) { $0.text(0) }
        let applied = try database.prepare("SELECT coalesce(max(id), 0) FROM schema_migrations").rows([]) { $0.int(0) }
        let available = (try? Migration.load(from: try Migration.locateDirectory()).map(\.id).max()) ?? 0
        return DatabaseCheck(integrity: integrity, applied: applied.first ?? 0, available: available)
    }
}
