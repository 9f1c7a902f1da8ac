import CSQLite
import Dispatch
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// Writes from many callers committed together: one thread of its own takes every write that
/// is waiting, runs them in one transaction (one WAL commit for the group), and answers each
/// caller after the commit. A write that fails is undone alone: one that fails before it
/// changed anything needs no undoing; one that fails after makes the group start over with a
/// savepoint around each write (see `run`).
///
/// Callers never wait: `write` queues and returns, and the answer comes on the commit thread.
/// An HTTP worker that hands its write here and suspends its connection is free for the next
/// request, so the writes of all open connections meet in one commit instead of queueing on
/// the writer lock one transaction each. What waits is bounded by the callers: each HTTP
/// connection has at most one request, and so one write, in flight.
public final class GroupCommit: Sendable {
    /// One queued write: `run` runs it inside the group's transaction and says how it went;
    /// `fail` answers it if its group failed before it ran.
    private struct Job: Sendable {
        var run: @Sendable (Database) -> Ran
        var fail: @Sendable (any Error) -> Void
        /// Bytes it writes (roughly): a group ends at `maxGroupBytes`.
        var bytes: Int
    }

    /// What a job did: why it failed (nil: keep it), what to do once the group is committed
    /// (under the writer lock, in commit order), and how to answer its caller (with the group's
    /// error, if the group could not be committed).
    private struct Ran {
        var error: (any Error)?
        var committed: () -> Void
        var answer: (_ groupFailure: (any Error)?) -> Void
    }

    private enum Submitted { case start, wake, nothing, refuse }

    private struct State {
        var queue: [Job] = []
        var threadRunning = false
        /// The thread waits on `wake` (a write then signals it, once).
        var threadWaiting = false
        /// A group is being committed (taken from the queue, not yet answered).
        var committing = false
        /// `close` was called: writes are refused.
        var closed = false
    }

    /// Most writes in one transaction (a commit's WAL frames stay small)…
    public static let maxGroup = 256
    /// …and most bytes: 256 values of 1 MiB would hold the writer lock for one 256 MiB
    /// transaction (and grow the WAL to that). A write larger than this goes alone.
    public static let maxGroupBytes = 4 << 20
    /// How long the thread waits for more writes before it ends (the next write starts it again).
    private static let idle: DispatchTimeInterval = .seconds(2)

    private let pool: DatabasePool
    private let state = PlainMutex(State())
    private let wake = DispatchSemaphore(value: 0)

    public init(pool: DatabasePool) { self.pool = pool }

    /// Queues `body` to run in the next group's transaction. Once that commits, `committed` runs
    /// with its value under the writer lock (in commit order: caches are updated there), then
    /// `done` with the value, off the lock. If `body` throws, its changes are undone and `done`
    /// gets the error; if the group cannot be committed, every write of it gets that error.
    /// `bytes` is about what it writes (a value's size), so one group stays small.
    ///
    /// `body` may run twice (its group starts over when another write fails after changing
    /// rows), so it must do nothing outside the database: what the caller should see goes in
    /// `committed` and `done`, which run once. Whether a failing body changed rows is told by
    /// SQLite's count of changed rows, so its changes must be rows that statements run to their
    /// end insert, update or delete: no schema changes, no INSERT OR REPLACE (the rows that
    /// replaces are not counted), no statement left part-way (a RETURNING whose rows it stops
    /// reading).
    public func write<T: Sendable>(bytes: Int = 0, _ body: @escaping @Sendable (Database) throws -> T,
                                   committed: @escaping @Sendable (T) -> Void = { _ in },
                                   done: @escaping @Sendable (Result<T, any Error>) -> Void) {
        let job = Job(run: { database in
            do {
                let value = try body(database)
                return Ran(error: nil, committed: { committed(value) },
                           answer: { failure in done(failure.map { .failure($0) } ?? .success(value)) })
            } catch {
                // If the group fails, its error is the answer: this one may have come from
                // writes before it in the group that are now undone (a 412 showing a revision
                // that never was).
                return Ran(error: error, committed: {}, answer: { failure in done(.failure(failure ?? error)) })
            }
        }, fail: { error in done(.failure(error)) }, bytes: bytes)
        let next = state.withLock { state -> Submitted in
            if state.closed { return .refuse }
            state.queue.append(job)
            if !state.threadRunning {
                state.threadRunning = true
                return .start
            }
            // One signal ends the thread's wait (the flag goes, so no second write signals it).
            guard state.threadWaiting else { return .nothing }
            state.threadWaiting = false
            return .wake
        }
        switch next {
        case .start:
            if !DedicatedThread.start("loopsy-commit", stackBytes: 1 << 20, { [self] in run() }) {
                // No thread to be had: this caller's thread commits what is queued.
                run(once: true)
            }
        case .wake: wake.signal()
        case .nothing: break
        case .refuse: done(.failure(GroupCommitClosed()))
        }
    }

    /// Refuses new writes (they fail with `GroupCommitClosed`) and returns once every write
    /// queued before is committed and answered. A daemon that stops calls this before it stops
    /// serving, so no client is told "retry" for a write that was kept, nor "done" for one lost.
    /// After `seconds` (a slow disk, the writer lock held long) the writes not yet begun fail
    /// with `GroupCommitClosed` instead, and only the group being committed (at most `maxGroup`
    /// writes, `maxGroupBytes`) is waited for.
    public func close(waitingUpTo seconds: Double = 10) {
        state.withLock { $0.closed = true }
        if waitUntil(seconds, { $0.queue.isEmpty && !$0.committing }) { return }
        let refused = state.withLock { state -> [Job] in
            defer { state.queue.removeAll() }
            return state.queue
        }
        for job in refused { job.fail(GroupCommitClosed()) }
        _ = waitUntil(60, { !$0.committing })
    }

    /// Takes writes again after `close` (a daemon started again in the same process).
    public func reopen() { state.withLock { $0.closed = false } }

    /// Whether `condition` held within `seconds` (see `Clock.waitUntil`).
    private func waitUntil(_ seconds: Double, _ condition: (State) -> Bool) -> Bool {
        Clock.waitUntil(seconds) { state.withLock { condition($0) } }
    }

    private func run(once: Bool = false) {
        while true {
            // A group is what queued while the last one was committed: the thread never waits
            // for more. Waiting for as many writes as the last group had (up to 200 us) made
            // the writes of all open connections one group, committed while the clients and the
            // HTTP workers sat idle, then answered while the thread did; without the wait the
            // groups overlap with the round trips of the writes in flight (about 10% more writes
            // per second with 4 and 8 connections, in paired runs; see issue 24's notes).
            let group = state.withLock { state -> [Job] in
                var count = 0, bytes = 0
                while count < min(state.queue.count, Self.maxGroup),
                      count == 0 || bytes + state.queue[count].bytes <= Self.maxGroupBytes {
                    bytes += state.queue[count].bytes
                    count += 1
                }
                state.committing = count > 0
                defer { state.queue.removeFirst(count) }
                return Array(state.queue.prefix(count))
            }
            if !group.isEmpty {
                commit(group)
                state.withLock { $0.committing = false }
                continue
            }
            enum Next { case more, stop, wait }
            let next = state.withLock { state -> Next in
                if !state.queue.isEmpty { return .more }
                if once {
                    state.threadRunning = false
                    return .stop
                }
                state.threadWaiting = true
                return .wait
            }
            if next == .more { continue }
            if next == .stop { return }
            if wake.wait(timeout: .now() + Self.idle) == .success { continue }
            // Idle: end, unless a write came meanwhile. That write signalled (it found the thread
            // waiting): the signal is taken now, or the next wait would end early on it.
            let (end, signalled) = state.withLock { state -> (Bool, Bool) in
                let signalled = !state.threadWaiting
                state.threadWaiting = false
                guard state.queue.isEmpty else { return (false, signalled) }
                state.threadRunning = false
                return (true, signalled)
            }
            if signalled { wake.wait() }
            if end { return }
        }
    }

    private func commit(_ group: [Job]) {
        let (ran, failure) = pool.write { database in run(group, in: database) }
        for outcome in ran { outcome.answer(failure) }
        if let failure {
            // Those the failure came before: nothing of theirs is in the database.
            for job in group[ran.count...] { job.fail(failure) }
        }
    }

    /// Runs `group` in one transaction and, once it is committed, each kept write's `committed`;
    /// what each write did, and the group's failure if it could not be committed.
    ///
    /// Most writes succeed, and most that fail (a full store, a revision that moved on) find out
    /// before they change anything: the group first runs without a savepoint per write, which
    /// cost two statements a write and a copy of every page a write changed that an earlier one
    /// in the group had changed already. Only a write that fails after it changed rows needs one
    /// to be undone alone: then the transaction is rolled back and the group runs again, under
    /// the same hold of the writer, with a savepoint around each write (so at most twice).
    private func run(_ group: [Job], in database: Database) -> (ran: [Ran], failure: (any Error)?) {
        var savepoints = false
        attempt: while true {
            var ran: [Ran] = []
            ran.reserveCapacity(group.count)
            do {
                try database.run("BEGIN IMMEDIATE")
                for job in group {
                    if savepoints { try database.run("SAVEPOINT write") }
                    let changes = database.totalChanges
                    let outcome = job.run(database)
                    if let error = outcome.error {
                        // Some failures (a full disk, an I/O error) end the whole transaction:
                        // that is then the group's failure, with its own cause.
                        if database.isAutocommit { throw error }
                        if savepoints {
                            try database.run("ROLLBACK TO write")
                        } else if database.totalChanges != changes {
                            try database.run("ROLLBACK")
                            savepoints = true
                            continue attempt
                        }
                    }
                    ran.append(outcome)
                    if savepoints { try database.run("RELEASE write") }
                }
                try database.run("COMMIT")
            } catch {
                // Not a write's own failure (those are undone alone) but the group's: an I/O
                // error or a full disk took the transaction with it.
                if !database.isAutocommit { try? database.run("ROLLBACK") }
                return (ran, error)
            }
            for outcome in ran where outcome.error == nil { outcome.committed() }
            return (ran, nil)
        }
    }
}

/// A write after `GroupCommit.close`: the daemon is stopping.
public struct GroupCommitClosed: Error, Sendable {}
