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

    /// Whoever opens the database hears of the migrations about to run, before they run (the
    /// daemon asks systemd to wait longer), and of none when there are none.
    @Test func theMigrationsAboutToRunAreToldFirst() throws {
        defer { cleanUp() }
        let database = try Database(path: directory + "/t.db")
        var told: [[Int]] = []
        #expect(try Migrator(migrations: [first]).migrate(database, willApply: { pending in
            told.append(pending.map(\.id))
            // Before it runs: its table is not there yet.
            #expect(throws: (any Error).self) { try database.execute("INSERT INTO a VALUES (1)") }
        }) == [1])
        #expect(try Migrator(migrations: [first]).migrate(database, willApply: { told.append($0.map(\.id)) }) == [])
        #expect(try Migrator(migrations: [first, second]).migrate(database, willApply: { told.append($0.map(\.id)) }) == [2])
        #expect(told == [[1], [2]])
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

    /// An installed binary finds `../share/loopsy/migrations` from where it really lives, when
    /// it is run through a symlink elsewhere (the default, /proc/self/exe, is always the real
    /// binary); a directory that cannot be read says which.
    @Test func findsTheMigrationsBesideTheRealBinaryAndNamesAMissingDirectory() throws {
        defer { cleanUp() }
        let base = URL(fileURLWithPath: directory).resolvingSymlinksInPath().path
        try FileManager.default.createDirectory(atPath: base + "/prefix/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: base + "/prefix/share/loopsy/migrations", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: base + "/prefix/bin/loopsyd", contents: Data())
        try FileManager.default.createSymbolicLink(atPath: base + "/loopsyd", withDestinationPath: base + "/prefix/bin/loopsyd")
        #expect(try Migration.locateDirectory(environment: [:], executablePath: base + "/loopsyd")
            == base + "/prefix/share/loopsy/migrations")
        #expect(try Migration.locateDirectory(environment: ["LOOPSY_MIGRATIONS_DIR": base + "/prefix/bin"],
                                              executablePath: base + "/loopsyd") == base + "/prefix/bin")
        do {
            _ = try Migration.load(from: base + "/missing")
            Issue.record("loaded migrations from a missing directory")
        } catch {
            #expect("\(error)".contains("reading the migrations directory \(base)/missing: No such file or directory"))
        }
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

    /// 0009 rebuilds the message tables: rows, their states and the inbox's seq counter (a
    /// long-poll cursor must never see a number twice) survive it.
    @Test func messageTablesKeepTheirRowsAndSequenceAcrossTheApprovalsMigration() throws {
        defer { cleanUp() }
        let all = try Migration.load(from: try Migration.locateDirectory(environment: [:], executablePath: nil))
        let path = directory + "/m.db"
        do {
            let before = try DatabasePool(path: path, migrations: all.filter { $0.id < 9 })
            try before.write { db in
                for seq in 1...3 {
                    try db.prepare("""
                        INSERT INTO inbox (id, from_node, from_name, type, body, created_at, received_at, expires_at, state)
                        VALUES ('m\(seq)', 'n', 'peer', 'chat', 'b\(seq)', 1, 1, 9999999999999, 'unread')
                        """).run([])
                }
                try db.prepare("DELETE FROM inbox WHERE id = 'm3'").run([])
                try db.prepare("""
                    INSERT INTO outbox (id, to_node, to_name, type, body, created_at, expires_at, state, next_attempt_at)
                    VALUES ('o1', 'n', 'peer', 'request', 'x', 1, 9999999999999, 'queued', 1)
                    """).run([])
            }
        }
        let after = try DatabasePool(path: path, migrations: all)
        let (bodies, nextSeq, outbox) = try after.write { db -> ([String], Int64, Int) in
            try db.prepare("""
                INSERT INTO inbox (id, from_node, from_name, type, body, created_at, received_at, expires_at, state)
                VALUES ('a1', 'n', 'peer', 'approval', 'prompt', 1, 1, 9999999999999, 'unread')
                """).run([])
            let bodies = try db.prepare("SELECT body FROM inbox ORDER BY seq").rows { $0.text(0) }
            let seq = try db.prepare("SELECT seq FROM inbox WHERE id = 'a1'").rows { $0.int64(0) }.first ?? 0
            let outbox = try db.prepare("SELECT count(*) FROM outbox WHERE id = 'o1'").rows { $0.int(0) }.first ?? 0
            return (bodies, seq, outbox)
        }
        #expect(bodies == ["b1", "b2", "prompt"])
        #expect(nextSeq == 4, "the deleted seq 3 must not be handed out again")
        #expect(outbox == 1)
    }

    /// 0010 starts the kept context count from the rows already there (message mirrors left out).
    @Test func contextCountStartsFromExistingRows() throws {
        defer { cleanUp() }
        let all = try Migration.load(from: try Migration.locateDirectory(environment: [:], executablePath: nil))
        let path = directory + "/c.db"
        do {
            let before = try DatabasePool(path: path, migrations: all.filter { $0.id < 10 })
            try before.write { db in
                for key in ["a", "b", "inbox:x", "outbox:y", "inboxes"] {
                    try db.prepare("""
                        INSERT INTO context (key, value, from_node_id, created_at, updated_at, revision)
                        VALUES (?, 'v', 'n', 1, 1, 1)
                        """).run([.text(key)])
                }
            }
        }
        let store = ContextStore(pool: try DatabasePool(path: path, migrations: all))
        #expect(try store.count() == 3)
        _ = try store.put(key: "c", value: "v", ttl: nil, fromNodeId: "n", maxEntries: 10)
        #expect(try store.count() == 4)
    }
}
