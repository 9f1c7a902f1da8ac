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

    /// Byte limits cut by bytes between scalars: `prefix(_:)` counts Characters, and "a" with
    /// a million combining marks is one Character (MCP output "clipped" to 20 kB kept 4 MB).
    @Test func prefixAndSuffixByBytes() {
        let marks = "a" + String(repeating: "\u{301}", count: 1_000_000)
        #expect(marks.count == 1)
        let head = marks.prefix(utf8Bytes: 10_000), tail = marks.suffix(utf8Bytes: 10_000)
        #expect(head.utf8.count <= 10_000 && head.utf8.count >= 9_999 && head.utf8.first == UInt8(ascii: "a"))
        #expect(tail.utf8.count == 10_000 && tail.unicodeScalars.allSatisfy { $0 == "\u{301}" })
        // A 3-byte scalar is never split; text within the limit is kept whole.
        #expect("ab€".prefix(utf8Bytes: 4) == "ab" && "ab€".prefix(utf8Bytes: 5) == "ab€")
        #expect("€ab".suffix(utf8Bytes: 4) == "ab" && "€ab".suffix(utf8Bytes: 5) == "€ab")
        #expect("x".prefix(utf8Bytes: 0) == "" && "x".suffix(utf8Bytes: -1) == "")
    }
}
