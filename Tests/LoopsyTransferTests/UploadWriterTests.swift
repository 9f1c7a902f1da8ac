import Crypto
import Dispatch
import LoopsyPOSIX
import Synchronization
import Testing
@testable import LoopsyTransfer
#if canImport(Glibc)
import Glibc
#endif

/// The writer between a pushed body and its file, writing into a pipe that the test drains
/// when it chooses: a disk that stops, then catches up.
@Suite struct UploadWriterTests {
    /// Reads the pipe to its end on a thread of its own once `go` is signalled.
    final class Drain: @unchecked Sendable {
        let go = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        var bytes: [UInt8] = []

        init(_ fd: Int32) {
            DispatchQueue.global().async { [self] in
                go.wait()
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                while true {
                    let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if count < 0 && errno == EINTR { continue }
                    if count <= 0 { break }
                    bytes += buffer[..<count]
                }
                done.signal()
            }
        }
    }

    /// Past 8 MiB queued the upload takes no more, without waiting on the caller's thread (an
    /// HTTP worker); the room callback comes once the disk catches up, and every byte reaches
    /// the file in order with the right SHA-256.
    @Test func aFullQueueAsksTheCallerToHoldOffInsteadOfWaiting() throws {
        let pipe = try Descriptors.pipe()
        defer { close(pipe.read) }
        let drain = Drain(pipe.read)
        let writer = try #require(UploadWriter.start(fd: pipe.write))
        let piece = (0..<(64 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 >> 9) }
        var sent: [UInt8] = []
        // Nothing drains: the writer is stuck in its first write, and each submit returns at once.
        while sent.count <= UploadWriter.maxQueuedBytes + piece.count {
            try writer.submit(piece)
            sent += piece
        }
        let room = DispatchSemaphore(value: 0)
        #expect(writer.whenRoom { room.signal() })
        #expect(room.wait(timeout: .now() + 0.3) == .timedOut)
        drain.go.signal()
        #expect(room.wait(timeout: .now() + 10) == .success)
        // The pieces written meanwhile are kept to be filled again (not freed and faulted in
        // anew), more than `spareLimit` of them, within the upload's bound.
        let held = writer.held
        #expect(held.kept > UploadWriter.spareLimit * UploadWriter.pieceBytes)
        #expect(held.queued + held.kept <= UploadWriter.maxQueuedBytes)
        // With room again, the upload goes on until its end.
        try writer.submit(piece)
        sent += piece
        #expect(!writer.whenRoom { Issue.record("no room was asked for") })
        writer.end()
        let outcome = writer.finish()
        close(pipe.write)
        #expect(drain.done.wait(timeout: .now() + 10) == .success)
        #expect(drain.bytes == sent)
        #expect(outcome.error == nil)
        #expect(outcome.digest == SHA256.hash(data: sent).map { String($0, radix: 16).leftPadded }.joined())
        // Ended, it keeps nothing.
        #expect(writer.held.kept == 0)
    }

    /// Small pieces wait to be written together (less than `pieceBytes` until more comes),
    /// and the end of the upload writes what is left, in order.
    @Test func smallPiecesAreWrittenTogetherAndAllAtTheEnd() throws {
        let pipe = try Descriptors.pipe()
        defer { close(pipe.read) }
        let drain = Drain(pipe.read)
        drain.go.signal()
        let writer = try #require(UploadWriter.start(fd: pipe.write))
        var sent: [UInt8] = []
        for index in 0..<300 {
            let piece = [UInt8](repeating: UInt8(index % 251), count: 1000 + index)
            try writer.submit(piece)
            sent += piece
        }
        writer.end()
        let outcome = writer.finish()
        close(pipe.write)
        #expect(drain.done.wait(timeout: .now() + 10) == .success)
        #expect(drain.bytes == sent)
        #expect(outcome.digest == SHA256.hash(data: sent).map { String($0, radix: 16).leftPadded }.joined())
    }

    /// A sender that stalls with less than a piece queued does not keep it: the writer writes
    /// it once it has waited `linger`, without an end.
    @Test func aStalledUploadsBytesAreWrittenWithoutWaitingForMore() throws {
        let pipe = try Descriptors.pipe()
        defer { close(pipe.read) }
        let writer = try #require(UploadWriter.start(fd: pipe.write))
        let piece = [UInt8](repeating: 0x33, count: 1000)
        try writer.submit(piece)
        var ready = pollfd(fd: pipe.read, events: Int16(POLLIN), revents: 0)
        #expect(poll(&ready, 1, 10_000) == 1)
        var received = [UInt8](repeating: 0, count: 4096)
        let count = received.withUnsafeMutableBytes { read(pipe.read, $0.baseAddress, $0.count) }
        #expect(Array(received[..<max(count, 0)]) == piece)
        // And after that, still without an end, the next bytes go as they come.
        try writer.submit(piece)
        #expect(poll(&ready, 1, 10_000) == 1)
        writer.end()
        #expect(writer.finish().error == nil)
        close(pipe.write)
    }

    /// An upload that stops while it waits for room is let go of: the callback still comes.
    @Test func aCancelledUploadLetsItsWaitingCallerGo() throws {
        let pipe = try Descriptors.pipe()
        defer { close(pipe.read) }
        let drain = Drain(pipe.read)
        let writer = try #require(UploadWriter.start(fd: pipe.write))
        let piece = [UInt8](repeating: 0x5A, count: 1 << 20)
        for _ in 0...(UploadWriter.maxQueuedBytes >> 20) { try writer.submit(piece) }
        let room = DispatchSemaphore(value: 0)
        #expect(writer.whenRoom { room.signal() })
        // Cancelled while stuck in a write, the writer stops once the pipe drains, and lets
        // the waiting caller go then, with 9 MiB still queued.
        let cancelled = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            writer.abandon {}
            _ = writer.finish()
            cancelled.signal()
        }
        usleep(100_000)
        drain.go.signal()
        #expect(cancelled.wait(timeout: .now() + 10) == .success)
        #expect(room.wait(timeout: .now() + 10) == .success)
        #expect(writer.finish().digest == nil)
        #expect(throws: (any Error).self) { try writer.submit(piece) }
        close(pipe.write)
        #expect(drain.done.wait(timeout: .now() + 10) == .success)
    }

    /// An upload dropped while its writer is stuck in a write (a slow disk) does not wait for
    /// it: the clean-up (closing and removing the partial file) runs on the writer's thread
    /// once the write returns; dropped after the writer stopped, it runs at once.
    @Test func anAbandonedUploadIsCleanedUpByItsWriterWithoutWaiting() throws {
        let pipe = try Descriptors.pipe()
        defer { close(pipe.read) }
        let drain = Drain(pipe.read)
        let writer = try #require(UploadWriter.start(fd: pipe.write))
        try writer.submit([UInt8](repeating: 1, count: 1 << 20))  // more than the pipe holds
        // The writer is in its write once the pipe is full.
        var queued: Int32 = 0
        for _ in 0..<1000 where queued < 65_536 {
            usleep(5_000)
            _ = ioctl(pipe.read, UInt(FIONREAD), &queued)
        }
        #expect(queued >= 65_536)
        let cleaned = DispatchSemaphore(value: 0)
        let cleanedOn = PlainMutex<pthread_t?>(nil)
        writer.abandon { cleanedOn.withLock { $0 = pthread_self() }; cleaned.signal() }
        #expect(cleaned.wait(timeout: .now() + 0.3) == .timedOut)
        #expect(UploadWriter.cleanupsPending.load(ordering: .relaxed) >= 1)
        drain.go.signal()
        #expect(cleaned.wait(timeout: .now() + 10) == .success)
        #expect(cleanedOn.withLock { $0 }.map { pthread_equal($0, pthread_self()) == 0 } == true)
        #expect(writer.finish().digest == nil)
        let ranAtOnce = PlainMutex(false)
        writer.abandon { ranAtOnce.withLock { $0 = true } }
        #expect(ranAtOnce.withLock { $0 })
        close(pipe.write)
        #expect(drain.done.wait(timeout: .now() + 10) == .success)
    }

    /// Submits `piece` once the writer has room (as the HTTP server resumes a held-off upload).
    private func submitWhenRoom(_ writer: UploadWriter, _ piece: [UInt8]) throws {
        while true {
            let room = DispatchSemaphore(value: 0)
            if !writer.whenRoom({ room.signal() }) { break }
            #expect(room.wait(timeout: .now() + 30) == .success)
        }
        try writer.submit(piece)
    }

    /// A large upload's file is flushed to disk while it arrives (every `flushEvery` bytes, one
    /// flush at a time on another thread), so its last fsync has only the tail left; the bytes
    /// and the digest are those sent.
    @Test func aLargeUploadIsFlushedWhileItArrives() throws {
        let path = "/tmp/loopsy-flush-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        defer { close(fd); unlink(path) }
        let writer = try #require(UploadWriter.start(fd: fd))
        let piece = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        var hasher = SHA256()
        let total = Int(UploadWriter.flushEvery) * 3 + (1 << 20)
        var sent = 0
        while sent < total {
            try submitWhenRoom(writer, piece)
            hasher.update(data: piece)
            sent += piece.count
        }
        writer.end()
        let outcome = writer.finish()
        #expect(outcome.error == nil)
        #expect(outcome.digest == hasher.finalize().map { String($0, radix: 16).leftPadded }.joined())
        #expect(writer.flushesStarted >= 1)
        var info = stat()
        #expect(fstat(fd, &info) == 0 && Int(info.st_size) == total)
    }

    /// A flush that fails fails the upload: the kernel reports a write-back error once to the
    /// file's open description, which the flush shares, so the last fsync would not see it.
    /// (A pipe takes the writes and refuses fdatasync, with EINVAL.)
    @Test func aFlushThatFailsFailsTheUpload() throws {
        let pipe = try Descriptors.pipe()
        defer { close(pipe.read) }
        let drain = Drain(pipe.read)
        drain.go.signal()
        let piece = [UInt8](repeating: 7, count: 1 << 20)
        let writer = try #require(UploadWriter.start(fd: pipe.write))
        for _ in 0...(Int(UploadWriter.flushEvery) >> 20) {
            try submitWhenRoom(writer, piece)
        }
        // Until the flush has started: the end would take back one still queued.
        for _ in 0..<10_000 where writer.flushesStarted == 0 || writer.flushQueued { usleep(1_000) }
        #expect(!writer.flushQueued)
        writer.end()
        let outcome = writer.finish()
        close(pipe.write)
        #expect(drain.done.wait(timeout: .now() + 10) == .success)
        #expect(writer.flushesStarted >= 1)
        #expect(outcome.digest == nil)
        #expect(outcome.error?.message.contains("fsync failed") == true)
    }

    /// A flush still waiting in the pool's queue (the pool busy with other uploads' flushes on a
    /// slow disk) is taken back, not waited for: `finish` returns at once, and the flush, when
    /// the pool reaches it, does nothing. One that runs is waited for.
    @Test func aQueuedFlushIsTakenBackNotWaitedFor() throws {
        let pool = WorkPool(name: "flush-test", threads: 1, queueLimit: 4)
        let release = DispatchSemaphore(value: 0)
        let blocking = DispatchSemaphore(value: 0)
        #expect(pool.submit { blocking.signal(); release.wait() })
        #expect(blocking.wait(timeout: .now() + 10) == .success)
        let path = "/tmp/loopsy-flush-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        defer { close(fd); unlink(path) }
        let flush = BackgroundFlush(pool: pool)
        #expect(flush.start(fd))
        #expect(flush.isQueued)
        // One at a time per upload.
        #expect(!flush.start(fd))
        // On another thread, so a finish that waited for the queued flush fails the test
        // instead of hanging it (the flush cannot run before the release below).
        let finished = DispatchSemaphore(value: 0)
        let code = Mutex<Int32>(-1)
        DispatchQueue.global().async {
            code.withLock { $0 = flush.finish() }
            finished.signal()
        }
        #expect(finished.wait(timeout: .now() + 10) == .success)
        #expect(code.withLock { $0 } == 0)
        #expect(!flush.isQueued)
        release.signal()
        // The pool reaches the withdrawn flush, which does nothing; a new one runs and is waited for.
        for _ in 0..<10_000 where pool.load > 0 { usleep(1_000) }
        #expect(pool.load == 0)
        #expect(flush.start(fd))
        for _ in 0..<10_000 where flush.isQueued { usleep(1_000) }
        #expect(!flush.isQueued)
        #expect(flush.finish() == 0)
        #expect(flush.started == 2)
    }

    /// A flush's error is what `finish` reports (fdatasync on a pipe fails with EINVAL).
    @Test func aFlushsErrorIsWhatFinishReports() throws {
        let pool = WorkPool(name: "flush-test", threads: 1, queueLimit: 4)
        let pipe = try Descriptors.pipe()
        defer { close(pipe.read); close(pipe.write) }
        let flush = BackgroundFlush(pool: pool)
        #expect(flush.start(pipe.write))
        for _ in 0..<10_000 where flush.isQueued { usleep(1_000) }
        #expect(!flush.isQueued)
        #expect(flush.finish() == EINVAL)
        // The first error stays.
        #expect(flush.finish() == EINVAL)
    }
}

private extension String {
    var leftPadded: String { count == 1 ? "0" + self : self }
}
