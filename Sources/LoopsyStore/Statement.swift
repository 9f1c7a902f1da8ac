import CSQLite

/// A prepared statement; finalized when released.
public final class Statement {
    private let handle: OpaquePointer
    private unowned let database: Database
    public let sql: String
    /// The statement's `?` parameters.
    private let parameterCount: Int

    init(database: Database, sql: String) throws {
        var pointer: OpaquePointer?
        let code = sqlite3_prepare_v3(database.handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &pointer, nil)
        guard code == SQLITE_OK, let pointer else {
            throw DatabaseError(resultCode: code, message: database.lastErrorMessage, sql: sql)
        }
        self.handle = pointer
        self.database = database
        self.sql = sql
        parameterCount = Int(sqlite3_bind_parameter_count(pointer))
    }

    deinit { sqlite3_finalize(handle) }

    /// Makes the statement ready to run again. Its parameters keep their values until `bind`
    /// replaces them: a pass over every parameter at each reset, clearing them for the next
    /// bind to set again, is saved (each bind frees the value it replaces either way).
    public func reset() {
        sqlite3_reset(handle)
    }

    /// Binds values to `?1…?n` in order; nil binds NULL, and so does every parameter past the
    /// last value given.
    @discardableResult
    public func bind(_ values: [DatabaseValue?]) throws -> Statement {
        if values.count < parameterCount { sqlite3_clear_bindings(handle) }
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let code: Int32
            switch value {
            case nil: code = sqlite3_bind_null(handle, index)
            case .integer(let number): code = sqlite3_bind_int64(handle, index, number)
            case .real(let number): code = sqlite3_bind_double(handle, index, number)
            case .text(var text):
                // By byte count, not up to a NUL: text holding U+0000 (a JSON "\u0000") is kept
                // whole. Through withCString it was cut at the NUL on disk while the answer and
                // the cache showed all of it.
                code = text.withUTF8 { bytes -> Int32 in
                    guard bytes.count <= Int(Int32.max) else { return SQLITE_TOOBIG }
                    guard let base = bytes.baseAddress, !bytes.isEmpty else {
                        return csqlite_bind_text_transient(handle, index, "", 0)
                    }
                    return base.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                        csqlite_bind_text_transient(handle, index, $0, Int32(bytes.count))
                    }
                }
            }
            try database.check(code, sql: sql)
        }
        return self
    }

    /// Advances to the next row; false when done.
    public func step() throws -> Bool {
        let code = sqlite3_step(handle)
        switch code {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = DatabaseError(resultCode: code, message: database.lastErrorMessage, sql: sql)
            sqlite3_reset(handle)
            throw error
        }
    }

    /// Runs a statement that returns no rows.
    public func run(_ values: [DatabaseValue?] = []) throws {
        try bind(values)
        while try step() {}
    }

    /// Maps every row.
    public func rows<T>(_ values: [DatabaseValue?] = [], _ map: (Statement) throws -> T) throws -> [T] {
        try bind(values)
        var result: [T] = []
        while try step() { result.append(try map(self)) }
        return result
    }

    /// Maps rows until there are `limit`, or until the next would take what `size` counts of
    /// the rows (their large text columns) past `maxBytes`; the first row always comes. So an
    /// answer listing stored rows stays bounded, whatever they hold. `more`: a row was left.
    /// The statement's last parameter is its LIMIT: `values` are the others, and it is bound
    /// here to one row more than `limit` (clamped to 0...Int32.max), to know whether any remain.
    public func rows<T>(_ values: [DatabaseValue?], limit: Int, maxBytes: Int, size: (Statement) -> Int,
                        _ map: (Statement) throws -> T) throws -> (rows: [T], more: Bool) {
        let limit = max(0, min(limit, Int(Int32.max)))
        try bind(values + [.integer(Int64(limit) + 1)])
        defer { reset() }
        var result: [T] = []
        var bytes = 0
        while try step() {
            let rowBytes = size(self)
            if result.count >= limit || (!result.isEmpty && rowBytes > maxBytes - bytes) { return (result, true) }
            bytes += rowBytes
            result.append(try map(self))
        }
        return (result, false)
    }

    public func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    public func int(_ column: Int32) -> Int { Int(sqlite3_column_int64(handle, column)) }
    public func double(_ column: Int32) -> Double { sqlite3_column_double(handle, column) }
    public func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
    public func optionalInt64(_ column: Int32) -> Int64? { isNull(column) ? nil : int64(column) }

    /// The length in bytes of a text or blob column of the current row.
    public func byteCount(_ column: Int32) -> Int32 { sqlite3_column_bytes(handle, column) }

    public func text(_ column: Int32) -> String {
        guard let pointer = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }
}

public enum DatabaseValue: Sendable, Equatable {
    case integer(Int64)
    case real(Double)
    case text(String)
}

extension DatabaseValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
}

extension Optional where Wrapped == DatabaseValue {
    public static func int(_ value: Int64?) -> DatabaseValue? { value.map { .integer($0) } }
    public static func int(_ value: Int?) -> DatabaseValue? { value.map { .integer(Int64($0)) } }
}
