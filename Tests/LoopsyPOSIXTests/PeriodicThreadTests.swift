import Dispatch
import LoopsyPOSIX
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct PeriodicThreadTests {
    /// Passes come every interval, on a thread that is not one of the shared dispatch pool's
    /// (named as asked); `stop` waits for the pass under way and no pass comes after it.
    @Test func passesComeOnTheirOwnThreadAndEndWithStop() throws {
        let passes = Atomic<Int>(0)
        let inPass = Atomic<Bool>(false)
        let names = PlainMutex<Set<String>>([])
        let thread = PeriodicThread.start("loopsy-test", every: .milliseconds(20)) {
            names.withLock { _ = $0.insert(PeriodicThreadTests.threadName()) }
            inPass.store(true, ordering: .sequentiallyConsistent)
            usleep(30_000)  // a pass longer than the interval: the next waits for it
            inPass.store(false, ordering: .sequentiallyConsistent)
            passes.add(1, ordering: .sequentiallyConsistent)
            return true
        }
        let deadline = DispatchTime.now() + 10
        while passes.load(ordering: .sequentiallyConsistent) < 3 && DispatchTime.now() < deadline { usleep(5_000) }
        #expect(passes.load(ordering: .sequentiallyConsistent) >= 3)
        thread.stop()
        // The pass that was running when stop was called has finished.
        let stillInPass = inPass.load(ordering: .sequentiallyConsistent)
        #expect(!stillInPass)
        let after = passes.load(ordering: .sequentiallyConsistent)
        usleep(100_000)
        #expect(passes.load(ordering: .sequentiallyConsistent) == after)
        #expect(names.withLock { $0 } == ["loopsy-test"])
    }

    /// The calling thread's name, as the kernel keeps it.
    static func threadName() -> String {
        let fd = open("/proc/thread-self/comm", O_RDONLY)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 64)
        let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        return String(decoding: bytes[..<max(0, count)], as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
    }

    /// A thread stopped before its first interval ends runs no pass at all.
    @Test func stoppedBeforeTheFirstIntervalItRunsNothing() {
        let passes = Atomic<Int>(0)
        let thread = PeriodicThread.start("loopsy-test", every: .seconds(60)) {
            passes.add(1, ordering: .relaxed)
            return true
        }
        let started = DispatchTime.now()
        thread.stop()
        #expect(passes.load(ordering: .relaxed) == 0)
        // stop wakes it: it does not wait out the interval.
        #expect(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds < 10_000_000_000)
        thread.stop()  // again: returns at once
    }

    /// A pass that answers false (its owner is gone) ends the thread: no pass after it, and a
    /// later stop does not wait.
    @Test func aPassThatAnswersFalseEndsTheThread() {
        let passes = Atomic<Int>(0)
        let thread = PeriodicThread.start("loopsy-test", every: .milliseconds(10)) {
            passes.add(1, ordering: .sequentiallyConsistent).newValue < 2
        }
        let deadline = DispatchTime.now() + 10
        while passes.load(ordering: .sequentiallyConsistent) < 2 && DispatchTime.now() < deadline { usleep(5_000) }
        usleep(100_000)
        #expect(passes.load(ordering: .sequentiallyConsistent) == 2)
        thread.stop()
    }
}
