import Testing
@testable import LoopsyTransfer

@Suite struct MultipartParserTests {
    let boundary = "XyZ123"

    func body(file: [UInt8]) -> [UInt8] {
        Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"destPath\"\r\n\r\n/home/a b.txt\r\n".utf8)
            + Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n".utf8)
            + Array("Content-Type: application/octet-stream\r\n\r\n".utf8) + file
            + Array("\r\n--\(boundary)--\r\n".utf8)
    }

    /// Feeds `bytes` in pieces of the given sizes and reassembles what the parser reports.
    func parse(_ bytes: [UInt8], chunk: (Int) -> Int) throws -> (fields: [String: [UInt8]], complete: Bool) {
        let parser = MultipartParser(boundary: boundary)
        var fields: [String: [UInt8]] = [:]
        var current: String?
        var offset = 0, step = 0
        while offset < bytes.count {
            let size = min(max(1, chunk(step)), bytes.count - offset)
            let events = try bytes[offset..<(offset + size)].withUnsafeBufferPointer { try parser.feed($0) }
            for event in events {
                switch event {
                case .partStart(let name, _): current = name; fields[name] = []
                case .data(let data): fields[current!]! += data
                case .partEnd: current = nil
                }
            }
            offset += size
            step += 1
        }
        return (fields, parser.isComplete)
    }

    @Test(arguments: [1, 2, 3, 7, 16, 1000, 1 << 20])
    func anyChunkingGivesTheSameParts(size: Int) throws {
        // File bytes that look like the start of a delimiter must pass through untouched.
        let file = Array("line\r\n--XyZ12 not it\r\n--\r\n-".utf8) + (0..<3000).map { UInt8($0 % 251) } + Array("\r\n--XyZ".utf8)
        let result = try parse(body(file: file)) { _ in size }
        #expect(result.complete)
        #expect(result.fields["destPath"] == Array("/home/a b.txt".utf8))
        #expect(result.fields["file"] == file)
    }

    @Test func irregularChunksToo() throws {
        let file = (0..<50_000).map { UInt8(($0 * 7) % 256) }
        var generator = SystemRandomNumberGenerator()
        let sizes = (0..<10_000).map { _ in Int.random(in: 1...4096, using: &generator) }
        let result = try parse(body(file: file)) { sizes[$0 % sizes.count] }
        #expect(result.complete)
        #expect(result.fields["file"] == file)
    }

    @Test func truncatedBodyIsNotComplete() throws {
        let full = body(file: Array("abc".utf8))
        let result = try parse(Array(full.dropLast(10))) { _ in 5 }
        #expect(!result.complete)
    }

    @Test func boundaryComesFromTheContentType() {
        #expect(MultipartParser.boundary(fromContentType: "multipart/form-data; boundary=abc") == "abc")
        #expect(MultipartParser.boundary(fromContentType: "multipart/form-data; charset=x; boundary=\"q r\"") == "q r")
        #expect(MultipartParser.boundary(fromContentType: "application/json") == nil)
        #expect(MultipartParser.boundary(fromContentType: "multipart/form-data") == nil)
    }

    @Test func partsWithoutANameAreRefused() {
        let parser = MultipartParser(boundary: boundary)
        let bytes = Array("--\(boundary)\r\nContent-Type: text/plain\r\n\r\nx\r\n--\(boundary)--\r\n".utf8)
        #expect(throws: MultipartParser.Failure.self) { _ = try bytes.withUnsafeBufferPointer { try parser.feed($0) } }
    }

    /// Inside a part, bytes are handed on as they arrive: only an end that could begin a
    /// delimiter waits for the next bytes, and it is handed on once they show it is not one.
    @Test func partDataIsHandedOnAtOnceExceptAPossibleDelimiterStart() throws {
        let parser = MultipartParser(boundary: boundary)
        func data(_ text: String) throws -> [UInt8] {
            try Array(text.utf8).withUnsafeBufferPointer { try parser.feed($0) }.reduce(into: []) { all, event in
                if case .data(let bytes) = event { all += bytes }
            }
        }
        _ = try data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n")
        #expect(try data("plain bytes") == Array("plain bytes".utf8))
        #expect(try data("more\r\n--XyZ") == Array("more".utf8))
        #expect(try data("9 and on") == Array("\r\n--XyZ9 and on".utf8))
        #expect(try data("end\r\n--\(boundary)--\r\n") == Array("end".utf8))
        #expect(parser.isComplete)
    }
}
