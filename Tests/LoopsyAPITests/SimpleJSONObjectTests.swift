import Foundation
import LoopsyAPI
import Testing

@Suite struct SimpleJSONObjectTests {
    func simply(_ text: String) -> ContextPutRequest? {
        Array(text.utf8).withUnsafeBytes { ContextPutRequest.simplyDecoded($0) }
    }

    func decoder(_ text: String) -> ContextPutRequest? {
        try? JSONDecoder().decode(ContextPutRequest.self, from: Data(text.utf8))
    }

    func same(_ a: ContextPutRequest?, _ b: ContextPutRequest?) -> Bool {
        a?.value == b?.value && a?.ttl == b?.ttl && a?.ifRevision == b?.ifRevision && (a == nil) == (b == nil)
    }

    @Test func readsTheCommonShapes() {
        let plain = simply(#"{"value":"the plan is to ship on friday"}"#)
        #expect(plain?.value == "the plan is to ship on friday" && plain?.ttl == nil && plain?.ifRevision == nil)
        let full = simply(" {\n \"ifRevision\" : 0 ,\t\"ttl\":-5, \"value\": \"ü 😀 a/b\" }\r\n")
        #expect(full?.value == "ü 😀 a/b" && full?.ttl == -5 && full?.ifRevision == 0)
        let nulls = simply(#"{"value":"","ttl":null,"ifRevision":null}"#)
        #expect(nulls?.value == "" && nulls?.ttl == nil && nulls?.ifRevision == nil)
        #expect(simply(#"{"value":"x","ifRevision":999999999999999999}"#)?.ifRevision == 999_999_999_999_999_999)
    }

    /// What it is not sure of, it leaves to JSONDecoder: never a different reading.
    @Test(arguments: [
        #"{"value":"a\"b"}"#, #"{"value":"\u0041"}"#, "{\"value\":\"tab\there\"}", #"{"value":1}"#, #"{"value":null}"#,
        #"{"ttl":5}"#, "{}", "", " ", "[]", #"{"value":"x",}"#, #"{"value":"x"} x"#, #"{"value":"x"}}"#,
        #"{"value":"x","value":"y"}"#, #"{"value":"x","other":1}"#, #"{"value":"x","ttl":1.0}"#,
        #"{"value":"x","ttl":1e3}"#, #"{"value":"x","ttl":01}"#, #"{"value":"x","ttl":-}"#, #"{"value":"x","ttl":+1}"#,
        #"{"value":"x","ttl":"5"}"#, #"{"value":"x","ttl":nul}"#, #"{"value":"x","ttl":nullx}"#,
        #"{"value":"x","ifRevision":9999999999999999999}"#, #"{"value":"x","ttl":true}"#, #"{"value":"x""#,
        #"{"value""x"}"#, #"{value:"x"}"#, #"{"val\u0075e":"x"}"#, "{\"value\":\"\u{7f}\"}", "\u{feff}{\"value\":\"x\"}",
        #"{"value":"x","ttl":[1]}"#, #"{"value":"x","ttl":{}}"#, #"{"value":"x" "ttl":1}"#, #"{"value":"x"} "#,
    ])
    func givesUpOrAgreesWithJSONDecoder(text: String) {
        let fast = simply(text)
        if fast != nil { #expect(same(fast, decoder(text)), "\(text)") }
    }

    /// Invalid UTF-8 inside a string is left to JSONDecoder (which refuses it).
    @Test func invalidUTF8IsNotRead() {
        let bytes: [UInt8] = Array(#"{"value":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        #expect(bytes.withUnsafeBytes { ContextPutRequest.simplyDecoded($0) } == nil)
    }

    /// Bodies put together from pieces, many of them odd: whatever the fast reader accepts,
    /// JSONDecoder reads the same way.
    @Test func agreesWithJSONDecoderOnGeneratedBodies() {
        let odd = [#""other""#, #""Value""#, #""value""#, #""ttl""#]
        let strings = [#""x""#, #""""#, #""a b/ü""#, #""\u00fc""#, "\"\u{7f}\""]
        let numbers = ["0", "-0", "7", "-12", "null", "123456789012345678", "5"]
        let others = ["00", "1.5", "2e2", "-", "true", "[]", "{}", #""x"#, "nul", #""\n""#]
        let spaces = ["", " ", "\n", "\t "]
        var generator = SystemRandomNumberGenerator()
        func pick(_ options: [String]) -> String { options.randomElement(using: &generator)! }
        var accepted = 0
        for _ in 0..<3000 {
            // Mostly the members it reads, in any order; now and then an odd key or value.
            var members: [(String, String)] = [("\"value\"", Int.random(in: 0..<10, using: &generator) < 8
                                                    ? pick(strings) : pick(numbers + others))]
            for key in [#""ttl""#, #""ifRevision""#] where Bool.random(using: &generator) {
                members.append((key, Int.random(in: 0..<10, using: &generator) < 7 ? pick(numbers)
                                    : pick(strings + others)))
            }
            if Int.random(in: 0..<10, using: &generator) < 2 { members.append((pick(odd), pick(strings + numbers))) }
            if Int.random(in: 0..<10, using: &generator) < 1 { members.removeAll() }
            members.shuffle(using: &generator)
            let text = pick(spaces) + "{" + members.map { pick(spaces) + $0.0 + pick(spaces) + ":" + pick(spaces) + $0.1 }
                .joined(separator: ",") + pick(spaces) + "}" + pick(spaces)
            if let fast = simply(text) {
                accepted += 1
                #expect(same(fast, decoder(text)), "\(text)")
            }
        }
        #expect(accepted > 100)
    }
}
