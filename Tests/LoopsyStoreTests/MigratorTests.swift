import Foundation
import Testing
@testable import LoopsyStore

@Suite struct MigratorTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-store-\(UUID().uuidString)").path

    init() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: directory) }

    let first = Migration(id: 1, name: "one", sql: "CREATE TABLE a (x INTEGER);")
    let second = Migration(id: 2, name: "two", sql: "CREATE TABLE b (y TEXT);")

    @Test func appliesFromEmptyAndRecordsEachMigration() throws {
        defer { cleanUp() }
        let database = try Database(path: directory + "/t.db")
        let applied = try Migrator(migrations: [first, second]).migrate(database)
        #expect(applied == [1, 2])
        let recorded = try database.prepare("SELECT id, name FROM schema_migrations ORDER BY id").rows { "\($0.int(0)):\($0.text(1))" }
        #expect(recorded == ["1:one", "2:two"])
        try database.execute("INSERT INTO a VALUES (1); INSERT INTO b VALUES ('z');")
    }

    @Test func reRunAppliesNothingAndLaterMigrationsApplyAlone() throws {
        defer { cleanUp() }
        let database = try Database(path: directory + "/t.db")
        #expect(try Migrator(migrations: [first]).migrate(database) == [1])
        #expect(try Migrator(migrations: [first]).migrate(database) == [])
        #expect(try Migrator(migrations: [first, second]).migrate(database) == [2])
    }

    @Test func refusesDatabaseFromNewerBuild() throws {
        defer { cleanUp() }
        let database = try Database(path: directory + "/t.db")
        try Migrator(migrations: [first, second]).migrate(database)
        #expect(throws: MigrationError.unknownApplied(id: 2, name: "two")) {
            try Migrator(migrations: [first]).migrate(database)
        }
    }

    @Test func failedMigrationLeavesNoTraceAndNoRecord() throws {
        defer { cleanUp() }
        let database = try Database(path: directory + "/t.db")
        let broken = Migration(id: 2, name: "broken", sql: "CREATE TABLE c (z INTEGER); SELECT * FROM missing_table;")
        #expect(throws: DatabaseError.self) { try Migrator(migrations: [first, broken]).migrate(database) }
        let tables = try database.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").rows { $0.text(0) }
        #expect(tables == ["a", "schema_migrations"])
        #expect(try database.prepare("SELECT count(*) FROM schema_migrations").rows { $0.int(0) } == [1])
    }

    @Test func loadsFilesInOrderAndRejectsBadNames() throws {
        defer { cleanUp() }
        try "CREATE TABLE b (y);".write(toFile: directory + "/0002_second.sql", atomically: true, encoding: .utf8)
        try "CREATE TABLE a (x);".write(toFile: directory + "/0001_first.sql", atomically: true, encoding: .utf8)
        let loaded = try Migration.load(from: directory)
        #expect(loaded.map(\.id) == [1, 2])
        #expect(loaded.map(\.name) == ["first", "second"])
        try "".write(toFile: directory + "/2_bad.sql", atomically: true, encoding: .utf8)
        #expect(throws: MigrationError.badFileName("2_bad.sql")) { try Migration.load(from: directory) }
    }

    @Test func projectMigrationsApplyToAnEmptyDatabase() throws {
        defer { cleanUp() }
        let migrations = try Migration.load(from: try Migration.locateDirectory(environment: [:], executablePath: nil))
        #expect(migrations.first?.id == 1)
        let pool = try DatabasePool(path: directory + "/t.db", migrations: migrations)
        let tables = try pool.read { db in
            try db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").rows { $0.text(0) }
        }
        #expect(tables.contains("context"))
        #expect(tables.contains("audit"))
        let journal = try pool.read { db in try db.prepare("PRAGMA journal_mode").rows { $0.text(0) } }
        #expect(journal == ["wal"])
    }
}
