import LoopsyAPI
import LoopsyMessaging
import LoopsyCore
import LoopsyHTTP
import LoopsyPOSIX
import LoopsyStore

/// The shared key-value store.
public enum ContextHandlers {
    /// Longest ttl accepted: ten years, in seconds.
    static let maxTTL = 315_360_000

    /// `PUT /context/{key}`: the write joins the next group commit and the connection waits
    /// suspended for it, so this worker takes the next request meanwhile (the writes of all open
    /// connections share one commit).
    static func put(_ context: RequestContext) throws -> HTTPResponse {
        let key = try validKey(context)
        let body = try context.request.decodeJSON(ContextPutRequest.self, simply: ContextPutRequest.simplyDecoded)
        try checkLimits(value: body.value, ttl: body.ttl, context: context)
        // The outcome, error included: a compare-and-set miss is a 412 with a body, not an error.
        let written = Pending<Result<ContextEntry, any Error>>()
        context.node.contextStore.put(
            key: key, value: body.value, ttl: body.ttl, fromNodeId: origin(context),
            maxEntries: context.node.config.context.maxEntries, ifRevision: body.ifRevision,
            done: { written.succeed($0) })
        return try context.respond(.later(written)) { result in
            try compareAndSet { try .json(try result.get()) }
        }
    }

    /// `POST /context/broadcast`: the entry here, then on every peer (each under the same rules).
    static func broadcast(_ context: RequestContext) throws -> HTTPResponse {
        let request = try context.decode(ContextBroadcastRequest.self)
        let context = context.withoutBody
        // It calls every peer: off the HTTP worker.
        return try context.offload {
            let response = try context.node.messages.broadcastContext(request) { entry in
                _ = try put(key: try validKey(entry.key, caller: context.caller), value: entry.value, ttl: entry.ttl,
                            context: context)
            }
            return try .json(response)
        }
    }

    /// A compare-and-set that found another revision: 412 with the entry as it is now.
    static func compareAndSet(_ write: () throws -> HTTPResponse) throws -> HTTPResponse {
        do {
            return try write()
        } catch ContextStoreError.revisionMismatch(let expected, let current) {
            let message = "the key is at revision \(current?.revision ?? 0)\(current == nil ? " (absent)" : ""), not "
                + "\(expected); read it again (the current entry is in `current`) and retry"
            return try .json(RevisionMismatchBody(message: message, current: current), status: 412)
        }
    }

    /// Checks the limits and stores an entry (PUT and broadcast).
    static func put(key: String, value: String, ttl: Int?, ifRevision: Int64? = nil,
                    context: RequestContext) throws -> ContextEntry {
        try checkLimits(value: value, ttl: ttl, context: context)
        return try context.node.contextStore.put(
            key: key, value: value, ttl: ttl, fromNodeId: origin(context),
            maxEntries: context.node.config.context.maxEntries, ifRevision: ifRevision)
    }

    /// The value's size (context.maxValueBytes) and the ttl's range.
    static func checkLimits(value: String, ttl: Int?, context: RequestContext) throws {
        let limits = context.node.config.context
        if value.utf8.count > limits.maxValueBytes {
            throw APIError.payloadTooLarge("value is \(value.utf8.count) bytes; the limit is "
                + "\(limits.maxValueBytes) (context.maxValueBytes)")
        }
        if let ttl, !(1...maxTTL).contains(ttl) {
            throw APIError.badRequest("ttl must be between 1 and \(maxTTL) seconds, or omitted for no expiry",
                                      code: .badTtl)
        }
    }

    static func get(_ context: RequestContext) throws -> HTTPResponse {
        let key = try validKey(context)
        let store = context.node.contextStore
        let query = context.request.query
        guard query["afterRevision"] != nil || query["wait"] != nil else {
            // The entry's JSON, kept with the cached entry: a hot key is not encoded again.
            guard let json = try store.getJSON(key: key) else { throw APIError.notFound("context key '\(key)'") }
            return .json(encoded: json)
        }
        // A watch: answered once the key is at another revision than `afterRevision` (0: absent),
        // or when the wait ends (with the key as it is then).
        let current = try store.get(key: key)
        let after = Int64(try QueryValue.int(context, "afterRevision", default: Int(current?.revision ?? 0),
                                             range: 0...Int.max))
        let wait = try QueryValue.int(context, "wait", default: 0, range: 0...300)
        // The value is the entry then (nil: absent, a 404); the attempt's nil keeps waiting.
        let answer = try context.node.contextWatch.wait(
            prefix: key, exact: true, seconds: wait, recheckAt: current?.expiresAt,
            attempt: { () throws -> ContextEntry?? in
                let entry = try store.get(key: key)
                return (entry?.revision ?? 0) != after ? .some(entry) : nil
            },
            timeout: { try store.get(key: key) })
        return try context.respond(answer) { entry in
            guard let entry else { throw APIError.notFound("context key '\(key)'") }
            return try .json(entry)
        }
    }

    static func delete(_ context: RequestContext) throws -> HTTPResponse {
        let key = try validKey(context)
        let ifRevision = try context.request.query["ifRevision"].map { _ in
            Int64(try QueryValue.int(context, "ifRevision", default: 0, range: 0...Int.max))
        }
        return try compareAndSet {
            guard try context.node.contextStore.delete(key: key, ifRevision: ifRevision) else {
                throw APIError.notFound("context key '\(key)'")
            }
            return try .json(DeletedResponse(deleted: true))
        }
    }

    static func list(_ context: RequestContext) throws -> HTTPResponse {
        let prefix = context.request.query["prefix"] ?? ""
        // Checked in both modes: a bad value is a 400 whether or not it is used.
        let limit = try QueryValue.int(context, "limit", default: 1000, range: 1...10_000)
        if context.request.query["after"] != nil || context.request.query["wait"] != nil {
            return try watch(context, prefix, limit: limit)
        }
        let afterKey = context.request.query["afterKey"]
        if let afterKey, afterKey.utf8.count > ContextLimits.maxKeyBytes {
            throw APIError.badRequest("afterKey is \(afterKey.utf8.count) bytes; keys are at most \(ContextLimits.maxKeyBytes)",
                                      code: .badKey)
        }
        // The message mirrors are listed only when the prefix asks for them (and only to the
        // owner); they stay readable by name.
        let page = try context.node.contextStore.page(prefix: prefix, afterKey: afterKey, limit: limit,
                                                      maxBytes: pageBytes,
                                                      includeMirrors: isReserved(prefix) && context.caller.isOwner)
        return try .json(ContextListResponse(entries: page.entries, more: page.more))
    }

    /// Most bytes of keys and values (as stored) in one page of a listing or a watch, past its
    /// first entry. Without it, anyone who may read and write context could have the daemon
    /// build answers of 10,000 values of 1 MiB (up to 6 bytes of JSON for each stored byte),
    /// on a worker thread, and hold them for every slow reader. A page that ends here says so
    /// (`more`, `nextAfterKey`; a watch's `cursor` points at its last change).
    static let pageBytes = 4 << 20

    /// A prefix watch: the changes after cursor `after` (default: now), waiting up to `wait`
    /// seconds for the first; the answer's cursor is the next `after`, so nothing is missed or
    /// seen twice between two watches, across daemon restarts too.
    static func watch(_ context: RequestContext, _ prefix: String, limit: Int) throws -> HTTPResponse {
        let store = context.node.contextStore
        let after = Int64(try QueryValue.int(context, "after", default: Int(try store.lastChange()), range: 0...Int.max))
        let wait = try QueryValue.int(context, "wait", default: 0, range: 0...300)
        let mirrors = isReserved(prefix) && context.caller.isOwner
        // Where the next read starts. A read that finds nothing to show moves it to the cursor it
        // got back (no change up to there is one to show), so a watch woken by a write under its
        // prefix reads what came since its last read, not again everything after `after`: a
        // watch with an old cursor whose changes were all mirrors (hidden from peers) re-read up
        // to the whole log on every write under its prefix, and never got past `limit` of them.
        let from = PlainMutex(after)
        @Sendable func read() throws -> ContextChangesResponse {
            let start = from.withLock { $0 }
            let (shown, cursor) = try store.changes(prefix: prefix, after: start, limit: limit, maxBytes: pageBytes,
                                                    includeMirrors: mirrors)
            if shown.isEmpty { from.withLock { $0 = max($0, cursor) } }
            return ContextChangesResponse(changes: shown, cursor: cursor)
        }
        let answer = try context.node.contextWatch.wait(
            prefix: prefix, exact: false, seconds: wait,
            attempt: { () throws -> ContextChangesResponse? in
                let read = try read()
                return read.changes.isEmpty ? nil : read
            },
            timeout: read)
        return try context.respond(answer) { try .json($0) }
    }

    /// The message mirrors (`inbox:…`, `outbox:…`): this node's own clients see them, peers do not.
    static func isReserved(_ key: String) -> Bool { ContextStore.isMirror(key) }

    static func validKey(_ context: RequestContext) throws -> String {
        try validKey(context.parameter("key"), caller: context.caller)
    }

    static func validKey(_ key: String, caller: Caller) throws -> String {
        if isReserved(key) && !caller.isOwner {
            throw APIError.forbidden("keys starting with inbox: or outbox: hold this node's messages; peers cannot "
                + "read or write them", code: .reservedKey)
        }
        guard !key.isEmpty else { throw APIError.badRequest("the key must not be empty", code: .badKey) }
        guard key.utf8.count <= ContextLimits.maxKeyBytes else {
            throw APIError.badRequest("the key is \(key.utf8.count) bytes; keys are at most \(ContextLimits.maxKeyBytes)",
                                      code: .badKey)
        }
        guard !key.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw APIError.badRequest("the key must not contain control characters", code: .badKey)
        }
        return key
    }

    /// The node a write comes from: this node for local callers, else the caller's identity.
    static func origin(_ context: RequestContext) -> String {
        if let peer = context.caller.peerNodeId { return peer }
        // The owner, whichever client (CLI, MCP, dashboard), writes as this node.
        return context.caller.isOwner ? context.node.identity.nodeId : context.caller.id
    }
}
