import LoopsyAPI
import LoopsyRun
import LoopsyCore
import LoopsyConfig
import LoopsyHTTP
import LoopsyTransfer
import LoopsyStore
import Synchronization

/// The one place every request passes through: request id, Host/Origin checks, routing,
/// authentication, rate limits, error mapping and audit. Handlers only do their own work.
public final class Dispatcher: HTTPHandler, Sendable {
    public let router: Router<Route>
    private let node: NodeServices
    private let authenticator: Authenticator
    private let rateLimiter: RateLimiter
    private let auditLog: AuditLog?
    private let hostPolicy: HostPolicy
    private let exemptLocalOwner: Bool
    /// Streams cut when the credential that opened them ends.
    let credentialWatch = CredentialWatch()

    public init(routes: [Route], node: NodeServices, authenticator: Authenticator, rateLimiter: RateLimiter,
                auditLog: AuditLog?) {
        router = Router(routes: routes)
        self.node = node
        self.authenticator = authenticator
        self.rateLimiter = rateLimiter
        self.auditLog = auditLog
        hostPolicy = HostPolicy(hostnames: [node.hostname, Programs.hostname()])
        exemptLocalOwner = node.config.rateLimits.exemptLocalOwner
    }

    public func plan(for head: HTTPRequestHead) -> BodyPlan {
        // Most requests carry no body; they need no routing here.
        let declared = head.headers["content-length"].flatMap(Int.init) ?? 0
        if declared == 0 && head.headers["transfer-encoding"] == nil { return .buffer(limit: 64 * 1024) }
        guard case .found(let route, let parameters) = router.match(method: head.method, rawPath: head.rawPath) else {
            // Small enough to be harmless, large enough that a wrong method or path still gets
            // its 404/405 instead of a 413.
            return .buffer(limit: 64 * 1024)
        }
        let started = Clock.monotonicSeconds()
        let request = HTTPRequest(method: head.method, rawPath: head.rawPath, query: head.query, headers: head.headers,
                                  remoteAddress: head.remoteAddress, secure: head.secure,
                                  queryUndecodable: head.queryUndecodable)
        var caller = Caller.anonymous(head.remoteAddress)
        let requestId = RequestID.make()
        guard let makeSink = route.bodySink else {
            // Nobody gets a large body held in memory before they are known and admitted: the
            // refusal is answered from the head (and the checks run again once it arrived, all
            // but the authentication of a body that came quickly: see `Routed.currentCaller`).
            // Who that found goes along (see `Routed.caller`).
            var admitted: Caller?
            if !route.access.isOpen && route.maxBody > 64 * 1024 {
                do {
                    try hostPolicy.check(request)
                    caller = try authenticator.authenticate(request).get()
                    admitted = caller
                    guard route.access.admits(caller) else { throw route.access.refusal(for: caller, node: node.hostname) }
                    try request.requireDecodableQuery()
                } catch {
                    var refusal = finish(response(for: error, requestId: requestId), request: request, caller: caller,
                                         requestId: requestId, started: started)
                    refusal.setHeader("Connection", "close")
                    return .respond(refusal)
                }
            }
            // The match goes along, and the caller authenticated here: the request is not routed
            // a second time when it has arrived, nor authenticated again if it came quickly.
            return .bufferNoting(limit: route.maxBody, note: Routed(route: route, parameters: parameters, caller: admitted,
                                                                    authenticatedAt: started))
        }
        // A streamed body goes to disk: every check happens before its first byte is accepted.
        do {
            try admit(request, route: route, caller: &caller)
            let context = RequestContext(request: request, parameters: parameters, caller: caller,
                                         requestId: requestId, node: node)
            return .stream(PlannedUpload(inner: try makeSink(context), context: context, route: route, started: started,
                                         dispatcher: self))
        } catch {
            return .respond(finish(response(for: error, requestId: requestId), request: request, caller: caller,
                                   requestId: requestId, started: started))
        }
    }

    public func payloadTooLarge(for head: HTTPRequestHead, limit: Int) -> HTTPResponse {
        var response = HTTPResponse.error(.payloadTooLarge("request body is larger than the \(limit) bytes this route accepts"))
        response.setHeader("Connection", "close")
        return response
    }

    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        if let planned = request.bodySink as? PlannedUpload {
            var context = planned.context
            context.request.bodySink = planned.inner
            let response: HTTPResponse
            do {
                response = try planned.route.handler(context)
            } catch {
                response = self.response(for: error, requestId: context.requestId)
            }
            return finish(response, request: request, caller: context.caller, requestId: context.requestId,
                          started: planned.started)
        }
        let started = Clock.monotonicSeconds()
        let requestId = RequestID.make()
        var caller = Caller.anonymous(request.remoteAddress)
        let response: HTTPResponse
        do {
            response = try dispatch(request, requestId: requestId, caller: &caller)
        } catch {
            response = self.response(for: error, requestId: requestId)
        }
        return finish(response, request: request, caller: caller, requestId: requestId, started: started)
    }

    /// Adds the common headers and records the audit entry.
    /// The response is taken (`consuming`): a caller passing its last use of it does not copy
    /// it, so its headers grow in place (a copy shared the array, which then had to be copied
    /// to grow).
    func finish(_ response: consuming HTTPResponse, request: HTTPRequest, caller: Caller, requestId: String,
                started: Double) -> HTTPResponse {
        if let deferred = response.deferred {
            // Headers and audit when the real answer arrives; the body is not kept meanwhile
            // (up to 6 MiB per waiting request, and nothing after this reads it).
            var withoutBody = request
            withoutBody.body = []
            withoutBody.bodySink = nil
            let head = withoutBody
            // A read that waited (a long-poll, up to minutes) is not answered to a credential that
            // ended meanwhile (a logout, a new key, a peer unpaired). Other methods waited for what
            // they did (a write committed, a lock taken): their answer says what happened.
            let stillValid = caller.kind == .anonymous || request.method != "GET" ? nil
                : authenticator.stillValid(head, as: caller)
            deferred.finalize { [self] final in
                guard let stillValid, !stillValid() else {
                    return finish(final, request: head, caller: caller, requestId: requestId, started: started)
                }
                final.discard()
                return finish(.error(Self.credentialEnded), request: head, caller: caller, requestId: requestId,
                              started: started)
            }
            return response
        }
        if let stream = response.stream, caller.kind != .anonymous {
            credentialWatch.watch(stream, while: authenticator.stillValid(request, as: caller))
        }
        if request.method != "GET", (200..<300).contains(response.status),
           let topic = ChangeTopic(path: request.rawPath) {
            node.changes.publish(topic, detail: ["method": request.method, "path": request.rawPath])
        }
        // Handlers never set these, so appending is enough. Room for them and lockDown's two
        // first: one allocation, not one per doubling.
        response.headers.reserveCapacity(response.headers.count + 5)
        response.headers.append(("X-Request-Id", requestId))
        response.headers.append(("Cache-Control", "no-store"))
        response.headers.append(("X-Content-Type-Options", "nosniff"))
        DashboardWeb.lockDown(&response)
        auditLog?.record(AuditEntry(
            id: 0, time: Clock.nowMillis(), requestId: requestId, caller: caller.auditName, method: request.method,
            path: request.rawPath, status: response.status, durationMs: (Clock.monotonicSeconds() - started) * 1000,
            remote: request.remoteAddress))
        return response
    }

    static let credentialEnded = APIError.unauthorized(
        "the credential this request came with ended while it waited (a logout, a new key, or this peer unpaired); "
            + "nothing was sent. Authenticate again")

    private func response(for error: any Error, requestId: String) -> HTTPResponse {
        if let error = error as? APIError { return .error(error) }
        return .error(Self.map(error, requestId: requestId, logger: node.logger))
    }

    private func dispatch(_ request: HTTPRequest, requestId: String, caller: inout Caller) throws -> HTTPResponse {
        let routed = request.planNote as? Routed
        let match = routed.map { Router<Route>.Match.found($0.route, $0.parameters) }
            ?? router.match(method: request.method, rawPath: request.rawPath)
        switch match {
        case .found(let route, let parameters):
            try admit(request, route: route, caller: &caller, authenticated: routed?.currentCaller())
            return try route.handler(RequestContext(request: request, parameters: parameters, caller: caller,
                                                    requestId: requestId, node: node))
        case .notFound, .badEncoding, .wrongMethod:
            try hostPolicy.check(request)
            // Unknown paths need credentials too, so the API's shape is not public.
            caller = try authenticator.authenticate(request).get()
            if case .badEncoding = match {
                throw APIError.badRequest("the path has a malformed percent-escape or is not UTF-8", code: .badPath)
            }
            if case .wrongMethod(let allowed) = match { throw APIError.methodNotAllowed(request.method, allowed: allowed) }
            throw APIError.notFound("route \(request.method) \(request.rawPath)")
        }
    }

    /// Host/Origin, credentials, the route's declared access and rate limit: what every request
    /// to a route must pass. Handlers never check who may call them again. `authenticated`: the
    /// caller `plan` already authenticated from this request's head.
    private func admit(_ request: HTTPRequest, route: Route, caller: inout Caller, authenticated: Caller? = nil) throws {
        try hostPolicy.check(request)
        if !route.access.isOpen {
            caller = try authenticated ?? authenticator.authenticate(request).get()
            guard route.access.admits(caller) else { throw route.access.refusal(for: caller, node: node.hostname) }
        }
        try request.requireDecodableQuery()
        guard let category = route.category, rateLimiter.limits(category) else { return }
        // Limits protect the node from others: its own key on loopback is exempt unless configured
        // otherwise. They are keyed on the credential, never on anything the caller says.
        let exempt = exemptLocalOwner && caller.isOwner && HostAddress.isLoopback(request.remoteAddress)
        // Callers without a credential count by network; all but loopback ones in a bounded table.
        let anonymous = caller.kind == .anonymous
        if !exempt,
           let retryAfter = rateLimiter.take(caller: anonymous ? "anonymous@" + RateLimiter.networkKey(caller.name) : caller.id,
                                             category: category,
                                             anonymous: anonymous && !HostAddress.isLoopback(request.remoteAddress)) {
            throw APIError.tooManyRequests(
                "rate limit for \(category.rawValue) requests reached (rateLimits.\(category.rawValue) per minute); "
                    + "retry in \(retryAfter) s", retryAfter: retryAfter)
        }
    }

    /// Errors that are not APIErrors: storage conditions get their own status; anything else
    /// is a 500 whose details stay in the log.
    static func map(_ error: any Error, requestId: String, logger: Logger) -> APIError {
        if let error = error as? ContextStoreError, case .full(let limit) = error {
            return .conflict("the context store holds its maximum of \(limit) entries (context.maxEntries); "
                + "delete some or raise the limit", code: .contextFull)
        }
        if error is GroupCommitClosed {
            return .serviceUnavailable("the daemon is shutting down; nothing was changed. Retry when it is back")
        }
        if let error = error as? DatabaseError, error.isDiskFull {
            logger.error("request \(requestId): disk full: \(error)")
            return .insufficientStorage("the daemon's disk is full; nothing was changed. Free space and retry")
        }
        logger.error("request \(requestId) failed: \(error)")
        return .internalError(requestId: requestId)
    }

}

/// The route a request's head matched, carried from `plan` to `handle`.
struct Routed: Sendable {
    let route: Route
    let parameters: PathParameters
    /// Who the head's credentials named, when `plan` checked them (routes whose body may pass
    /// 64 KiB); nil: `handle` authenticates.
    let caller: Caller?
    /// When `plan` authenticated (monotonic seconds).
    let authenticatedAt: Double
    /// How long a body may take to arrive for the head's authentication to stand: a key revoked,
    /// a grant changed or a peer unpaired while a slow body trickles in (`server.headerTimeout`
    /// may be 0) is seen when it has arrived, as before.
    static let authenticationStandsFor = 1.0

    /// `caller` while it may be used: nil if none was authenticated or the body took long.
    func currentCaller(now: Double = Clock.monotonicSeconds()) -> Caller? {
        now - authenticatedAt <= Self.authenticationStandsFor ? caller : nil
    }
}

/// A streamed upload that passed the dispatcher's checks: the route's sink plus what the
/// final handler call needs. An early refusal from the sink is audited like any response.
final class PlannedUpload: HTTPBodySink {
    let inner: any HTTPBodySink
    let context: RequestContext
    let route: Route
    let started: Double
    private unowned let dispatcher: Dispatcher

    init(inner: any HTTPBodySink, context: RequestContext, route: Route, started: Double, dispatcher: Dispatcher) {
        self.inner = inner
        self.context = context
        self.route = route
        self.started = started
        self.dispatcher = dispatcher
    }

    func cancel() { inner.cancel() }

    func consume(_ bytes: UnsafeBufferPointer<UInt8>) -> BodyIntake {
        let intake = inner.consume(bytes)
        guard case .refused(let refusal) = intake else { return intake }
        var response = dispatcher.finish(refusal, request: context.request, caller: context.caller,
                                         requestId: context.requestId, started: started)
        response.setHeader("Connection", "close")
        return .refused(response)
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
        return String(unsafeUninitializedCapacity: 16) { buffer in
            for index in 0..<16 {
                let nibble = UInt8((value >> UInt64(60 - 4 * index)) & 0xF)
                buffer[index] = nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
            }
            return 16
        }
    }
}

extension HTTPRequest {
    /// A query string that does not decode is refused once the caller is known to be allowed
    /// the route (the Dispatcher's and the dashboard gateway's admission): someone without
    /// credentials learns nothing from it but the 401, and nothing goes on without its query.
    func requireDecodableQuery() throws {
        if queryUndecodable {
            throw APIError.badRequest("the query string is not percent-encoded UTF-8", code: .badQuery)
        }
    }
}
