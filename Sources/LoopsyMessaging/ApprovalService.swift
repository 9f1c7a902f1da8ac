import LoopsyAPI
import LoopsyPeers
import LoopsyCore
import LoopsyConfig
import LoopsyPOSIX
import LoopsyStore
import Synchronization

/// Permission prompts of this node's Claude Code sessions, relayed by loopsy-mcp: recorded as
/// pending approvals, forwarded to `channels.approvers` as messages of type approval, answered
/// once (here, in the dashboard, or by an approver peer holding the approvals grant), and waited
/// on by loopsy-mcp, which hands the verdict back to Claude Code.
public final class ApprovalService: Sendable {
    public let store: ApprovalStore
    private let messages: MessageService
    private let peers: PeerService
    private let config: LoopsyConfig.Channels
    private let logger: Logger
    private let changes: ChangeBus
    private let hostname: String
    private let waiters = LongPolls()
    /// Forwarding to approvers calls peers: never on an HTTP worker.
    private let forwarding = WorkPool(name: "approvals", threads: 2, queueLimit: 256)

    public init(pool: DatabasePool, messages: MessageService, peers: PeerService, config: LoopsyConfig.Channels,
         hostname: String, logger: Logger, changes: ChangeBus) {
        store = ApprovalStore(pool: pool)
        self.messages = messages
        self.peers = peers
        self.config = config
        self.hostname = hostname
        self.logger = logger
        self.changes = changes
    }

    /// Records a prompt and forwards it to the approvers that can be resolved.
    public func create(_ request: ApprovalCreateRequest) throws -> ApprovalInfo {
        let now = Clock.nowMillis()
        try store.expire(now: now)
        // Settled prompts are kept a week (for `loopsy approvals --all`), then go.
        try? store.prune(before: now - 7 * 86_400_000)
        guard try store.pendingCount() < config.maxPendingApprovals else {
            throw APIError.tooManyRequests("\(config.maxPendingApprovals) permission prompts wait for an answer already "
                + "(channels.maxPendingApprovals); answer some with `loopsy approvals`", retryAfter: 5)
        }
        var approvers: [(nodeId: String, name: String)] = []
        for name in config.approvers {
            do {
                let record = try peers.resolve(name)
                if !approvers.contains(where: { $0.nodeId == record.nodeId }) {
                    approvers.append((record.nodeId, record.info.name))
                }
            } catch {
                logger.warn("channels.approvers names '\(name)', which is no known peer; it gets no prompts")
            }
        }
        var generator = SystemRandomNumberGenerator()
        let id = "apr_" + Hex.encode((0..<8).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let approval = ApprovalInfo(
            id: id, requestId: request.requestId, toolName: request.toolName, description: request.description,
            inputPreview: request.inputPreview, state: .pending, sentTo: approvers.map(\.nodeId), answeredBy: nil,
            createdAt: now, expiresAt: now + Int64(config.approvalTimeoutSeconds) * 1000, answeredAt: nil)
        try store.insert(approval)
        changes.publish(.approvals, detail: ["id": id])
        // Message bodies take no control characters: a prompt's text is shown with each as a
        // space rather than not forwarded at all.
        let body = MessageService.asBody("""
            Claude Code on \(hostname) asks to use \(request.toolName): \(request.description)
            \(request.inputPreview)
            Answer with: loopsy approve \(id)   (or: loopsy approve \(id) --deny)
            """)
        for approver in approvers {
            let accepted = forwarding.submit { [messages, logger, config] in
                do {
                    _ = try messages.send(MessageSendRequest(to: approver.nodeId, body: body, type: .approval, id: id,
                                                             thread: "approvals", ttl: config.approvalTimeoutSeconds))
                } catch {
                    logger.warn("approval \(id) could not be queued for \(approver.name): \(error)")
                }
            }
            if !accepted { logger.warn("approval \(id) not forwarded to \(approver.name): the forwarding queue is full") }
        }
        return approval
    }

    /// The first answer wins; a late, expired or foreign one is refused with what happened.
    public func answer(_ id: String, behavior: String, caller: Caller) throws -> ApprovalInfo {
        guard behavior == "allow" || behavior == "deny" else {
            throw APIError.badRequest("behavior must be allow or deny", code: .badBehavior)
        }
        let now = Clock.nowMillis()
        guard let current = try store.get(id, now: now) else { throw APIError.notFound("approval \(id)") }
        // Besides the owner, only an approver peer it was forwarded to (never an extra key, which
        // is sent nothing).
        if !caller.isOwner, !(caller.peerNodeId.map(current.sentTo.contains) ?? false) {
            throw APIError.forbidden("approval \(id) was not sent to this peer: only the owner and the approvers it "
                + "was forwarded to may answer it", code: .approvalNotYours)
        }
        guard current.state == .pending else { throw Self.settled(current) }
        guard let answered = try store.answer(id, state: behavior == "allow" ? .allowed : .denied, by: caller.id,
                                              now: now) else {
            // Someone else answered between the read and the write.
            throw try store.get(id, now: now).map(Self.settled) ?? APIError.notFound("approval \(id)")
        }
        logger.info("approval \(id) (\(answered.toolName)) \(answered.state) by \(caller.id)")
        changes.publish(.approvals, detail: ["id": id])
        waiters.notify(topic: id)
        return answered
    }

    private static func settled(_ approval: ApprovalInfo) -> APIError {
        if approval.state == .expired {
            return .conflict("approval \(approval.id) expired unanswered; Claude Code's own dialog decides now",
                             code: .approvalExpired)
        }
        return .conflict("approval \(approval.id) was already answered: \(approval.state) by \(approval.answeredBy ?? "?")",
                         code: .approvalAnswered)
    }

    /// The approval; with `wait`, once it is no longer pending or the wait ends (expiry is an
    /// answer too). A caller that stops waiting (`Pending.cancel`) ends the wait.
    public func approval(_ id: String, wait: Int) throws -> Answer<ApprovalInfo> {
        let store = self.store
        guard let approval = try store.get(id, now: Clock.nowMillis()) else { throw APIError.notFound("approval \(id)") }
        guard wait > 0, approval.state == .pending else { return .now(approval) }
        let answer = Pending<ApprovalInfo>()
        let waiter = LongPolls.Waiter(topic: id) {
            guard let settled = try? store.get(id, now: Clock.nowMillis()), settled.state != .pending else { return false }
            answer.succeed(settled)
            return true
        } timeout: {
            answer.succeed((try? store.get(id, now: Clock.nowMillis())) ?? approval)
        }
        // Expiry is an answer too: wake up then at the latest.
        let untilExpiry = Int(max(1, (approval.expiresAt - Clock.nowMillis() + 999) / 1000))
        waiters.add(waiter, timeout: max(1, min(wait, untilExpiry)))
        answer.onCancel { [waiters] in waiters.remove(waiter) }
        return .later(answer)
    }

    public func shutdown() { waiters.finishAll() }
}
