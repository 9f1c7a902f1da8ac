/// `POST /dashboard/api/login`: the node's API key, or the token of a one-time login link.
public struct DashboardLoginRequest: Codable, Sendable {
    public var apiKey: String?
    public var token: String?

    public init(apiKey: String? = nil, token: String? = nil) {
        self.apiKey = apiKey
        self.token = token
    }
}

/// A daemon the dashboard can drive, and the base of its API as the page reaches it.
public struct DashboardNode: Codable, Sendable, Equatable {
    public var name: String
    public var base: String
    public var nodeId: String?
    /// False when a local daemon (standalone dashboard) does not answer.
    public var reachable: Bool

    public init(name: String, base: String, nodeId: String?, reachable: Bool) {
        self.name = name
        self.base = base
        self.nodeId = nodeId
        self.reachable = reachable
    }
}

/// The logged-in page's view of its session.
public struct DashboardSessionResponse: Codable, Sendable {
    /// Echo it in `X-CSRF-Token` on every request that changes something.
    public var csrfToken: String
    /// "daemon" (served by loopsyd under /dashboard) or "standalone" (`loopsy dashboard`).
    public var mode: String
    public var nodes: [DashboardNode]

    public init(csrfToken: String, mode: String, nodes: [DashboardNode]) {
        self.csrfToken = csrfToken
        self.mode = mode
        self.nodes = nodes
    }
}

/// A one-time login link.
public struct DashboardLinkResponse: Codable, Sendable {
    /// Path and fragment to open on this node, e.g. `/dashboard/#login=…`.
    public var path: String
    public var expiresIn: Int

    public init(path: String, expiresIn: Int) {
        self.path = path
        self.expiresIn = expiresIn
    }
}
