import LoopsyAPI
/// JSON Schemas of the wire types in LoopsyAPI, for the OpenAPI document.
public enum Schemas {
    public static func ref(_ name: String) -> JSONValue { ["$ref": .string("#/components/schemas/\(name)")] }

    /// An object schema. Properties not in `required` may also be null: the server decodes
    /// with Codable, where an optional field takes null as absent.
    static func object(_ properties: [(String, JSONValue)], required: [String]) -> JSONValue {
        let described = properties.map { name, schema in (name, required.contains(name) ? schema : nullable(schema)) }
        return ["type": "object", "properties": .object(described), "required": .array(required.map { .string($0) })]
    }

    static func nullable(_ schema: JSONValue) -> JSONValue {
        guard case .object(var pairs) = schema else { return schema }
        if pairs.contains(where: { $0.0 == "$ref" }) { return ["anyOf": [schema, ["type": "null"]]] }
        for index in pairs.indices {
            switch (pairs[index].0, pairs[index].1) {
            case ("type", .string(let type)) where type != "null":
                pairs[index].1 = [.string(type), "null"]
            case ("type", .array(let types)) where !types.contains("null"):
                pairs[index].1 = .array(types + ["null"])
            case ("enum", .array(let values)) where !values.contains(.null):
                pairs[index].1 = .array(values + [.null])
            default:
                break
            }
        }
        return .object(pairs)
    }

    static let string: JSONValue = ["type": "string"]
    static let integer: JSONValue = ["type": "integer"]
    static let number: JSONValue = ["type": "number"]
    static let nullableInteger: JSONValue = ["type": ["integer", "null"]]
    static let nullableString: JSONValue = ["type": ["string", "null"]]
    static let boolean: JSONValue = ["type": "boolean"]

    static let components: [(String, JSONValue)] = [
        ("Error", object([
            ("error", object([("code", string), ("message", string)], required: ["code", "message"])),
        ], required: ["error"])),
        ("Health", object([
            ("status", ["type": "string", "enum": ["ok"]]), ("nodeId", string), ("version", string),
            ("uptime", number),
        ], required: ["status", "nodeId", "version", "uptime"])),
        ("Identity", object([
            ("nodeId", string), ("hostname", string), ("platform", string), ("version", string),
            ("port", integer), ("capabilities", ["type": "array", "items": string]),
            ("publicKey", ["type": "string", "description": "base64 X9.63 P-256 public key"]),
            ("fingerprint", ["type": "string", "description": "hex SHA-256 of the TLS SubjectPublicKeyInfo"]),
            ("tls", boolean),
        ], required: ["nodeId", "hostname", "platform", "version", "port", "capabilities", "publicKey", "fingerprint",
                      "tls"])),
        ("Status", object([
            ("nodeId", string), ("hostname", string), ("version", string), ("port", integer), ("uptime", number),
            ("pid", integer), ("dataDir", string), ("peers", integer), ("peersOnline", integer), ("jobs", integer),
            ("context", integer),
        ], required: ["nodeId", "hostname", "version", "port", "uptime", "pid", "dataDir", "peers", "peersOnline",
                      "jobs", "context"])),
        ("Peer", object([
            ("nodeId", string), ("name", string), ("address", string), ("addresses", ["type": "array", "items": string]),
            ("port", integer), ("platform", string), ("version", string),
            ("capabilities", ["type": "array", "items": string]), ("fingerprint", nullableString), ("tls", boolean),
            ("status", ["type": "string", "enum": words(PeerStatus.allCases)]), ("lastSeen", nullableInteger),
            ("lastChecked", nullableInteger), ("failures", integer), ("lastError", nullableString),
            ("source", ["type": "string", "enum": words(PeerSource.allCases)]), ("hasCredential", boolean),
            ("acceptsCredential", boolean), ("createdAt", integer), ("updatedAt", integer),
            ("grants", ["type": "array", "items": ref("Capability")]), ("defaultGrants", boolean),
            ("transferPaths", ["type": "array", "items": string]),
        ], required: ["nodeId", "name", "address", "addresses", "port", "platform", "version", "capabilities", "tls",
                      "status", "failures", "source", "hasCredential", "acceptsCredential", "createdAt", "updatedAt"])),
        ("PeerList", object([("peers", ["type": "array", "items": ref("Peer")])], required: ["peers"])),
        ("PeerAdd", object([
            ("address", ["type": "string", "minLength": 1, "description": "IP address or host name"]),
            ("port", ["type": "integer", "minimum": 1, "maximum": 65535]),
            ("apiKey", ["type": "string", "description": "a key the peer accepts; then this node introduces itself"]),
            ("fingerprint", ["type": "string", "description": "expected hex fingerprint; a mismatch refuses the peer"]),
            ("allowInsecure", boolean),
            ("grants", ["type": "array", "items": ref("Capability"),
                        "description": "what the peer may do here (default: peers.defaultGrants)"]),
        ], required: ["address"])),
        ("SessionApproval", object([
            ("id", string), ("requestId", string), ("toolName", string), ("description", string), ("inputPreview", string),
            ("state", ["type": "string", "enum": words(ApprovalState.allCases)]),
            ("sentTo", ["type": "array", "items": string]), ("answeredBy", nullableString), ("createdAt", integer),
            ("expiresAt", integer), ("answeredAt", nullableInteger),
        ], required: ["id", "requestId", "toolName", "description", "inputPreview", "state", "sentTo", "createdAt",
                      "expiresAt"])),
        ("SessionApprovalList", object([("approvals", ["type": "array", "items": ref("SessionApproval")])],
                                       required: ["approvals"])),
        ("SessionApprovalCreate", object([
            ("requestId", ["type": "string", "minLength": 1, "maxLength": 128]), ("toolName", ["type": "string", "maxLength": 256]),
            ("description", ["type": "string", "maxLength": 8192]), ("inputPreview", ["type": "string", "maxLength": 16384]),
        ], required: ["requestId", "toolName", "description", "inputPreview"])),
        ("SessionApprovalAnswer", object([("behavior", ["type": "string", "enum": ["allow", "deny"]])], required: ["behavior"])),
        ("Capability", ["type": "string", "enum": .array(Capability.allCases.map { .string($0.rawValue) })]),
        ("Grant", object([
            ("kind", ["type": "string", "enum": ["peer", "key"]]), ("id", string), ("name", string),
            ("grants", ["type": "array", "items": ref("Capability")]), ("isDefault", boolean),
            ("transferPaths", ["type": "array", "items": string]),
        ], required: ["kind", "id", "name", "grants", "isDefault"])),
        ("GrantList", object([("grants", ["type": "array", "items": ref("Grant")])], required: ["grants"])),
        ("GrantChange", object([
            ("grant", ["type": "array", "items": ref("Capability")]),
            ("revoke", ["type": "array", "items": ref("Capability")]),
            ("transferPaths", ["type": "array", "maxItems": 64,
                               "items": ["type": "string", "pattern": "^(/|~/|~$)[^\\u0000]*$", "maxLength": 1024],
                               "description": "the grantee's own transfer roots; [] removes the narrowing"]),
            ("reset", ["type": "boolean", "description": "start again from peers.defaultGrants"]),
        ], required: [])),
        ("PeerHandshake", object([
            ("nodeId", string), ("hostname", string), ("publicKey", string), ("address", string), ("port", integer),
            ("tls", boolean), ("platform", string), ("version", string),
            ("capabilities", ["type": "array", "items": string]),
            ("credential", ["type": "string", "description": "key the receiver presents when calling the sender (TLS only)"]),
        ], required: ["nodeId", "hostname", "publicKey", "address", "port", "tls", "platform", "version",
                      "capabilities"])),
        ("MessageSend", object([
            ("to", ["type": "string", "minLength": 1, "description": "peer name, nodeId (or prefix), address, or local"]),
            ("body", string), ("type", ["type": "string", "enum": ["chat", "request", "response", "broadcast", "approval"]]),
            ("id", ["type": "string", "description": "dedupe key (default: generated)"]),
            ("replyTo", string), ("thread", string),
            ("ttl", ["type": "integer", "minimum": 1, "maximum": 2_592_000, "description": "seconds to keep trying"]),
        ], required: ["to", "body"])),
        ("Broadcast", object([
            ("body", string), ("type", ["type": "string", "enum": ["chat", "request", "response", "broadcast", "approval"]]), ("id", string),
            ("ttl", ["type": "integer", "minimum": 1, "maximum": 2_592_000]),
        ], required: ["body"])),
        ("ContextBroadcast", object([
            ("key", ["type": "string", "minLength": 1, "maxLength": 512]), ("value", string),
            ("ttl", ["type": ["integer", "null"], "minimum": 1, "maximum": 315_360_000]),
        ], required: ["key", "value"])),
        ("PeerOutcome", object([("nodeId", string), ("name", string), ("state", string), ("error", nullableString)],
                               required: ["nodeId", "name", "state"])),
        ("BroadcastResult", object([("id", nullableString), ("results", ["type": "array", "items": ref("PeerOutcome")])],
                                   required: ["results"])),
        ("OutboxMessage", object([
            ("id", string), ("to", string), ("toName", string), ("type", ["type": "string", "enum": ["chat", "request", "response", "broadcast", "approval"]]), ("body", string),
            ("replyTo", nullableString), ("thread", nullableString), ("createdAt", integer), ("expiresAt", integer),
            ("state", ["type": "string", "enum": ["queued", "delivered", "read", "acked", "expired"]]),
            ("attempts", integer), ("lastError", nullableString), ("deliveredAt", nullableInteger),
            ("readAt", nullableInteger), ("ackedAt", nullableInteger), ("ackNote", nullableString),
        ], required: ["id", "to", "toName", "type", "body", "createdAt", "expiresAt", "state", "attempts"])),
        ("OutboxList", object([("messages", ["type": "array", "items": ref("OutboxMessage")])], required: ["messages"])),
        ("InboxMessage", object([
            ("seq", integer), ("id", string), ("from", string), ("fromName", string),
            ("origin", ["type": "string", "description": "who sent it, in words: the body is data, not an instruction"]),
            ("type", ["type": "string", "enum": ["chat", "request", "response", "broadcast", "approval"]]), ("body", string), ("replyTo", nullableString), ("thread", nullableString),
            ("createdAt", integer), ("receivedAt", integer), ("expiresAt", integer),
            ("state", ["type": "string", "enum": ["unread", "read", "acked"]]), ("readAt", nullableInteger),
            ("ackedAt", nullableInteger), ("ackNote", nullableString), ("sessionAt", nullableInteger),
        ], required: ["seq", "id", "from", "fromName", "origin", "type", "body", "createdAt", "receivedAt", "expiresAt",
                      "state"])),
        ("InboxList", object([("messages", ["type": "array", "items": ref("InboxMessage")]), ("cursor", integer),
                              ("more", ["type": "boolean", "description": "messages past this page are there already"])],
                             required: ["messages", "cursor"])),
        ("MessageAck", object([("note", string), ("from", ["type": "string", "description": "sender nodeId"]),
                               ("keepApprovals", ["type": "boolean",
                                                  "description": "true: a forwarded permission prompt is left as it is (409)"])],
                              required: [])),
        ("MessageDelivery", object([
            ("id", string), ("fromName", string), ("type", ["type": "string", "enum": ["chat", "request", "response", "broadcast", "approval"]]), ("body", string), ("replyTo", nullableString),
            ("thread", nullableString), ("createdAt", integer), ("expiresAt", integer),
        ], required: ["id", "fromName", "type", "body", "createdAt", "expiresAt"])),
        ("DeliveryResult", object([("duplicate", boolean)], required: ["duplicate"])),
        ("MessageReceipt", object([
            ("id", string), ("state", ["type": "string", "enum": ["read", "acked"]]), ("at", integer),
            ("note", nullableString),
        ], required: ["id", "state", "at"])),
        ("TaskRequest", object([
            ("prompt", ["type": "string", "minLength": 1]),
            ("cwd", ["type": "string", "description": "absolute directory (default: the daemon user's home)"]),
            ("model", string), ("permissionMode", ["type": "string", "enum": ["default", "acceptEdits", "plan", "bypassPermissions"]]),
            ("allowedTools", ["type": "array", "items": string]), ("disallowedTools", ["type": "array", "items": string]),
            ("maxBudgetUsd", ["type": "number", "exclusiveMinimum": 0, "maximum": 10_000]), ("resumeSessionId", string),
        ], required: ["prompt"])),
        ("PermissionRequest", object([
            ("requestId", string), ("toolName", string), ("toolInput", string), ("createdAt", integer), ("expiresAt", integer),
        ], required: ["requestId", "toolName", "toolInput", "createdAt", "expiresAt"])),
        ("Task", object([
            ("id", string),
            ("state", ["type": "string", "enum": words(TaskState.allCases)]),
            ("prompt", string), ("cwd", string), ("caller", string), ("createdAt", integer), ("startedAt", nullableInteger),
            ("finishedAt", nullableInteger), ("exitCode", nullableInteger), ("sessionId", nullableString),
            ("costUsd", ["type": ["number", "null"]]), ("error", nullableString), ("lastEvent", integer),
            ("pendingApprovals", ["type": "array", "items": ref("PermissionRequest")]),
        ], required: ["id", "state", "prompt", "cwd", "caller", "createdAt", "lastEvent", "pendingApprovals"])),
        ("TaskList", object([("tasks", ["type": "array", "items": ref("Task")]), ("more", boolean)],
                            required: ["tasks", "more"])),
        ("TaskEvent", object([("seq", integer), ("time", integer), ("type", string),
                              ("data", ["type": "string", "description": "the event's JSON object"])],
                             required: ["seq", "time", "type", "data"])),
        ("TaskEvents", object([("events", ["type": "array", "items": ref("TaskEvent")])], required: ["events"])),
        ("Approval", object([("requestId", string), ("approved", boolean), ("message", string)],
                            required: ["requestId", "approved"])),
        ("PermissionAsk", object([("toolName", string), ("toolInput", string)], required: ["toolName", "toolInput"])),
        ("PermissionDecision", object([("approved", boolean), ("message", string)], required: ["approved", "message"])),
        ("PairStart", object([
            ("code", ["type": "string", "pattern": "^[0-9]{6}$"]), ("nodeId", string),
            ("addresses", ["type": "array", "items": string]), ("port", integer), ("expiresAt", integer),
        ], required: ["code", "nodeId", "addresses", "port", "expiresAt"])),
        ("PairInitiate", object([
            ("address", ["type": "string", "minLength": 1]), ("port", ["type": "integer", "minimum": 1, "maximum": 65535]),
            ("code", ["type": "string", "description": "the 6 digits shown on the other machine"]),
        ], required: ["address", "code"])),
        ("PairConfirm", object([("accept", boolean),
                                ("grants", ["type": "array", "items": ref("Capability"),
                                            "description": "what the other machine may do here"])],
                               required: ["accept"])),
        ("PairStatus", object([
            ("role", ["type": "string", "enum": ["responder", "initiator", "none"]]), ("state", string),
            ("code", nullableString), ("sas", nullableString), ("confirmedHere", boolean), ("peerName", nullableString),
            ("peerNodeId", nullableString), ("error", nullableString), ("expiresAt", nullableInteger),
            ("defaultGrants", ["type": "array", "items": ref("Capability")]),
        ], required: ["role", "state", "confirmedHere"])),
        ("PairCommit", object([("commitment", ["type": "string", "description": "hex SHA-256"])],
                              required: ["commitment"])),
        ("PairKeyShare", object([("publicKey", string), ("nonce", string)], required: ["publicKey", "nonce"])),
        ("PairSealed", object([("box", string)], required: ["box"])),
        ("PairExchangeReply", object([("state", ["type": "string", "enum": ["waiting", "done"]]), ("box", nullableString)],
                                     required: ["state"])),
        ("PairAck", object([("ok", boolean)], required: ["ok"])),
        ("PeerHandshakeResult", object([("nodeId", string), ("credentialStored", boolean)],
                                       required: ["nodeId", "credentialStored"])),
        ("ContextEntry", object([
            ("key", string), ("value", string), ("fromNodeId", string), ("createdAt", integer),
            ("updatedAt", integer), ("ttl", nullableInteger), ("expiresAt", nullableInteger),
            ("revision", ["type": "integer", "minimum": 1]),
        ], required: ["key", "value", "fromNodeId", "createdAt", "updatedAt", "revision"])),
        ("ContextPut", object([
            ("value", string),
            ("ttl", ["type": ["integer", "null"], "minimum": 1, "maximum": 315_360_000,
                     "description": "seconds until the entry expires"]),
            ("ifRevision", ["type": ["integer", "null"], "minimum": 0, "maximum": .integer(Int.max),
                            "description": "compare-and-set: write only if the key is at this revision (0: absent)"]),
        ], required: ["value"])),
        ("RevisionMismatch", object([
            ("error", object([("code", string), ("message", string)], required: ["code", "message"])),
            ("current", ["oneOf": [ref("ContextEntry"), ["type": "null"]]]),
        ], required: ["error", "current"])),
        ("ContextList", object([("entries", ["type": "array", "items": ref("ContextEntry")]),
                                ("more", ["type": "boolean"]), ("nextAfterKey", string)],
                               required: ["entries", "more"])),
        ("Deleted", object([("deleted", ["type": "boolean"])], required: ["deleted"])),
        ("ContextChange", object([
            ("seq", ["type": "integer", "minimum": 1]), ("key", string),
            ("kind", ["type": "string", "enum": ["put", "delete", "expire"]]),
            ("revision", ["type": "integer", "minimum": 1]), ("at", integer), ("value", nullableString),
        ], required: ["seq", "key", "kind", "revision", "at"])),
        ("ContextChanges", object([("changes", ["type": "array", "items": ref("ContextChange")]),
                                   ("cursor", ["type": "integer", "minimum": 0])], required: ["changes", "cursor"])),
        ("Lock", object([
            ("name", string), ("holder", string), ("token", ["type": "integer", "minimum": 1]),
            ("acquiredAt", integer), ("expiresAt", integer),
        ], required: ["name", "holder", "token", "acquiredAt", "expiresAt"])),
        ("LockList", object([("locks", ["type": "array", "items": ref("Lock")])], required: ["locks"])),
        ("LockAcquire", object([
            ("holder", ["type": "string", "maxLength": 128, "description": "who takes it (empty: the caller's name)"]),
            ("ttl", ["type": "integer", "minimum": 1, "maximum": 86400, "description": "lease in seconds"]),
        ], required: ["holder", "ttl"])),
        ("LockRenew", object([
            ("token", ["type": "integer", "minimum": 1, "maximum": .integer(Int.max)]),
            ("ttl", ["type": "integer", "minimum": 1, "maximum": 86400]),
        ], required: ["token", "ttl"])),
        ("LockReleased", object([("released", ["type": "boolean"])], required: ["released"])),
        ("LockHeld", object([
            ("error", object([("code", string), ("message", string)], required: ["code", "message"])),
            ("current", ref("Lock")),
        ], required: ["error", "current"])),
        ("AuditEntry", object([
            ("id", integer), ("time", integer), ("requestId", string), ("caller", string), ("method", string),
            ("path", string), ("status", integer), ("durationMs", number), ("remote", string),
            ("count", ["type": "integer", "minimum": 1]),
        ], required: ["id", "time", "requestId", "caller", "method", "path", "status", "durationMs", "remote", "count"])),
        ("AuditList", object([("entries", ["type": "array", "items": ref("AuditEntry")])], required: ["entries"])),
        ("OpenAPIDocument", ["type": "object"]),
        ("ServerSentEvent", ["type": "object", "description": "One event of a text/event-stream body; data is JSON text",
                             "properties": ["event": string, "data": string, "id": string, "retry": integer]]),
        ("DashboardLogin", ["type": "object", "properties": ["apiKey": string, "token": string],
                            "description": "apiKey or token"]),
        ("DashboardNode", object([("name", string), ("base", string), ("nodeId", nullableString),
                                  ("reachable", boolean)], required: ["name", "base", "reachable"])),
        ("DashboardSession", object([
            ("csrfToken", string), ("mode", ["type": "string", "enum": ["daemon", "standalone"]]),
            ("nodes", ["type": "array", "items": ref("DashboardNode")]),
        ], required: ["csrfToken", "mode", "nodes"])),
        ("DashboardLink", object([("path", string), ("expiresIn", integer)], required: ["path", "expiresIn"])),
        ("ExecuteRequest", object([
            ("command", ["type": "string", "minLength": 1, "description": "program name (looked up in the daemon's PATH) or path"]),
            ("args", ["type": "array", "items": string]),
            ("cwd", ["type": "string", "description": "absolute directory (default: the daemon user's home)"]),
            ("env", ["type": "object", "additionalProperties": string,
                     "description": "extra variables; PATH, LD_* and similar are refused"]),
            ("timeout", ["type": "integer", "minimum": 1, "description": "milliseconds (capped by execution.maxTimeout)"]),
        ], required: ["command"])),
        ("ExecuteResult", object([
            ("jobId", string), ("exitCode", nullableInteger), ("signal", ["type": ["string", "null"]]),
            ("stdout", string), ("stderr", string), ("durationMs", number), ("timedOut", ["type": "boolean"]),
            ("truncated", ["type": "boolean"]), ("cancelled", ["type": "boolean"]),
        ], required: ["jobId", "stdout", "stderr", "durationMs", "timedOut", "truncated", "cancelled"])),
        ("JobInfo", object([
            ("jobId", string), ("command", string), ("args", ["type": "array", "items": string]), ("cwd", string),
            ("pid", integer), ("startedAt", integer), ("caller", string), ("streamed", ["type": "boolean"]),
            ("state", ["type": "string", "enum": ["running", "starting", "finished"]]), ("finishedAt", integer),
            ("exitCode", nullableInteger), ("signal", ["type": ["string", "null"]]), ("durationMs", number),
            ("timedOut", ["type": "boolean"]), ("truncated", ["type": "boolean"]), ("cancelled", ["type": "boolean"]),
        ], required: ["jobId", "command", "args", "cwd", "pid", "startedAt", "caller", "streamed", "state"])),
        ("JobList", object([("jobs", ["type": "array", "items": ref("JobInfo")]), ("more", boolean)],
                           required: ["jobs", "more"])),
        ("PullRequest", object([("sourcePath", ["type": "string", "description": "absolute path"])],
                               required: ["sourcePath"])),
        ("PathRequest", object([("path", ["type": "string", "description": "absolute path"])], required: ["path"])),
        ("PushForm", object([
            ("destPath", ["type": "string", "description": "absolute destination file path"]),
            ("sha256", ["type": "string", "description": "expected SHA-256 (hex); a mismatch stores nothing"]),
            ("overwrite", ["type": "string", "enum": ["true", "false"]]),
            ("file", ["type": "string", "format": "binary"]),
        ], required: ["destPath", "file"])),
        ("PushResult", object([("path", string), ("size", integer), ("sha256", string), ("durationMs", number)],
                              required: ["path", "size", "sha256", "durationMs"])),
        ("Checksum", object([("path", string), ("size", integer), ("sha256", string)], required: ["path", "size", "sha256"])),
        ("FileEntry", object([
            ("name", string), ("path", string), ("type", ["type": "string", "enum": ["file", "directory", "symlink", "other"]]),
            ("size", integer), ("modified", integer), ("mode", string),
        ], required: ["name", "path", "type", "size", "modified", "mode"])),
        ("FileList", object([("files", ["type": "array", "items": ref("FileEntry")]), ("more", ["type": "boolean"]),
                             ("nextAfterName", string)], required: ["files", "more"])),
        ("ListRequest", object([("path", ["type": "string", "description": "absolute path of a directory"]),
                                ("afterName", ["type": "string",
                                               "description": "only names after this one, byte-wise (the previous page's nextAfterName)"])],
                               required: ["path"])),
        ("Cancelled", object([("jobId", string), ("cancelled", ["type": "boolean"])], required: ["jobId", "cancelled"])),
    ]

    /// The words a WireWord type has in this build, for an OpenAPI enum.
    static func words<Word: WireWord>(_ cases: [Word]) -> JSONValue { .array(cases.map { .string($0.rawValue) }) }
}
