import Dispatch
import LoopsyAPI
import LoopsyCore
import LoopsyPOSIX
import Testing

/// Answers given later, and the change bus: what every domain library builds on.
@Suite struct PendingTests {
    struct Refused: Error {}

    @Test func theFirstAnswerWinsAndReachesEveryConsumerOnce() throws {
        let pending = Pending<Int>()
        let seen = PlainMutex<[String]>([])
        pending.whenComplete { result in seen.withLock { $0.append("early \((try? result.get()) ?? -1)") } }
        pending.succeed(1)
        pending.fail(Refused())
        pending.succeed(2)
        // A consumer that comes after the answer gets it at once.
        pending.whenComplete { result in seen.withLock { $0.append("late \((try? result.get()) ?? -1)") } }
        #expect(seen.withLock { $0 } == ["early 1", "late 1"])
        #expect(pending.isComplete)
    }

    @Test func cancellingRunsCleanUpsOnceAndLateOnesAtOnce() {
        let pending = Pending<String>()
        let cleaned = PlainMutex(0)
        pending.onCancel { cleaned.withLock { $0 += 1 } }
        #expect(!pending.isCancelled)
        pending.cancel()
        pending.cancel()
        #expect(cleaned.withLock { $0 } == 1 && pending.isCancelled)
        pending.onCancel { cleaned.withLock { $0 += 10 } }
        #expect(cleaned.withLock { $0 } == 11)
        // A server that can only be asked: the check counts too.
        let asked = Pending<String>()
        let gone = PlainMutex(false)
        asked.cancelled(when: { gone.withLock { $0 } })
        #expect(!asked.isCancelled)
        gone.withLock { $0 = true }
        #expect(asked.isCancelled)
    }

    /// Answers racing from many threads: exactly one is delivered.
    @Test func racingAnswersDeliverOne() {
        for _ in 0..<200 {
            let pending = Pending<Int>()
            let delivered = PlainMutex<[Int]>([])
            pending.whenComplete { result in delivered.withLock { $0.append((try? result.get()) ?? -1) } }
            DispatchQueue.concurrentPerform(iterations: 8) { pending.succeed($0) }
            #expect(delivered.withLock { $0.count } == 1)
        }
    }

    /// Clean-up that must run however the answer ends (a descriptor only used to compute it).
    @Test func settledRunsOnceForValuesAndErrorsNowOrLater() {
        let runs = PlainMutex(0)
        Answer<Int>.now(1).whenSettled { runs.withLock { $0 += 1 } }
        #expect(runs.withLock { $0 } == 1)
        let failing = Pending<Int>()
        Answer.later(failing).whenSettled { runs.withLock { $0 += 1 } }
        #expect(runs.withLock { $0 } == 1)
        failing.fail(Refused())
        failing.succeed(2)
        #expect(runs.withLock { $0 } == 2)
    }

    @Test func theBusNumbersChangesAndStopsAtUnsubscribe() {
        let bus = ChangeBus()
        let seen = PlainMutex<[String]>([])
        bus.publish(.context)  // nobody listens: nothing to see
        let unsubscribe = bus.subscribe { change in
            seen.withLock { $0.append("\(change.sequence) \(change.topic.rawValue) \(change.detail["id"] ?? "")") }
        }
        bus.publish(.aiTasks, detail: ["id": "t1"])
        bus.publish(.locks)
        unsubscribe()
        bus.publish(.peers)
        #expect(seen.withLock { $0 } == ["2 ai-tasks t1", "3 locks "])
    }
}
