import Testing
@testable import LoopsyClient

/// A status line comes from the server: only three digits are a status.
@Suite struct StatusLineTests {
    @Test(arguments: [
        ("HTTP/1.1 200 OK\r\n", 200), ("HTTP/1.1 204\r\n", 204), ("HTTP/2 404 \r\n", 404), ("HTTP/1.0 599 x y\n", 599),
    ])
    func threeDigitsAreAStatus(line: String, status: Int) {
        #expect(CurlHTTPClient.status(ofLine: line) == status)
    }

    @Test(arguments: ["HTTP/1.1 -5 X\r\n", "HTTP/1.1 4294967296 a: b\r\n", "HTTP/2 99999999999 \r\n", "HTTP/1.1 2000 X\r\n",
                      "HTTP/1.1 099 X\r\n", "HTTP/1.1 +20 X\r\n", "HTTP/1.1 20 X\r\n", "HTTP/1.1\r\n", "HTTP/1.1 ２００ X\r\n"])
    func anythingElseIsNone(line: String) {
        #expect(CurlHTTPClient.status(ofLine: line) == nil)
    }
}
