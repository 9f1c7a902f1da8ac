import LoopsyAPI
import LoopsyClient
import Testing

/// The decoding of `/execute/stream` that `loopsy exec` and `loopsy_execute` share.
@Suite struct ExecuteEventTests {
    private func events(_ wire: String, chunk: Int) -> [ExecuteEvent] {
        var parser = SSEParser()
        let bytes = Array(wire.utf8)
        var decoded: [ExecuteEvent] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + chunk, bytes.count)
            decoded += parser.feed(Array(bytes[offset..<end])).compactMap(ExecuteEvent.init)
            offset = end
        }
        return decoded
    }

    /// Text and base64 chunks both arrive as the program's bytes, whatever size the network
    /// pieces are; an event this client does not know and a keepalive are skipped.
    @Test(arguments: [1, 7, 4096])
    func textAndBase64OutputAreBytes(chunk: Int) {
        let wire = """
            id: 1
            event: start
            data: {"jobId":"j1","pid":42}

            : keepalive

            id: 2
            event: stdout
            data: {"text":"caf"}

            id: 3
            event: stdout
            data: {"base64":"6SBvawo="}

            id: 4
            event: progress
            data: {"anything":1}

            id: 5
            event: stderr
            data: {"text":"warn\\n"}

            id: 6
            event: exit
            data: {"jobId":"j1","exitCode":3,"stdout":"","stderr":"","timedOut":false,"truncated":false,"cancelled":false,"durationMs":5}


            """
        let decoded = events(wire, chunk: chunk)
        #expect(decoded.count == 5)
        guard decoded.count == 5 else { return }
        if case .started(let start) = decoded[0] { #expect(start.jobId == "j1" && start.pid == 42) } else { Issue.record("\(decoded[0])") }
        if case .output(.stdout, let bytes) = decoded[1] { #expect(bytes == Array("caf".utf8)) } else { Issue.record("\(decoded[1])") }
        if case .output(.stdout, let bytes) = decoded[2] { #expect(bytes == [0xE9] + Array(" ok\n".utf8)) } else { Issue.record("\(decoded[2])") }
        if case .output(.stderr, let bytes) = decoded[3] { #expect(bytes == Array("warn\n".utf8)) } else { Issue.record("\(decoded[3])") }
        if case .exited(let result) = decoded[4] { #expect(result.exitCode == 3) } else { Issue.record("\(decoded[4])") }
    }

    @Test func unreadablePayloadsAreSkippedNotFatal() {
        for data in [#"{"base64":"***"}"#, "not json", #"{"jobId":1}"#, String(repeating: "[", count: 10_000)] {
            for name in ["start", "stdout", "exit"] {
                #expect(events("event: \(name)\ndata: \(data)\n\n", chunk: 4096).isEmpty, "\(name) \(data)")
            }
        }
    }
}
