import LoopsyAPI
import LoopsyMessaging
import LoopsyConfig
import LoopsyHTTP

/// The route table: every route of the daemon, sorted by path then method. A test keeps it
/// sorted and free of duplicates; the OpenAPI document is generated from it.
public enum Routes {
    public static func table(config: LoopsyConfig) -> [Route] {
        // A JSON string can spell one byte as six ("\u0000"); the handler enforces the real limit.
        let contextBody = config.context.maxValueBytes * 6 + 4096
        let key = API.contextEntry
        let forward = API.peerForward
        // Cursors (event numbers, row ids) are 64-bit.
        let cursor: JSONValue = ["type": "integer", "minimum": 0, "maximum": .integer(Int.max)]
        // JSON may spell a byte as six; the service enforces the real limit.
        let messageBody = config.messages.maxBodyBytes * 6 + 4096
        let revisionMismatch = OperationDoc.Response(
            status: 412, description: "ifRevision did not match; `current` is the entry now (null: absent)",
            schema: Schemas.ref("RevisionMismatch"))
        let busyHashing = OperationDoc.Response.error(
            503, "The daemon is already hashing as many large files as it queues (busy_hashing, with Retry-After)")
        let forwardResponses: [OperationDoc.Response] = [
            OperationDoc.Response(status: 200, description: "Whatever the peer answers (status, body and headers)",
                                  schema: nil),
            .error(404, "Unknown peer"), .error(409, "The name matches several peers"),
            .error(502, "The peer is unreachable, presented a TLS key other than the pinned one, or took none of "
                + "the request body for 120 s")]
        return [
            Route(.get, API.aiTasks, access: .grant(.tasks), doc: OperationDoc(
                "listTasks", "Claude Code tasks on this node (the caller's; the owner sees all), newest first: at "
                    + "most `limit`, and past the first, about 4 MiB of prompts", tag: "ai-tasks",
                query: [.query("limit", ["type": "integer", "minimum": 1, "maximum": 1000], "at most this many")],
                responses: [.ok(Schemas.ref("TaskList"))]), TaskHandlers.list),
            Route(.post, API.aiTasks, access: .grant(.tasks), category: .execute, maxBody: 1 << 20, doc: OperationDoc(
                "createTask", "Run Claude Code (claude -p) with a prompt in a directory of this machine", tag: "ai-tasks",
                requestBody: Schemas.ref("TaskRequest"),
                responses: [OperationDoc.Response(status: 201, description: "The task", schema: Schemas.ref("Task")),
                            .error(403, "A caller other than the owner asked for bypassPermissions, allowedTools, "
                                + "or to resume a session not of its own tasks (task_options_forbidden)"),
                            .error(429, "aiTasks.maxConcurrent tasks run already"),
                            .error(503, "The Claude Code CLI is not installed")]), TaskHandlers.create),
            Route(.delete, API.aiTask, access: .grant(.tasks), doc: OperationDoc(
                "cancelTask", "Cancel a running task (its process group is killed) or delete a finished one",
                tag: "ai-tasks", responses: [.ok(Schemas.ref("Task")), .error(404, "No such task")]), TaskHandlers.cancel),
            Route(.get, API.aiTask, access: .grant(.tasks), doc: OperationDoc(
                "getTask", "A task with its pending permission requests", tag: "ai-tasks",
                responses: [.ok(Schemas.ref("Task")), .error(404, "No such task")]), TaskHandlers.get),
            Route(.post, API.aiTaskApprove, access: .grant(.tasks), doc: OperationDoc(
                "approveTask", "Approve or deny a pending permission request", tag: "ai-tasks",
                requestBody: Schemas.ref("Approval"),
                responses: [.ok(Schemas.ref("Task")), .error(404, "No such pending request"),
                            .error(403, "With execution.allowlist set, only the owner answers a key's or peer's task")]),
                  TaskHandlers.approve),
            Route(.get, API.aiTaskEvents, access: .grant(.tasks), doc: OperationDoc(
                "taskEvents", "A task's stored events after `since`", tag: "ai-tasks",
                query: [.query("since", cursor, "only events with a larger number"),
                        .query("limit", ["type": "integer", "minimum": 1, "maximum": 10000],
                               "at most this many, and about 16 MiB of event data (at least one event): "
                               + "ask again from the last one for the rest")],
                responses: [.ok(Schemas.ref("TaskEvents")), .error(404, "No such task")]), TaskHandlers.events),
            Route(.post, API.aiTaskPermissions, access: .ownerKey, doc: OperationDoc(
                "askPermission", "The task's PreToolUse hook asks; the answer comes once someone decides (or the "
                    + "timeout denies)", tag: "ai-tasks", requestBody: Schemas.ref("PermissionAsk"),
                responses: [.ok(Schemas.ref("PermissionDecision")), .error(404, "No such running task")]),
                  TaskHandlers.permission),
            Route(.get, API.aiTaskStream, access: .grant(.tasks), doc: OperationDoc(
                "streamTask", "Server-Sent Events with ids; resume with ?since= or Last-Event-ID (a reader far behind "
                    + "gets them in pages of up to 1000 events or 4 MiB: the stream ends after one, and it resumes)",
                tag: "ai-tasks",
                query: [.query("since", cursor, "events after this number")],
                responses: [OperationDoc.Response(status: 200, description: "init, text, thinking, tool_use, tool_result, "
                    + "permission_request, permission_decision, result, output, truncated, exit",
                                                  schema: Schemas.ref("ServerSentEvent"),
                                                  contentType: "text/event-stream"),
                            .error(404, "No such task")]), TaskHandlers.stream),
            Route(.get, API.approvals, access: .owner, doc: OperationDoc(
                "listApprovals", "Permission prompts of this node's Claude Code sessions, newest first", tag: "channels",
                query: [.query("state", ["type": "string", "enum": Schemas.words(ApprovalState.allCases)],
                               "only approvals in this state"),
                        .query("limit", ["type": "integer", "minimum": 1, "maximum": 1000], "at most this many")],
                responses: [.ok(Schemas.ref("SessionApprovalList"))]), ApprovalHandlers.list),
            Route(.post, API.approvals, access: .owner, maxBody: 64 * 1024, doc: OperationDoc(
                "createApproval", "loopsy-mcp records a session's permission prompt; it is forwarded to "
                    + "channels.approvers", tag: "channels", requestBody: Schemas.ref("SessionApprovalCreate"),
                responses: [OperationDoc.Response(status: 201, description: "The pending approval",
                                                  schema: Schemas.ref("SessionApproval")),
                            .error(429, "channels.maxPendingApprovals prompts wait already")]), ApprovalHandlers.create),
            Route(.get, API.approval, access: .owner, doc: OperationDoc(
                "getApproval", "An approval; with wait, answered once it is settled (or when the wait ends)",
                tag: "channels",
                query: [.query("wait", ["type": "integer", "minimum": 0, "maximum": 60], "seconds to wait for an answer")],
                responses: [.ok(Schemas.ref("SessionApproval")), .error(404, "No such approval")]), ApprovalHandlers.get),
            Route(.post, API.approvalAnswer, access: .grantToPeers(.approvals), maxBody: 4096, doc: OperationDoc(
                "answerApproval", "Allow or deny a pending prompt: the owner, or an approver peer it was sent to; "
                    + "the first answer wins", tag: "channels", requestBody: Schemas.ref("SessionApprovalAnswer"),
                responses: [.ok(Schemas.ref("SessionApproval")), .error(404, "No such approval"),
                            .error(403, "Not sent to this peer"),
                            .error(409, "Already answered, or expired")]), ApprovalHandlers.answer),
            Route(.get, API.audit, access: .owner, doc: OperationDoc(
                "listAudit", "Recent audited requests, oldest first", tag: "system",
                query: [.query("limit", ["type": "integer", "minimum": 1, "maximum": 1000], "how many (default 100)"),
                        .query("after", cursor, "only entries with a larger id")],
                responses: [.ok(Schemas.ref("AuditList"))]), SystemHandlers.audit),
            Route(.get, API.context, access: .grant(.contextRead), category: .context, doc: OperationDoc(
                "listContext", "List live entries in key order, optionally by key prefix, a page at a time (at most "
                    + "`limit` entries and about 4 MiB of keys and values; `more` and `nextAfterKey` say where the next "
                    + "page starts); with `after` or `wait`, watch: the changes after cursor `after` (default: now), "
                    + "waiting up to `wait` seconds for one",
                tag: "context",
                query: [.query("prefix", ["type": "string"], "only keys starting with this"),
                        .query("afterKey", ["type": "string"],
                               "only keys after this one, byte-wise (the previous page's nextAfterKey; at most 512 bytes)"),
                        .query("limit", ["type": "integer", "minimum": 1, "maximum": 10000], "at most this many"),
                        .query("after", cursor, "watch: changes after this cursor"),
                        .query("wait", ["type": "integer", "minimum": 0, "maximum": 300], "watch: seconds to wait")],
                responses: [.ok(["anyOf": [Schemas.ref("ContextList"), Schemas.ref("ContextChanges")]]),
                            .error(503, "Too many watches are open")]), ContextHandlers.list),
            Route(.post, API.contextBroadcast, access: .owner, category: .context, maxBody: contextBody, doc: OperationDoc(
                "broadcastContext", "Set a key here and on every known peer; reports what happened at each",
                tag: "context", requestBody: Schemas.ref("ContextBroadcast"),
                responses: [.ok(Schemas.ref("BroadcastResult"))]), ContextHandlers.broadcast),
            Route(.delete, key, access: .grant(.contextWrite), category: .context, doc: OperationDoc(
                "deleteContext", "Delete an entry", tag: "context",
                query: [.query("ifRevision", ["type": "integer", "minimum": 0, "maximum": .integer(Int.max)],
                               "compare-and-delete: only if the key is at this revision")],
                responses: [.ok(Schemas.ref("Deleted")), .error(404, "No such live key"), revisionMismatch]),
                  ContextHandlers.delete),
            Route(.get, key, access: .grant(.contextRead), category: .context, doc: OperationDoc(
                "getContext", "Get an entry; with `afterRevision` or `wait`, watch it: answered once it is at "
                    + "another revision (or gone), or when the wait ends", tag: "context",
                query: [.query("afterRevision", cursor, "watch: answer when the key is no longer at this revision"),
                        .query("wait", ["type": "integer", "minimum": 0, "maximum": 300], "watch: seconds to wait")],
                responses: [.ok(Schemas.ref("ContextEntry")), .error(404, "No such live key"),
                            .error(503, "Too many watches are open")]), ContextHandlers.get),
            Route(.put, key, access: .grant(.contextWrite), category: .context, maxBody: contextBody, doc: OperationDoc(
                "putContext", "Create or replace an entry", tag: "context", requestBody: Schemas.ref("ContextPut"),
                responses: [.ok(Schemas.ref("ContextEntry")), .error(409, "Entry limit reached"), revisionMismatch,
                            .error(503, "The daemon is shutting down; nothing was stored"),
                            .error(507, "Disk full")]), ContextHandlers.put),
            Route(.get, API.events, access: .owner, doc: OperationDoc(
                "events", "Server-Sent Events: a `change` event naming the area (context, messages, peers, ai-tasks, "
                    + "execute, transfer, pair) each time something changes here; for live views. Owner only",
                tag: "system",
                responses: [OperationDoc.Response(status: 200, description: "ready, then change events",
                                                  schema: Schemas.ref("ServerSentEvent"), contentType: "text/event-stream"),
                            .error(403, "Only this node's own key may watch"),
                            .error(503, "Too many watchers")]), SystemHandlers.events),
            Route(.post, API.execute, access: .grant(.exec), category: .execute, maxBody: 1 << 20, doc: OperationDoc(
                "execute", "Run a program (argv, no shell) and return its result when it ends", tag: "execute",
                requestBody: Schemas.ref("ExecuteRequest"),
                responses: [.ok(Schemas.ref("ExecuteResult")), .error(404, "Program not found"),
                            .error(429, "Too many jobs running (execution.maxConcurrent) or rate limit")]),
                  ExecuteHandlers.execute),
            Route(.get, API.executeJobs, access: .grant(.exec), doc: OperationDoc(
                "listJobs", "Running jobs (the caller's; the owner sees all); with all=1 also recently finished "
                    + "ones, newest first: at most `limit`, and past the first, about 4 MiB of commands and arguments",
                tag: "execute",
                query: [.query("all", ["type": "string", "enum": ["0", "1", "true", "false"]], "include finished jobs"),
                        .query("limit", ["type": "integer", "minimum": 1, "maximum": 1000], "finished jobs to include")],
                responses: [.ok(Schemas.ref("JobList"))]), ExecuteHandlers.jobs),
            Route(.post, API.executeStream, access: .grant(.exec), category: .execute, maxBody: 1 << 20, doc: OperationDoc(
                "executeStream", "Run a program and stream its output as Server-Sent Events", tag: "execute",
                requestBody: Schemas.ref("ExecuteRequest"),
                responses: [OperationDoc.Response(status: 200,
                                                  description: "Events: start, stdout, stderr, exit (an ExecuteResult)",
                                                  schema: Schemas.ref("ServerSentEvent"), contentType: "text/event-stream"),
                            .error(429, "Too many jobs running (execution.maxConcurrent) or rate limit")]),
                  ExecuteHandlers.stream),
            Route(.delete, API.executeJob, access: .grant(.exec), doc: OperationDoc(
                "cancelJob", "Cancel a running job (SIGTERM to its process group, then SIGKILL)", tag: "execute",
                responses: [.ok(Schemas.ref("Cancelled")), .error(404, "No such running job")]), ExecuteHandlers.cancel),
            Route(.get, API.grants, access: .owner, doc: OperationDoc(
                "listGrants", "What each peer holding a credential and each extra key may do here", tag: "peers",
                responses: [.ok(Schemas.ref("GrantList"))]), GrantHandlers.list),
            Route(.post, API.grant, access: .owner, maxBody: 64 * 1024, doc: OperationDoc(
                "changeGrants", "Grant or revoke capabilities of a peer (name or nodeId) or a key (key:NAME); applies "
                    + "to its next request", tag: "peers", requestBody: Schemas.ref("GrantChange"),
                responses: [.ok(Schemas.ref("Grant")), .error(404, "No such peer or key"),
                            .error(409, "The peer holds no credential for this node")]), GrantHandlers.change),
            Route(.get, API.health, access: .open, doc: OperationDoc(
                "health", "Liveness check (no auth)", tag: "system",
                responses: [.ok(Schemas.ref("Health"))]), SystemHandlers.health),
            Route(.get, API.identity, access: .open, doc: OperationDoc(
                "identity", "This node's public identity: nodeId, public key and TLS fingerprint (no auth: "
                    + "mDNS announces the same)", tag: "system",
                responses: [.ok(Schemas.ref("Identity"))]), SystemHandlers.identity),
            Route(.get, API.locks, access: .grant(.contextRead), category: .context, doc: OperationDoc(
                "listLocks", "Locks held now, by name", tag: "locks",
                responses: [.ok(Schemas.ref("LockList"))]), LockHandlers.list),
            Route(.delete, API.lock, access: .grant(.contextWrite), category: .context, doc: OperationDoc(
                "releaseLock", "Release a lock: only its holder, proven by its fencing token", tag: "locks",
                query: [OperationDoc.Parameter(name: "token", schema: ["type": "integer", "minimum": 1,
                                                                       "maximum": .integer(Int.max)],
                                               description: "the fencing token the acquisition returned", required: true)],
                responses: [.ok(Schemas.ref("LockReleased")), .error(409, "That token does not hold the lock")]),
                  LockHandlers.release),
            Route(.post, API.lock, access: .grant(.contextWrite), category: .context, maxBody: 4096, doc: OperationDoc(
                "acquireLock", "Take a lock for a lease of `ttl` seconds; with ?wait=S, wait up to S seconds for it",
                tag: "locks", query: [.query("wait", ["type": "integer", "minimum": 0, "maximum": 300],
                                             "seconds to wait for the lock (0: answer at once)")],
                requestBody: Schemas.ref("LockAcquire"),
                responses: [OperationDoc.Response(status: 201, description: "Taken: the lock with its fencing token",
                                                  schema: Schemas.ref("Lock")),
                            OperationDoc.Response(status: 409, description: "Held by someone else (or too many locks)",
                                                  schema: ["anyOf": [Schemas.ref("LockHeld"), Schemas.ref("Error")]]),
                            .error(503, "Too many requests wait for locks")]), LockHandlers.acquire),
            Route(.post, API.lockRenew, access: .grant(.contextWrite), category: .context, maxBody: 4096, doc: OperationDoc(
                "renewLock", "Extend the lease of the holder whose fencing token this is", tag: "locks",
                requestBody: Schemas.ref("LockRenew"),
                responses: [.ok(Schemas.ref("Lock")), .error(409, "That token does not hold the lock")]),
                  LockHandlers.renew),
            Route(.post, API.messages, access: .owner, category: .context, maxBody: messageBody, doc: OperationDoc(
                "sendMessage", "Send a message to a peer: stored first, delivered with retries until its ttl",
                tag: "messages", requestBody: Schemas.ref("MessageSend"),
                responses: [OperationDoc.Response(status: 201, description: "The outbox entry",
                                                  schema: Schemas.ref("OutboxList")),
                            .error(404, "Unknown peer"), .error(413, "Body larger than messages.maxBodyBytes")]),
                  MessageHandlers.send),
            Route(.post, API.messagesBroadcast, access: .owner, category: .context, maxBody: messageBody, doc: OperationDoc(
                "broadcastMessage", "Send one message to every known peer; reports delivered or queued per peer",
                tag: "messages", requestBody: Schemas.ref("Broadcast"),
                responses: [.ok(Schemas.ref("BroadcastResult"))]), MessageHandlers.broadcast),
            Route(.post, API.messagesDeliver, access: .peer(.messages), category: .context, maxBody: messageBody, doc: OperationDoc(
                "deliverMessage", "Node to node: hand over a message (the sender is the calling node)",
                tag: "messages", requestBody: Schemas.ref("MessageDelivery"),
                responses: [.ok(Schemas.ref("DeliveryResult"))]), MessageHandlers.deliver),
            Route(.get, API.inbox, access: .owner, doc: OperationDoc(
                "inbox", "Messages received, oldest first; with wait, holds the request until one arrives",
                tag: "messages",
                query: [.query("unread", ["type": "string", "enum": ["0", "1", "true", "false"]], "only unread ones"),
                        .query("after", cursor, "only messages with a larger seq (cursor)"),
                        .query("limit", ["type": "integer", "minimum": 0, "maximum": 1000],
                               "at most this many (and 4 MiB of them, past the first); 0: only the cursor"),
                        .query("wait", ["type": "integer", "minimum": 0, "maximum": 60],
                               "seconds to wait for a message when there is none")],
                responses: [.ok(Schemas.ref("InboxList"))]), MessageHandlers.inbox),
            Route(.post, API.inboxAck, access: .owner, category: .context, doc: OperationDoc(
                "ackMessage", "Acknowledge a message (the sender sees acked)", tag: "messages",
                requestBody: Schemas.ref("MessageAck"),
                responses: [.ok(Schemas.ref("InboxMessage")), .error(404, "No such message"),
                            .error(409, "Several senders used this id: give from; or, with keepApprovals, a "
                                + "forwarded permission prompt (approval_for_a_person)")]), MessageHandlers.ack),
            Route(.post, API.inboxRead, access: .owner, category: .context, doc: OperationDoc(
                "readMessage", "Mark a message read (the sender sees read)", tag: "messages",
                requestBody: Schemas.ref("MessageAck"),
                responses: [.ok(Schemas.ref("InboxMessage")), .error(404, "No such message"),
                            .error(409, "Several senders used this id: give from; or, with keepApprovals, a "
                                + "forwarded permission prompt (approval_for_a_person)")]), MessageHandlers.read),
            Route(.post, API.inboxSession, access: .owner, category: .context, doc: OperationDoc(
                "sessionMessage", "Record that a live Claude Code session got the message (loopsy-mcp's channel); "
                    + "its state stays as it is", tag: "messages", requestBody: Schemas.ref("MessageAck"),
                responses: [.ok(Schemas.ref("InboxMessage")), .error(404, "No such message"),
                            .error(409, "Several senders used this id: give from")]), MessageHandlers.session),
            Route(.get, API.outbox, access: .owner, doc: OperationDoc(
                "outbox", "Messages sent, newest first, each with its delivery state", tag: "messages",
                query: [.query("state", ["type": "string", "enum": ["queued", "delivered", "read", "acked", "expired"]],
                               "only messages in this state"),
                        .query("limit", ["type": "integer", "minimum": 1, "maximum": 1000], "at most this many")],
                responses: [.ok(Schemas.ref("OutboxList"))]), MessageHandlers.outbox),
            Route(.get, API.outboxMessage, access: .owner, doc: OperationDoc(
                "outboxMessage", "One sent message: its state at each recipient", tag: "messages",
                responses: [.ok(Schemas.ref("OutboxList")), .error(404, "No such message")]),
                  MessageHandlers.outboxMessage),
            Route(.post, API.messagesReceipt, access: .peer(), category: .context, doc: OperationDoc(
                "messageReceipt", "Node to node: a message was read or acked by its recipient (the calling node)",
                tag: "messages", requestBody: Schemas.ref("MessageReceipt"),
                responses: [.ok(Schemas.ref("DeliveryResult")), .error(404, "No such message to that node")]),
                  MessageHandlers.receipt),
            Route(.get, API.openAPI, access: .credential, doc: OperationDoc(
                "openapi", "This document", tag: "system",
                responses: [.ok(Schemas.ref("OpenAPIDocument"))]), openAPI),
            Route(.post, API.pairAbort, access: .open, doc: OperationDoc(
                "pairAbort", "Node to node: the initiator's person declined (authenticated by a session key)",
                tag: "pairing", requestBody: Schemas.ref("PairSealed"),
                responses: [.ok(Schemas.ref("PairAck")), .error(404, "No such pairing session")]), PairingHandlers.abort),
            Route(.post, API.pairCancel, access: .owner, doc: OperationDoc(
                "pairCancel", "Cancel this node's pairing session", tag: "pairing",
                responses: [.ok(Schemas.ref("PairStatus"))]), PairingHandlers.cancel),
            Route(.post, API.pairCommit, access: .open, category: .pairing, doc: OperationDoc(
                "pairCommit", "Node to node, step 1: a commitment to the initiator's key and the invite code",
                tag: "pairing", requestBody: Schemas.ref("PairCommit"),
                responses: [.ok(Schemas.ref("PairKeyShare")), .error(404, "No open pairing session")]),
                  PairingHandlers.commit),
            Route(.post, API.pairConfirm, access: .owner, doc: OperationDoc(
                "pairConfirm", "This node's person compared the SAS (accept: true if both screens match)",
                tag: "pairing", requestBody: Schemas.ref("PairConfirm"),
                responses: [.ok(Schemas.ref("PairStatus")), .error(409, "Nothing to confirm")]), PairingHandlers.confirm),
            Route(.post, API.pairExchange, access: .open, doc: OperationDoc(
                "pairExchange", "Node to node, step 3: sealed identity and credential (AES-GCM)", tag: "pairing",
                requestBody: Schemas.ref("PairSealed"),
                responses: [.ok(Schemas.ref("PairExchangeReply")), .error(404, "No such pairing session"),
                            .error(410, "The other person declined")]), PairingHandlers.exchange),
            Route(.post, API.pairInitiate, access: .owner, doc: OperationDoc(
                "pairInitiate", "Pair with a node that waits (`loopsy pair` there): runs the key exchange, returns the "
                    + "SAS to compare", tag: "pairing", requestBody: Schemas.ref("PairInitiate"),
                responses: [.ok(Schemas.ref("PairStatus")), .error(403, "Wrong invite code"),
                            .error(502, "The other node cannot be reached")]), PairingHandlers.initiate),
            Route(.post, API.pairReveal, access: .open, category: .pairing, doc: OperationDoc(
                "pairReveal", "Node to node, step 2: the initiator's key and nonce, checked against its commitment",
                tag: "pairing", requestBody: Schemas.ref("PairKeyShare"),
                responses: [.ok(Schemas.ref("PairAck")), .error(403, "Wrong invite code: the session is closed"),
                            .error(404, "No open pairing session")]), PairingHandlers.reveal),
            Route(.post, API.pairStart, access: .owner, doc: OperationDoc(
                "pairStart", "Open a pairing session on this node: returns the invite code to read out", tag: "pairing",
                responses: [.ok(Schemas.ref("PairStart"))]), PairingHandlers.start),
            Route(.get, API.pairStatus, access: .owner, doc: OperationDoc(
                "pairStatus", "This node's pairing session: state, code (while waiting), SAS", tag: "pairing",
                responses: [.ok(Schemas.ref("PairStatus"))]), PairingHandlers.status),
            Route(.get, API.peers, access: .owner, doc: OperationDoc(
                "listPeers", "Known peers with health, source and pin (credentials are never shown)", tag: "peers",
                responses: [.ok(Schemas.ref("PeerList"))]), PeerHandlers.list),
            Route(.post, API.peers, access: .owner, doc: OperationDoc(
                "addPeer", "Probe a daemon at an address and record it; with its apiKey also introduce this node",
                tag: "peers", requestBody: Schemas.ref("PeerAdd"),
                responses: [OperationDoc.Response(status: 201, description: "The peer", schema: Schemas.ref("Peer")),
                            .error(409, "Fingerprint differs from the expected one"),
                            .error(502, "Nothing answers there, or its TLS key is not its identity key")]),
                  PeerHandlers.add),
            Route(.post, API.peersHandshake, access: .ownerOrPeer, category: .pairing, doc: OperationDoc(
                "peerHandshake", "A node holding one of our keys introduces itself (and, over TLS, gives us a "
                    + "credential for calling it)", tag: "peers", requestBody: Schemas.ref("PeerHandshake"),
                responses: [.ok(Schemas.ref("PeerHandshakeResult"))]), PeerHandlers.handshake),
            Route(.delete, API.peer, access: .owner, doc: OperationDoc(
                "removePeer", "Forget a peer (nodeId, name, address or nodeId prefix) and revoke its credential",
                tag: "peers", responses: [.ok(Schemas.ref("Deleted")), .error(404, "Unknown peer"),
                                          .error(409, "The name matches several peers")]), PeerHandlers.remove),
        ] + [HTTPMethod.delete, .get, .post, .put].map { method in
            Route(method, forward, access: .owner, maxBody: Int.max, bodySink: PeerHandlers.forwardSink, doc: OperationDoc(
                "\(method.rawValue.lowercased())OnPeer", "Relay \(method.rawValue) /api/v1/{path} to a peer with the "
                    + "credential and pin this node holds (streams both ways)", tag: "peers",
                responses: forwardResponses), PeerHandlers.forward)
        } + [
            Route(.get, API.status, access: .credential, doc: OperationDoc(
                "status", "Daemon status with peer, job and context counts", tag: "system",
                responses: [.ok(Schemas.ref("Status"))]), SystemHandlers.status),
            Route(.post, API.transferChecksum, access: .grant(.transfer), category: .transfer, doc: OperationDoc(
                "transferChecksum", "SHA-256 of a whole file (to verify large pulls)", tag: "transfer",
                requestBody: Schemas.ref("PathRequest"),
                responses: [.ok(Schemas.ref("Checksum")), .error(404, "No such file"), busyHashing]),
                  TransferHandlers.checksum),
            Route(.post, API.transferList, access: .grant(.transfer), category: .transfer, doc: OperationDoc(
                "transferList", "List a directory by name, a page of at most 10,000 entries at a time (`more` and "
                    + "`nextAfterName` say where the next starts)", tag: "transfer", requestBody: Schemas.ref("ListRequest"),
                responses: [.ok(Schemas.ref("FileList")), .error(404, "No such directory"),
                            .error(503, "The daemon is already listing as many directories as it queues "
                                + "(busy_listing, with Retry-After)")]), TransferHandlers.list),
            Route(.post, API.transferPull, access: .grant(.transfer), category: .transfer, doc: OperationDoc(
                "transferPull", "Download a file (Range supported; X-Loopsy-Sha256 holds the whole file's digest "
                    + "for files up to 64 MiB)", tag: "transfer", requestBody: Schemas.ref("PullRequest"),
                responses: [OperationDoc.Response(status: 200, description: "The file",
                                                  schema: ["type": "string", "format": "binary"],
                                                  contentType: "application/octet-stream"),
                            OperationDoc.Response(status: 206, description: "The requested range",
                                                  schema: ["type": "string", "format": "binary"],
                                                  contentType: "application/octet-stream"),
                            .error(404, "No such file"), .error(416, "Range outside the file"), busyHashing]),
                  TransferHandlers.pull),
            Route(.post, API.transferPush, access: .grant(.transfer), category: .transfer, bodySink: TransferHandlers.uploadSink,
                  doc: OperationDoc(
                    "transferPush", "Upload a file: multipart/form-data with destPath, optional sha256 and overwrite "
                        + "fields before the file part", tag: "transfer",
                    requestBody: Schemas.ref("PushForm"), requestContentType: "multipart/form-data",
                    responses: [.ok(Schemas.ref("PushResult")), .error(409, "Destination exists"),
                                .error(413, "Larger than transfer.maxFileSize"), .error(415, "Not multipart/form-data"),
                                .error(422, "SHA-256 mismatch"),
                                .error(503, "The daemon is stopping, or cannot start a thread to write or store the file "
                                    + "(busy_writing, with Retry-After); nothing was stored"),
                                .error(507, "Disk full")]), TransferHandlers.push),
        ] + dashboard
    }

    /// The web dashboard: its files need no credentials; login exchanges the API key (or a
    /// one-time link) for a session cookie; the page then calls the API above with that cookie.
    private static let dashboard: [Route] = {
        func page(_ path: String, _ id: String, _ summary: String, _ type: String) -> Route {
            Route(.get, path, access: .open, doc: OperationDoc(
                id, summary, tag: "dashboard",
                responses: [OperationDoc.Response(status: 200, description: summary, schema: ["type": "string"],
                                                  contentType: type)]), DashboardHandlers.asset)
        }
        return [
            Route(.get, "/dashboard", access: .open, doc: OperationDoc(
                "dashboardRedirect", "Redirects to /dashboard/", tag: "dashboard",
                responses: [OperationDoc.Response(status: 308, description: "To /dashboard/", schema: nil)]),
                  DashboardHandlers.redirect),
            page("/dashboard/", "dashboardPage", "The dashboard page", "text/html"),
            Route(.post, "/dashboard/api/link", access: .ownerKey, doc: OperationDoc(
                "dashboardLink", "A one-time login link for this dashboard (owner key only)", tag: "dashboard",
                responses: [OperationDoc.Response(status: 201, description: "The link's path, with the token in its "
                    + "fragment", schema: Schemas.ref("DashboardLink"))]), DashboardHandlers.link),
            Route(.post, "/dashboard/api/login", access: .open, category: .pairing, maxBody: 4096, doc: OperationDoc(
                "dashboardLogin", "Exchange the API key or a one-time link token for a session cookie (HttpOnly, "
                    + "SameSite=Strict); only over loopback or HTTPS", tag: "dashboard",
                requestBody: Schemas.ref("DashboardLogin"),
                responses: [.ok(Schemas.ref("DashboardSession")), .error(403, "Wrong key, spent link, or plain HTTP "
                    + "from another machine"), .error(429, "rateLimits.pairing attempts per minute used")]),
                  DashboardHandlers.login),
            Route(.post, "/dashboard/api/logout", access: .owner, doc: OperationDoc(
                "dashboardLogout", "End the session and clear its cookie", tag: "dashboard",
                responses: [.ok(Schemas.ref("Deleted"))]), DashboardHandlers.logout),
            Route(.get, "/dashboard/api/session", access: .owner, doc: OperationDoc(
                "dashboardSession", "The cookie's session: its CSRF token and the nodes the page drives",
                tag: "dashboard", responses: [.ok(Schemas.ref("DashboardSession")),
                                              .error(401, "No valid session cookie")]), DashboardHandlers.session),
            page("/dashboard/app.css", "dashboardStyles", "The dashboard's styles", "text/css"),
            page("/dashboard/app.js", "dashboardScript", "The dashboard's script", "text/javascript"),
            page("/dashboard/icon.svg", "dashboardIcon", "The dashboard's icon", "image/svg+xml"),
        ]
    }()

    private static func openAPI(_ context: RequestContext) throws -> HTTPResponse {
        try .json(OpenAPIDocument.build(routes: table(config: context.node.config)))
    }
}
