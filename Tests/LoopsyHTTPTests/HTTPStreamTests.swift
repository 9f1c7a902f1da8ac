import Synchronization
import Testing
@testable import LoopsyHTTP

/// What a stream's producer may queue for a slow client.
@Suite struct HTTPStreamTests {
    @Test func itHoldsUpToItsLimitAndOnePieceLargerThanTheLimitWhenEmpty() {
        let stream = HTTPStream(bufferLimit: 1000)
        // One piece larger than the whole buffer goes when nothing waits (else it never would).
        #expect(stream.write([UInt8](repeating: 1, count: 1500)))
        // Anything more waits for the client to take that.
        #expect(!stream.write([1]))
        var sink = [CChar](repeating: 0, count: 2000)
        guard case .bytes(1500) = stream.read(into: &sink, max: 2000) else {
            Issue.record("the large piece was not there whole")
            return
        }
        #expect(stream.write([UInt8](repeating: 2, count: 600)))
        #expect(!stream.write([UInt8](repeating: 3, count: 600)), "600 + 600 is over the limit")
        #expect(stream.write([UInt8](repeating: 3, count: 400)))
        #expect(stream.write([UInt8](repeating: 4, count: 5000), bounded: false), "unbounded writes always go")
    }

    /// `abort` sends what is queued and then breaks the response; `cut` breaks it at once.
    @Test func cutDropsWhatIsQueuedWhereAbortSendsIt() {
        var sink = [CChar](repeating: 0, count: 100)
        let aborted = HTTPStream()
        #expect(aborted.write(Array("queued".utf8)))
        aborted.abort()
        guard case .bytes(6) = aborted.read(into: &sink, max: 100) else {
            Issue.record("abort dropped what was queued")
            return
        }
        guard case .error = aborted.read(into: &sink, max: 100) else {
            Issue.record("abort did not break the response")
            return
        }
        let cut = HTTPStream()
        #expect(cut.write(Array("queued".utf8)))
        cut.cut()
        guard case .error = cut.read(into: &sink, max: 100) else {
            Issue.record("cut sent what was queued")
            return
        }
        #expect(!cut.write([1]), "nothing is taken after a cut")
    }

    /// A stream cut or aborted did not end well: its producer's close handler runs when MHD lets
    /// go of it, even if nothing was left to send (a job is cancelled, a subscription removed).
    @Test func aCutOrAbortedStreamTellsItsProducer() {
        for end in ["cut", "abort", "finish"] {
            let stream = HTTPStream()
            let told = Mutex(false)
            stream.onClose { told.withLock { $0 = true } }
            switch end {
            case "cut": stream.cut()
            case "abort": stream.abort()
            default: stream.finish()
            }
            stream.detach()
            #expect(told.withLock { $0 } == (end != "finish"), "\(end)")
        }
    }
}
