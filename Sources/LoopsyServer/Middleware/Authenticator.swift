import LoopsyAPI
import LoopsyConfig
import LoopsyHTTP
import Crypto
import LoopsyStore
import Synchronization

/// Who made a request, as far as auth can tell.
public struct Caller: Sendable, Equatable {
    /// "local" for the node's own key, "key:<name>" for an `auth.allowedKeys` entry,
    /// "peer:<nodeId>" for a peer's own credential, "anonymous@<address>" for open routes called
    /// without one. A call relayed by another node adds " via <nodeId>" (as that node claims).
    public var id: String
    /// Set when the credential is a peer's: the only node it is valid for.
    public var peerNodeId: String?
    /// The node that relayed the call, as it says (X-Loopsy-Node-Id with one of our own keys).
    public var viaNodeId: String?

    public init(id: String, peerNodeId: String? = nil, viaNodeId: String? = nil) {
        self.id = id
        self.peerNodeId = peerNodeId
        self.viaNodeId = viaNodeId
    }

    public static let local = Caller(id: "local")
    /// The node's owner through a dashboard session.
    public static let dashboard = Caller(id: "local (dashboard)")
    public static func anonymous(_ address: String) -> Caller { Caller(id: "anonymous@\(address)") }
    public static func peer(_ nodeId: String) -> Caller { Caller(id: "peer:\(nodeId)", peerNodeId: nodeId) }

    /// May this caller act as the node itself (forward to peers, manage peers, read its inbox)?
    /// Only the node's own key: `auth.allowedKeys` entries are for other machines, like peers.
    public var isOwner: Bool {
        peerNodeId == nil && (id == "local" || id.hasPrefix("local via ") || id == "local (dashboard)")
    }
}

/// Checks Bearer credentials against the node key and `auth.allowedKeys`, and dashboard
/// session cookies (with their CSRF token) against `sessions`.
///
/// Keys come from config.yaml and are re-read when the file changes (checked at most twice a
/// second), so `loopsy key generate` takes effect without a restart.
public final class Authenticator: Sendable {
    private struct Keys {
        var apiKey: String
        var allowed: [(name: String, key: String)]
        /// What dashboard sessions are bound to: the node key's hash.
        var binding: String
    }
    private struct State {
        var keys: Keys
        var stamp: (Int64, UInt64)?
        var checkedAt: Double
    }

    private let configPath: String?
    private let logger: Logger
    private let state: Mutex<State>
    /// The peer whose credential hashes to the given hex SHA-256, if any.
    private let peerForKeyHash: @Sendable (String) -> String?
    /// Dashboard sessions; nil where there is no dashboard.
    public let sessions: DashboardSessions?

    public init(auth: LoopsyConfig.Auth, configPath: String?, logger: Logger, sessions: DashboardSessions? = nil,
                peerForKeyHash: @escaping @Sendable (String) -> String? = { _ in nil }) {
        self.configPath = configPath
        self.sessions = sessions
        self.logger = logger
        self.peerForKeyHash = peerForKeyHash
        state = Mutex(State(keys: Self.keys(from: auth), stamp: configPath.flatMap(SecureFile.changeStamp),
                            checkedAt: Clock.monotonicSeconds()))
    }

    private static func keys(from auth: LoopsyConfig.Auth) -> Keys {
        Keys(apiKey: auth.apiKey, allowed: auth.allowedKeys.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
             binding: keyHash(auth.apiKey))
    }

    /// The hex SHA-256 under which peer credentials are stored.
    public static func keyHash(_ key: String) -> String {
        Hex.encode(SHA256.hash(data: Array(key.utf8)))
    }

    /// The caller of a request: its Authorization header if it has one, else its dashboard
    /// session cookie (CSRF-checked), else the 401 that says how to authenticate.
    public func authenticate(_ request: HTTPRequest) -> Result<Caller, APIError> {
        let authorization = request.header("authorization")
        if authorization == nil, let sessions,
           let result = sessions.authenticate(cookie: request.header("cookie"),
                                              csrfToken: request.header("x-csrf-token"),
                                              fetchSite: request.header("sec-fetch-site"),
                                              binding: sessionBinding) {
            return result.map { _ in .dashboard }
        }
        return authenticate(authorization: authorization, nodeId: request.header("x-loopsy-node-id"))
    }

    /// Whether the credential that opened a long-lived answer (an event stream) still holds:
    /// its dashboard session is live, or its key is still accepted for the same caller. Checked
    /// while the answer lasts, so logging out or a new key ends it.
    public func stillValid(_ request: HTTPRequest, as caller: Caller) -> @Sendable () -> Bool {
        let authorization = request.header("authorization")
        let nodeId = request.header("x-loopsy-node-id")
        if authorization == nil, let sessions {
            let cookie = request.header("cookie")
            return { [self] in sessions.isLive(cookieHeader: cookie, binding: sessionBinding) }
        }
        return { [self] in (try? authenticate(authorization: authorization, nodeId: nodeId).get()) == caller }
    }

    /// What dashboard sessions are bound to: the current node key's hash (a new key ends them).
    public var sessionBinding: String { currentKeys().binding }

    /// True for the node's own key (not an allowedKeys entry or a peer's).
    public func isOwnerKey(_ key: String) -> Bool { Secrets.equal(key, currentKeys().apiKey) }

    /// The caller for an Authorization header, or the 401/403 to answer. `nodeId` is what the
    /// X-Loopsy-Node-Id header claims: a peer credential is refused for any other node.
    public func authenticate(authorization: String?, nodeId: String? = nil) -> Result<Caller, APIError> {
        guard let authorization, !authorization.isEmpty else {
            return .failure(.unauthorized("missing credentials: send 'Authorization: Bearer <api key>' "
                + "(the key is in config.yaml; `loopsy key show` prints it)"))
        }
        let scheme = authorization.utf8.prefix(7)
        guard scheme.count == 7, String(decoding: scheme, as: UTF8.self).lowercased() == "bearer " else {
            return .failure(.unauthorized("the Authorization header must be 'Bearer <api key>'"))
        }
        let token = authorization.dropFirst(7).trimming()
        let keys = currentKeys()
        // Compare against every key so timing does not say which matched.
        var caller: Caller?
        if Secrets.equal(token, keys.apiKey) { caller = .local }
        for (name, key) in keys.allowed where Secrets.equal(token, key) && caller == nil {
            caller = Caller(id: "key:\(name)")
        }
        // Peer credentials are 256-bit random keys looked up by hash: the lookup leaks nothing
        // an attacker could use to guess one.
        if caller == nil, let peer = peerForKeyHash(Self.keyHash(String(token))) {
            if let nodeId, nodeId != peer {
                return .failure(.forbidden("this credential belongs to another node", code: "credential_node_mismatch"))
            }
            return .success(.peer(peer))
        }
        guard var caller else { return .failure(.forbidden("invalid API key", code: "invalid_credentials")) }
        if let nodeId, nodeId.utf8.count == 32, nodeId.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) {
            caller.id += " via \(nodeId)"
            caller.viaNodeId = nodeId
        }
        return .success(caller)
    }

    private func currentKeys() -> Keys {
        let now = Clock.monotonicSeconds()
        return state.withLock { state in
            guard let configPath, now - state.checkedAt >= 0.5 else { return state.keys }
            state.checkedAt = now
            let stamp = SecureFile.changeStamp(configPath)
            guard let stamp, stamp != state.stamp ?? (0, 0) else { return state.keys }
            state.stamp = stamp
            do {
                let (config, _) = try ConfigParser.parse(try SecureFile.read(configPath))
                if config.auth.apiKey.count >= 32 {
                    state.keys = Self.keys(from: config.auth)
                    logger.info("auth keys reloaded from \(configPath)")
                } else {
                    logger.warn("config changed but auth.apiKey is missing or short; keeping the previous keys")
                }
            } catch {
                logger.warn("config changed but cannot be read (\(error)); keeping the previous keys")
            }
            return state.keys
        }
    }
}

