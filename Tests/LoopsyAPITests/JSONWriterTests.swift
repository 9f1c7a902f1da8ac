import Foundation
import LoopsyAPI
import Testing

@Suite struct JSONWriterTests {
    func encoderBytes<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    func writerBytes<T: JSONWritable>(_ value: T) -> String {
        var writer = JSONWriter()
        value.write(to: &writer)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    @Test(arguments: ["plain", "quote \" and \\ backslash", "line\nbreak\ttab\r", "\u{0}\u{1f}\u{7f}", "ü 😀 a/b", ""])
    func contextEntryMatchesJSONEncoder(value: String) throws {
        let entry = ContextEntry(key: "k/\(value)", value: value, fromNodeId: "n", createdAt: 1, updatedAt: 2,
                                 ttl: value.isEmpty ? nil : 3, expiresAt: value.isEmpty ? nil : 3002, revision: 4)
        let written = writerBytes(entry)
        #expect(try JSONDecoder().decode(ContextEntry.self, from: Data(written.utf8)) == entry)
        if !value.contains("\u{7f}") && !value.contains("\u{0}") {
            #expect(written == (try encoderBytes(entry)))
        }
    }

    /// Integers are written digit by digit into the output: the same text as `String(value)`.
    @Test func integersAreWrittenAsSwiftPrintsThem() {
        var values: [Int64] = [0, 1, -1, 9, 10, -10, 99, 100, 1_796_275_270_497, .max, .min, .max - 1, .min + 1]
        for digits in 1...19 {
            let power = (0..<digits - 1).reduce(Int64(1)) { value, _ in value * 10 }
            values += [power, power - 1, -power, -(power - 1)]
        }
        var generator = SystemRandomNumberGenerator()
        values += (0..<2000).map { _ in Int64.random(in: .min ... .max, using: &generator) >> Int64.random(in: 0...62) }
        for value in values {
            var writer = JSONWriter()
            writer.openArray()
            writer.integer(value)
            writer.integer(value)
            writer.closeArray()
            #expect(String(decoding: writer.bytes, as: UTF8.self) == "[\(value),\(value)]")
        }
    }

    @Test func listHealthAndErrorsRoundTrip() throws {
        let list = ContextListResponse(entries: [
            ContextEntry(key: "a", value: "1", fromNodeId: "n", createdAt: 1, updatedAt: 1, ttl: nil, expiresAt: nil, revision: 1),
            ContextEntry(key: "b", value: "2", fromNodeId: "n", createdAt: 1, updatedAt: 1, ttl: 5, expiresAt: 5001, revision: 2),
        ])
        #expect(writerBytes(list) == (try encoderBytes(list)))
        #expect(writerBytes(ContextListResponse(entries: [])) == #"{"entries":[],"more":false}"#)
        let page = ContextListResponse(entries: list.entries, more: true)
        #expect(page.nextAfterKey == "b")
        #expect(writerBytes(page) == (try encoderBytes(page)))
        // A daemon from before pages answered with the entries alone.
        let old = try JSONDecoder().decode(ContextListResponse.self, from: Data(#"{"entries":[]}"#.utf8))
        #expect(old.entries.isEmpty && !old.more && old.nextAfterKey == nil)
        let health = HealthResponse(status: "ok", nodeId: "n", version: "1", uptime: 12.5)
        #expect(try JSONDecoder().decode(HealthResponse.self, from: Data(writerBytes(health).utf8)) == health)
        let error = ErrorBody(APIError.notFound("context key 'x\"'"))
        #expect(writerBytes(error) == (try encoderBytes(error)))
    }
}
