@testable import LoopsyHTTP
import Synchronization
import Testing

@Suite struct WaitRegistryTests {
    /// A wait that a test ends by hand.
    final class Wait: Sendable {
        let id: Int
        let ended = Atomic<Bool>(false)
        init(_ id: Int) { self.id = id }
    }

    /// Done items go at the latest once the list has doubled: however many come and go, it
    /// holds no more than twice what still waits (or the minimum), and none that waits is lost.
    @Test func holdsAtMostTwiceWhatWaits() {
        let registry = WaitRegistry<Wait> { $0.ended.load(ordering: .relaxed) }
        var waiting: [Wait] = []
        var most = 0
        for id in 0..<10_000 {
            let wait = Wait(id)
            #expect(registry.add(wait))
            waiting.append(wait)
            // Fifty wait at a time, the oldest ending as each new one comes (a PUT load).
            if waiting.count > 50 { waiting.removeFirst().ended.store(true, ordering: .relaxed) }
            most = max(most, registry.count)
        }
        #expect(most <= max(WaitRegistry<Wait>.minimum, 2 * 51) + 1)
        let open = registry.close()
        #expect(open.map(\.id) == waiting.map(\.id))
        #expect(registry.count == 0)
        #expect(!registry.add(Wait(-1)))
    }

    /// A finished deferred answer kept in the registry until its next prune holds no body: the
    /// one MHD took, or the one nobody will send. (Up to twice the connection limit of them
    /// can be kept, and a context PUT's answer holds its value.)
    @Test func aFinishedDeferredAnswerHoldsNoBody() {
        let body = [UInt8](repeating: 0x61, count: 1 << 20)
        let sent = DeferredResponse()
        sent.complete(HTTPResponse(status: 200, body: body))
        #expect(sent.completedResponse?.body.count == body.count)
        // The answer is ready, so no connection is suspended (the pointer is never used).
        let taken = sent.take(suspending: OpaquePointer(bitPattern: 0x1)!)
        #expect(taken?.body.count == body.count)
        #expect(sent.completedResponse == nil)
        #expect(!sent.isPending)

        let dropped = DeferredResponse()
        dropped.complete(HTTPResponse(status: 200, body: body))
        dropped.abandon()
        #expect(dropped.completedResponse == nil)
        #expect(!dropped.isPending)
    }

    /// Many waiting at once are all kept (pruning drops only what is done).
    @Test func keepsEveryWaitNotDone() {
        let registry = WaitRegistry<Wait> { $0.ended.load(ordering: .relaxed) }
        let waits = (0..<1_000).map(Wait.init)
        for wait in waits { #expect(registry.add(wait)) }
        #expect(registry.count == 1_000)
        for wait in waits where wait.id % 2 == 0 { wait.ended.store(true, ordering: .relaxed) }
        #expect(registry.close().map(\.id) == waits.filter { $0.id % 2 == 1 }.map(\.id))
        registry.reopen()
        #expect(registry.add(Wait(1_000)))
        #expect(registry.count == 1)
    }
}
