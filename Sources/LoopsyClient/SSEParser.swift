/// One Server-Sent Event.
public struct SSEEvent: Sendable, Equatable {
    public var id: String?
    public var event: String
    public var data: String
}

/// Incremental `text/event-stream` parser: feed it bytes as they arrive, get whole events.
public struct SSEParser: Sendable {
    private var buffer: [UInt8] = []
    private var id: String?
    private var event = ""
    private var data: [String] = []

    public init() {}

    public mutating func feed(_ bytes: [UInt8]) -> [SSEEvent] {
        buffer += bytes
        var events: [SSEEvent] = []
        while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
            var line = buffer[..<newline]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            buffer.removeSubrange(...newline)
            let text = String(decoding: line, as: UTF8.self)
            if text.isEmpty {
                if !data.isEmpty || !event.isEmpty {
                    events.append(SSEEvent(id: id, event: event.isEmpty ? "message" : event,
                                           data: data.joined(separator: "\n")))
                }
                event = ""
                data = []
                continue
            }
            if text.hasPrefix(":") { continue }  // comment (keepalive)
            let field: Substring, value: Substring
            if let colon = text.firstIndex(of: ":") {
                field = text[..<colon]
                var rest = text[text.index(after: colon)...]
                if rest.first == " " { rest = rest.dropFirst() }
                value = rest
            } else {
                field = Substring(text)
                value = ""
            }
            switch field {
            case "id": id = String(value)
            case "event": event = String(value)
            case "data": data.append(String(value))
            default: break
            }
        }
        return events
    }
}
