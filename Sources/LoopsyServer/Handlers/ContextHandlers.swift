import LoopsyAPI
import LoopsyHTTP
import LoopsyStore

/// The shared key-value store.
public enum ContextHandlers {
    /// Longest ttl accepted: ten years, in seconds.
    static let maxTTL = 315_360_000

    static func put(_ context: RequestContext) throws -> HTTPResponse {
        let key = try validKey(context)
        let body = try context.decode(ContextPutRequest.self)
        return try compareAndSet {
            try .json(try put(key: key, value: body.value, ttl: body.ttl, ifRevision: body.ifRevision, context: context))
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
        let limits = context.node.config.context
        if value.utf8.count > limits.maxValueBytes {
            throw APIError.payloadTooLarge("value is \(value.utf8.count) bytes; the limit is "
                + "\(limits.maxValueBytes) (context.maxValueBytes)")
        }
        if let ttl, !(1...maxTTL).contains(ttl) {
            throw APIError.badRequest("ttl must be between 1 and \(maxTTL) seconds, or omitted for no expiry",
                                      code: "bad_ttl")
        }
        return try context.node.contextStore.put(
            key: key, value: value, ttl: ttl, fromNodeId: origin(context), maxEntries: limits.maxEntries,
            ifRevision: ifRevision)
    }

    static func get(_ context: RequestContext) throws -> HTTPResponse {
        let key = try validKey(context)
        guard let entry = try context.node.contextStore.get(key: key) else {
            throw APIError.notFound("context key '\(key)'")
        }
        return try .json(entry)
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
        let limit = try QueryValue.int(context, "limit", default: 1000, range: 1...10_000)
        // The message mirrors are listed only when the prefix asks for them (and only to the
        // owner); they stay readable by name.
        let entries = try context.node.contextStore.list(prefix: prefix, limit: limit,
                                                         includeMirrors: isReserved(prefix) && context.caller.isOwner)
        return try .json(ContextListResponse(entries: entries))
    }

    /// The message mirrors (`inbox:…`, `outbox:…`): this node's own clients see them, peers do not.
    static func isReserved(_ key: String) -> Bool { ContextStore.isMirror(key) }

    static func validKey(_ context: RequestContext) throws -> String {
        let key = context.parameter("key")
        if isReserved(key) && !context.caller.isOwner {
            throw APIError.forbidden("keys starting with inbox: or outbox: hold this node's messages; peers cannot "
                + "read or write them", code: "reserved_key")
        }
        guard !key.isEmpty else { throw APIError.badRequest("the key must not be empty", code: "bad_key") }
        guard key.utf8.count <= ContextLimits.maxKeyBytes else {
            throw APIError.badRequest("the key is \(key.utf8.count) bytes; keys are at most \(ContextLimits.maxKeyBytes)",
                                      code: "bad_key")
        }
        guard !key.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw APIError.badRequest("the key must not contain control characters", code: "bad_key")
        }
        return key
    }

    /// The node a write comes from: this node for local callers, else the caller's identity.
    static func origin(_ context: RequestContext) -> String {
        if let peer = context.caller.peerNodeId ?? context.caller.viaNodeId { return peer }
        // The owner, whichever client (CLI, MCP, dashboard), writes as this node.
        return context.caller.isOwner ? context.node.identity.nodeId : context.caller.id
    }
}
