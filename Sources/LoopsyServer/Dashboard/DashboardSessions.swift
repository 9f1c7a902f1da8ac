import Crypto
import LoopsyAPI
import LoopsyConfig
import LoopsyPOSIX
import LoopsyStore

/// Browser sessions for the dashboard: an HttpOnly, SameSite=Strict cookie holding a random
/// 256-bit token, plus a CSRF token the page must echo in `X-CSRF-Token` on every request, reads
/// included. Browsers send a host's cookies to every port on it, so another local server could
/// collect the cookie; the token lives in the page's own storage, which is per origin (port
/// included), and without it the cookie opens nothing. Only hashes of tokens are kept, in
/// memory: a restart logs everyone out, and so does a new API key (each session is bound to the
/// key that was current when it began).
///
/// One-time login links (printed by `loopsy dashboard`) carry a token that works once, within
/// a few minutes, and is exchanged for a session by the page (it sits in the URL's fragment,
/// which browsers never send to servers or put in Referer headers).
public final class DashboardSessions: Sendable {
    public struct Session: Sendable {
        public let csrfToken: String
        /// The hash of the API key current at login; the session ends when the key changes.
        let binding: String
        let created: Double
        var lastUsed: Double
    }

    private struct State {
        var sessions: [String: Session] = [:]
        /// Link token hashes → when each was made and the key hash current then.
        var links: [String: (made: Double, binding: String)] = [:]
    }

    /// Per node, so dashboards of several local nodes (ports share cookies) do not log each other out.
    public let cookieName: String
    public let idleSeconds: Double
    public let maxAgeSeconds: Double
    public let maxSessions: Int
    public let linkSeconds: Double
    private let state = PlainMutex(State())
    private let now: @Sendable () -> Double

    public init(cookieName: String, idleSeconds: Double = 12 * 3600, maxAgeSeconds: Double = 7 * 24 * 3600,
                maxSessions: Int = 100, linkSeconds: Double = 300,
                now: @escaping @Sendable () -> Double = { Clock.monotonicSeconds() }) {
        self.cookieName = cookieName
        self.idleSeconds = idleSeconds
        self.maxAgeSeconds = maxAgeSeconds
        self.maxSessions = maxSessions
        self.linkSeconds = linkSeconds
        self.now = now
    }

    private static func digest(_ token: String) -> String { Hex.encode(SHA256.hash(data: Array(token.utf8))) }

    /// A new session: the cookie value (secret) and its CSRF token.
    public func create(binding: String) -> (token: String, session: Session) {
        let token = Secrets.apiKey()
        let time = now()
        let session = Session(csrfToken: Secrets.apiKey(), binding: binding, created: time, lastUsed: time)
        state.withLock { state in
            prune(&state, at: time)
            if state.sessions.count >= maxSessions,
               let oldest = state.sessions.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key {
                state.sessions[oldest] = nil
            }
            state.sessions[Self.digest(token)] = session
        }
        return (token, session)
    }

    /// The live session a Cookie header names, refreshed; nil when none is valid. A session of
    /// an older key ends here.
    func session(cookieHeader: String?, binding: String) -> Session? {
        let candidates = Self.cookieValues(named: cookieName, in: cookieHeader)
        guard !candidates.isEmpty else { return nil }
        let time = now()
        return state.withLock { state -> Session? in
            prune(&state, at: time)
            for token in candidates {
                let key = Self.digest(token)
                guard var session = state.sessions[key] else { continue }
                guard Secrets.equal(session.binding, binding) else {
                    state.sessions[key] = nil
                    continue
                }
                session.lastUsed = time
                state.sessions[key] = session
                return session
            }
            return nil
        }
    }

    /// True while a session the Cookie header names is live for `binding`. Unlike `session`, it
    /// does not count as use: an open live view does not keep an idle session alive.
    public func isLive(cookieHeader: String?, binding: String) -> Bool {
        let keys = Self.cookieValues(named: cookieName, in: cookieHeader).map(Self.digest)
        guard !keys.isEmpty else { return false }
        let time = now()
        return state.withLock { state in
            prune(&state, at: time)
            return keys.contains { key in state.sessions[key].map { Secrets.equal($0.binding, binding) } ?? false }
        }
    }

    /// Ends the session a Cookie header names.
    public func end(cookieHeader: String?) {
        let keys = Self.cookieValues(named: cookieName, in: cookieHeader).map(Self.digest)
        state.withLock { state in for key in keys { state.sessions[key] = nil } }
    }

    public var count: Int { state.withLock { $0.sessions.count } }

    /// A one-time login token, bound like a session to the key current now (`binding`, its
    /// hash): minted with a key that leaked, it must not outlive that key's rotation.
    public func makeLink(binding: String) -> String {
        let token = Secrets.apiKey()
        let time = now()
        state.withLock { state in
            prune(&state, at: time)
            if state.links.count >= 16, let oldest = state.links.min(by: { $0.value.made < $1.value.made })?.key {
                state.links[oldest] = nil
            }
            state.links[Self.digest(token)] = (time, binding)
        }
        return token
    }

    /// True once for a live link token made under the key `binding` names; the token is spent
    /// either way, and a key changed since it was made refuses it (and every other link of the
    /// old key).
    public func redeem(_ token: String, binding: String) -> Bool {
        let time = now()
        return state.withLock { state in
            prune(&state, at: time)
            state.links = state.links.filter { Secrets.equal($0.value.binding, binding) }
            return state.links.removeValue(forKey: Self.digest(token)) != nil
        }
    }

    private func prune(_ state: inout State, at time: Double) {
        state.sessions = state.sessions.filter {
            time - $0.value.lastUsed < idleSeconds && time - $0.value.created < maxAgeSeconds
        }
        state.links = state.links.filter { time - $0.value.made < linkSeconds }
    }

    // MARK: Requests

    /// Checks a request that carries no Authorization header: the session cookie and, whatever
    /// the method, its CSRF token. Fetch metadata, when the browser sends it, must say
    /// same-origin (the Origin check covers the rest). `binding`: the current key's hash. nil:
    /// no session cookie at all.
    public func authenticate(cookie: String?, csrfToken: String?, fetchSite: String?, binding: String)
        -> Result<Session, APIError>? {
        guard !Self.cookieValues(named: cookieName, in: cookie).isEmpty else { return nil }
        if let fetchSite, fetchSite != "same-origin", fetchSite != "none" {
            return .failure(.forbidden("cross-site requests are refused", code: .crossSite))
        }
        guard let session = session(cookieHeader: cookie, binding: binding) else {
            return .failure(.unauthorized("the dashboard session expired or was ended; log in again"))
        }
        guard let csrfToken, Secrets.equal(csrfToken, session.csrfToken) else {
            return .failure(.forbidden("missing or wrong X-CSRF-Token; log in to the dashboard again",
                                       code: .csrfFailed))
        }
        return .success(session)
    }

    /// Set-Cookie for a new session. Secure when the page came over HTTPS.
    public func setCookie(_ token: String, secure: Bool) -> String {
        "\(cookieName)=\(token); Path=/; HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "")
    }

    public func clearCookie(secure: Bool) -> String {
        "\(cookieName)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0" + (secure ? "; Secure" : "")
    }

    /// Every value of cookie `name` in a Cookie header (a browser may send several).
    static func cookieValues(named name: String, in header: String?) -> [String] {
        guard let header else { return [] }
        var values: [String] = []
        for pair in header.split(separator: ";") {
            let trimmed = pair.trimming()
            guard let equals = trimmed.firstIndex(of: "=") else { continue }
            if trimmed[..<equals] == name {
                let value = String(trimmed[trimmed.index(after: equals)...])
                if !value.isEmpty && value.utf8.count <= 128 { values.append(value) }
            }
        }
        return values
    }
}
