import LoopsyAPI
import LoopsyHTTP

/// The dashboard as loopsyd serves it under /dashboard: static files (no auth), login and
/// logout (a session cookie), and the page's session. Everything else it does goes through
/// the ordinary API with that cookie, CSRF-checked by the dispatcher.
public enum DashboardHandlers {
    static func redirect(_ context: RequestContext) throws -> HTTPResponse { DashboardWeb.redirectToIndex() }

    static func asset(_ context: RequestContext) throws -> HTTPResponse {
        guard let response = DashboardWeb.asset(context.request.rawPath) else {
            throw APIError.notFound("dashboard file \(context.request.rawPath)")
        }
        return response
    }

    /// The daemon's dashboard drives this one daemon (and its peers through it).
    private static func nodes(_ context: RequestContext) -> [DashboardNode] {
        [DashboardNode(name: context.node.hostname, base: LoopsyVersion.apiBase, nodeId: context.node.identity.nodeId,
                       reachable: true)]
    }

    static func login(_ context: RequestContext) throws -> HTTPResponse {
        // Only the node's own key: the dashboard acts as the owner.
        let authenticator = context.node.authenticator
        return try DashboardWeb.login(context.request, sessions: context.node.dashboard, mode: "daemon",
                                      nodes: nodes(context), binding: authenticator.sessionBinding,
                                      checkKey: authenticator.isOwnerKey)
    }

    static func logout(_ context: RequestContext) throws -> HTTPResponse {
        try DashboardWeb.logout(context.request, sessions: context.node.dashboard)
    }

    static func session(_ context: RequestContext) throws -> HTTPResponse {
        try DashboardWeb.session(context.request, sessions: context.node.dashboard, mode: "daemon",
                                 nodes: nodes(context), binding: context.node.authenticator.sessionBinding)
    }

    /// A one-time login link for this daemon's dashboard (`loopsy dashboard --link`).
    static func link(_ context: RequestContext) throws -> HTTPResponse {
        let token = context.node.dashboard.makeLink(binding: context.node.authenticator.sessionBinding)
        return try .json(DashboardLinkResponse(path: "/dashboard/#login=" + token,
                                               expiresIn: Int(context.node.dashboard.linkSeconds)), status: 201)
    }
}
