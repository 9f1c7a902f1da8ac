// JSON request bodies: our own order-keeping reader (JSONValue) and the Codable decoding of every
// request type the daemon accepts (Foundation's JSONDecoder), plus hex fields (pairing, pins).
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
    let decoder = SafeDecoder()
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
