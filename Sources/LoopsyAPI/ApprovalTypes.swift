/// A permission prompt of a Claude Code session on this node, relayed by loopsy-mcp (the
/// `claude/channel/permission` capability) so a person can answer it here, in the dashboard, or
/// on an approver peer. The first answer wins; the terminal's own dialog stays live beside it.
public struct ApprovalInfo: Codable, Sendable, Equatable {
    public var id: String
    /// Claude Code's request_id, echoed in the verdict.
    public var requestId: String
    public var toolName: String
    public var description: String
    public var inputPreview: String
    /// pending, allowed, denied or expired.
    public var state: ApprovalState
    /// Peers (nodeIds) the request was forwarded to: only they may answer it, besides the owner.
    public var sentTo: [String]
    /// Who answered: "local", "local (dashboard)" or "peer:<nodeId>".
    public var answeredBy: String?
    public var createdAt: Int64
    public var expiresAt: Int64
    public var answeredAt: Int64?

    public init(id: String, requestId: String, toolName: String, description: String, inputPreview: String,
                state: ApprovalState, sentTo: [String], answeredBy: String?, createdAt: Int64, expiresAt: Int64,
                answeredAt: Int64?) {
        self.id = id
        self.requestId = requestId
        self.toolName = toolName
        self.description = description
        self.inputPreview = inputPreview
        self.state = state
        self.sentTo = sentTo
        self.answeredBy = answeredBy
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.answeredAt = answeredAt
    }
}

/// `POST /approvals` (loopsy-mcp): a permission prompt to record and forward to the approvers.
public struct ApprovalCreateRequest: Codable, Sendable, RangeChecked {
    public var requestId: String
    public var toolName: String
    public var description: String
    public var inputPreview: String
    public init(requestId: String, toolName: String, description: String, inputPreview: String) {
        self.requestId = requestId
        self.toolName = toolName
        self.description = description
        self.inputPreview = inputPreview
    }

    public func checkRanges() throws {
        guard !requestId.isEmpty, requestId.unicodeScalars.count <= 128, toolName.unicodeScalars.count <= 256 else {
            throw OutOfRange(field: "requestId", message: "must be 1–128 characters (and toolName at most 256)",
                                 code: .outOfRange)
        }
        guard description.unicodeScalars.count <= 8192, inputPreview.unicodeScalars.count <= 16384 else {
            throw OutOfRange(field: "description", message: "is longer than 8192 characters (or inputPreview than 16384)",
                                 code: .outOfRange)
        }
    }
}

/// `POST /approvals/{id}/answer`.
public struct ApprovalAnswerRequest: Codable, Sendable {
    /// "allow" or "deny".
    public var behavior: String
    public init(behavior: String) { self.behavior = behavior }
}

public struct ApprovalListResponse: Codable, Sendable {
    public var approvals: [ApprovalInfo]
    public init(approvals: [ApprovalInfo]) { self.approvals = approvals }
}

/// Where a permission prompt is: waiting, answered either way, or past its time. Open like
/// TaskState: a newer peer's state decodes as itself.
public struct ApprovalState: WireWord {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let pending = ApprovalState(rawValue: "pending")
    public static let allowed = ApprovalState(rawValue: "allowed")
    public static let denied = ApprovalState(rawValue: "denied")
    public static let expired = ApprovalState(rawValue: "expired")
    /// The states this build sets.
    public static let allCases: [ApprovalState] = [.pending, .allowed, .denied, .expired]

}
