import LoopsyAPI
import LoopsyConfig
import LoopsyHTTP
import LoopsyStore
import Synchronization

/// The one place every request passes through: request id, Host/Origin checks, routing,
/// authentication, rate limits, error mapping and audit. Handlers only do their own work.
public final class Dispatcher: HTTPHandler, Sendable {
    public let router: Router
    private let node: NodeServices
    private let authenticator: Authenticator
    private let rateLimiter: RateLimiter
    private let auditLog: AuditLog?
    private let hostPolicy: HostPolicy

    public init(routes: [Route], node: NodeServices, authenticator: Authenticator, rateLimiter: RateLimiter,
                auditLog: AuditLog?) {
        router = Router(routes: routes)
        self.node = node
        self.authenticator = authenticator
        self.rateLimiter = rateLimiter
        self.auditLog = auditLog
        hostPolicy = HostPolicy(hostnames: [node.hostname, NodeServices.systemHostname()])
    }

    public func maxBodySize(for head: HTTPRequestHead) -> Int {
        // Most requests carry no body; they need no routing here.
        let declared = head.headers["content-length"].flatMap(Int.init) ?? 0
        if declared == 0 && head.headers["transfer-encoding"] == nil { return 64 * 1024 }
        if case .found(let route, _) = router.match(method: head.method, rawPath: Self.pathOnly(head.rawPath)) {
            return route.maxBody
        }
        // Small enough to be harmless, large enough that a wrong method or path still gets its
        // 404/405 instead of a 413.
        return 64 * 1024
    }

    public func payloadTooLarge(for head: HTTPRequestHead, limit: Int) -> HTTPResponse {
        var response = HTTPResponse.error(.payloadTooLarge("request body is larger than the \(limit) bytes this route accepts"))
        response.setHeader("Connection", "close")
        return response
    }

    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        let started = Clock.monotonicSeconds()
        let requestId = RequestID.make()
        var caller = Caller.anonymous(request.remoteAddress)
        var response: HTTPResponse
        do {
            response = try dispatch(request, requestId: requestId, caller: &caller)
        } catch let error as APIError {
            response = .error(error)
        } catch {
            response = .error(Self.map(error, requestId: requestId, logger: node.logger))
        }
        // Handlers never set these, so appending is enough.
        response.headers.append(("X-Request-Id", requestId))
        response.headers.append(("Cache-Control", "no-store"))
        response.headers.append(("X-Content-Type-Options", "nosniff"))
        let duration = (Clock.monotonicSeconds() - started) * 1000
        auditLog?.record(AuditEntry(
            id: 0, time: Clock.nowMillis(), requestId: requestId, caller: caller.id, method: request.method,
            path: Self.pathOnly(request.rawPath), status: response.status, durationMs: duration,
            remote: request.remoteAddress))
        return response
    }

    private func dispatch(_ request: HTTPRequest, requestId: String, caller: inout Caller) throws -> HTTPResponse {
        let host = request.header("host")
        guard hostPolicy.allows(host: host) else {
            throw APIError.forbidden("Host '\(host ?? "")' does not name this node; use its IP address or localhost",
                                     code: "host_forbidden")
        }
        guard hostPolicy.allows(origin: request.header("origin"), host: host) else {
            throw APIError.forbidden("cross-origin requests are refused", code: "origin_forbidden")
        }
        let match = router.match(method: request.method, rawPath: request.rawPath)
        var needsAuth = true
        if case .found(let route, _) = match, route.access == .open { needsAuth = false }
        if needsAuth {
            // Unknown paths need credentials too, so the API's shape is not public.
            caller = try authenticator.authenticate(authorization: request.header("authorization")).get()
        }
        switch match {
        case .notFound:
            throw APIError.notFound("route \(request.method) \(request.rawPath)")
        case .badEncoding:
            throw APIError.badRequest("the path has a malformed percent-escape or is not UTF-8", code: "bad_path")
        case .wrongMethod(let allowed):
            throw APIError.methodNotAllowed(request.method, allowed: allowed)
        case .found(let route, let parameters):
            if let category = route.category, let retryAfter = rateLimiter.take(caller: caller.id, category: category) {
                throw APIError.tooManyRequests(
                    "rate limit for \(category.rawValue) requests reached (rateLimits.\(category.rawValue) per minute); "
                        + "retry in \(retryAfter) s", retryAfter: retryAfter)
            }
            return try route.handler(RequestContext(request: request, parameters: parameters, caller: caller,
                                                    requestId: requestId, node: node))
        }
    }

    /// Errors that are not APIErrors: storage conditions get their own status; anything else
    /// is a 500 whose details stay in the log.
    static func map(_ error: any Error, requestId: String, logger: Logger) -> APIError {
        if let error = error as? ContextStoreError, case .full(let limit) = error {
            return .conflict("the context store holds its maximum of \(limit) entries (context.maxEntries); "
                + "delete some or raise the limit", code: "context_full")
        }
        if let error = error as? DatabaseError, error.isDiskFull {
            logger.error("request \(requestId): disk full: \(error)")
            return .insufficientStorage("the daemon's disk is full; nothing was changed. Free space and retry")
        }
        logger.error("request \(requestId) failed: \(error)")
        return .internalError(requestId: requestId)
    }

    static func pathOnly(_ rawPath: String) -> String {
        rawPath.firstIndex(of: "?").map { String(rawPath[..<$0]) } ?? rawPath
    }
}

/// Request ids: unique per daemon run and cheap (no getrandom call per request). They are
/// correlation handles, not secrets.
enum RequestID {
    private static let prefix: UInt64 = {
        var generator = SystemRandomNumberGenerator()
        return generator.next() & 0xFFFF_FFFF_0000_0000
    }()
    private static let counter = Atomic<UInt64>(0)

    static func make() -> String {
        let value = prefix | (counter.add(1, ordering: .relaxed).newValue & 0xFFFF_FFFF)
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
