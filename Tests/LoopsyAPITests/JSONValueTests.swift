import LoopsyAPI
import Testing

/// The order-keeping JSON reader and writer used to edit Claude Code's settings files.
@Suite struct JSONValueTests {
    @Test func roundTripKeepsKeyOrderAndValues() throws {
        let text = #"{"z": 1, "a": [true, false, null, -2.5, 1e3, "x\"y\\z\n\u00e9\ud83d\ude00"], "m": {"k": {}}, "e": []}"#
        let value = try JSONValue.parse(text)
        guard case .object(let pairs) = value else { Issue.record("not an object"); return }
        #expect(pairs.map(\.0) == ["z", "a", "m", "e"])
        #expect(value["a"] == [true, false, .null, .number(-2.5), .number(1000), .string("x\"y\\z\né😀")])
        #expect(try JSONValue.parse(value.serialized()) == value)
    }

    @Test func settingReplacesInPlaceOrAppends() throws {
        let value = try JSONValue.parse(#"{"a": 1, "b": 2}"#)
        #expect(value.setting("a", to: 9).serialized() == "{\n  \"a\": 9,\n  \"b\": 2\n}")
        #expect(value.setting("c", to: "x")["c"] == "x")
        #expect(value.setting("a", to: nil) == ["b": 2])
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"\u{01}\"", "01x", "\"\\ud800\"", "{} {}", "nul"])
    func malformedInputIsRefusedWithAnOffset(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test func deepNestingIsRefusedNotCrashed() {
        #expect(throws: JSONParseError.self) {
            try JSONValue.parse(String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000))
        }
    }
}

@Suite struct HexTests {
    @Test func decodeIsTheInverseOfEncodeAndRefusesNonHex() {
        let bytes: [UInt8] = [0, 1, 0x7F, 0x80, 0xAB, 0xFF]
        #expect(Hex.decode(Hex.encode(bytes)) == bytes)
        #expect(Hex.decode("ABff") == [0xAB, 0xFF])
        for bad in ["a", "zz", "0g", "12 4"] { #expect(Hex.decode(bad) == nil, "\(bad)") }
    }
}
