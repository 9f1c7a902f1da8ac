import FoundationEssentials
import LoopsyAPI
import LoopsyConfig
import LoopsyHTTP

/// The dashboard's web side, shared by loopsyd (`/dashboard`) and `loopsy dashboard`: its
/// static files (embedded in the binary at build time), their security headers, and login.
public enum DashboardWeb {
    public struct Asset: Sendable {
        public let contentType: String
        public let bytes: [UInt8]
    }

    /// By request path. Plain files, no build step: `Sources/LoopsyServer/Dashboard/Web/`.
    public static let assets: [String: Asset] = [
        "/dashboard/": Asset(contentType: "text/html; charset=utf-8", bytes: PackageResources.index_html),
        "/dashboard/app.js": Asset(contentType: "text/javascript; charset=utf-8", bytes: PackageResources.app_js),
        "/dashboard/app.css": Asset(contentType: "text/css; charset=utf-8", bytes: PackageResources.app_css),
        "/dashboard/icon.svg": Asset(contentType: "image/svg+xml", bytes: PackageResources.icon_svg),
    ]

    /// Everything from this origin only; no inline script, no framing, no referrer.
    static let securityHeaders: [(name: String, value: String)] = [
        ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            + "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
    ]

    public static func asset(_ path: String) -> HTTPResponse? {
        guard let asset = assets[path] else { return nil }
        return HTTPResponse(status: 200, headers: [("Content-Type", asset.contentType)] + securityHeaders,
                            body: asset.bytes)
    }

    /// Every answer but the dashboard's own files: a page that opens one (a relayed peer's answer
    /// included, whose type and body the peer chose) runs no script, loads nothing and cannot be
    /// framed. JSON and event streams read by the page's own script are unaffected.
    static func lockDown(_ response: inout HTTPResponse) {
        // Runs on every answer: the length rules out most names before any case folding.
        guard !response.headers.contains(where: {
            $0.name.utf8.count == 23 && $0.name.lowercased() == "content-security-policy"
        }) else { return }
        response.headers.append(("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox"))
        response.headers.append(("X-Frame-Options", "DENY"))
    }

    /// `/dashboard` → `/dashboard/` (relative asset paths need the slash).
    public static func redirectToIndex() -> HTTPResponse {
        HTTPResponse(status: 308, headers: [("Location", "/dashboard/"), ("Content-Type", "text/plain")],
                     body: Array("see /dashboard/\n".utf8))
    }

    /// A secret may arrive over TLS, or over loopback where it never crosses a network.
    public static func mayReceiveSecret(_ request: HTTPRequest) -> Bool {
        request.secure || HostAddress.isLoopback(request.remoteAddress)
    }

    /// Checks a login: the API key (compared by `checkKey`) or a one-time link token. The
    /// answer sets the session cookie and carries the CSRF token.
    public static func login(_ request: HTTPRequest, sessions: DashboardSessions, mode: String, nodes: [DashboardNode],
                             binding: String, checkKey: (String) -> Bool) throws -> HTTPResponse {
        guard mayReceiveSecret(request) else {
            throw APIError.forbidden("log in over HTTPS (tls.enabled) or from this machine: the key would cross the "
                + "network in clear", code: .insecureTransport)
        }
        let body = try request.decodeJSON(DashboardLoginRequest.self, requireContentType: true)
        let accepted: Bool
        if let token = body.token, !token.isEmpty {
            accepted = sessions.redeem(token, binding: binding)
            guard accepted else {
                throw APIError.forbidden("this login link was used already or has expired; run `loopsy dashboard` "
                    + "again for a new one", code: .linkExpired)
            }
        } else if let key = body.apiKey, !key.isEmpty {
            guard checkKey(key) else {
                throw APIError.forbidden("that is not this node's API key (`loopsy key show` prints it)",
                                         code: .invalidCredentials)
            }
        } else {
            throw APIError.badRequest("send {\"apiKey\": …} or {\"token\": …}", code: .badRequest)
        }
        let (token, session) = sessions.create(binding: binding)
        var response = try HTTPResponse.json(DashboardSessionResponse(csrfToken: session.csrfToken, mode: mode,
                                                                      nodes: nodes))
        response.headers.append(("Set-Cookie", sessions.setCookie(token, secure: request.secure)))
        return response
    }

    /// Ends the request's session (if it came with one) and clears the cookie.
    public static func logout(_ request: HTTPRequest, sessions: DashboardSessions) throws -> HTTPResponse {
        sessions.end(cookieHeader: request.header("cookie"))
        var response = try HTTPResponse.json(DeletedResponse(deleted: true))
        response.headers.append(("Set-Cookie", sessions.clearCookie(secure: request.secure)))
        return response
    }

    /// The session of a request already authenticated with cookie and token, for pages that
    /// reload: which nodes it drives.
    public static func session(_ request: HTTPRequest, sessions: DashboardSessions, mode: String,
                               nodes: [DashboardNode], binding: String) throws -> HTTPResponse {
        guard let session = sessions.session(cookieHeader: request.header("cookie"), binding: binding) else {
            throw APIError.unauthorized("no dashboard session: log in with the API key")
        }
        return try .json(DashboardSessionResponse(csrfToken: session.csrfToken, mode: mode, nodes: nodes))
    }

}
