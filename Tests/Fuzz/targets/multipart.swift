// multipart/form-data uploads (POST /transfer/push): the incremental parser must never crash,
// and must say the same whether the bytes arrive at once or split anywhere.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMultipart(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 2 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // First byte: chunk size for the split feed; the rest: a body with a fixed boundary, or a
    // Content-Type header line followed by the body when it starts with "multipart/".
    let chunk = Int(bytes[0]) % 17 + 1
    var body = Array(bytes.dropFirst())
    var boundary = "XyZ"
    if body.starts(with: Array("multipart/".utf8)), let newline = body.firstIndex(of: 10) {
        guard let parsed = MultipartParser.boundary(fromContentType: String(decoding: body[..<newline], as: UTF8.self))
        else { return 0 }
        boundary = parsed
        body = Array(body[(newline + 1)...])
    }
    let whole = run(boundary, body, chunk: body.count)
    let split = run(boundary, body, chunk: chunk)
    precondition(whole == split, "split feeding changed the parse")
    return 0
}

/// Events with adjacent data joined, or the failure.
private func run(_ boundary: String, _ body: [UInt8], chunk: Int) -> String {
    let parser = MultipartParser(boundary: boundary)
    var events: [MultipartParser.Event] = []
    var offset = 0
    repeat {
        let end = min(body.count, offset + max(chunk, 1))
        do {
            let produced = try body[offset..<end].withUnsafeBufferPointer { try parser.feed($0) }
            for event in produced {
                if case .data(let more) = event, case .data(let earlier)? = events.last {
                    events[events.count - 1] = .data(earlier + more)
                } else if case .data(let more) = event, more.isEmpty {
                    continue
                } else {
                    events.append(event)
                }
            }
        } catch let failure as MultipartParser.Failure {
            // Events of the call that threw are not returned, so only the failure itself compares.
            return "failure: \(failure.message)"
        } catch {
            return "other error"
        }
        offset = end
    } while offset < body.count
    return "\(events) complete=\(parser.isComplete)"
}
