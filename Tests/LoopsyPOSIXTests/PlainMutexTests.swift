import Dispatch
import LoopsyPOSIX
import Testing

@Suite struct PlainMutexTests {
    /// Many threads incrementing through the lock lose no update, and what `withLock` returns
    /// and throws reaches the caller.
    @Test func excludesAndPassesResultsAndErrorsThrough() throws {
        let counter = PlainMutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<10_000 { counter.withLock { $0 += 1 } }
        }
        #expect(counter.withLock { $0 } == 80_000)

        struct Refused: Error {}
        #expect(throws: Refused.self) { try counter.withLock { _ in throw Refused() } }
        // The lock was released by the throw: it can be taken again.
        #expect(counter.withLock { value -> Int in value = 1; return value * 2 } == 2)
    }
}
