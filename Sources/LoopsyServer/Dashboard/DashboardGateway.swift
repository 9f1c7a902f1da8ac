import Dispatch
import LoopsyAPI
import LoopsyClient
import LoopsyConfig
import LoopsyCore
import LoopsyHTTP
import LoopsyPOSIX
import LoopsyStore

/// `loopsy dashboard`: the dashboard on its own port (127.0.0.1:19540 by default), driving every
/// local node — the main one and each `loopsy session` — through `/nodes/<name>/api/v1/…`,
/// which it relays to that node's daemon with that node's key. The browser never holds a key:
/// it holds a session cookie of this process, and CSRF, Host and Origin are checked as loopsyd
/// checks them.
public final class DashboardGateway: HTTPHandler, Sendable {
    public let sessions: DashboardSessions
    private let main: DataDir
    private let hostPolicy = HostPolicy(hostnames: [Programs.hostname()])
    /// Failed and successful logins alike, per address: keys are not for guessing.
    private let loginLimiter: RateLimiter
    private let logger: Logger
    /// Relays opened with a session cookie, so they end when the session does (logout, expiry,
    /// a new main key), checked twice a second while any is open.
    private let watched = PlainMutex<(relays: [(relay: PeerRelay, cookie: String?)], timer: (any DispatchSourceTimer)?)>(([], nil))
    /// The local nodes as last read, and when (monotonic seconds).
    private let snapshot = PlainMutex<(nodes: [LocalNode], takenAt: Double)?>(nil)

    public init(main: DataDir, loginsPerMinute: Int, logger: Logger) {
        self.main = main
        self.logger = logger
        // Per run: two gateways on one host (ports share cookies) must not log each other out.
        sessions = DashboardSessions(cookieName: "loopsy_dashboard_" + Secrets.apiKey().prefix(8))
        loginLimiter = RateLimiter(perMinute: [.pairing: loginsPerMinute])
    }

    // MARK: Local nodes

    private struct LocalNode: Sendable {
        var info: DashboardNode
        var target: PeerRelay.Target?
        /// The node's key (nil without a readable config).
        var apiKey: String?
    }

    /// The main node first, then every session. Sessions come and go and keys rotate, so this is
    /// read again once it is a second old: every request needs it, and a read parses each
    /// node's config and identity.
    private func localNodes() -> [LocalNode] {
        let now = Clock.monotonicSeconds()
        if let cached = snapshot.withLock({ $0 }), now - cached.takenAt < 1 { return cached.nodes }
        let directory = SessionDirectory(main: main)
        var nodes = [node(named: "main", dataDir: main)]
        for name in directory.names() { nodes.append(node(named: name, dataDir: directory.dataDir(name))) }
        snapshot.withLock { $0 = (nodes, now) }
        return nodes
    }

    private func node(named name: String, dataDir: DataDir) -> LocalNode {
        let base = "/nodes/\(name)/api/v1"
        guard let config = try? ConfigFile.load(dataDir).config else {
            return LocalNode(info: DashboardNode(name: name, base: base, nodeId: nil, reachable: false), target: nil,
                             apiKey: nil)
        }
        let nodeId = (try? NodeIdentity.load(from: dataDir.identityKeyFile))?.nodeId
        let running = dataDir.runningDaemonPid() != nil
        // A node that is not running gets no calls: whatever listens on its port is not it, and
        // must not be handed its key.
        guard running else {
            return LocalNode(info: DashboardNode(name: name, base: base, nodeId: nodeId, reachable: false), target: nil,
                             apiKey: config.auth.apiKey)
        }
        let port = LoopsyClient.localPort(dataDir, config: config)
        let baseURL = "http://127.0.0.1:\(port)"
        let target = PeerRelay.Target(
            name: "local node \(name)", baseURL: baseURL, headers: ["Authorization": "Bearer " + config.auth.apiKey],
            pin: nil,
            describe: { error, _ in
                APIError.badGateway("local node \(name) does not answer at \(baseURL) (\(error)); start it with "
                    + (name == "main" ? "`loopsy start`" : "`loopsy session start \(name)`"), code: .nodeUnreachable)
            })
        return LocalNode(info: DashboardNode(name: name, base: base, nodeId: nodeId, reachable: true), target: target,
                         apiKey: config.auth.apiKey)
    }

    /// A one-time login link's token, bound to the main node's current key.
    public func makeLink() throws -> String { sessions.makeLink(binding: Secrets.keyHash(try mainKey())) }

    // MARK: HTTPHandler

    public func plan(for head: HTTPRequestHead) -> BodyPlan {
        let declared = head.headers["content-length"].flatMap(Int.init) ?? 0
        guard declared > 0 || head.headers["transfer-encoding"] != nil, head.rawPath.hasPrefix("/nodes/") else {
            return .buffer(limit: 64 * 1024)
        }
        // A relayed body (an upload) streams through: every check happens before its first byte.
        let request = HTTPRequest(method: head.method, rawPath: head.rawPath, query: head.query, headers: head.headers,
                                  remoteAddress: head.remoteAddress, secure: head.secure,
                                  queryUndecodable: head.queryUndecodable)
        do {
            return .stream(try startRelay(request, hasBody: true))
        } catch {
            var response = finish(.error(failure(error, request)))
            response.setHeader("Connection", "close")
            return .respond(response)
        }
    }

    public func payloadTooLarge(for head: HTTPRequestHead, limit: Int) -> HTTPResponse {
        finish(.error(.payloadTooLarge("request body is larger than the \(limit) bytes this path accepts")))
    }

    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        do {
            return finish(try respond(request))
        } catch let error as APIError {
            return finish(.error(error))
        } catch {
            return finish(.error(failure(error, request)))
        }
    }

    /// An APIError as it is; anything else logged under a new request id, which the 500 names.
    private func failure(_ error: any Error, _ request: HTTPRequest) -> APIError {
        if let error = error as? APIError { return error }
        let requestId = RequestID.make()
        logger.error("dashboard: request \(requestId) \(request.method) \(request.rawPath) failed: \(error)")
        return .internalError(requestId: requestId)
    }

    private func respond(_ request: HTTPRequest) throws -> HTTPResponse {
        if let relay = request.bodySink as? PeerRelay {
            relay.endBody()
            return relay.response()
        }
        try hostPolicy.check(request)
        switch Self.router.match(method: request.method, rawPath: request.rawPath) {
        case .found(let route, let parameters):
            if !route.open { _ = try authenticate(request) }
            try request.requireDecodableQuery()
            return try route.handle(self, request, parameters)
        case .notFound, .wrongMethod, .badEncoding:
            // Only the page and the login are public: the rest of the shape is not.
            _ = try authenticate(request)
            throw APIError.notFound("\(request.method) \(request.rawPath)")
        }
    }

    /// The gateway's routes, matched by the daemon's Router: the page, its files, the login and
    /// session calls, and `/nodes/<name>/api/v1/…` relayed to that node.
    private struct GatewayRoute: RoutePattern {
        let method: HTTPMethod
        let pattern: String
        /// Open routes need no session (the page, its files, the login).
        let open: Bool
        let handle: @Sendable (DashboardGateway, HTTPRequest, PathParameters) throws -> HTTPResponse
    }

    private static let router = Router<GatewayRoute>(routes: [
        GatewayRoute(method: .get, pattern: "/", open: true) { _, _, _ in DashboardWeb.redirectToIndex() },
        GatewayRoute(method: .get, pattern: "/dashboard", open: true) { _, _, _ in DashboardWeb.redirectToIndex() },
        GatewayRoute(method: .post, pattern: "/dashboard/api/login", open: true) { gateway, request, _ in
            try gateway.login(request)
        },
        GatewayRoute(method: .post, pattern: "/dashboard/api/logout", open: false) { gateway, request, _ in
            try DashboardWeb.logout(request, sessions: gateway.sessions)
        },
        GatewayRoute(method: .get, pattern: "/dashboard/api/session", open: false) { gateway, request, _ in
            try DashboardWeb.session(request, sessions: gateway.sessions, mode: "standalone",
                                     nodes: gateway.localNodes().map(\.info), binding: Secrets.keyHash(gateway.mainKey()))
        },
    ] + DashboardWeb.assets.keys.sorted().map { path in
        GatewayRoute(method: .get, pattern: path, open: true) { _, _, _ in DashboardWeb.asset(path)! }
    } + HTTPMethod.allCases.map { method in
        GatewayRoute(method: method, pattern: relayPattern, open: false) { gateway, request, _ in
            let relay = try gateway.startRelay(request, hasBody: false)
            relay.endBody()
            return relay.response()
        }
    })

    /// `/nodes/<name>/api/v1/<path>`: `path` is the rest, still encoded (it is relayed).
    private static let relayPattern = "/nodes/{node}/api/{path+}"

    private func login(_ request: HTTPRequest) throws -> HTTPResponse {
        if let retry = loginLimiter.take(caller: RateLimiter.networkKey(request.remoteAddress), category: .pairing,
                                         anonymous: !HostAddress.isLoopback(request.remoteAddress)) {
            throw APIError.tooManyRequests("too many login attempts; retry in \(retry) s", retryAfter: retry)
        }
        let nodes = localNodes()
        let mainKey = try self.mainKey()
        return try DashboardWeb.login(request, sessions: sessions, mode: "standalone", nodes: nodes.map(\.info),
                                      binding: Secrets.keyHash(mainKey)) { Secrets.equal($0, mainKey) }
    }

    /// The main node's current key: sessions are bound to it and end when it changes.
    private func mainKey() throws -> String {
        guard let key = localNodes().first?.apiKey else {
            throw APIError.conflict("no config at \(main.configFile); run `loopsy init` first", code: .notInitialised)
        }
        return key
    }

    private func authenticate(_ request: HTTPRequest) throws -> DashboardSessions.Session {
        guard let result = sessions.authenticate(cookie: request.header("cookie"),
                                                 csrfToken: request.header("x-csrf-token"),
                                                 fetchSite: request.header("sec-fetch-site"),
                                                 binding: Secrets.keyHash(try mainKey())) else {
            throw APIError.unauthorized("log in first: open the link `loopsy dashboard` printed, or log in with the "
                + "API key at /dashboard/")
        }
        return try result.get()
    }

    /// The daemon's route table, for the access each route declares.
    private static let nodeRouter = Router(routes: Routes.table(config: LoopsyConfig()))

    /// `/nodes/<name>/api/v1/<path>` → that node's daemon.
    private func startRelay(_ request: HTTPRequest, hasBody: Bool) throws -> PeerRelay {
        try hostPolicy.check(request)
        _ = try authenticate(request)
        try request.requireDecodableQuery()
        guard case .found(let route, let parameters) = Self.router.match(method: request.method, rawPath: request.rawPath),
              route.pattern == Self.relayPattern, let name = parameters["node"], let path = parameters["path"],
              path.hasPrefix("v1/") else {
            throw APIError.notFound("\(request.method) \(request.rawPath)")
        }
        let rest = String(path.dropFirst(3))
        // The node may relay on to one of its peers: that is its own single hop.
        try PeerRelay.checkPath(rest, allowPeerHop: true)
        // The node sees its own key on what is relayed: what its routes declare for a dashboard
        // session is checked here (routes for the owner's key alone, such as a task's permission
        // prompts, stay out of a browser's reach, as on the node's own dashboard).
        if case .found(let route, _) = Self.nodeRouter.match(method: request.method, rawPath: "/api/v1/" + rest),
           !route.access.admits(.dashboard) {
            throw route.access.refusal(for: .dashboard, node: name)
        }
        guard let node = localNodes().first(where: { $0.info.name == name }) else {
            throw APIError.notFound("local node '\(name)' (see `loopsy session list`)")
        }
        guard let target = node.target else {
            throw APIError.badGateway("local node \(name) is not running; start it with "
                + (name == "main" ? "`loopsy start`" : "`loopsy session start \(name)`"), code: .nodeUnreachable)
        }
        let relay = try PeerRelay.start(target, method: request.method, path: rest,
                                        query: PeerRelay.encodedQuery(request.query), headers: request.headers,
                                        hasBody: hasBody)
        watch(relay, cookie: request.header("cookie"))
        return relay
    }

    private func watch(_ relay: PeerRelay, cookie: String?) {
        watched.withLock { watched in
            watched.relays.append((relay, cookie))
            guard watched.timer == nil else { return }
            let timer = DispatchSource.makeTimerSource(queue: .global())
            timer.schedule(deadline: .now() + 0.5, repeating: 0.5, leeway: .milliseconds(50))
            timer.setEventHandler { [weak self] in self?.checkWatched() }
            timer.resume()
            watched.timer = timer
        }
    }

    private func checkWatched() {
        let relays = watched.withLock { watched -> [(relay: PeerRelay, cookie: String?)] in
            watched.relays.removeAll { $0.relay.isFinished }
            if watched.relays.isEmpty {
                watched.timer?.cancel()
                watched.timer = nil
            }
            return watched.relays
        }
        guard !relays.isEmpty else { return }
        let binding = (try? mainKey()).map(Secrets.keyHash) ?? ""
        for (relay, cookie) in relays where !sessions.isLive(cookieHeader: cookie, binding: binding) { relay.end() }
    }

    /// Headers every answer gets; relayed answers get them when they arrive.
    private func finish(_ response: HTTPResponse) -> HTTPResponse {
        if let deferred = response.deferred {
            deferred.finalize { [self] in finish($0) }
            return response
        }
        var response = response
        response.headers.append(("Cache-Control", "no-store"))
        response.headers.append(("X-Content-Type-Options", "nosniff"))
        DashboardWeb.lockDown(&response)
        return response
    }
}
