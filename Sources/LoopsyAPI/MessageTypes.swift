/// Message kinds, as the seed's tools name them.
public enum MessageType: String, Codable, Sendable, CaseIterable {
    case chat, request, response, broadcast
    /// A Claude Code permission prompt forwarded to an approver (`loopsy approve <id>` answers it).
    case approval
}

/// `POST /messages`: send to one peer (name, nodeId or address). `id` is the dedupe key: sending
/// the same id to the same peer again changes nothing.
public struct MessageSendRequest: Codable, Sendable {
    public var to: String
    public var body: String
    public var type: MessageType?
    public var id: String?
    public var replyTo: String?
    public var thread: String?
    /// Seconds the message may wait for delivery (default messages.defaultTtl).
    public var ttl: Int?

    public init(to: String, body: String, type: MessageType? = nil, id: String? = nil, replyTo: String? = nil,
                thread: String? = nil, ttl: Int? = nil) {
        self.to = to
        self.body = body
        self.type = type
        self.id = id
        self.replyTo = replyTo
        self.thread = thread
        self.ttl = ttl
    }
}

/// A message this node sent to one recipient, with where it got to:
/// queued → delivered → read → acked, or expired when its ttl passed before delivery.
public struct OutboxMessage: Codable, Sendable, Equatable {
    public var id: String
    public var to: String
    public var toName: String
    public var type: MessageType
    public var body: String
    public var replyTo: String?
    public var thread: String?
    public var createdAt: Int64
    public var expiresAt: Int64
    public var state: String
    public var attempts: Int
    public var lastError: String?
    public var deliveredAt: Int64?
    public var readAt: Int64?
    public var ackedAt: Int64?
    public var ackNote: String?

    public init(id: String, to: String, toName: String, type: MessageType, body: String, replyTo: String?,
                thread: String?, createdAt: Int64, expiresAt: Int64, state: String, attempts: Int,
                lastError: String?, deliveredAt: Int64?, readAt: Int64?, ackedAt: Int64?, ackNote: String?) {
        self.id = id
        self.to = to
        self.toName = toName
        self.type = type
        self.body = body
        self.replyTo = replyTo
        self.thread = thread
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.state = state
        self.attempts = attempts
        self.lastError = lastError
        self.deliveredAt = deliveredAt
        self.readAt = readAt
        self.ackedAt = ackedAt
        self.ackNote = ackNote
    }
}

public struct OutboxListResponse: Codable, Sendable {
    public var messages: [OutboxMessage]
    public init(messages: [OutboxMessage]) { self.messages = messages }
}

/// A message another node sent here. Its body is data from that node, never an instruction:
/// `origin` says so in words, for agents that show it.
public struct InboxMessage: Codable, Sendable, Equatable {
    /// Arrival order on this node (the long-poll cursor).
    public var seq: Int64
    public var id: String
    public var from: String
    public var fromName: String
    public var origin: String
    public var type: MessageType
    public var body: String
    public var replyTo: String?
    public var thread: String?
    public var createdAt: Int64
    public var receivedAt: Int64
    public var expiresAt: Int64
    /// unread, read or acked.
    public var state: String
    public var readAt: Int64?
    public var ackedAt: Int64?
    public var ackNote: String?
    /// When a live Claude Code session first got it through loopsy-mcp's channel.
    public var sessionAt: Int64?

    public init(seq: Int64, id: String, from: String, fromName: String, origin: String, type: MessageType, body: String,
                replyTo: String?, thread: String?, createdAt: Int64, receivedAt: Int64, expiresAt: Int64, state: String,
                readAt: Int64?, ackedAt: Int64?, ackNote: String?, sessionAt: Int64? = nil) {
        self.sessionAt = sessionAt
        self.seq = seq
        self.id = id
        self.from = from
        self.fromName = fromName
        self.origin = origin
        self.type = type
        self.body = body
        self.replyTo = replyTo
        self.thread = thread
        self.createdAt = createdAt
        self.receivedAt = receivedAt
        self.expiresAt = expiresAt
        self.state = state
        self.readAt = readAt
        self.ackedAt = ackedAt
        self.ackNote = ackNote
    }
}

public struct InboxListResponse: Codable, Sendable {
    public var messages: [InboxMessage]
    /// The highest seq this node has handed out: pass it as `after` to wait for newer ones.
    /// When `more`, the last message's: the page was cut (by `limit` or by its bytes).
    public var cursor: Int64
    /// True when messages past this page are already there.
    public var more: Bool?
    public init(messages: [InboxMessage], cursor: Int64, more: Bool? = nil) {
        self.messages = messages
        self.cursor = cursor
        self.more = more
    }
}

/// Node to node: one message handed to its recipient (`POST /messages/deliver`). The sender is
/// whoever the credential says, never a field.
public struct MessageDelivery: Codable, Sendable {
    public var id: String
    public var fromName: String
    public var type: MessageType
    public var body: String
    public var replyTo: String?
    public var thread: String?
    public var createdAt: Int64
    public var expiresAt: Int64

    public init(id: String, fromName: String, type: MessageType, body: String, replyTo: String?, thread: String?,
                createdAt: Int64, expiresAt: Int64) {
        self.id = id
        self.fromName = fromName
        self.type = type
        self.body = body
        self.replyTo = replyTo
        self.thread = thread
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}

public struct MessageDeliveryResult: Codable, Sendable {
    public var duplicate: Bool
    public init(duplicate: Bool) { self.duplicate = duplicate }
}

/// Node to node: the recipient read or acked a message (`POST /messages/receipt`).
public struct MessageReceipt: Codable, Sendable {
    public var id: String
    public var state: String
    public var at: Int64
    public var note: String?

    public init(id: String, state: String, at: Int64, note: String?) {
        self.id = id
        self.state = state
        self.at = at
        self.note = note
    }
}

public struct MessageAckRequest: Codable, Sendable {
    public var note: String?
    /// The sender's nodeId, when several senders used the same id.
    public var from: String?
    /// True: a permission prompt forwarded here (type approval) is left as it is (409
    /// approval_for_a_person). loopsy-mcp sends it: a session must not hide a prompt from the
    /// person who answers it (acked prompts leave `loopsy approvals`).
    public var keepApprovals: Bool?
    public init(note: String? = nil, from: String? = nil, keepApprovals: Bool? = nil) {
        self.note = note
        self.from = from
        self.keepApprovals = keepApprovals
    }
}

/// `POST /messages/broadcast`: one message to every known peer.
public struct BroadcastRequest: Codable, Sendable {
    public var body: String
    public var type: MessageType?
    public var id: String?
    public var ttl: Int?
    public init(body: String, type: MessageType? = nil, id: String? = nil, ttl: Int? = nil) {
        self.body = body
        self.type = type
        self.id = id
        self.ttl = ttl
    }
}

/// What happened at one peer during a broadcast.
public struct PeerOutcome: Codable, Sendable, Equatable {
    public var nodeId: String
    public var name: String
    /// Messages: delivered or queued (offline peers get it when they return). Context: set or failed.
    public var state: String
    public var error: String?
    public init(nodeId: String, name: String, state: String, error: String?) {
        self.nodeId = nodeId
        self.name = name
        self.state = state
        self.error = error
    }
}

public struct BroadcastResponse: Codable, Sendable {
    public var id: String?
    public var results: [PeerOutcome]
    public init(id: String?, results: [PeerOutcome]) {
        self.id = id
        self.results = results
    }
}

/// `POST /context/broadcast`: set one key on every online peer (and here).
public struct ContextBroadcastRequest: Codable, Sendable {
    public var key: String
    public var value: String
    public var ttl: Int?
    public init(key: String, value: String, ttl: Int? = nil) {
        self.key = key
        self.value = value
        self.ttl = ttl
    }
}
