import FoundationEssentials
import LoopsyAPI

extension LoopsyClient {
    public func sendMessage(_ request: MessageSendRequest) throws -> [OutboxMessage] {
        try call("POST", API.messages(), body: request, as: OutboxListResponse.self).messages
    }

    public func broadcastMessage(_ request: BroadcastRequest) throws -> BroadcastResponse {
        try call("POST", API.messagesBroadcast(), body: request, as: BroadcastResponse.self)
    }

    /// The inbox; with `wait` > 0 the daemon holds the request until a message arrives.
    public func inbox(unreadOnly: Bool, after: Int64 = 0, limit: Int = 100, wait: Int = 0) throws -> InboxListResponse {
        try call("GET", API.inbox(query: ["unread": unreadOnly ? 1 : 0, "after": after, "limit": limit, "wait": wait]),
                 as: InboxListResponse.self)
    }

    /// `keepApprovals`: a forwarded permission prompt is refused (409 approval_for_a_person).
    public func markMessage(_ id: String, acked: Bool, note: String? = nil, from: String? = nil,
                            keepApprovals: Bool = false) throws -> InboxMessage {
        try call("POST", acked ? API.inboxAck(id) : API.inboxRead(id),
                 body: MessageAckRequest(note: note, from: from, keepApprovals: keepApprovals ? true : nil),
                 as: InboxMessage.self)
    }

    public func outbox(id: String? = nil, state: String? = nil, limit: Int = 100) throws -> [OutboxMessage] {
        if let id {
            return try call("GET", API.outboxMessage(id), as: OutboxListResponse.self)
                .messages
        }
        return try call("GET", API.outbox(query: ["limit": limit, "state": state]), as: OutboxListResponse.self).messages
    }

    public func broadcastContext(_ request: ContextBroadcastRequest) throws -> BroadcastResponse {
        try call("POST", API.contextBroadcast(), body: request, as: BroadcastResponse.self)
    }
}

extension LoopsyClient {
    /// Permission prompts of this node's Claude Code sessions.
    public func approvals(state: String? = nil, limit: Int = 100) throws -> [ApprovalInfo] {
        try call("GET", API.approvals(query: ["limit": limit, "state": state]), as: ApprovalListResponse.self).approvals
    }

    /// Records a prompt (loopsy-mcp); it is forwarded to channels.approvers.
    public func createApproval(_ request: ApprovalCreateRequest) throws -> ApprovalInfo {
        try call("POST", API.approvals(), body: request, as: ApprovalInfo.self)
    }

    /// The approval; with `wait`, once it is settled or the wait ends.
    public func approval(_ id: String, wait: Int = 0) throws -> ApprovalInfo {
        try call("GET", API.approval(id, query: ["wait": wait]), as: ApprovalInfo.self)
    }

    /// Answers a prompt of this node, or (with `peer`) one a peer forwarded here.
    public func answerApproval(_ id: String, allow: Bool, peer: String? = nil) throws -> ApprovalInfo {
        try (peer.map(throughPeer) ?? self).call("POST", API.approvalAnswer(id),
                                                 body: ApprovalAnswerRequest(behavior: allow ? "allow" : "deny"),
                                                 as: ApprovalInfo.self)
    }
}

extension LoopsyClient {
    /// Records that a live session got the message (loopsy-mcp's channel).
    @discardableResult
    public func markSessionDelivered(_ id: String, from: String) throws -> InboxMessage {
        try call("POST", API.inboxSession(id), body: MessageAckRequest(from: from),
                 as: InboxMessage.self)
    }
}

extension LoopsyClient {
    /// Walks the whole inbox in pages of 1000 (at most `maxPages`), handing each page to `visit`;
    /// returns the cursor after the last message: the inbox's tail.
    @discardableResult
    public func walkInbox(maxPages: Int = 1000, _ visit: ([InboxMessage]) -> Void = { _ in }) throws -> Int64 {
        var cursor: Int64 = 0
        for _ in 0..<maxPages {
            let page = try inbox(unreadOnly: false, after: cursor, limit: 1000)
            visit(page.messages)
            cursor = max(cursor, page.cursor)
            // A daemon from before `more` (binaries replaced, daemon not restarted) cut pages only
            // at the limit.
            if page.more != true && !(page.more == nil && page.messages.count == 1000) { break }
        }
        return cursor
    }
}
