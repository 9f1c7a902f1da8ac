import LoopsyPOSIX
import Testing

/// `includes` and `replacingEvery` stand in for the standard library's `contains(_:)` and
/// `replacing(_:with:)` in the programs linked without the regex engine: same answers for the
/// text loopsy compares (ASCII markers, words, UTF-8 around them).
@Suite struct StringSearchTests {
    @Test func includesFindsTextAnywhereAndOnlyWholeSequences() {
        #expect("/proc/12/cmdline loopsyd --port".includes("loopsyd"))
        #expect("abc".includes("abc") && "abc".includes("c") && "abc".includes(""))
        #expect(!"abc".includes("abcd") && !"ab".includes("bc") && !"".includes("a"))
        #expect("naïve café".includes("café") && !"naïve café".includes("cafe"))
        #expect("aaab"[...].includes("aab"))  // a partial match before the real one
        for (text, needle) in [("x memory in pool y", "memory in pool"), ("日本語", "本"), ("a\0b", "\0b"), ("ab", "ba")] {
            #expect(text.includes(needle) == text.contains(needle), "\(text) / \(needle)")
        }
    }

    /// The byte search under both (and under the multipart parser): from a start, at the ends.
    @Test func byteSearchFromAStart() {
        let bytes = Array("abcabc".utf8)
        bytes.withUnsafeBufferPointer { haystack in
            #expect(ByteSearch.firstIndex(of: Array("bc".utf8), in: haystack) == 1)
            #expect(ByteSearch.firstIndex(of: Array("bc".utf8), in: haystack, from: 2) == 4)
            #expect(ByteSearch.firstIndex(of: Array("bc".utf8), in: haystack, from: 5) == nil)
            #expect(ByteSearch.firstIndex(of: Array("abcabcd".utf8), in: haystack) == nil)
            #expect(ByteSearch.firstIndex(of: [], in: haystack, from: 6) == 6)
            #expect(ByteSearch.firstIndex(of: [], in: haystack, from: 7) == nil)
        }
        #expect([UInt8]().withUnsafeBufferPointer { ByteSearch.firstIndex(of: [0x61], in: $0) } == nil)
    }

    /// Bytes, not Characters: where the standard library sees one grapheme cluster, these see
    /// its bytes, and canonically equal text in other bytes is other text.
    @Test func bytesNotCharacters() {
        #expect("a\r\nb".includes("\n") && !"a\r\nb".contains("\n"))
        #expect("e\u{301}".includes("e") && !"e\u{301}".contains("e"))
        #expect(!"caf\u{E9}".includes("cafe\u{301}") && "caf\u{E9}".contains("cafe\u{301}"))
        #expect("\"\u{301}".replacingEvery("\"", with: "\\\"") == "\\\"\u{301}")
    }

    @Test func replacingEveryReplacesLeftToRightWithoutOverlaps() {
        #expect("/files/{path+}".replacingEvery("+}", with: "}") == "/files/{path}")
        #expect("cp {} {}.bak".replacingEvery("{}", with: "\u{1}") == "cp \u{1} \u{1}.bak")
        #expect("aaaa".replacingEvery("aa", with: "b") == "bb")
        #expect("aaa".replacingEvery("aa", with: "a") == "aa")
        #expect("abc".replacingEvery("", with: "x") == "abc")
        #expect("abc".replacingEvery("z", with: "x") == "abc")
        #expect("a\\b\"c%".replacingEvery("\\", with: "\\\\").replacingEvery("%", with: "%%") == "a\\\\b\"c%%")
        #expect("é-é".replacingEvery("é", with: "e") == "e-e")
        #expect("line\nnext\n".replacingEvery("\n", with: "\n  ") == "line\n  next\n  ")
        for (text, target, replacement) in [("a.b.c", ".", "::"), ("日本語日本", "日本", "x"), ("", "a", "b")] {
            #expect(text.replacingEvery(target, with: replacement) == text.replacing(target, with: replacement))
        }
    }
}
