/// Every error the API returns: an HTTP status and the body `{"error":{"code","message"}}`.
public struct APIError: Error, Equatable, Sendable, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var message: String
    /// Extra response headers (Retry-After, Allow, WWW-Authenticate).
    public var headers: [String: String]

    public init(status: Int, code: String, message: String, headers: [String: String] = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    public var description: String { message }

    public static func badRequest(_ message: String, code: String = "bad_request") -> APIError {
        APIError(status: 400, code: code, message: message)
    }
    public static func unauthorized(_ message: String) -> APIError {
        APIError(status: 401, code: "unauthorized", message: message, headers: ["WWW-Authenticate": "Bearer"])
    }
    public static func forbidden(_ message: String, code: String = "forbidden") -> APIError {
        APIError(status: 403, code: code, message: message)
    }
    public static func notFound(_ what: String) -> APIError {
        APIError(status: 404, code: "not_found", message: "\(what) not found")
    }
    public static func methodNotAllowed(_ method: String, allowed: [String]) -> APIError {
        APIError(status: 405, code: "method_not_allowed",
                 message: "\(method) is not allowed here; use \(allowed.joined(separator: ", "))",
                 headers: ["Allow": allowed.joined(separator: ", ")])
    }
    public static func conflict(_ message: String, code: String = "conflict") -> APIError {
        APIError(status: 409, code: code, message: message)
    }
    public static func payloadTooLarge(_ message: String) -> APIError {
        APIError(status: 413, code: "payload_too_large", message: message)
    }
    public static func unsupportedMediaType(_ message: String) -> APIError {
        APIError(status: 415, code: "unsupported_media_type", message: message)
    }
    public static func tooManyRequests(_ message: String, retryAfter: Int) -> APIError {
        APIError(status: 429, code: "rate_limited", message: message, headers: ["Retry-After": String(retryAfter)])
    }
    public static func internalError(requestId: String) -> APIError {
        APIError(status: 500, code: "internal",
                 message: "internal error; the daemon log has details under request id \(requestId)")
    }
    /// A peer could not be reached, or answered in a way we refuse (wrong TLS key).
    public static func badGateway(_ message: String, code: String = "peer_unreachable") -> APIError {
        APIError(status: 502, code: code, message: message)
    }
    public static func serviceUnavailable(_ message: String, code: String = "unavailable") -> APIError {
        APIError(status: 503, code: code, message: message)
    }
    public static func insufficientStorage(_ message: String) -> APIError {
        APIError(status: 507, code: "insufficient_storage", message: message)
    }
}

/// The JSON shape of an error body, for encoding and decoding.
public struct ErrorBody: Codable, Sendable {
    public struct Detail: Codable, Sendable {
        public var code: String
        public var message: String
        public init(code: String, message: String) {
            self.code = code
            self.message = message
        }
    }
    public var error: Detail

    public init(_ error: APIError) {
        self.error = Detail(code: error.code, message: error.message)
    }
}
