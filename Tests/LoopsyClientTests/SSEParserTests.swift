@testable import LoopsyClient
import Testing

/// What a stream's sender (a peer, relayed by the local daemon) can make the parser hold.
@Suite struct SSEParserTests {
    @Test func anEventLongerThanTheLimitEndsTheStreamAndWhatCameBeforeStays() {
        var parser = SSEParser()
        let first = parser.feed(Array("event: start\ndata: 1\n\n".utf8))
        #expect(first == [SSEEvent(id: nil, event: "start", data: "1")])
        // A data line without end, a MiB at a time: nothing is kept past the limit.
        let piece = [UInt8](repeating: UInt8(ascii: "a"), count: 1 << 20)
        #expect(parser.feed(Array("data: ".utf8)).isEmpty)
        var fed = 0
        while !parser.overflowed && fed < 16 {
            #expect(parser.feed(piece).isEmpty)
            fed += 1
        }
        #expect(parser.overflowed && fed == 4)
        #expect(parser.feed(Array("\n\nevent: late\ndata: 2\n\n".utf8)).isEmpty)
    }

    @Test func manyLinesOfOneEventCountTogether() {
        var parser = SSEParser()
        let line = Array(("data: " + String(repeating: "b", count: 1000) + "\n").utf8)
        let lines = Array([[UInt8]](repeating: line, count: 5000).joined())  // about 5 MB, one event
        #expect(parser.feed(lines).isEmpty)
        #expect(parser.overflowed)
    }

    @Test func keepalivesAndWholeEventsDoNotAddUp() {
        var parser = SSEParser()
        let keepalives = Array([[UInt8]](repeating: Array(": keepalive\n".utf8), count: 10_000).joined())
        let event = Array(("data: " + String(repeating: "c", count: 100_000) + "\n\n").utf8)
        var events = 0
        for _ in 0..<100 {
            #expect(parser.feed(keepalives).isEmpty)
            events += parser.feed(event).count
        }
        #expect(!parser.overflowed && events == 100)
    }
}
