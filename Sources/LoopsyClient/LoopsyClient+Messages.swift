import FoundationEssentials
import LoopsyAPI

extension LoopsyClient {
    public func sendMessage(_ request: MessageSendRequest) throws -> [OutboxMessage] {
        try call("POST", "/api/v1/messages", body: request, as: OutboxListResponse.self).messages
    }

    public func broadcastMessage(_ request: BroadcastRequest) throws -> BroadcastResponse {
        try call("POST", "/api/v1/messages/broadcast", body: request, as: BroadcastResponse.self)
    }

    /// The inbox; with `wait` > 0 the daemon holds the request until a message arrives.
    public func inbox(unreadOnly: Bool, after: Int64 = 0, limit: Int = 100, wait: Int = 0) throws -> InboxListResponse {
        try call("GET", "/api/v1/messages/inbox?unread=\(unreadOnly ? 1 : 0)&after=\(after)&limit=\(limit)&wait=\(wait)",
                 as: InboxListResponse.self)
    }

    public func markMessage(_ id: String, acked: Bool, note: String? = nil, from: String? = nil) throws -> InboxMessage {
        try call("POST", "/api/v1/messages/inbox/\(PathEncoding.segment(id))/\(acked ? "ack" : "read")",
                 body: MessageAckRequest(note: note, from: from), as: InboxMessage.self)
    }

    public func outbox(id: String? = nil, state: String? = nil, limit: Int = 100) throws -> [OutboxMessage] {
        if let id {
            return try call("GET", "/api/v1/messages/outbox/\(PathEncoding.segment(id))", as: OutboxListResponse.self)
                .messages
        }
        let query = "?limit=\(limit)" + (state.map { "&state=\(PathEncoding.segment($0))" } ?? "")
        return try call("GET", "/api/v1/messages/outbox\(query)", as: OutboxListResponse.self).messages
    }

    public func broadcastContext(_ request: ContextBroadcastRequest) throws -> BroadcastResponse {
        try call("POST", "/api/v1/context/broadcast", body: request, as: BroadcastResponse.self)
    }
}
