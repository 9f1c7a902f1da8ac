/// A response a handler returns: status, headers and a body held in memory.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// When set, the body comes from this stream instead (chunked, length unknown).
    public var stream: HTTPStream?

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = [],
                stream: HTTPStream? = nil) {
        self.status = status
        self.headers = headers
        self.body = body
        self.stream = stream
    }

    public mutating func setHeader(_ name: String, _ value: String) {
        headers.removeAll { $0.name.lowercased() == name.lowercased() }
        headers.append((name, value))
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// What the server calls for each request, on one of its worker threads.
public protocol HTTPHandler: Sendable {
    /// The largest body this request may carry; larger ones are refused with 413 before or while
    /// they arrive, without buffering them.
    func maxBodySize(for head: HTTPRequestHead) -> Int
    /// The response for a request that exceeded `maxBodySize`.
    func payloadTooLarge(for head: HTTPRequestHead, limit: Int) -> HTTPResponse
    func handle(_ request: HTTPRequest) -> HTTPResponse
}
