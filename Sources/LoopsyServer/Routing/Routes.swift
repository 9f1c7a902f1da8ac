import LoopsyAPI
import LoopsyConfig
import LoopsyHTTP

/// The route table: every route of the daemon, sorted by path then method. A test keeps it
/// sorted and free of duplicates; the OpenAPI document is generated from it.
public enum Routes {
    public static func table(config: LoopsyConfig) -> [Route] {
        // A JSON string can spell one byte as six ("\u0000"); the handler enforces the real limit.
        let contextBody = config.context.maxValueBytes * 6 + 4096
        let key = "/api/v1/context/{key}"
        return [
            Route(.get, "/api/v1/audit", doc: OperationDoc(
                "listAudit", "Recent audited requests, oldest first", tag: "system",
                query: [.query("limit", ["type": "integer", "minimum": 1, "maximum": 1000], "how many (default 100)"),
                        .query("after", ["type": "integer", "minimum": 0], "only entries with a larger id")],
                responses: [.ok(Schemas.ref("AuditList"))]), SystemHandlers.audit),
            Route(.get, "/api/v1/context", category: .context, doc: OperationDoc(
                "listContext", "List live entries, optionally by key prefix", tag: "context",
                query: [.query("prefix", ["type": "string"], "only keys starting with this"),
                        .query("limit", ["type": "integer", "minimum": 1, "maximum": 10000], "at most this many")],
                responses: [.ok(Schemas.ref("ContextList"))]), ContextHandlers.list),
            Route(.delete, key, category: .context, doc: OperationDoc(
                "deleteContext", "Delete an entry", tag: "context",
                responses: [.ok(Schemas.ref("Deleted")), .error(404, "No such live key")]), ContextHandlers.delete),
            Route(.get, key, category: .context, doc: OperationDoc(
                "getContext", "Get an entry", tag: "context",
                responses: [.ok(Schemas.ref("ContextEntry")), .error(404, "No such live key")]), ContextHandlers.get),
            Route(.put, key, category: .context, maxBody: contextBody, doc: OperationDoc(
                "putContext", "Create or replace an entry", tag: "context", requestBody: Schemas.ref("ContextPut"),
                responses: [.ok(Schemas.ref("ContextEntry")), .error(409, "Entry limit reached"),
                            .error(507, "Disk full")]), ContextHandlers.put),
            Route(.get, "/api/v1/health", access: .open, doc: OperationDoc(
                "health", "Liveness check (no auth)", tag: "system",
                responses: [.ok(Schemas.ref("Health"))]), SystemHandlers.health),
            Route(.get, "/api/v1/identity", doc: OperationDoc(
                "identity", "This node's identity", tag: "system",
                responses: [.ok(Schemas.ref("Identity"))]), SystemHandlers.identity),
            Route(.get, "/api/v1/openapi.json", doc: OperationDoc(
                "openapi", "This document", tag: "system",
                responses: [.ok(Schemas.ref("OpenAPIDocument"))]), openAPI),
            Route(.get, "/api/v1/status", doc: OperationDoc(
                "status", "Daemon status with peer, job and context counts", tag: "system",
                responses: [.ok(Schemas.ref("Status"))]), SystemHandlers.status),
        ]
    }

    private static func openAPI(_ context: RequestContext) throws -> HTTPResponse {
        try .json(OpenAPIDocument.build(routes: table(config: context.node.config)))
    }
}
