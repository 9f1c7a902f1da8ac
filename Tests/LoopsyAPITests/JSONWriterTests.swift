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

    @Test func listHealthAndErrorsRoundTrip() throws {
        let list = ContextListResponse(entries: [
            ContextEntry(key: "a", value: "1", fromNodeId: "n", createdAt: 1, updatedAt: 1, ttl: nil, expiresAt: nil, revision: 1),
            ContextEntry(key: "b", value: "2", fromNodeId: "n", createdAt: 1, updatedAt: 1, ttl: 5, expiresAt: 5001, revision: 2),
        ])
        #expect(writerBytes(list) == (try encoderBytes(list)))
        #expect(writerBytes(ContextListResponse(entries: [])) == #"{"entries":[]}"#)
        let health = HealthResponse(status: "ok", nodeId: "n", version: "1", uptime: 12.5)
        #expect(try JSONDecoder().decode(HealthResponse.self, from: Data(writerBytes(health).utf8)) == health)
        let error = ErrorBody(APIError.notFound("context key 'x\"'"))
        #expect(writerBytes(error) == (try encoderBytes(error)))
    }
}
