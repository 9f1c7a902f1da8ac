import Crypto
import Dispatch
import LoopsyAPI
import LoopsyPOSIX
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Hashes and writes a pushed file's bytes on a thread of its own, so that receiving and
/// parsing the body (on the HTTP worker) overlap with hashing it and copying it into the page
/// cache: done on one thread, the three took a core between them and a push ran at one core's
/// speed.
///
/// At most `maxQueuedBytes` of an upload wait to be written, and `maxQueuedInAll` of all
/// uploads together (what senders can make the daemon hold is bounded however many push at
/// once), give or take the piece just queued. Past its upload's limit the upload takes no more
/// bytes (`whenRoom`; the HTTP server holds its connection suspended, no thread waits) until
/// half is written; past the limit of all, until its upload holds no more than before (so it
/// adds nothing).
///
/// Bytes are copied into pieces of `pieceBytes`, and the writer is woken once a piece's worth
/// waits (or the upload ends): the HTTP server hands on a body about 8 KiB at a time, and a
/// write, a lock round and a thread wake-up for each cost more CPU than hashing them. Less
/// than a piece waits at most `linger` for more, so a sender that stalls or trickles keeps
/// nothing queued for long. While an upload streams, written pieces are kept for reuse, so it
/// does not allocate and fault in fresh pages for every piece (with two kept, a push faulted
/// in 44,000 pages of 512 MiB: the writer behind, the queue filled to its bound and emptied
/// by half again and again, and what was freed went back to the system). An upload keeps
/// `spareLimit`, and more while its queued and kept bytes together stay within its bound
/// (`maxQueuedBytes`) and those of all uploads within theirs (`maxQueuedInAll`, which holds
/// uploads off on queued and kept bytes together): what senders can make the daemon hold stays
/// bounded. Kept pieces are let go once it stalls or ends.
final class UploadWriter: @unchecked Sendable {
    static let maxQueuedBytes = 8 << 20
    static let maxQueuedInAll = 64 << 20
    static let pieceBytes = 256 << 10
    static let spareLimit = 2
    static let linger = DispatchTimeInterval.milliseconds(50)
    fileprivate static let queuedInAll = Atomic<Int>(0)
    /// Bytes of all uploads' kept pieces (their capacity).
    static let keptInAll = Atomic<Int>(0)
    /// Abandoned uploads whose temporary file is not removed yet (see `abandon`).
    static let cleanupsPending = Atomic<Int>(0)
    /// Bytes written between two starts of write-out to disk (no waiting): the disk writes while
    /// more arrives, also when no flush can be queued (`flushEvery`; the flush pool full). It
    /// does not empty the disk's own cache, which only a flush or the last fsync does.
    static let writeBehind: Int64 = 8 << 20
    /// Bytes written between two starts of an fdatasync on another thread (`BackgroundFlush`).
    /// Write-out alone left the disk's own cache to be flushed at the end: on this project's VM
    /// the last fsync of a 512 MiB push took 0.3-0.5 s however early write-out had started, as
    /// long as dd's whole fsync. Flushed as it goes, it has a few MiB left.
    static let flushEvery: Int64 = 16 << 20

    /// What the writer did, once it has stopped.
    struct Outcome {
        var digest: String?
        var error: APIError?
    }

    fileprivate struct State {
        var items: [[UInt8]] = []
        var head = 0
        /// Written pieces, emptied, for `submit` to fill again (`takeKept`, `keep`, `letKeptGo`
        /// keep `spareBytes` and `keptInAll` with them), and their capacity.
        var spare: [[UInt8]] = []
        var spareBytes = 0
        var queuedBytes = 0
        var writerWaiting = false
        /// Less than a piece waited `linger` without more coming: the writer writes what is
        /// queued as it is, and any bytes wake it.
        var lingered = false
        /// Too much is queued: the upload takes more once `resumeAt` bytes or fewer are.
        var producerWaiting = false
        var resumeAt = 0
        /// Called once there is room again (`whenRoom`).
        var room: (@Sendable () -> Void)?
        /// Runs on the writer's thread once it has stopped using `fd` (`abandon`).
        var cleanup: (@Sendable () -> Void)?
        var ended = false
        var cancelled = false
        var error: APIError?
        var outcome: Outcome?
    }

    /// The file's descriptor: its owner closes it once `finish` returned, or hands that to `abandon`.
    private let fd: Int32
    private let state = PlainMutex(State())
    private let work = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    private let flush = BackgroundFlush()

    private init(fd: Int32) { self.fd = fd }

    /// A writer for `fd` with its thread running; nil when no thread can be had (the upload is
    /// then refused).
    static func start(fd: Int32) -> UploadWriter? {
        let writer = UploadWriter(fd: fd)
        return DedicatedThread.start("loopsy-upload", stackBytes: 256 << 10, { writer.run() }) ? writer : nil
    }

    /// Queues `bytes`, never waiting (see `whenRoom`). Throws the write error that stopped the
    /// writer, if one did (then nothing more is queued).
    func submit(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBufferPointer { try submit($0) }
    }

    /// Queues a copy of `bytes` (see `submit(_:)` above).
    func submit(_ bytes: UnsafeBufferPointer<UInt8>) throws {
        let wakeWriter = try state.withLock { state -> Bool in
            if let error = state.error { throw error }
            guard !state.ended, !state.cancelled else {
                throw APIError.serviceUnavailable("the upload was stopped; nothing was stored")
            }
            let before = state.queuedBytes
            // Into the last piece while the writer has not taken it and it has room.
            if state.head < state.items.count, state.items[state.items.count - 1].count + bytes.count <= Self.pieceBytes {
                state.items[state.items.count - 1].append(contentsOf: bytes)
            } else {
                var piece = state.takeKept() ?? []
                piece.reserveCapacity(max(Self.pieceBytes, bytes.count))
                piece.append(contentsOf: bytes)
                state.items.append(piece)
            }
            state.queuedBytes += bytes.count
            let inAll = Self.queuedInAll.add(bytes.count, ordering: .relaxed).newValue
            if state.queuedBytes > Self.maxQueuedBytes {
                state.producerWaiting = true
                state.resumeAt = Self.maxQueuedBytes / 2
            } else if inAll + Self.keptInAll.load(ordering: .relaxed) > Self.maxQueuedInAll {
                // Kept pieces count too: what all uploads hold stays within the bound.
                state.producerWaiting = true
                state.resumeAt = min(before, Self.maxQueuedBytes / 2)
            }
            // The writer waits for a piece's worth, or for an upload that is held off (`run`).
            let wakeWriter = state.writerWaiting
                && (state.queuedBytes >= Self.pieceBytes || state.producerWaiting || state.lingered)
            if wakeWriter { state.writerWaiting = false }
            return wakeWriter
        }
        if wakeWriter { work.signal() }
    }

    /// After `submit`: false when the upload may take more bytes now. Otherwise true, and
    /// `room` is called once, on the writer's thread, when it may: enough is written, or the
    /// writer stopped (an error, `abandon`, or every byte written).
    func whenRoom(_ room: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { state in
            guard state.producerWaiting, state.outcome == nil else { return false }
            state.room = room
            return true
        }
    }

    /// Bytes queued, and bytes of written pieces kept for reuse (tests look).
    var held: (queued: Int, kept: Int) { state.withLock { ($0.queuedBytes, $0.spareBytes) } }
    /// Flushes started while the upload was written (`BackgroundFlush`).
    var flushesStarted: Int { flush.started }
    /// Whether a flush waits in its pool's queue.
    var flushQueued: Bool { flush.isQueued }

    /// No more bytes come; `finish` waits for the writer to have written them.
    func end() { tellWriter { $0.ended = true } }

    /// After `end`: waits until every byte is written, then gives the digest or the error.
    func finish() -> Outcome {
        if let outcome = state.withLock({ $0.outcome }) { return outcome }
        done.wait()
        done.signal()  // a later call does not wait
        return state.withLock { $0.outcome } ?? Outcome(digest: nil, error: nil)
    }

    /// Stops the writer (what is queued is dropped) without waiting for the write it is in (a
    /// slow disk can hold one for long, and the caller may be an HTTP worker): `cleanup` runs
    /// on the writer's thread once it no longer uses `fd`, or here at once if it has stopped.
    func abandon(then cleanup: @escaping @Sendable () -> Void) {
        let (stopped, wakeWriter) = state.withLock { state -> (Bool, Bool) in
            if state.outcome != nil { return (true, false) }
            state.cancelled = true
            if state.cleanup == nil { Self.cleanupsPending.add(1, ordering: .relaxed) }
            state.cleanup = cleanup
            defer { state.writerWaiting = false }
            return (false, state.writerWaiting)
        }
        if stopped { cleanup() }
        if wakeWriter { work.signal() }
    }

    /// Changes the state and wakes the writer if it waits for something to change.
    private func tellWriter(_ change: (inout State) -> Void) {
        let wakeWriter = state.withLock { state -> Bool in
            change(&state)
            defer { state.writerWaiting = false }
            return state.writerWaiting
        }
        if wakeWriter { work.signal() }
    }

    private func run() {
        var hasher = SHA256()
        var written: Int64 = 0
        var writeOutStarted: Int64 = 0
        var flushStarted: Int64 = 0
        // Only this thread sets `state.error`: after one, the rest is dropped unwritten.
        var failed = false
        while true {
            enum Next { case bytes([UInt8]), stop, wait(lingered: Bool) }
            let next = state.withLock { state -> Next in
                if state.cancelled { return .stop }
                // Less than a piece's worth waits for more, unless no more comes (or none can
                // until some is written).
                if state.head < state.items.count,
                   state.queuedBytes >= Self.pieceBytes || state.ended || state.producerWaiting || state.lingered {
                    state.lingered = false
                    let bytes = state.items[state.head]
                    state.items[state.head] = []
                    state.head += 1
                    if state.head == state.items.count {
                        state.items.removeAll(keepingCapacity: true)
                        state.head = 0
                    } else if state.head > 256 && state.head * 2 > state.items.count {
                        // A queue that never empties (the disk behind) does not grow for good.
                        state.items.removeFirst(state.head)
                        state.head = 0
                    }
                    return .bytes(bytes)
                }
                if state.ended { return .stop }
                state.writerWaiting = true
                return .wait(lingered: state.lingered)
            }
            switch next {
            case .wait(let lingered):
                if lingered {
                    work.wait()
                } else if work.wait(timeout: .now() + Self.linger) == .timedOut {
                    // A signal sent meanwhile only makes the next wait return at once. The kept
                    // pieces are freed after the lock, which `submit` may be waiting for.
                    let kept = state.withLock { state in
                        state.writerWaiting = false
                        state.lingered = true
                        return state.letKeptGo()
                    }
                    withExtendedLifetime(kept) {}
                }
                continue
            case .stop:
                // A flush that fails takes its error with it (the file's description is shared,
                // and the kernel reports a write-back error once to it): the upload fails with
                // it rather than have the last fsync succeed. A cancelled one does not wait, and
                // takes back a flush not started.
                let cancelled = state.withLock { $0.cancelled }
                if cancelled { flush.withdraw() }
                let flushError = cancelled ? 0 : flush.finish()
                let (room, cleanup) = state.withLock { state in
                    if flushError != 0 && state.error == nil {
                        state.error = TransferService.diskError("fsync", flushError)
                    }
                    // What a cancel dropped leaves the count of all uploads.
                    let dropped = state.items[state.head...].reduce(0) { $0 + $1.count }
                    Self.queuedInAll.subtract(dropped, ordering: .relaxed)
                    state.items = []
                    _ = state.letKeptGo()
                    state.head = 0
                    state.queuedBytes = 0
                    state.outcome = Outcome(digest: state.cancelled || state.error != nil ? nil : Hex.encode(hasher.finalize()),
                                            error: state.error)
                    // An upload still waiting for room is let go (it is ended or cancelled, so
                    // whatever it sends next is refused).
                    state.producerWaiting = false
                    defer { state.room = nil; state.cleanup = nil }
                    return (state.room, state.cleanup)
                }
                room?()
                if let cleanup {
                    cleanup()
                    Self.cleanupsPending.subtract(1, ordering: .relaxed)
                }
                done.signal()
                return
            case .bytes(var bytes):
                var failure: APIError?
                if !failed {
                    hasher.update(data: bytes)
                    do {
                        try FileIO.writeAll(fd, bytes)
                        written += Int64(bytes.count)
                        if written - writeOutStarted >= Self.writeBehind {
                            FileSystem.startWriteBack(fd, offset: off_t(writeOutStarted), length: off_t(written - writeOutStarted))
                            writeOutStarted = written
                        }
                        if written - flushStarted >= Self.flushEvery, flush.start(fd) { flushStarted = written }
                    } catch {
                        failure = TransferService.diskError("write", error.code)
                        failed = true
                    }
                }
                let count = bytes.count
                bytes.removeAll(keepingCapacity: true)
                let room = state.withLock { state -> (@Sendable () -> Void)? in
                    if let failure { state.error = failure }
                    state.queuedBytes -= count
                    Self.queuedInAll.subtract(count, ordering: .relaxed)
                    if bytes.capacity <= Self.pieceBytes * 2 && !state.ended && state.mayKeep(bytes.capacity) {
                        state.keep(bytes)
                    }
                    guard state.producerWaiting, state.queuedBytes <= state.resumeAt || state.error != nil else {
                        return nil
                    }
                    state.producerWaiting = false
                    defer { state.room = nil }
                    return state.room
                }
                room?()
            }
        }
    }
}

extension UploadWriter.State {
    /// Whether a written piece of `capacity` bytes may be kept for reuse (see the type's notes).
    func mayKeep(_ capacity: Int) -> Bool {
        if spare.count < UploadWriter.spareLimit { return true }
        return queuedBytes + spareBytes + capacity <= UploadWriter.maxQueuedBytes
            && UploadWriter.queuedInAll.load(ordering: .relaxed) + UploadWriter.keptInAll.load(ordering: .relaxed)
                + capacity <= UploadWriter.maxQueuedInAll
    }

    mutating func keep(_ piece: [UInt8]) {
        spareBytes += piece.capacity
        UploadWriter.keptInAll.add(piece.capacity, ordering: .relaxed)
        spare.append(piece)
    }

    /// A kept piece to fill again, out of the counts.
    mutating func takeKept() -> [UInt8]? {
        guard let piece = spare.popLast() else { return nil }
        spareBytes -= piece.capacity
        UploadWriter.keptInAll.subtract(piece.capacity, ordering: .relaxed)
        return piece
    }

    /// Takes the kept pieces out of the counts and gives them to the caller to drop.
    mutating func letKeptGo() -> [[UInt8]] {
        UploadWriter.keptInAll.subtract(spareBytes, ordering: .relaxed)
        defer {
            spare = []
            spareBytes = 0
        }
        return spare
    }
}

/// An fdatasync of an upload's file on a thread of the shared `pool`, at most one at a time per
/// upload, so the disk flushes what has arrived while more arrives (see `UploadWriter.flushEvery`).
/// It runs on its own duplicate of the descriptor: the upload may close its own (stored or
/// abandoned) while a flush runs. The duplicate belongs to whoever takes it out of `state`: the
/// flush when it starts, or `withdraw` while it still waits in the pool's queue (then the flush
/// does nothing). When the pool is full no flush starts, which only leaves more to the last fsync.
final class BackgroundFlush: Sendable {
    static let pool = WorkPool(name: "loopsy-flush", threads: 2, queueLimit: 16)

    private struct State {
        /// The duplicate of a flush queued but not started.
        var queued: Int32?
        var running = false
        var started = 0
        /// The errno of the first flush that failed (0: none).
        var error: Int32 = 0
    }
    private let state = PlainMutex(State())
    /// Signalled as each flush ends.
    private let ended = DispatchSemaphore(value: 0)
    private let pool: WorkPool

    init(pool: WorkPool = BackgroundFlush.pool) { self.pool = pool }

    /// Queues a flush of `fd`'s file unless one is queued or running, or the pool is full;
    /// false when none was queued.
    func start(_ fd: Int32) -> Bool {
        guard pool.load < pool.threads + pool.queueLimit else { return false }
        let free = state.withLock { !$0.running && $0.queued == nil }
        guard free else { return false }
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { return false }
        state.withLock { state in
            state.queued = copy
            state.started += 1
        }
        let submitted = pool.submit { [self] in
            let taken = state.withLock { state -> Int32? in
                guard let copy = state.queued else { return nil }
                state.queued = nil
                state.running = true
                return copy
            }
            guard let taken else { return }
            let code = fdatasync(taken) == 0 ? 0 : errno
            close(taken)
            state.withLock { state in
                state.running = false
                if state.error == 0 { state.error = code }
            }
            ended.signal()
        }
        if !submitted {
            // Not queued, so nothing else can have taken it (still checked: whoever takes the
            // descriptor out of the state closes it, once).
            let mine = state.withLock { state -> Bool in
                guard state.queued == copy else { return false }
                state.queued = nil
                state.started -= 1
                return true
            }
            if mine { close(copy) }
        }
        return submitted
    }

    /// Takes back a flush that has not started (its file needs no flush any more: the upload
    /// was abandoned, or its last fsync comes next, which a flush only queued has not taken any
    /// write-back error from).
    func withdraw() {
        if let copy = state.withLock({ state -> Int32? in
            defer { state.queued = nil }
            return state.queued
        }) {
            close(copy)
        }
    }

    /// Withdraws a flush not started and waits for one running; the errno of the first that
    /// failed (0: none).
    func finish() -> Int32 {
        withdraw()
        while true {
            let (running, error) = state.withLock { ($0.running, $0.error) }
            if !running { return error }
            ended.wait()
        }
    }

    /// Flushes queued.
    var started: Int { state.withLock { $0.started } }
    /// Whether a flush waits in the pool's queue.
    var isQueued: Bool { state.withLock { $0.queued != nil } }
}
