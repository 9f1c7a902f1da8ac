import Foundation
import Testing
@testable import LoopsyStore

/// The WAL is copied back into the database file by a thread of its own, not by the commits,
/// and it stays bounded while writes never stop.
@Suite struct CheckpointerTests {
    private static func size(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
    }

    /// One write transaction of `rows` rows with values of `bytes` bytes (each row about a page).
    private static func write(_ pool: DatabasePool, from first: Int, rows: Int, bytes: Int) throws {
        let value = String(repeating: "v", count: bytes)
        try pool.write { database in
            try database.transaction {
                for index in first..<first + rows {
                    try database.cached("INSERT INTO context (key, value, from_node_id, created_at, updated_at, revision) VALUES (?, ?, 'n', 0, 0, 1)")
                        .run([.text("k\(index)"), .text(value)])
                }
            }
        }
    }

    @Test(.timeLimit(.minutes(1))) func checkpointsRunBesideTheWritesAndReachTheDatabaseFile() throws {
        let scratch = try ScratchDatabase("loopsy-ckpt")
        let path = scratch.directory + "/t.db"
        let before = Self.size(path)
        // About 6,000 frames (a 3,000-byte value takes an overflow page besides its row's):
        // past the 1,000 that ask for a checkpoint, far from the 16,000 at which a commit
        // would checkpoint itself. Only the thread can have copied them.
        for batch in 0..<300 { try Self.write(scratch.pool, from: batch * 10, rows: 10, bytes: 3_000) }
        // The rows reach the database file without another commit.
        let deadline = Date().addingTimeInterval(10)
        while Self.size(path) < before + 8_000_000 && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(Self.size(path) >= before + 8_000_000, "the database file is \(Self.size(path)) bytes")
        let count = try scratch.pool.read { try $0.cached("SELECT count(*) FROM context").rows([]) { $0.int(0) }.first }
        #expect(count == 3_000)
    }

    @Test(.timeLimit(.minutes(2))) func theWALStaysBoundedWhileWritesNeverStop() throws {
        let scratch = try ScratchDatabase("loopsy-ckpt")
        let wal = scratch.directory + "/t.db-wal"
        // Commits back to back: the thread's checkpoints never find the WAL idle, so SQLite
        // never starts it over by itself. About 70,000 frames, four times the bound.
        var largest = 0
        for batch in 0..<8_000 {
            try Self.write(scratch.pool, from: batch * 5, rows: 5, bytes: 3_000)
            if batch % 50 == 0 { largest = max(largest, Self.size(wal)) }
        }
        largest = max(largest, Self.size(wal))
        // 16,000 frames of a 4 KiB page and its 24-byte header, the last commit's few frames over.
        let bound = (Int(Checkpointer.hardFrames) + 100) * (4_096 + 24) + 32
        #expect(largest <= bound, "the WAL grew to \(largest) bytes")
        #expect(largest >= 4_000_000)
        let count = try scratch.pool.read { try $0.cached("SELECT count(*) FROM context").rows([]) { $0.int(0) }.first }
        #expect(count == 40_000)
    }

    /// The stop's TRUNCATE waits for a checkpoint of the thread's instead of failing at once
    /// (a checkpoint takes SQLite's checkpoint lock without a busy handler), and leaves an
    /// empty WAL: the database file alone holds everything.
    @Test(.timeLimit(.minutes(1))) func theStopCheckpointWaitsForTheThreadsAndEmptiesTheWAL() throws {
        let scratch = try ScratchDatabase("loopsy-ckpt")
        for round in 0..<10 {
            // About 2,000 frames: the thread is asked for a checkpoint, and runs it now.
            for batch in 0..<100 { try Self.write(scratch.pool, from: (round * 100 + batch) * 10, rows: 10, bytes: 3_000) }
            try scratch.pool.checkpoint()
            #expect(Self.size(scratch.directory + "/t.db-wal") == 0)
        }
        let count = try scratch.pool.read { try $0.cached("SELECT count(*) FROM context").rows([]) { $0.int(0) }.first }
        #expect(count == 10_000)
    }
}
