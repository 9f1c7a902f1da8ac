/// Every error the API returns: an HTTP status and the body `{"error":{"code","message"}}`.
public struct APIError: Error, Equatable, Sendable, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var message: String
    /// Extra response headers (Retry-After, Allow, WWW-Authenticate).
    public var headers: [String: String]

    /// An error as decoded from the wire (its code may be one this build does not know).
    public init(status: Int, code: String, message: String, headers: [String: String] = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    /// An error this build raises.
    public init(status: Int, code: ErrorCode, message: String, headers: [String: String] = [:]) {
        self.init(status: status, code: code.rawValue, message: message, headers: headers)
    }

    /// Whether this is the error `code`.
    public func `is`(_ code: ErrorCode) -> Bool { self.code == code.rawValue }

    public var description: String { message }

    public static func badRequest(_ message: String, code: ErrorCode = .badRequest) -> APIError {
        APIError(status: 400, code: code, message: message)
    }
    public static func unauthorized(_ message: String) -> APIError {
        APIError(status: 401, code: .unauthorized, message: message, headers: ["WWW-Authenticate": "Bearer"])
    }
    public static func forbidden(_ message: String, code: ErrorCode = .forbidden) -> APIError {
        APIError(status: 403, code: code, message: message)
    }
    public static func notFound(_ what: String) -> APIError {
        APIError(status: 404, code: .notFound, message: "\(what) not found")
    }
    public static func methodNotAllowed(_ method: String, allowed: [String]) -> APIError {
        APIError(status: 405, code: .methodNotAllowed,
                 message: "\(method) is not allowed here; use \(allowed.joined(separator: ", "))",
                 headers: ["Allow": allowed.joined(separator: ", ")])
    }
    public static func conflict(_ message: String, code: ErrorCode = .conflict) -> APIError {
        APIError(status: 409, code: code, message: message)
    }
    public static func payloadTooLarge(_ message: String) -> APIError {
        APIError(status: 413, code: .payloadTooLarge, message: message)
    }
    public static func unsupportedMediaType(_ message: String) -> APIError {
        APIError(status: 415, code: .unsupportedMediaType, message: message)
    }
    public static func tooManyRequests(_ message: String, retryAfter: Int) -> APIError {
        APIError(status: 429, code: .rateLimited, message: message, headers: ["Retry-After": String(retryAfter)])
    }
    public static func internalError(requestId: String) -> APIError {
        APIError(status: 500, code: .internalError,
                 message: "internal error; the daemon log has details under request id \(requestId)")
    }
    /// A peer could not be reached, or answered in a way we refuse (wrong TLS key).
    public static func badGateway(_ message: String, code: ErrorCode = .peerUnreachable) -> APIError {
        APIError(status: 502, code: code, message: message)
    }
    public static func serviceUnavailable(_ message: String, code: ErrorCode = .unavailable) -> APIError {
        APIError(status: 503, code: code, message: message)
    }
    public static func insufficientStorage(_ message: String) -> APIError {
        APIError(status: 507, code: .insufficientStorage, message: message)
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

        public init(code: ErrorCode, message: String) {
            self.init(code: code.rawValue, message: message)
        }
    }
    public var error: Detail

    public init(_ error: APIError) {
        self.error = Detail(code: error.code, message: error.message)
    }
}
