import Dispatch
import Foundation
import LoopsyAPI
import LoopsyCore
import LoopsyMessaging
import LoopsyStore
import Testing

/// A lock waiter whose client leaves is answered at once (its suspended connection ends) and
/// gives up its place; the next waiter gets the lock.
@Suite struct LockWaitTests {
    @Test func aWaiterThatLeavesIsAnsweredAndTheNextOneGetsTheLock() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-locks-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let migrations = try Migration.load(from: try Migration.locateDirectory(environment: [:], executablePath: nil))
        let locks = LockService(store: LockStore(pool: try DatabasePool(path: directory + "/t.db", migrations: migrations)),
                                changes: nil)
        guard case .now(.taken(let held)) = try locks.acquire("build", holder: "a", owner: "a", ttl: 60, wait: 0) else {
            Issue.record("the free lock was not taken")
            return
        }
        guard case .later(let leaving) = try locks.acquire("build", holder: "b", owner: "b", ttl: 60, wait: 30),
              case .later(let staying) = try locks.acquire("build", holder: "c", owner: "c", ttl: 60, wait: 30) else {
            Issue.record("a held lock answered at once")
            return
        }
        let ended = DispatchSemaphore(value: 0)
        leaving.whenComplete { result in
            #expect((try? result.get()) == nil, "the leaving waiter got an answer other than an error")
            ended.signal()
        }
        leaving.cancel()
        #expect(ended.wait(timeout: .now() + 2) == .success, "the waiter that left was never answered")

        let handedOver = DispatchSemaphore(value: 0)
        staying.whenComplete { result in
            if case .taken(let lock)? = try? result.get() { #expect(lock.holder == "c") } else { Issue.record("\(result)") }
            handedOver.signal()
        }
        try locks.release("build", token: held.token, owner: nil)
        #expect(handedOver.wait(timeout: .now() + 2) == .success)
        locks.finishAll()
    }
}
