import LoopsyAPI
import Testing

@Suite struct ByteRangeTests {
    /// The one-range forms a resuming client sends, at the ends of the file and of Int64; and
    /// what is not one of them (signs, spaces, several ranges, other units) is refused.
    @Test func singleRangesAndWhatIsRefused() {
        #expect(ByteRange.parse("bytes=0-9", size: 100) == 0..<10)
        #expect(ByteRange.parse("bytes=90-", size: 100) == 90..<100)
        #expect(ByteRange.parse("bytes=-10", size: 100) == 90..<100)
        #expect(ByteRange.parse("bytes=-1000", size: 100) == 0..<100)
        #expect(ByteRange.parse("bytes=50-9223372036854775807", size: 100) == 50..<100)
        for refused in ["bytes=+1-2", "bytes=1-+2", "bytes= 1-2", "bytes=1 -2", "bytes=0x1-2", "bytes=1-2,4-5",
                        "bytes=100-", "bytes=5-4", "bytes=-0", "bytes=--1", "items=0-1", "bytes=", "bytes=-",
                        "bytes=٣-4", "bytes=0-18446744073709551616"] {
            #expect(ByteRange.parse(refused, size: 100) == nil, "\(refused)")
        }
    }
}
