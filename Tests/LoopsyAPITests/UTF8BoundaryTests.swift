import LoopsyAPI
import Testing

@Suite struct UTF8BoundaryTests {
    @Test func utf8BoundaryHoldsBackOnlyIncompleteSequences() {
        #expect(UTF8Boundary.lastComplete(Array("abc".utf8)) == 3)
        let euro = Array("€".utf8)  // three bytes
        #expect(UTF8Boundary.lastComplete([0x61] + euro.prefix(2)) == 1)
        #expect(UTF8Boundary.lastComplete([0x61] + euro) == 4)
        #expect(UTF8Boundary.lastComplete([0xFF, 0xFE]) == 2)
    }
}
