#if canImport(Glibc)
import Glibc
#endif

/// A response a handler returns: status, headers and a body held in memory.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// When set, the body comes from this stream instead (chunked, unless `streamLength` is known).
    public var stream: HTTPStream?
    /// The stream's total length when known in advance (sent as Content-Length).
    public var streamLength: UInt64?
    /// When set, this response is only a placeholder: the real one comes through it later.
    public var deferred: DeferredResponse?
    /// When set, the body is this part of an open file, read as it is sent (a file found
    /// shorter than `length` ends the connection); the server owns and closes the descriptor.
    public var file: FileBody?

    public struct FileBody: Sendable {
        public var descriptor: Int32
        public var offset: UInt64
        public var length: UInt64

        public init(descriptor: Int32, offset: UInt64, length: UInt64) {
            self.descriptor = descriptor
            self.offset = offset
            self.length = length
        }
    }

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = [],
                stream: HTTPStream? = nil, file: FileBody? = nil) {
        self.status = status
        self.headers = headers
        self.body = body
        self.stream = stream
        self.file = file
    }

    /// A response that `deferred` will supply later.
    public init(deferred: DeferredResponse) {
        self.init(status: 0)
        self.deferred = deferred
    }

    /// A minimal JSON error, for the HTTP layer's own answers.
    static func error(status: Int, code: String = "unavailable", message: String) -> HTTPResponse {
        var escaped = ""
        for scalar in message.unicodeScalars {
            switch scalar {
            case "\"", "\\": escaped += "\\" + String(scalar)
            case _ where scalar.value < 0x20: escaped += " "
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        let body = #"{"error":{"code":""# + code + #"","message":""# + escaped + #""}}"#
        return HTTPResponse(status: status, headers: [("Content-Type", "application/json")], body: Array(body.utf8))
    }

    public mutating func setHeader(_ name: String, _ value: String) {
        headers.removeAll { $0.name.lowercased() == name.lowercased() }
        headers.append((name, value))
    }

    /// Lets go of what an answer that will never be sent holds: its file's descriptor, and its
    /// stream (closed: its producer stops, and whoever waits for its end hears of it).
    public func discard() {
        if let file { close(file.descriptor) }
        stream?.detach()
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// What the server calls for each request, on one of its worker threads.
public protocol HTTPHandler: Sendable {
    /// Decides, from the head alone, where the body goes (or answers at once).
    func plan(for head: HTTPRequestHead) -> BodyPlan
    /// The response for a buffered body that exceeded its limit.
    func payloadTooLarge(for head: HTTPRequestHead, limit: Int) -> HTTPResponse
    /// Called once the whole body has been buffered or streamed.
    func handle(_ request: HTTPRequest) -> HTTPResponse
}
