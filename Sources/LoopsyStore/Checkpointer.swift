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
/// begins with every frame already copied, and under steady writes frames keep arriving while
/// the checkpoint copies. So at `hardFrames` the committing connection checkpoints itself, as
/// the autocheckpoint did (most pages are then copied already), and the next write starts the
/// WAL over. The WAL stays under about 64 MiB (journal_size_limit cuts it back to that).
final class Checkpointer: Sendable {
    /// A checkpoint is asked for once a commit leaves this many frames (SQLite's default).
    static let softFrames: Int32 = 1_000
    /// The committing connection checkpoints itself at this many: 16,000 frames of 4 KiB pages.
    static let hardFrames: Int32 = 16_000
    /// How long the thread waits for another request before it ends.
    private static let idle: DispatchTimeInterval = .seconds(2)

    private struct State {
        var requested = false
        var running = false
        /// The thread could not open or read the database: commits checkpoint inline again.
        var unavailable = false
    }

    private let path: String
    private let state = PlainMutex(State())
    /// Held while either side checkpoints: a commit at `hardFrames` waits for the thread's
    /// checkpoint to end and then copies what is left, instead of being refused (PASSIVE does
    /// not wait) while the WAL grows on.
    private let checkpointing = PlainMutex(())
    private let wake = DispatchSemaphore(value: 0)

    init(path: String) { self.path = path }

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
        if frames >= Self.hardFrames || state.withLock({ $0.unavailable }) {
            // Every write waits meanwhile (this runs under the writer's lock), so once it is done
            // the next write starts the WAL over.
            checkpoint(handle, name: name)
        } else {
            request(handle, name: name)
        }
    }

    /// Copies what it can of the WAL into the database file (PASSIVE: up to the oldest
    /// snapshot a reader still uses, waiting for no one but the other side's checkpoint).
    private func checkpoint(_ handle: OpaquePointer, name: UnsafePointer<CChar>?) {
        checkpointing.withLock { _ in _ = sqlite3_wal_checkpoint_v2(handle, name, SQLITE_CHECKPOINT_PASSIVE, nil, nil) }
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
        // SQLITE_OK), so it reads once first. If it cannot, commits checkpoint inline from then
        // on, as SQLite's autocheckpoint did.
        guard let database = try? Database(path: path), (try? database.execute("PRAGMA schema_version")) != nil else {
            state.withLock { $0 = State(unavailable: true) }
            return
        }
        while true {
            let proceed = state.withLock { state -> Bool in
                defer { state.requested = false }
                return state.requested
            }
            if proceed {
                checkpoint(database.handle, name: nil)
                continue
            }
            if wake.wait(timeout: .now() + Self.idle) == .timedOut {
                let stop = state.withLock { state -> Bool in
                    if state.requested { return false }
                    state.running = false
                    return true
                }
                if stop { return }
            }
        }
    }
}
