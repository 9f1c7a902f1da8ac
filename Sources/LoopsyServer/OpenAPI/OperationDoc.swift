import LoopsyAPI
/// The OpenAPI description carried by each route, so the document is generated from the route
/// table and cannot drift from it.
public struct OperationDoc: Sendable {
    public struct Parameter: Sendable {
        public var name: String
        public var schema: JSONValue
        public var description: String
        public var required: Bool

        public static func query(_ name: String, _ schema: JSONValue, _ description: String) -> Parameter {
            Parameter(name: name, schema: schema, description: description, required: false)
        }
    }
    public struct Response: Sendable {
        public var status: Int
        public var description: String
        public var schema: JSONValue?
        public var contentType = "application/json"

        public init(status: Int, description: String, schema: JSONValue?, contentType: String = "application/json") {
            self.status = status
            self.description = description
            self.schema = schema
            self.contentType = contentType
        }
    }

    public var operationId: String
    public var summary: String
    public var tag: String
    public var query: [Parameter] = []
    public var requestBody: JSONValue?
    public var requestContentType: String
    public var responses: [Response]

    public init(_ operationId: String, _ summary: String, tag: String, query: [Parameter] = [],
                requestBody: JSONValue? = nil, requestContentType: String = "application/json", responses: [Response]) {
        self.operationId = operationId
        self.summary = summary
        self.tag = tag
        self.query = query
        self.requestBody = requestBody
        self.requestContentType = requestContentType
        self.responses = responses
    }
}

extension OperationDoc.Response {
    public static func ok(_ schema: JSONValue, _ description: String = "Success") -> Self {
        Self(status: 200, description: description, schema: schema)
    }
    public static func error(_ status: Int, _ description: String) -> Self {
        Self(status: status, description: description, schema: Schemas.ref("Error"))
    }
}
