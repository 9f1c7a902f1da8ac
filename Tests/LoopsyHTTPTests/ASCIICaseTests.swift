@testable import LoopsyHTTP
import Testing

@Suite struct ASCIICaseTests {
    @Test(arguments: [("cookie", "cookie"), ("Cookie", "cookie"), ("X-CSRF-Token", "x-csrf-token"), ("", ""),
                      ("LEO.Local", "leo.local"), ("CAFÉ", "cafÉ"), ("coo\u{212A}ie", "coo\u{212A}ie")])
    func foldsOnlyASCIICapitals(text: String, folded: String) {
        #expect(text.asciiLowercased() == folded)
        #expect(text.withCString { String(asciiLowercasing: $0) } == folded)
        #expect(text[...].asciiLowercased() == folded)
    }

    /// A Kelvin sign (U+212A) folds to "k" in Unicode: such a header is not Cookie.
    @Test func headerNamesCompareWithoutUnicodeFolding() {
        let request = HTTPRequest(method: "GET", rawPath: "/", headers: ["cookie": "session"])
        #expect(request.header("Cookie") == "session")
        #expect(request.header("COOKIE") == "session")
        #expect(request.header("coo\u{212A}ie") == nil)
    }
}
