import Foundation
import Synchronization
import Testing
@testable import LoopsyMessaging

@Suite struct LongPollsTests {
    /// Registering a waiter checks that waiter once; it never re-runs the queries of those
    /// already waiting (500 polls made 125,000 inbox queries before).
    @Test func registeringCostsOneCheckPerWaiter() async throws {
        let polls = LongPolls()
        let attempts = Atomic<Int>(0)
        let waiters = (0..<200).map { _ in
            LongPolls.Waiter(after: 10) {
                attempts.add(1, ordering: .relaxed)
                return false
            } timeout: {}
        }
        for waiter in waiters { polls.add(waiter, timeout: Self.neverTimesOut) }
        try await settle { attempts.load(ordering: .relaxed) >= 200 }
        try await Task.sleep(for: .milliseconds(100))
        #expect(attempts.load(ordering: .relaxed) == 200)
        polls.finishAll()
    }

    /// An event reaches only the waiters it can answer: those of its topic from before it.
    @Test func anEventTriesOnlyTheWaitersItCanAnswer() async throws {
        let polls = LongPolls()
        let answered = Mutex<[String]>([])
        // Until the events, every check finds nothing (as an empty inbox would); after, any
        // waiter that is tried answers, so what answers is exactly what was tried.
        let eventsHappened = Atomic<Bool>(false)
        let registrationChecks = Atomic<Int>(0)
        func waiter(_ name: String, topic: String = "", after: Int64 = .min) -> LongPolls.Waiter {
            let waiter = LongPolls.Waiter(topic: topic, after: after) {
                guard eventsHappened.load(ordering: .relaxed) else {
                    registrationChecks.add(1, ordering: .relaxed)
                    return false
                }
                answered.withLock { $0.append(name) }
                return true
            } timeout: {}
            polls.add(waiter, timeout: Self.neverTimesOut)
            return waiter
        }
        _ = [waiter("inbox-5", after: 5), waiter("inbox-9", after: 9), waiter("approval-a", topic: "a"),
             waiter("approval-b", topic: "b")]
        // Each registration check runs (and finds nothing) before the events. Waited for, not
        // slept on: under a loaded test run the polls' queue can start seconds late.
        try await settle { registrationChecks.load(ordering: .relaxed) == 4 }
        eventsHappened.store(true, ordering: .relaxed)
        polls.notify(after: 7)
        polls.notify(topic: "a")
        try await settle { answered.withLock { $0.count } >= 2 }
        try await Task.sleep(for: .milliseconds(100))
        #expect(answered.withLock { $0.sorted() } == ["approval-a", "inbox-5"])
        polls.notify(after: 10)
        try await settle { answered.withLock { $0.count } >= 3 }
        #expect(answered.withLock { $0.sorted() } == ["approval-a", "inbox-5", "inbox-9"])
        polls.finishAll()
    }

    /// A message that lands while the registration check's query runs (its own try finds the
    /// waiter claimed and gives up) still answers the poll at once, not at its timeout.
    @Test func anEventDuringARunningCheckIsNotLost() throws {
        let polls = LongPolls()
        let checking = DispatchSemaphore(value: 0)
        let messageLanded = DispatchSemaphore(value: 0)
        let calls = Atomic<Int>(0)
        let answered = DispatchSemaphore(value: 0)
        let waiter = LongPolls.Waiter(after: 0) {
            if calls.add(1, ordering: .relaxed).newValue == 1 {
                // The registration check: its query ran before the message was committed.
                checking.signal()
                messageLanded.wait()
                return false
            }
            answered.signal()
            return true
        } timeout: {}
        polls.add(waiter, timeout: Self.neverTimesOut)
        checking.wait()
        polls.notify(after: 1)
        usleep(100_000)  // the event's own try runs now and finds the waiter claimed
        messageLanded.signal()
        #expect(answered.wait(timeout: .now() + 120) == .success)
        #expect(calls.load(ordering: .relaxed) == 2)
        polls.finishAll()
    }

    /// Waiters here never time out during a test: in the full suite, tests that block Dispatch
    /// threads have delayed the polls' queue by tens of seconds, and a 60 s timeout then ended
    /// a waiter before the event the test sends it.
    static let neverTimesOut = 3600

    /// Waits until `condition` holds; fails the test if it still does not after 120 s (see
    /// above; a passing run returns at once).
    private func settle(_ condition: () -> Bool, sourceLocation: SourceLocation = #_sourceLocation)
        async throws {
        for _ in 0..<12_000 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
        if !condition() { Issue.record("still not so after 120 s", sourceLocation: sourceLocation) }
    }
}
