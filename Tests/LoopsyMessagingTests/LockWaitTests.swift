import Dispatch
import Foundation
import LoopsyAPI
import LoopsyCore
import LoopsyMessaging
import LoopsyStore
import Synchronization
import Testing

/// A lock waiter whose client leaves is answered at once (its suspended connection ends) and
/// gives up its place; the next waiter gets the lock.
@Suite struct LockWaitTests {
    /// A lock service on a database of its own in `directory`.
    private static func service(in directory: String) throws -> LockService {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let migrations = try Migration.load(from: try Migration.locateDirectory(environment: [:], executablePath: nil))
        return LockService(store: LockStore(pool: try DatabasePool(path: directory + "/t.db", migrations: migrations)),
                           changes: nil)
    }

    @Test func aWaiterThatLeavesIsAnsweredAndTheNextOneGetsTheLock() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-locks-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let locks = try Self.service(in: directory)
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

    /// Names that Swift calls equal but SQLite keeps apart ("K" and U+212A KELVIN SIGN) are two
    /// locks: releasing one hands nothing to a waiter for the other, which is still held.
    @Test func aWaiterIsHandedOnlyTheLockWhoseBytesItNamed() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-locks-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let locks = try Self.service(in: directory)
        defer { locks.finishAll() }
        let plain = "K8s-deploy", kelvin = "\u{212A}8s-deploy"
        #expect(plain == kelvin, "Swift's String calls them equal; the test is about that")
        guard case .now(.taken(let first)) = try locks.acquire(plain, holder: "a", owner: "a", ttl: 60, wait: 0),
              case .later(let waiting) = try locks.acquire(plain, holder: "b", owner: "b", ttl: 60, wait: 30),
              case .now(.taken(let other)) = try locks.acquire(kelvin, holder: "x", owner: "x", ttl: 60, wait: 0) else {
            Issue.record("the two names were not two locks")
            return
        }
        let answered = DispatchSemaphore(value: 0)
        let outcome = Mutex<LockService.Outcome?>(nil)
        waiting.whenComplete { result in
            outcome.withLock { $0 = try? result.get() }
            answered.signal()
        }
        try locks.release(kelvin, token: other.token, owner: nil)
        #expect(answered.wait(timeout: .now() + 0.5) == .timedOut, "the waiter for \(plain) was handed \(kelvin)")
        try locks.release(plain, token: first.token, owner: nil)
        #expect(answered.wait(timeout: .now() + 2) == .success)
        guard case .taken(let lock)? = outcome.withLock({ $0 }) else {
            Issue.record("the waiter did not get its lock")
            return
        }
        #expect(lock.holder == "b" && lock.name.utf8.elementsEqual(plain.utf8))
    }
}
