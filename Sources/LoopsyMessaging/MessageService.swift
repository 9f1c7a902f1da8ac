import Dispatch
import FoundationEssentials
import LoopsyAPI
import LoopsyPeers
import LoopsyCore
import LoopsyClient
import LoopsyConfig
import LoopsyPOSIX
import LoopsyStore
import Synchronization

/// Durable messaging between nodes. Sending stores the message in the outbox first; a worker
/// delivers it (retrying with backoff while the peer is away, until its ttl), and the recipient
/// sends read/acked receipts back the same durable way. Every message is also mirrored into the
/// context store as `outbox:<id>` (sender) and `inbox:<recipient>:<id>` (recipient), the seed's
/// conventions, so scripts reading the context store see them.
public final class MessageService: Sendable {
    public let store: MessageStore
    private let peers: PeerService
    private let context: ContextStore
    private let config: LoopsyConfig
    private let logger: Logger
    private let waiters = LongPolls()
    private let queue = DispatchQueue(label: "loopsy.messages")
    private let running = Atomic<Bool>(false)
    private let wakeups = DispatchSemaphore(value: 0)

    static let maxIdBytes = 128

    private let changes: ChangeBus?

    public init(pool: DatabasePool, peers: PeerService, context: ContextStore, config: LoopsyConfig, logger: Logger,
         changes: ChangeBus? = nil) {
        store = MessageStore(pool: pool)
        self.changes = changes
        self.peers = peers
        self.context = context
        self.config = config
        self.logger = logger
    }

    private var ownId: String { peers.local.identity.nodeId }

    // MARK: Sending

    public func send(_ request: MessageSendRequest) throws -> [OutboxMessage] {
        let recipient = try recipient(request.to)
        let message = try makeMessage(body: request.body, type: request.type ?? .chat, id: request.id,
                                      replyTo: request.replyTo, thread: request.thread, ttl: request.ttl)
        let stored = try queue(message, recipients: [recipient])
        // First attempt right away, so the caller learns whether it was delivered; it may take
        // `inlineAttemptSeconds` (a peer whose cable is pulled must not hold the caller), and a
        // failure leaves it queued for the worker, which keeps trying until the ttl.
        for row in stored where row.state == "queued" { _ = attempt(row, timeoutSeconds: Self.inlineAttemptSeconds) }
        mirrorOutbox(message.id)
        return try store.outbox(id: message.id, limit: 1000).filter { $0.to == recipient.nodeId }
    }

    /// One message to every known peer: delivered at once to those that answer, queued for the
    /// rest (they get it when they return, until the ttl).
    public func broadcast(_ request: BroadcastRequest) throws -> BroadcastResponse {
        let message = try makeMessage(body: request.body, type: request.type ?? .broadcast, id: request.id,
                                      replyTo: nil, thread: nil, ttl: request.ttl)
        // Only peers this node can call: the others could never get it.
        let records = try peers.store.all().filter { $0.apiKey != nil }
        let stored = try queue(message, recipients: records.map { ($0.nodeId, $0.info.name) })
        var results: [PeerOutcome] = []
        let lock = PlainMutex<[PeerOutcome]>([])
        DispatchQueue.concurrentPerform(iterations: stored.count) { index in
            let row = stored[index]
            let outcome: PeerOutcome
            if row.state != "queued" {
                outcome = PeerOutcome(nodeId: row.to, name: row.toName, state: row.state, error: nil)
            } else if let failure = attempt(row, timeoutSeconds: Self.inlineAttemptSeconds) {
                outcome = PeerOutcome(nodeId: row.to, name: row.toName, state: "queued", error: failure)
            } else {
                outcome = PeerOutcome(nodeId: row.to, name: row.toName, state: "delivered", error: nil)
            }
            lock.withLock { $0.append(outcome) }
        }
        results = lock.withLock { $0 }.sorted { ($0.name, $0.nodeId) < ($1.name, $1.nodeId) }
        mirrorOutbox(message.id)
        return BroadcastResponse(id: message.id, results: results)
    }

    private func queue(_ message: OutboxMessage, recipients: [(nodeId: String, name: String)]) throws -> [OutboxMessage] {
        do {
            return try store.queue(message, recipients: recipients)
        } catch let error as MessageStoreError {
            throw APIError.conflict("\(error); pick a new id", code: .messageIdReused)
        }
    }

    /// Whether a message to `reference` stays on this node (no other machine is called).
    public func isLocal(_ reference: String) -> Bool { ["local", "self", ownId].contains(reference) }

    private func recipient(_ reference: String) throws -> (nodeId: String, name: String) {
        if isLocal(reference) { return (ownId, peers.local.hostname) }
        let record = try peers.resolve(reference)
        return (record.nodeId, record.info.name)
    }

    /// A message's id, and the ids it refers to, are 1–`maxIdBytes` bytes without control
    /// characters, whoever made the message: this node's callers or a peer delivering.
    private static func checkReferences(id: String, replyTo: String?, thread: String?) throws {
        for (name, value) in [("id", id), ("replyTo", replyTo ?? "x"), ("thread", thread ?? "x")] {
            guard !value.isEmpty, value.utf8.count <= Self.maxIdBytes, !value.unicodeScalars.contains(where: {
                $0.properties.generalCategory == .control
            }) else {
                throw APIError.badRequest("\(name) must be 1–\(Self.maxIdBytes) bytes without control characters")
            }
        }
    }

    /// A body is text: lines, tabs and printable characters. A control character is refused
    /// where the body is decoded: each one took six bytes in every JSON copy of the message (its
    /// context mirror, every inbox page), so a peer's thousand messages of 64 KiB of them held
    /// 390 MB here; and none has anything to say to the person or the session reading it.
    static func checkBody(_ body: String) throws {
        if body.utf8.contains(where: isRefused) {
            throw APIError.badRequest("the message body has a control character (only tab, line feed and carriage "
                + "return are taken): send text")
        }
    }

    /// `text` as a body: each control character `checkBody` refuses becomes a space (for text
    /// this node sends on another's behalf, such as a permission prompt's description).
    public static func asBody(_ text: String) -> String {
        guard text.utf8.contains(where: isRefused) else { return text }
        return String(decoding: text.utf8.map { isRefused($0) ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
    }

    /// A C0 control other than tab, line feed and carriage return, or DEL (bytes below 0x80 are
    /// never part of a longer UTF-8 sequence, so this reads bytes safely).
    private static func isRefused(_ byte: UInt8) -> Bool {
        (byte < 0x20 && byte != 0x0A && byte != 0x09 && byte != 0x0D) || byte == 0x7F
    }

    private func makeMessage(body: String, type: MessageType, id: String?, replyTo: String?, thread: String?,
                             ttl: Int?) throws -> OutboxMessage {
        let limit = config.messages.maxBodyBytes
        guard body.utf8.count <= limit else {
            throw APIError.payloadTooLarge("message body is \(body.utf8.count) bytes; the limit is \(limit) "
                + "(messages.maxBodyBytes)")
        }
        try Self.checkBody(body)
        let id = id ?? "msg_" + Secrets.apiKey().prefix(20)
        try Self.checkReferences(id: id, replyTo: replyTo, thread: thread)
        let ttl = ttl ?? config.messages.defaultTtl
        guard (1...30 * 86_400).contains(ttl) else {
            throw APIError.badRequest("ttl must be from 1 to 2592000 seconds (30 days)", code: .badTtl)
        }
        let now = Clock.nowMillis()
        return OutboxMessage(id: id, to: "", toName: "", type: type, body: body, replyTo: replyTo, thread: thread,
                             createdAt: now, expiresAt: now + Int64(ttl) * 1000, state: "queued", attempts: 0,
                             lastError: nil, deliveredAt: nil, readAt: nil, ackedAt: nil, ackNote: nil)
    }

    /// Hands one queued message to its recipient; nil on success, else why it failed.
    /// How long a send or broadcast waits for its first delivery attempt.
    static let inlineAttemptSeconds = 1

    private func attempt(_ message: OutboxMessage, timeoutSeconds: Int = 10) -> String? {
        let now = Clock.nowMillis()
        let delivery = MessageDelivery(id: message.id, fromName: peers.local.hostname, type: message.type,
                                       body: message.body, replyTo: message.replyTo, thread: message.thread,
                                       createdAt: message.createdAt, expiresAt: message.expiresAt)
        var failure: String?
        if message.to == ownId {
            do {
                try receive(delivery, from: ownId)
            } catch {
                failure = "\(error)"
            }
        } else {
            do {
                guard let record = try peers.store.get(message.to) else {
                    throw APIError.notFound("peer \(message.to) (no longer known)")
                }
                guard record.apiKey != nil else {
                    throw APIError.forbidden("no key for peer \(record.info.name): add it with one of its keys")
                }
                _ = try peers.client(for: record, timeoutSeconds: timeoutSeconds)
                    .call("POST", API.messagesDeliver(), body: delivery, as: MessageDeliveryResult.self)
            } catch {
                failure = (error as? APIError)?.message ?? "\(error)"
                if let record = try? peers.store.get(message.to) {
                    failure = peers.apiError(error, calling: record, context: "message delivery").message
                }
            }
        }
        do {
            if let failure {
                let delay = min(60_000, 1000 << min(message.attempts, 6))
                try store.markAttemptFailed(id: message.id, to: message.to, error: failure,
                                            nextAttemptAt: now + Int64(delay))
            } else {
                try store.markDelivered(id: message.id, to: message.to, now: now)
            }
            changes?.publish(.messages, detail: ["id": message.id, "to": message.to])
        } catch {
            logger.warn("messages: cannot record delivery of \(message.id): \(error)")
        }
        return failure
    }

    // MARK: Receiving

    /// A message from another node (or from this one to itself).
    @discardableResult
    public func receive(_ delivery: MessageDelivery, from nodeId: String) throws -> MessageDeliveryResult {
        guard delivery.body.utf8.count <= config.messages.maxBodyBytes else {
            throw APIError.payloadTooLarge("message body is larger than messages.maxBodyBytes here")
        }
        try Self.checkBody(delivery.body)
        // The same rules as for messages made here: a peer's thread and replyTo were bounded
        // only by the route's body limit (a 320 kB thread was stored, twice with its mirror).
        try Self.checkReferences(id: delivery.id, replyTo: delivery.replyTo, thread: delivery.thread)
        let now = Clock.nowMillis()
        let name = (try? peers.store.get(nodeId))?.info.name ?? delivery.fromName.prefix(utf8Bytes: 256)
        var sanitized = delivery
        sanitized.fromName = name
        let (message, duplicate): (InboxMessage, Bool)
        do {
            (message, duplicate) = try store.receive(sanitized, from: nodeId, now: now,
                                                     maxPerSender: config.messages.maxInboxPerSender)
        } catch let error as MessageStoreError {
            guard case .inboxFull = error else { throw error }
            throw APIError(status: 429, code: .inboxFull, message: "\(error)", headers: ["Retry-After": "60"])
        }
        if !duplicate {
            mirrorInbox(message)
            // Only the long polls from before this message can be answered by it.
            waiters.notify(after: message.seq)
        }
        return MessageDeliveryResult(duplicate: duplicate)
    }

    /// Bytes an ack's note may have, from this node's agents or in a peer's receipt.
    public static let maxNoteBytes = 4096

    /// A read/acked receipt from the node a message was sent to.
    public func applyReceipt(_ receipt: MessageReceipt, from nodeId: String) throws {
        guard ["read", "acked"].contains(receipt.state) else {
            throw APIError.badRequest("state must be read or acked")
        }
        // The limit a local ack has (`mark`): a peer's note is stored and mirrored the same way.
        if let note = receipt.note, note.utf8.count > Self.maxNoteBytes {
            throw APIError.badRequest("note is limited to \(Self.maxNoteBytes) bytes")
        }
        guard try store.applyReceipt(id: receipt.id, from: nodeId, state: receipt.state, at: receipt.at,
                                     note: receipt.note) != nil else {
            throw APIError.notFound("message \(receipt.id) to \(nodeId)")
        }
        mirrorOutbox(receipt.id)
    }

    // MARK: Inbox

    public func inbox(unreadOnly: Bool, after: Int64, limit: Int) throws -> InboxListResponse {
        let page = try store.inbox(unreadOnly: unreadOnly, after: after, limit: limit)
        return InboxListResponse(messages: page.messages, cursor: page.cursor, more: page.more ? true : nil)
    }

    /// The inbox now if it has something, else an answer that waits up to `wait` seconds for a
    /// message (no thread waits); a caller that stops waiting (`Pending.cancel`) ends the wait.
    public func inbox(unreadOnly: Bool, after: Int64, limit: Int, wait: Int) throws -> Answer<InboxListResponse> {
        let now = try inbox(unreadOnly: unreadOnly, after: after, limit: limit)
        // limit 0 asks for the cursor alone: nothing could end a wait.
        guard now.messages.isEmpty, wait > 0, limit > 0 else { return .now(now) }
        let answer = Pending<InboxListResponse>()
        let waiter = LongPolls.Waiter(after: after) { [self] in
            let page = (try? inbox(unreadOnly: unreadOnly, after: after, limit: limit))
                ?? InboxListResponse(messages: [], cursor: after)
            if page.messages.isEmpty { return false }
            answer.succeed(page)
            return true
        } timeout: { [self] in
            answer.succeed((try? inbox(unreadOnly: unreadOnly, after: after, limit: limit))
                ?? InboxListResponse(messages: [], cursor: after))
        }
        // Checked once more on registration: a message may have landed since the query above.
        waiters.add(waiter, timeout: wait)
        answer.onCancel { [waiters] in waiters.remove(waiter) }
        return .later(answer)
    }

    /// Marks a message read or acked and queues the receipt for its sender.
    public func mark(id: String, from: String?, state: String, note: String?, keepApprovals: Bool = false) throws
        -> InboxMessage {
        let target = try inboxMessage(id: id, from: from)
        if keepApprovals && target.type == .approval {
            throw APIError.conflict("message \(id) is a permission prompt forwarded from \(target.fromName): a person "
                + "answers it with `loopsy approvals` / `loopsy approve \(id)`; it stays as it is", code: .approvalForAPerson)
        }
        if let note, note.utf8.count > Self.maxNoteBytes {
            throw APIError.badRequest("note is limited to \(Self.maxNoteBytes) bytes")
        }
        guard let updated = try store.mark(seq: target.seq, state: state, note: note, now: Clock.nowMillis()) else {
            throw APIError.notFound("message \(id) in the inbox")
        }
        mirrorInbox(updated)
        wake()
        return updated
    }

    /// Records that a live session got the message (loopsy-mcp's channel); its state is
    /// unchanged: reading it through the tools still marks it read.
    public func markSession(id: String, from: String?) throws -> InboxMessage {
        let target = try inboxMessage(id: id, from: from)
        guard let updated = try store.markSession(seq: target.seq, now: Clock.nowMillis()) else {
            throw APIError.notFound("message \(id) in the inbox")
        }
        return updated
    }

    /// The one inbox message with this id (from `from` when several senders used it).
    private func inboxMessage(id: String, from: String?) throws -> InboxMessage {
        let candidates = try store.inboxMessages(id: id, from: from)
        guard let target = candidates.first else { throw APIError.notFound("message \(id) in the inbox") }
        guard candidates.count == 1 else {
            throw APIError.conflict("\(candidates.count) senders used id \(id); say which with from",
                                    code: .ambiguousMessage)
        }
        return target
    }

    // MARK: Context broadcast

    /// Sets a key here and on every known peer, reporting what happened at each.
    public func broadcastContext(_ request: ContextBroadcastRequest, put: (ContextBroadcastRequest) throws -> Void)
        throws -> BroadcastResponse {
        try put(request)
        let records = try peers.store.all()
        let results = PlainMutex<[PeerOutcome]>([])
        // Each peer answers with the entry it stored, the value escaped in JSON (up to six bytes
        // for one): room for that, not the 1 MiB the daemon's other calls to peers keep.
        let answerBytes = request.value.utf8.count * 6 + (64 << 10)
        DispatchQueue.concurrentPerform(iterations: records.count) { index in
            let record = records[index]
            var outcome = PeerOutcome(nodeId: record.nodeId, name: record.info.name, state: "set", error: nil)
            if record.apiKey == nil {
                outcome.state = "skipped"
                outcome.error = "no key for this peer"
            } else {
                do {
                    _ = try peers.client(for: record, timeoutSeconds: 10, maxAnswerBytes: answerBytes)
                        .contextSet(request.key, value: request.value, ttl: request.ttl)
                } catch {
                    outcome.state = "failed"
                    outcome.error = peers.apiError(error, calling: record, context: "context broadcast").message
                }
            }
            results.withLock { $0.append(outcome) }
        }
        return BroadcastResponse(id: nil, results: results.withLock { $0 }.sorted { $0.name < $1.name })
    }

    /// Each sender's acked messages past the `messages.maxInboxPerSender` it acked last go (the
    /// daemon's upkeep), with their context mirrors: mirrors are outside the owner's context
    /// quota, so they must go with the message. Those past their ttl by a week go in
    /// `store.prune`.
    public func forgetAcked() throws {
        try store.forgetAcked(keepingPerSender: config.messages.maxInboxPerSender) { chunk in
            for (seq, id, from) in chunk { forgetMirror(seq: seq, id: id, from: from) }
        }
    }

    private func forgetMirror(seq: Int64, id: String, from: String) {
        let key = "inbox:\(ownId):\(id)"
        do {
            // Only the mirror of that very message: another sender's message with the same id,
            // or this sender's new one under a forgotten id, may hold the key by now.
            guard let held = try context.get(key: key),
                  let mirrored = try? SafeJSON.decode(InboxMessage.self, from: Array(held.value.utf8)),
                  mirrored.from == from, mirrored.seq == seq else { return }
            _ = try context.delete(key: key, ifRevision: held.revision)
        } catch ContextStoreError.revisionMismatch {
            return  // written again meanwhile: the message it mirrors now is another
        } catch {
            // The row is gone already: the other mirrors still go; this one ends with its ttl.
            logger.warn("messages: the mirror \(key) of a forgotten message stays until its ttl: \(error)")
        }
    }

    // MARK: Worker

    public func start() {
        guard !running.exchange(true, ordering: .relaxed) else { return }
        queue.async { [self] in
            while running.load(ordering: .relaxed) {
                work()
                _ = wakeups.wait(timeout: .now() + .milliseconds(500))
            }
        }
    }

    public func stop() {
        running.store(false, ordering: .relaxed)
        wakeups.signal()
        waiters.finishAll()
    }

    public func wake() { wakeups.signal() }

    /// A peer came online: what waits for it goes now.
    public func peerOnline(_ nodeId: String) {
        let now = Clock.nowMillis()
        try? store.retrySoon(to: nodeId, now: now)
        try? store.receiptsSoon(to: nodeId, now: now)
        wake()
    }

    private func work() {
        let now = Clock.nowMillis()
        do {
            for expired in try store.expire(now: now) {
                logger.info("message \(expired.id) to \(expired.toName) expired undelivered")
                mirrorOutbox(expired.id)
            }
            // One message per recipient per pass, all recipients in parallel: a peer that is away
            // costs one timed-out attempt, and nobody else's messages wait behind it.
            var seen: Set<String> = []
            let due = try store.dueForDelivery(now: now).filter { seen.insert($0.to).inserted }
            DispatchQueue.concurrentPerform(iterations: due.count) { index in
                if attempt(due[index]) == nil { mirrorOutbox(due[index].id) }
            }
            // Receipts go one after another: after one to a node fails, the rest of this pass's
            // to it wait for the next try without a call each (100 owed to a node that never
            // answers took 1000 s of timeouts, and everyone else's receipts waited behind them).
            var unreachable: Set<String> = []
            for receipt in try store.dueReceipts(now: now) {
                if unreachable.contains(receipt.to) {
                    retryLater(receipt, now: now)
                } else if !sendReceipt(receipt, now: now) {
                    unreachable.insert(receipt.to)
                }
            }
        } catch {
            logger.warn("messages: delivery pass failed: \(error)")
        }
    }

    /// False when the sender could not be told (it is tried again later).
    private func sendReceipt(_ receipt: MessageStore.PendingReceipt, now: Int64) -> Bool {
        let body = MessageReceipt(id: receipt.id, state: receipt.state, at: receipt.at, note: receipt.note)
        do {
            if receipt.to == ownId {
                try applyReceipt(body, from: ownId)
            } else {
                guard let record = try peers.store.get(receipt.to) else {
                    // The sender was removed from the peers: there is nobody left to tell.
                    try store.receiptSent(seq: receipt.seq, state: receipt.state)
                    return true
                }
                guard record.apiKey != nil else { throw APIError.notFound("no key for the sender \(receipt.to)") }
                _ = try peers.client(for: record, timeoutSeconds: 10)
                    .call("POST", API.messagesReceipt(), body: body, as: MessageDeliveryResult.self)
            }
            try store.receiptSent(seq: receipt.seq, state: receipt.state)
            return true
        } catch ClientError.api(let error) where error.status == 404 {
            // The sender no longer has the message: nothing left to tell it.
            try? store.receiptSent(seq: receipt.seq, state: receipt.state)
            return true
        } catch {
            retryLater(receipt, now: now)
            return false
        }
    }

    private func retryLater(_ receipt: MessageStore.PendingReceipt, now: Int64) {
        let delay = min(60_000, 1000 << min(receipt.attempts, 6))
        try? store.receiptFailed(seq: receipt.seq, state: receipt.state, nextAttemptAt: now + Int64(delay))
    }

    // MARK: Context mirror

    private func mirrorOutbox(_ id: String) {
        guard let rows = try? store.outbox(id: id, limit: 1000), let first = rows.first,
              let json = try? SafeJSON.encoder.encode(rows) else { return }
        let ttl = max(1, Int((first.expiresAt - Clock.nowMillis()) / 1000) + 7 * 86_400)
        mirror("outbox:\(id)", String(decoding: json, as: UTF8.self), ttl: ttl)
    }

    private func mirrorInbox(_ message: InboxMessage) {
        guard let json = try? SafeJSON.encoder.encode(message) else { return }
        let ttl = max(1, Int((message.expiresAt - Clock.nowMillis()) / 1000) + 7 * 86_400)
        let key = "inbox:\(ownId):\(message.id)"
        // The key names no sender (as in the original): ids are the senders' own, so two may
        // choose one. The first sender's message keeps it; another's with the same id is in
        // the inbox but not mirrored, so no peer can replace what another peer's message says.
        if let held = try? context.get(key: key),
           let mirrored = try? SafeJSON.decode(InboxMessage.self, from: Array(held.value.utf8)),
           mirrored.from != message.from {
            logger.debug("messages: \(key) mirrors a message from \(mirrored.from); not mirroring \(message.from)'s")
            return
        }
        mirror(key, String(decoding: json, as: UTF8.self), ttl: ttl)
    }

    private func mirror(_ key: String, _ value: String, ttl: Int) {
        do {
            // Mirrors are bounded by the message limits, not the owner's context quota.
            _ = try context.put(key: key, value: value, ttl: ttl, fromNodeId: ownId, maxEntries: .max)
        } catch {
            logger.debug("messages: context mirror \(key) not written: \(error)")
        }
    }
}
