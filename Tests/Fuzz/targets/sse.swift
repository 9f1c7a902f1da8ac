// Server-Sent Events from peers and daemons (exec and task streams, relayed), and the
// stream-json lines Claude Code prints (each a JSON value): never a crash, and the same events
// whether the bytes come at once or one by one.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSSE(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var whole = SSEParser()
    let all = whole.feed(bytes)
    var split = SSEParser()
    var pieces: [SSEEvent] = []
    for byte in bytes { pieces += split.feed([byte]) }
    precondition(all == pieces, "byte-by-byte feeding changed the events")
    for event in all { _ = try? JSONValue.parse(event.data) }
    for line in bytes.split(separator: 10) { _ = try? JSONValue.parse(String(decoding: line, as: UTF8.self)) }
    return 0
}
