/// JSON Schemas of the wire types in LoopsyAPI, for the OpenAPI document.
public enum Schemas {
    public static func ref(_ name: String) -> JSONValue { ["$ref": .string("#/components/schemas/\(name)")] }

    static func object(_ properties: [(String, JSONValue)], required: [String]) -> JSONValue {
        ["type": "object", "properties": .object(properties), "required": .array(required.map { .string($0) })]
    }

    static let string: JSONValue = ["type": "string"]
    static let integer: JSONValue = ["type": "integer"]
    static let number: JSONValue = ["type": "number"]
    static let nullableInteger: JSONValue = ["type": ["integer", "null"]]

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
        ], required: ["nodeId", "hostname", "platform", "version", "port", "capabilities"])),
        ("Status", object([
            ("nodeId", string), ("hostname", string), ("version", string), ("port", integer), ("uptime", number),
            ("pid", integer), ("dataDir", string), ("peers", integer), ("jobs", integer), ("context", integer),
        ], required: ["nodeId", "hostname", "version", "port", "uptime", "pid", "dataDir", "peers", "jobs",
                      "context"])),
        ("ContextEntry", object([
            ("key", string), ("value", string), ("fromNodeId", string), ("createdAt", integer),
            ("updatedAt", integer), ("ttl", nullableInteger), ("expiresAt", nullableInteger),
            ("revision", ["type": "integer", "minimum": 1]),
        ], required: ["key", "value", "fromNodeId", "createdAt", "updatedAt", "revision"])),
        ("ContextPut", object([
            ("value", string),
            ("ttl", ["type": ["integer", "null"], "minimum": 1, "maximum": 315_360_000,
                     "description": "seconds until the entry expires"]),
        ], required: ["value"])),
        ("ContextList", object([("entries", ["type": "array", "items": ref("ContextEntry")])],
                               required: ["entries"])),
        ("Deleted", object([("deleted", ["type": "boolean"])], required: ["deleted"])),
        ("AuditEntry", object([
            ("id", integer), ("time", integer), ("requestId", string), ("caller", string), ("method", string),
            ("path", string), ("status", integer), ("durationMs", number), ("remote", string),
        ], required: ["id", "time", "requestId", "caller", "method", "path", "status", "durationMs", "remote"])),
        ("AuditList", object([("entries", ["type": "array", "items": ref("AuditEntry")])], required: ["entries"])),
        ("OpenAPIDocument", ["type": "object"]),
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
        ("JobList", object([("jobs", ["type": "array", "items": ref("JobInfo")])], required: ["jobs"])),
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
        ("FileList", object([("files", ["type": "array", "items": ref("FileEntry")])], required: ["files"])),
        ("Cancelled", object([("jobId", string), ("cancelled", ["type": "boolean"])], required: ["jobId", "cancelled"])),
    ]
}
