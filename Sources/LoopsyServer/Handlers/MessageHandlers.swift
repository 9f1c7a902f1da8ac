import LoopsyAPI
import LoopsyMessaging
import LoopsyCore
import LoopsyHTTP

/// Messages between agents: send, broadcast, inbox (with long-poll), read/ack, outbox; and the
/// two node-to-node routes, deliver and receipt.
public enum MessageHandlers {
    // Both wait on the first delivery attempts (up to a second): off the HTTP worker, unless
    // the message stays on this node.
    static func send(_ context: RequestContext) throws -> HTTPResponse {
        let request = try context.decode(MessageSendRequest.self)
        let context = context.withoutBody
        let send = { @Sendable in
            try HTTPResponse.json(OutboxListResponse(messages: try context.node.messages.send(request)), status: 201)
        }
        return context.node.messages.isLocal(request.to) ? try send() : try context.offload(send)
    }

    static func broadcast(_ context: RequestContext) throws -> HTTPResponse {
        let request = try context.decode(BroadcastRequest.self)
        let context = context.withoutBody
        return try context.offload { try .json(try context.node.messages.broadcast(request)) }
    }

    static func inbox(_ context: RequestContext) throws -> HTTPResponse {
        let unread = try QueryValue.flag(context, "unread")
        let after = try QueryValue.int(context, "after", default: 0, range: 0...Int.max)
        // 0: no messages, only the cursor (the newest seq), as a live session starts from there.
        let limit = try QueryValue.int(context, "limit", default: 100, range: 0...1000)
        let wait = try QueryValue.int(context, "wait", default: 0, range: 0...60)
        // Streamed, so a poller that leaves ends its wait at once (a suspended answer would wait on).
        return try context.respondAsStream(try context.node.messages.inbox(unreadOnly: unread, after: Int64(after),
                                                                           limit: limit, wait: wait))
    }

    static func read(_ context: RequestContext) throws -> HTTPResponse {
        try mark(context, state: "read")
    }

    static func ack(_ context: RequestContext) throws -> HTTPResponse {
        try mark(context, state: "acked")
    }

    private static func mark(_ context: RequestContext, state: String) throws -> HTTPResponse {
        let body = context.request.body.isEmpty ? MessageAckRequest() : try context.decode(MessageAckRequest.self)
        return try .json(try context.node.messages.mark(id: context.parameter("id"), from: body.from, state: state,
                                                        note: state == "acked" ? body.note : nil,
                                                        keepApprovals: body.keepApprovals ?? false))
    }

    static func session(_ context: RequestContext) throws -> HTTPResponse {
        let body = context.request.body.isEmpty ? MessageAckRequest() : try context.decode(MessageAckRequest.self)
        return try .json(try context.node.messages.markSession(id: context.parameter("id"), from: body.from))
    }

    static func outbox(_ context: RequestContext) throws -> HTTPResponse {
        let limit = try QueryValue.int(context, "limit", default: 100, range: 1...1000)
        let state = context.request.query["state"]
        if let state, !["queued", "delivered", "read", "acked", "expired"].contains(state) {
            throw APIError.badRequest("state must be queued, delivered, read, acked or expired", code: .badQuery)
        }
        return try .json(OutboxListResponse(messages: try context.node.messages.store.outbox(state: state, limit: limit)))
    }

    static func outboxMessage(_ context: RequestContext) throws -> HTTPResponse {
        let id = context.parameter("id")
        let rows = try context.node.messages.store.outbox(id: id, limit: 1000)
        guard !rows.isEmpty else { throw APIError.notFound("message \(id) in the outbox") }
        return try .json(OutboxListResponse(messages: rows))
    }

    // MARK: Node to node

    static func deliver(_ context: RequestContext) throws -> HTTPResponse {
        let sender = try senderNode(context)
        return try .json(try context.node.messages.receive(try context.decode(MessageDelivery.self), from: sender))
    }

    static func receipt(_ context: RequestContext) throws -> HTTPResponse {
        let sender = try senderNode(context)
        try context.node.messages.applyReceipt(try context.decode(MessageReceipt.self), from: sender)
        return try .json(MessageDeliveryResult(duplicate: false))
    }

    /// The node a delivery comes from is the one its credential belongs to, never something the
    /// caller says (a header or a body field).
    private static func senderNode(_ context: RequestContext) throws -> String {
        guard let node = context.caller.peerNodeId else {
            throw APIError.forbidden("deliveries come from peers, with the key this node gave them; use POST /messages "
                + "to send one", code: .notANode)
        }
        return node
    }

}

extension QueryValue {
    /// "1"/"true" or "0"/"false"; absent is false.
    static func flag(_ context: RequestContext, _ name: String) throws -> Bool {
        guard let text = context.request.query[name] else { return false }
        switch text {
        case "1", "true": return true
        case "0", "false": return false
        default: throw APIError.badRequest("query parameter '\(name)' must be 1, 0, true or false", code: .badQuery)
        }
    }
}
