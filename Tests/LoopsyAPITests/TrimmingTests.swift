import LoopsyAPI
import Testing

@Suite struct TrimmingTests {
    @Test(arguments: [
        ("", ""), ("key", "key"), ("  key ", "key"), ("\r\nkey\r\n", "key"), ("\tk e y\t", "k e y"),
        (" \n \t", ""), ("a\n", "a"), ("\u{301}x", "\u{301}x"),
        // A space with a combining mark is one character, not a space: it stays.
        (" \u{301}x ", " \u{301}x"),
    ])
    func trimsSpacesTabsAndLineBreaksAtBothEnds(text: String, trimmed: String) {
        #expect(text.trimming() == trimmed)
        #expect(Substring(text).trimming() == trimmed)
    }

    @Test func aGivenSetIsTrimmedInstead() {
        #expect("  a b  ".trimming([" "]) == "a b")
        #expect("\ta\t".trimming([" "]) == "\ta\t")
    }
}
