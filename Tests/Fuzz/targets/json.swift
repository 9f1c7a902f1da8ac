// JSON request bodies: our own order-keeping reader (JSONValue), the context write's fast reader
// (SimpleJSONObject, against JSONDecoder) and the Codable decoding of every request type the
// daemon accepts (Foundation's JSONDecoder), plus hex fields (pairing, pins).
import FoundationEssentials

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)
    if let value = try? JSONValue.parse(text) {
        // What we write we must read back as the same value.
        let again = try? JSONValue.parse(value.serialized())
        precondition(again == value, "JSONValue round trip changed \(text)")
    }
    // Exactly as the daemon decodes request bodies and peers' answers.
    let body = Data(bytes)
    // The write path's own reader: whatever it accepts, JSONDecoder reads the same way.
    if let simple = bytes.withUnsafeBytes({ ContextPutRequest.simplyDecoded($0) }) {
        let full = try? JSONDecoder().decode(ContextPutRequest.self, from: body)
        precondition(full?.value == simple.value && full?.ttl == simple.ttl && full?.ifRevision == simple.ifRevision,
                     "SimpleJSONObject read \(text) unlike JSONDecoder")
    }
    let decoder = SafeDecoder()
    // Every number a decoder accepts is within its WireRange: the arithmetic the daemon does on
    // it cannot trap (a trap here is a crash there).
    let now: Int64 = 1_800_000_000_000
    if let put = try? decoder.decode(ContextPutRequest.self, from: body), let ttl = put.ttl { _ = now + Int64(ttl) * 1000 }
    if let delivery = try? decoder.decode(MessageDelivery.self, from: body) {
        _ = now + min(max(delivery.expiresAt - delivery.createdAt, 1000), 30 * 86_400_000)
    }
    if let send = try? decoder.decode(MessageSendRequest.self, from: body), let ttl = send.ttl { _ = now + Int64(ttl) * 1000 }
    if let execute = try? decoder.decode(ExecuteRequest.self, from: body), let timeout = execute.timeout {
        _ = Double(timeout) / 1000 + 1
    }
    // The Range header against a size taken from the input's length.
    if let range = ByteRange.parse(text, size: Int64(size) * 1_000_003) {
        precondition(range.lowerBound >= 0 && range.upperBound <= Int64(size) * 1_000_003, "range outside the file")
        _ = range.count
    }
    _ = try? decoder.decode(ContextPutRequest.self, from: body)
    _ = try? decoder.decode(ContextBroadcastRequest.self, from: body)
    _ = try? decoder.decode(ExecuteRequest.self, from: body)
    _ = try? decoder.decode(MessageSendRequest.self, from: body)
    _ = try? decoder.decode(MessageDelivery.self, from: body)
    _ = try? decoder.decode(MessageReceipt.self, from: body)
    _ = try? decoder.decode(BroadcastRequest.self, from: body)
    _ = try? decoder.decode(AITaskRequest.self, from: body)
    _ = try? decoder.decode(ApprovalRequest.self, from: body)
    _ = try? decoder.decode(PermissionAsk.self, from: body)
    _ = try? decoder.decode(PeerAddRequest.self, from: body)
    _ = try? decoder.decode(PeerHandshakeRequest.self, from: body)
    _ = try? decoder.decode(DashboardLoginRequest.self, from: body)
    _ = try? decoder.decode(PairInitiateRequest.self, from: body)
    _ = try? decoder.decode(PairConfirmRequest.self, from: body)
    _ = try? decoder.decode(PairCommit.self, from: body)
    _ = try? decoder.decode(PairKeyShare.self, from: body)
    _ = try? decoder.decode(PairSealed.self, from: body)
    if let decoded = Hex.decode(text) { precondition(Hex.encode(decoded) == text.lowercased()) }
    return 0
}

/// SafeJSON with the call shape of JSONDecoder, so the list above reads like the handlers.
struct SafeDecoder {
    func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T { try SafeJSON.decode(type, from: data) }
}
