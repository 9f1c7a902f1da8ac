import LoopsyAPI
import LoopsyCore
import LoopsyPeers
import LoopsyConfig
import LoopsyHTTP
import Crypto
import LoopsyPOSIX
import LoopsyStore

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
        /// What a peer or key never given grants may do (peers.defaultGrants).
        var defaultGrants: Set<Capability>
    }
    private struct State {
        var keys: Keys
        var stamp: FileStamp?
        var checkedAt: Double
    }

    private let configPath: String?
    private let logger: Logger
    private let state: PlainMutex<State>
    /// The peer whose credential hashes to the given hex SHA-256, if any, with its grants.
    private let peerForKeyHash: @Sendable (String) -> AcceptedPeer?
    /// An extra key's explicit grants, by name.
    private let keyGrants: @Sendable (String) -> KeyGrantStore.Entry?
    /// Dashboard sessions; nil where there is no dashboard.
    public let sessions: DashboardSessions?

    public init(auth: LoopsyConfig.Auth, defaultGrants: Set<Capability> = LoopsyConfig().peers.defaultGrants,
                configPath: String?, logger: Logger, sessions: DashboardSessions? = nil,
                peerForKeyHash: @escaping @Sendable (String) -> AcceptedPeer? = { _ in nil },
                keyGrants: @escaping @Sendable (String) -> KeyGrantStore.Entry? = { _ in nil }) {
        self.configPath = configPath
        self.sessions = sessions
        self.logger = logger
        self.peerForKeyHash = peerForKeyHash
        self.keyGrants = keyGrants
        state = PlainMutex(State(keys: Self.keys(from: auth, defaultGrants: defaultGrants),
                            stamp: configPath.flatMap { FileStamp(path: $0) }, checkedAt: Clock.monotonicSeconds()))
    }

    private static func keys(from auth: LoopsyConfig.Auth, defaultGrants: Set<Capability>) -> Keys {
        Keys(apiKey: auth.apiKey, allowed: auth.allowedKeys.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
             binding: Secrets.keyHash(auth.apiKey), defaultGrants: defaultGrants)
    }

    /// peers.defaultGrants as config.yaml says now.
    public var defaultGrants: Set<Capability> { currentKeys().defaultGrants }

    /// The names of the extra keys config.yaml holds now.
    public var extraKeyNames: [String] { currentKeys().allowed.map(\.name) }

    /// The caller of a request: its Authorization header if it has one, else its dashboard
    /// session cookie (CSRF-checked), else the 401 that says how to authenticate.
    public func authenticate(_ request: HTTPRequest) -> Result<Caller, APIError> {
        // Names already lower-cased: looked up as they are (this runs for every request).
        let authorization = request.headers["authorization"]
        if authorization == nil, let sessions,
           let result = sessions.authenticate(cookie: request.header("cookie"),
                                              csrfToken: request.header("x-csrf-token"),
                                              fetchSite: request.header("sec-fetch-site"),
                                              binding: sessionBinding) {
            return result.map { _ in .dashboard }
        }
        return authenticate(authorization: authorization, nodeId: request.headers["x-loopsy-node-id"])
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
    /// X-Loopsy-Node-Id header claims: a peer credential is refused for any other node, and for
    /// credentials not bound to a node it is only recorded as a claim.
    public func authenticate(authorization: String?, nodeId: String? = nil) -> Result<Caller, APIError> {
        guard let authorization, !authorization.isEmpty else {
            return .failure(.unauthorized("missing credentials: send 'Authorization: Bearer <api key>' "
                + "(the key is in config.yaml; `loopsy key show` prints it)"))
        }
        // The token is compared where it lies in the header: a key is longer than a small
        // string's 15 bytes, so taking it out as a String was an allocation per request.
        enum Found { case notBearer, short, caller(Caller), unknown(token: String, Keys) }
        var header = authorization
        let found = header.withUTF8 { bytes -> Found in
            guard let range = Self.bearerRange(bytes) else { return .notBearer }
            let token = UnsafeBufferPointer(rebasing: bytes[range])
            guard token.count >= 16 else { return .short }
            let keys = currentKeys()
            // Compare against every key so timing does not say which matched.
            var caller: Caller?
            if Secrets.equal(token, keys.apiKey) { caller = .local }
            // An extra key shorter than 16 characters is never accepted (an empty one would match anything empty).
            for (name, key) in keys.allowed where key.utf8.count >= 16 && Secrets.equal(token, key) && caller == nil {
                let entry = keyGrants(name)
                caller = .key(name, grants: entry?.grants ?? keys.defaultGrants, transferPaths: entry?.transferPaths)
            }
            return caller.map(Found.caller) ?? .unknown(token: String(decoding: token, as: UTF8.self), keys)
        }
        switch found {
        case .notBearer:
            return .failure(.unauthorized("the Authorization header must be 'Bearer <api key>'"))
        case .short:
            return .failure(.forbidden("invalid API key", code: .invalidCredentials))
        case .unknown(let token, let keys):
            // Peer credentials are 256-bit random keys looked up by hash: the lookup leaks nothing
            // an attacker could use to guess one.
            guard let peer = peerForKeyHash(Secrets.keyHash(token)) else {
                return .failure(.forbidden("invalid API key", code: .invalidCredentials))
            }
            if let nodeId, nodeId != peer.nodeId {
                return .failure(.forbidden("this credential belongs to another node", code: .credentialNodeMismatch))
            }
            return .success(.peer(peer.nodeId, grants: peer.grants ?? keys.defaultGrants,
                                  transferPaths: peer.transferPaths))
        case .caller(var caller):
            // The owner's key and extra keys are bound to no node: a node id they send identifies
            // nothing (no rate limit, audit name or context author follows it); it is kept as a claim.
            if let nodeId, nodeId.utf8.count == 32,
               nodeId.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) {
                caller.claimedNode = nodeId
            }
            return .success(caller)
        }
    }

    private static let bearerScheme: [UInt8] = Array("bearer ".utf8)

    /// Where the credential of an `Authorization: Bearer <token>` header is in its bytes
    /// ("Bearer" in any case, ASCII folding only), without the spaces, tabs and line breaks
    /// around it; nil for another scheme. Byte-wise: it runs on every request.
    static func bearerRange(_ bytes: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
        let scheme = Self.bearerScheme
        guard bytes.count >= scheme.count else { return nil }
        for index in scheme.indices {
            let byte = bytes[index]
            guard (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte) == scheme[index] else {
                return nil
            }
        }
        let isSpace = { (byte: UInt8) in byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A }
        var start = scheme.count
        var end = bytes.count
        while start < end && isSpace(bytes[start]) { start += 1 }
        while end > start && isSpace(bytes[end - 1]) { end -= 1 }
        return start..<end
    }

    private func currentKeys() -> Keys {
        let now = Clock.monotonicSeconds()
        return state.withLock { state in
            guard let configPath, now - state.checkedAt >= 0.5 else { return state.keys }
            state.checkedAt = now
            let stamp = FileStamp(path: configPath)
            guard let stamp, stamp != state.stamp else { return state.keys }
            state.stamp = stamp
            do {
                let (config, _) = try ConfigParser.parse(try SecureFile.read(configPath))
                if config.auth.apiKey.count >= 32 {
                    state.keys = Self.keys(from: config.auth, defaultGrants: config.peers.defaultGrants)
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

