import LoopsyAPI
import LoopsyCore
import LoopsyPOSIX

/// Builds the OpenAPI 3.1 document from the route table.
public enum OpenAPIDocument {
    public static func build(routes: [Route]) -> JSONValue {
        var paths: [(String, JSONValue)] = []
        for route in routes {
            let operation = self.operation(route)
            // OpenAPI has no multi-segment parameter: "{path+}" is documented as "{path}".
            let path = route.pattern.replacingEvery("+}", with: "}")
            if let index = paths.firstIndex(where: { $0.0 == path }), case .object(var methods) = paths[index].1 {
                methods.append((route.method.rawValue.lowercased(), operation))
                paths[index].1 = .object(methods)
            } else {
                paths.append((path, .object([(route.method.rawValue.lowercased(), operation)])))
            }
        }
        return [
            "openapi": "3.1.0",
            "info": [
                "title": "Loopsy daemon API",
                "version": .string(LoopsyVersion.current),
                "description": .string("REST API of loopsyd. Routes marked without security (health, identity, the pairing steps, the "
                    + "dashboard's files and login) are open; every other one needs 'Authorization: Bearer <api key>', "
                    + "or a dashboard session cookie together with its X-CSRF-Token."),
            ],
            "servers": [["url": "/"]],
            "components": [
                "schemas": .object(Schemas.components),
                "securitySchemes": ["bearer": ["type": "http", "scheme": "bearer"]],
            ],
            "paths": .object(paths),
        ]
    }

    private static func operation(_ route: Route) -> JSONValue {
        let doc = route.doc
        var parameters: [JSONValue] = []
        for segment in route.segments where segment.hasPrefix("{") {
            if segment.hasSuffix("+}") {
                parameters.append(["name": .string(String(segment.dropFirst().dropLast(2))), "in": "path",
                                   "required": true, "description": "the rest of an API path, slashes included",
                                   "schema": ["type": "string", "minLength": 1]])
                continue
            }
            let name = String(segment.dropFirst().dropLast())
            var schema: [(String, JSONValue)] = [("type", "string"), ("minLength", 1), ("maxLength", 512)]
            // Context keys refuse control characters (ContextHandlers.validKey); "broadcast" is the
            // literal route /context/broadcast, which wins over the parameter.
            if name == "key" { schema.append(("pattern", "^(?!broadcast$)[^\\u0000-\\u001F\\u007F]+$")) }
            // Lock names too (LockHandlers.validName).
            if name == "name" { schema.append(("pattern", "^[^\\u0000-\\u001F\\u007F]+$")) }
            parameters.append(["name": .string(name), "in": "path", "required": true, "schema": .object(schema)])
        }
        for parameter in doc.query {
            parameters.append(["name": .string(parameter.name), "in": "query", "required": .bool(parameter.required),
                               "description": .string(parameter.description), "schema": parameter.schema])
        }
        var responses: [(String, JSONValue)] = doc.responses.map { response in
            var body: [(String, JSONValue)] = [("description", .string(response.description))]
            if let schema = response.schema {
                body.append(("content", .object([(response.contentType, ["schema": schema] as JSONValue)])))
            }
            return (String(response.status), .object(body))
        }
        // What the dispatcher can answer for any route.
        var common: [(Int, String)] = [(400, "Malformed request"), (403, "Forbidden host, origin or credential"),
                                       (500, "Internal error")]
        if !route.access.isOpen { common.append((401, "Missing credentials")) }
        if route.category != nil { common.append((429, "Rate limit reached")) }
        if route.maxBody > 0 && doc.requestBody != nil { common.append((413, "Body too large")) }
        if doc.requestBody != nil { common.append((415, "Wrong body content type")) }
        // Bodies still arriving share a budget; work that calls other machines, a pool.
        if doc.requestBody != nil { common.append((503, "Busy (see Retry-After) or shutting down")) }
        for (status, description) in common where !responses.contains(where: { $0.0 == String(status) }) {
            responses.append((String(status), ["description": .string(description), "content": [
                "application/json": ["schema": Schemas.ref("Error")]]]))
        }
        var operation: [(String, JSONValue)] = [
            ("operationId", .string(doc.operationId)), ("summary", .string(doc.summary)),
            ("description", .string("Who may call: \(route.access.summary).")),
            ("tags", [.string(doc.tag)]),
            ("x-loopsy-access", [
                "callers": .array(Caller.Kind.allCases.filter(route.access.kinds.contains).map { .string($0.rawValue) }),
                "grant": route.access.grant.map { .string($0.rawValue) } ?? .null,
            ]),
        ]
        if !parameters.isEmpty { operation.append(("parameters", .array(parameters))) }
        if let requestBody = doc.requestBody {
            operation.append(("requestBody", ["required": true, "content": .object([(doc.requestContentType,
                                                                                    ["schema": requestBody] as JSONValue)])]))
        }
        operation.append(("responses", .object(responses)))
        operation.append(("security", route.access.isOpen ? [] : [["bearer": []]]))
        return .object(operation)
    }
}
