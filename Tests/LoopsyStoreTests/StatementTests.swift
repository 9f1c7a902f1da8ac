import Foundation
import CSQLite
import Testing
@testable import LoopsyStore

@Suite struct StatementTests {
    /// A connection to a new database in a temporary directory, removed afterwards.
    static func withDatabase(_ body: (Database) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-st-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try body(try Database(path: directory + "/t.db"))
    }

    /// Text is bound by its byte count: U+0000 inside a value (JSON allows "\u0000") is stored
    /// and read back whole, and the empty string stays an empty string, not NULL.
    @Test func textWithNULAndEmptyTextRoundTrip() throws {
        try Self.withDatabase { database in
            try database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            let values = ["keep\u{0}this part too", "", "\u{0}", "é\u{0}✓\u{0}", String(repeating: "x", count: 100_000)]
            for (id, value) in values.enumerated() {
                try database.prepare("INSERT INTO t (id, v) VALUES (?1, ?2)").run([.integer(Int64(id)), .text(value)])
            }
            let stored = try database.prepare("SELECT v, v IS NULL, length(CAST(v AS BLOB)) FROM t ORDER BY id").rows([]) {
                ($0.text(0), $0.int64(1) != 0, $0.int64(2))
            }
            #expect(stored.map(\.0) == values)
            #expect(stored.map(\.1) == Array(repeating: false, count: values.count))
            #expect(stored.map(\.2) == values.map { Int64($0.utf8.count) })
            // A lookup by such a value finds it.
            let found = try database.prepare("SELECT id FROM t WHERE v = ?1").rows([.text("keep\u{0}this part too")]) {
                $0.int64(0)
            }
            #expect(found == [0])
        }
    }

    /// The statement cache hashes a few bytes of the SQL, not all: texts that share their length
    /// and both ends are still different statements, and the same text built anew (another
    /// string, another address) finds the statement prepared for the first.
    @Test func theStatementCacheTellsTextsApartByEveryByte() throws {
        try Self.withDatabase { database in
            try database.execute("CREATE TABLE t (a INTEGER, b INTEGER)")
            try database.execute("INSERT INTO t (a, b) VALUES (1, 2)")
            // The same length, first 8 and last 16 bytes: the same hash, told apart by bytes.
            let first = "SELECT 1 AS x, a FROM t WHERE 1 = 1 AND 2 = 2 -- the same ends"
            let second = "SELECT 1 AS x, b FROM t WHERE 1 = 1 AND 2 = 2 -- the same ends"
            #expect(first.utf8.count == second.utf8.count)
            #expect(try database.cached(first).rows([]) { $0.int(1) } == [1])
            #expect(try database.cached(second).rows([]) { $0.int(1) } == [2])
            let rebuilt = String(decoding: Array(first.utf8), as: UTF8.self)
            #expect(try database.cached(rebuilt) === database.cached(first))
            #expect(try database.cached(second) !== database.cached(first))
            // Short texts (under 16 bytes) are hashed whole.
            #expect(try database.cached("SELECT 1").rows([]) { $0.int(0) } == [1])
            #expect(try database.cached("SELECT 2").rows([]) { $0.int(0) } == [2])
        }
    }

    /// A cached statement keeps its parameters' values between runs (bind replaces them), but a
    /// run given fewer values than parameters binds NULL to the rest, not the last run's values.
    @Test func parametersNotGivenAreNullNotLeftFromTheLastRun() throws {
        try Self.withDatabase { database in
            try database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT)")
            let insert = "INSERT INTO t (id, a, b) VALUES (?, ?, ?)"
            try database.cached(insert).run([.integer(1), .text("one"), .text("first")])
            try database.cached(insert).run([.integer(2), .text("two")])
            try database.cached(insert).run([.integer(3), .text("three"), .text("third")])
            let rows = try database.cached("SELECT a, b IS NULL, coalesce(b, '') FROM t ORDER BY id").rows([]) {
                ($0.text(0), $0.int(1) == 1, $0.text(2))
            }
            #expect(rows.map(\.0) == ["one", "two", "three"])
            #expect(rows.map(\.1) == [false, true, false])
            #expect(rows.map(\.2) == ["first", "", "third"])
        }
    }

    /// The process-wide settings are made before SQLite initialises (after, sqlite3_config
    /// returns SQLITE_MISUSE: each connection would keep taking room for 20 pages up front, and
    /// every allocation would take the statistics' mutex).
    @Test func sqliteIsConfiguredBeforeTheFirstConnection() throws {
        try Self.withDatabase { database in
            try database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            try database.cached("INSERT INTO t (v) VALUES (?)").run([.text(String(repeating: "x", count: 10_000))])
            #expect(sqliteConfigured == 0)  // SQLITE_OK
            // Memory is not counted: SQLite reports none in use while a connection holds pages.
            #expect(sqlite3_memory_used() == 0)
        }
    }
}
