import CSQLite

/// A failed SQLite call: the result code, SQLite's message and the statement if there was one.
public struct DatabaseError: Error, CustomStringConvertible, Sendable {
    public var resultCode: Int32
    public var message: String
    public var sql: String?

    public init(resultCode: Int32, message: String, sql: String? = nil) {
        self.resultCode = resultCode
        self.message = message
        self.sql = sql
    }

    /// The primary result code (extended codes carry detail in the high bits).
    public var primaryCode: Int32 { resultCode & 0xFF }
    public var isDiskFull: Bool { primaryCode == SQLITE_FULL }

    public var description: String {
        "SQLite error \(resultCode): \(message)" + (sql.map { " (in: \($0.prefix(120)))" } ?? "")
    }
}

/// Migrations the running binary cannot apply or recognise.
public enum MigrationError: Error, CustomStringConvertible, Equatable {
    case directoryNotFound(searched: [String])
    case badFileName(String)
    case duplicateID(Int)
    case unknownApplied(id: Int, name: String)

    public var description: String {
        switch self {
        case .directoryNotFound(let searched):
            return "migrations not found (looked in \(searched.joined(separator: ", "))); "
                + "set LOOPSY_MIGRATIONS_DIR or reinstall loopsy"
        case .badFileName(let name):
            return "migration file '\(name)' is not named NNNN_name.sql"
        case .duplicateID(let id):
            return "two migration files share the number \(id)"
        case .unknownApplied(let id, let name):
            return "this database was written by a newer loopsy (migration \(id) '\(name)' is unknown "
                + "to this build); upgrade loopsy or point it at another data dir"
        }
    }
}
