/// One Server-Sent Event.
public struct SSEEvent: Sendable, Equatable {
    public var id: String?
    public var event: String
    public var data: String
}

/// Incremental `text/event-stream` parser: feed it bytes as they arrive, get whole events.
///
/// The stream may come from a peer (relayed by the local daemon): one event, its lines and
/// what waits for a line end, may hold at most `maxEventBytes`. Past that the parser takes
/// nothing more (`overflowed`), and its caller ends the stream with an error.
public struct SSEParser: Sendable {
    /// Far above any event loopsyd sends (an exec event carries at most 64 KiB of output).
    public static let maxEventBytes = 4 << 20

    private var buffer: [UInt8] = []
    /// No line end in buffer[..<scanned] (it was looked for already).
    private var scanned = 0
    private var id: String?
    private var event = ""
    private var data: [String] = []
    /// Bytes of the lines of the event being read.
    private var eventBytes = 0
    /// An event longer than `maxEventBytes` came: nothing more is read.
    public private(set) var overflowed = false

    public init() {}

    public mutating func feed(_ bytes: [UInt8]) -> [SSEEvent] {
        guard !overflowed else { return [] }
        buffer += bytes
        var events: [SSEEvent] = []
        var start = 0
        while let newline = buffer[max(start, scanned)...].firstIndex(of: UInt8(ascii: "\n")) {
            var line = buffer[start..<newline]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            start = newline + 1
            eventBytes += line.count + 1
            let text = String(decoding: line, as: UTF8.self)
            if text.isEmpty {
                if !data.isEmpty || !event.isEmpty {
                    events.append(SSEEvent(id: id, event: event.isEmpty ? "message" : event,
                                           data: data.joined(separator: "\n")))
                }
                event = ""
                data = []
                eventBytes = 0
                continue
            }
            if text.hasPrefix(":") {  // comment (keepalive)
                eventBytes -= line.count + 1
                continue
            }
            if eventBytes > Self.maxEventBytes { break }
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
        buffer.removeSubrange(..<start)
        scanned = buffer.count
        if eventBytes > Self.maxEventBytes || eventBytes + buffer.count > Self.maxEventBytes {
            overflowed = true
            buffer = []
            data = []
        }
        return events
    }
}
