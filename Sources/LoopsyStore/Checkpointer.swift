import CSQLite
import Dispatch
import LoopsyPOSIX

/// Copies the WAL back into the database file on a thread of its own, so that a commit does not
/// wait for it.
///
/// SQLite's own autocheckpoint runs in the connection that committed, once the WAL holds 1,000
/// frames: the commit thread then waited for two fdatasyncs (the WAL, then the database file),
/// about 14 ms here, about 11 times in every 2 s of steady writes, and every write queued
/// behind it waited too (context PUT p99 16-19 ms). Here the writer's commit only signals this
/// thread, which checkpoints PASSIVE on a connection of its own: it takes no lock a writer
/// needs, and readers go on.
///
/// What it cannot do alone is bound the WAL. SQLite starts the WAL over only when a write
/// begins with every frame already copied (and no reader on an older snapshot), and under
/// steady writes frames keep arriving while the checkpoint copies. So at `hardFrames` the
/// committing connection checkpoints itself, after the thread's checkpoint if one is running
/// (most pages are then copied already); no write can come meanwhile, so the next write starts
/// the WAL over unless a reader still holds an older snapshot, as with SQLite's own
/// checkpoints. The WAL then stays under about 63 MiB.
final class Checkpointer: Sendable {
    /// A checkpoint is asked for once this many frames wait to be copied (SQLite's default).
    static let softFrames: Int32 = 1_000
    /// The committing connection checkpoints itself once the WAL holds this many frames: 16,000
    /// of 4 KiB pages.
    static let hardFrames: Int32 = 16_000
    /// How long the thread waits for another request before it ends.
    private static let idle: DispatchTimeInterval = .seconds(2)

    private struct State {
        var requested = false
        var running = false
        /// The thread waits on `wake` (a request then signals it, once).
        var waiting = false
        /// Frames of the WAL the last checkpoint had copied (the WAL's frames count from its
        /// start over, so a smaller count than this means it started over).
        var copied: Int32 = 0
        /// The thread could not open or read the database, or found another file at its path:
        /// commits checkpoint inline from then on, as SQLite's autocheckpoint did.
        var unavailable = false
    }

    private let path: String
    /// The database file the writer opened: the thread opens the same one.
    private let file: FileStamp?
    private let state = PlainMutex(State())
    /// Held while anyone checkpoints: a commit at `hardFrames`, or the stop's TRUNCATE, waits
    /// for the thread's checkpoint to end instead of being refused at once (a checkpoint takes
    /// SQLite's checkpoint lock without a busy handler).
    private let checkpointing = PlainMutex(())
    private let wake = DispatchSemaphore(value: 0)

    init(path: String) {
        self.path = path
        file = FileStamp(path: path)
    }

    /// Makes `database` (the writer) hand its checkpoints to this checkpointer. The hook holds
    /// the checkpointer until `detach`.
    func attach(to database: Database) {
        let context = Unmanaged.passRetained(self).toOpaque()
        _ = sqlite3_wal_hook(database.handle, { context, handle, name, frames in
            guard let context, let handle else { return SQLITE_OK }
            Unmanaged<Checkpointer>.fromOpaque(context).takeUnretainedValue()
                .committed(handle, name: name, frames: frames)
            return SQLITE_OK
        }, context)
    }

    /// Takes the hook off `database` again (before it closes).
    func detach(from database: Database) {
        let previous = sqlite3_wal_hook(database.handle, nil, nil)
        if let previous { Unmanaged<Checkpointer>.fromOpaque(previous).release() }
    }

    /// After each commit of the writer, with the frames the WAL now holds.
    private func committed(_ handle: OpaquePointer, name: UnsafePointer<CChar>?, frames: Int32) {
        guard frames >= Self.softFrames else { return }
        let (copied, unavailable) = state.withLock { ($0.copied, $0.unavailable) }
        if frames >= Self.hardFrames || unavailable {
            // Every write waits meanwhile (this runs under the writer's lock).
            checkpoint(handle, name: name)
        } else if frames - (copied <= frames ? copied : 0) >= Self.softFrames {
            request(handle, name: name)
        }
    }

    /// Copies what it can of the WAL into the database file (PASSIVE: up to the oldest
    /// snapshot a reader still uses, waiting for no one but another checkpoint).
    private func checkpoint(_ handle: OpaquePointer, name: UnsafePointer<CChar>?) {
        var copied: Int32 = -1
        let code = checkpointing.withLock { _ in
            sqlite3_wal_checkpoint_v2(handle, name, SQLITE_CHECKPOINT_PASSIVE, nil, &copied)
        }
        if code == SQLITE_OK && copied >= 0 { state.withLock { $0.copied = copied } }
    }

    /// Runs `body` (the stop's TRUNCATE checkpoint) when no checkpoint is running, and keeps
    /// others from starting until it returns.
    func exclusively<T>(_ body: () throws -> T) rethrows -> T {
        try checkpointing.withLock { _ in try body() }
    }

    private func request(_ handle: OpaquePointer, name: UnsafePointer<CChar>?) {
        enum Next { case nothing, signal, start }
        let next = state.withLock { state -> Next in
            guard !state.requested else { return .nothing }
            state.requested = true
            guard state.running else {
                state.running = true
                return .start
            }
            guard state.waiting else { return .nothing }
            state.waiting = false
            return .signal
        }
        switch next {
        case .nothing: break
        case .signal: wake.signal()
        case .start:
            if !DedicatedThread.start("loopsy-ckpt", stackBytes: 512 << 10, { [self] in run() }) {
                // No thread to be had: this commit checkpoints, as SQLite's autocheckpoint would
                // (and the next one asks for a thread again).
                state.withLock { $0.running = false; $0.requested = false }
                checkpoint(handle, name: name)
            }
        }
    }

    private func run() {
        // Its own connection: the checkpoint takes no lock the writer needs. A connection finds
        // the WAL at its first read (until then sqlite3_wal_checkpoint_v2 does nothing and says
        // SQLITE_OK), so it reads once first. It opens the file the writer has (never creating
        // one, nor writing the old WAL's pages into a file put in its place).
        guard let database = try? Database(path: path, create: false),
              (try? database.execute("PRAGMA schema_version")) != nil, let file,
              FileStamp(path: path)?.isSameFile(as: file) == true else {
            state.withLock { $0 = State(unavailable: true) }
            return
        }
        while true {
            let proceed = state.withLock { state -> Bool in
                guard state.requested else {
                    state.waiting = true
                    return false
                }
                state.requested = false
                return true
            }
            if proceed {
                checkpoint(database.handle, name: nil)
                continue
            }
            if wake.wait(timeout: .now() + Self.idle) == .timedOut {
                let stop = state.withLock { state -> Bool in
                    state.waiting = false
                    if state.requested { return false }
                    state.running = false
                    return true
                }
                if stop { return }
            }
        }
    }
}
