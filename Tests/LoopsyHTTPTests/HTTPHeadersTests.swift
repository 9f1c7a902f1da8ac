import LoopsyHTTP
import Testing

@Suite struct HTTPHeadersTests {
    @Test func readsSetsRemovesAndJoinsRepeatedFields() {
        var headers: HTTPHeaders = ["host": "127.0.0.1", "authorization": "Bearer k"]
        #expect(headers["host"] == "127.0.0.1" && headers["authorization"] == "Bearer k" && headers["cookie"] == nil)
        headers["host"] = "leo"
        headers["cookie"] = "a=1"
        #expect(headers["host"] == "leo" && headers.count == 3)
        headers.add("cookie", "b=2")
        headers.add("accept", "*/*")
        #expect(headers["cookie"] == "a=1, b=2" && headers["accept"] == "*/*")
        headers["host"] = nil
        #expect(headers["host"] == nil && headers.count == 3)
        #expect(Set(headers.map { $0.key }) == ["authorization", "cookie", "accept"])
        #expect(HTTPHeaders(["a": "1"])["a"] == "1" && HTTPHeaders().isEmpty)
    }

    /// Past a handful of fields a table indexes them; every operation keeps both views right.
    @Test func manyFieldsStayFindableThroughAddsAndRemovals() {
        var headers = HTTPHeaders()
        var expected: [String: String] = [:]
        for number in 0..<300 {
            let name = "x-\(number % 120)"
            headers.add(name, "\(number)")
            expected[name] = expected[name].map { $0 + ", \(number)" } ?? "\(number)"
        }
        for number in stride(from: 0, to: 120, by: 7) {
            headers["x-\(number)"] = nil
            expected["x-\(number)"] = nil
        }
        headers["late"] = "1"
        expected["late"] = "1"
        #expect(headers.count == expected.count)
        for (name, value) in expected { #expect(headers[name] == value, "\(name)") }
        for number in stride(from: 0, to: 120, by: 7) { #expect(headers["x-\(number)"] == nil) }
        #expect(Dictionary(uniqueKeysWithValues: headers.map { ($0.key, $0.value) }) == expected)
    }
}
