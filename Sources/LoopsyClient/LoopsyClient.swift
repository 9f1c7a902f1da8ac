import FoundationEssentials
import LoopsyAPI
import LoopsyConfig

/// What went wrong talking to a daemon, phrased for the person at the terminal.
public enum ClientError: Error, CustomStringConvertible {
    case daemonUnreachable(String)
    /// The port this data dir's daemon would use answers, but as another node (its own daemon is
    /// not running and another one holds the port).
    case otherNode(dataDir: String, address: String, nodeId: String)
    /// A transport failure other than "nothing listens" (timeouts, TLS, pin mismatch).
    case network(CurlHTTPClient.Failure)
    case api(APIError)
    case transport(String)
    case badResponse(String)
    case setup(String)
    /// A problem with a local file (reading, writing, verifying).
    case local(String)

    public var description: String {
        switch self {
        case .daemonUnreachable(let address):
            return "loopsyd is not running at \(address) — start it with `loopsy start`"
        case .otherNode(let dataDir, let address, let nodeId):
            return "loopsyd for \(dataDir) is not running; \(address) is held by another loopsy node (\(nodeId)) — "
                + "start this one with `loopsy start` (it picks server.port from \(dataDir)/config.yaml)"
        case .network(let failure): return failure.description
        case .api(let error): return error.message
        case .transport(let message): return message
        case .badResponse(let message): return "unexpected answer from loopsyd: \(message)"
        case .setup(let message), .local(let message): return message
        }
    }
}

extension ClientError {
    /// A transport failure of `baseURL` as the client reports it: nothing listening is
    /// `daemonUnreachable`, another curl failure `network`, anything else `transport`.
    public static func from(_ error: any Error, baseURL: String) -> ClientError {
        switch error {
        case let error as ClientError: return error
        case CurlHTTPClient.Failure.couldNotConnect: return .daemonUnreachable(baseURL)
        case let failure as CurlHTTPClient.Failure: return .network(failure)
        default: return .transport("\(error)")
        }
    }

    /// An error as a person reads it.
    public static func describe(_ error: any Error) -> String {
        (error as? ClientError)?.description ?? "\(error)"
    }
}

/// A typed client of one daemon's REST API.
public struct LoopsyClient: Sendable {
    public var baseURL: String
    private let apiKey: String?
    var http: CurlHTTPClient
    /// Sent with every request (a daemon calling a peer says who it is).
    var extraHeaders: [String: String]
    /// Set by `throughPeer`: API paths go to the local daemon's forwarding prefix.
    private var peerPrefix: String?
    /// For a local client: the data dir whose node should answer (checked when a key is refused).
    private var dataDir: DataDir?

    /// `maxAnswerBytes`: the longest answer kept (longer ones fail the call). Calls without a
    /// credential (health checks, identity probes, pairing) go to hosts not yet trusted, some
    /// only announced over mDNS, and their answers are small: without a credential it is 1 MiB
    /// unless given (a host answering with gigabytes once took loopsyd to 4 GB of memory).
    public init(baseURL: String, apiKey: String?, timeoutSeconds: Int = 30, pinnedPublicKey: String? = nil,
                headers: [String: String] = [:], maxAnswerBytes: Int? = nil) {
        self.baseURL = baseURL
        self.apiKey = apiKey
        extraHeaders = headers
        var http = CurlHTTPClient(timeoutSeconds: timeoutSeconds, pinnedPublicKey: pinnedPublicKey)
        if let maxAnswerBytes {
            http.maxResponseBytes = maxAnswerBytes
        } else if apiKey == nil {
            http.maxResponseBytes = 1 << 20
        }
        self.http = http
    }

    /// The client of this machine's daemon for `dataDir`: its key from config.yaml and its port
    /// from daemon.port (written at start) or config.
    public static func local(_ dataDir: DataDir, timeoutSeconds: Int = 30) throws -> LoopsyClient {
        let config: LoopsyConfig
        do {
            config = try ConfigFile.load(dataDir).config
        } catch {
            throw ClientError.setup("\(error)")
        }
        var client = LoopsyClient(baseURL: "http://127.0.0.1:\(localPort(dataDir, config: config))",
                                  apiKey: config.auth.apiKey, timeoutSeconds: timeoutSeconds)
        client.dataDir = dataDir
        // Requests and event streams to it skip libcurl (see LoopbackHTTP); transfers use it.
        client.http.usesLoopbackClient = true
        return client
    }

    public static func localPort(_ dataDir: DataDir, config: LoopsyConfig) -> Int {
        if let text = try? SecureFile.read(dataDir.portFile),
           let port = Int(text.trimming()), port > 0 {
            return port
        }
        return config.server.port
    }


    /// The same daemon, but every API call is relayed to `peer` (a name, nodeId, nodeId prefix
    /// or address the daemon knows). The local daemon holds the peer's credential and pin.
    public func throughPeer(_ peer: String) -> LoopsyClient {
        var client = self
        client.peerPrefix = API.peerForward(peer, "")
        return client
    }

    /// This client for `peer`: itself for nil, "local" or "self" (this machine), else
    /// `throughPeer(peer)`. How both the CLI's `--peer` and the MCP tools' `peer` read.
    public func targeting(_ peer: String?) -> LoopsyClient {
        guard let peer, !["local", "self"].contains(peer) else { return self }
        return throughPeer(peer)
    }

    /// The URL for an API path (`API.…`), through the peer prefix when there is one.
    func url(_ path: String) -> String {
        let base = LoopsyVersion.apiBase + "/"
        guard let peerPrefix, path.hasPrefix(base) else { return baseURL + path }
        return baseURL + peerPrefix + path.dropFirst(base.count)
    }

    // MARK: Raw requests

    /// Every request's headers: the client's own, the key, what it accepts and sends.
    func headers(accept: String, contentType: String?) -> [String: String] {
        var headers = extraHeaders
        headers["Accept"] = accept
        if let apiKey { headers["Authorization"] = "Bearer \(apiKey)" }
        if let contentType { headers["Content-Type"] = contentType }
        return headers
    }

    public func request(_ method: String, _ path: String, body: [UInt8]? = nil) throws -> CurlHTTPClient.Response {
        let headers = headers(accept: "application/json", contentType: body == nil ? nil : "application/json")
        let response: CurlHTTPClient.Response
        do {
            response = try http.send(method: method, url: url(path), headers: headers, body: body)
        } catch {
            throw ClientError.from(error, baseURL: baseURL)
        }
        try checkStatus(response, method: method, path: path)
        return response
    }

    /// Turns a non-2xx response into the API error its body describes.
    func checkStatus(_ response: CurlHTTPClient.Response, method: String, path: String) throws {
        guard (200..<300).contains(response.status) else {
            if response.status == 401 || response.status == 403, let other = otherNodeAnswering() { throw other }
            if let decoded = try? SafeJSON.decode(ErrorBody.self, from: Data(response.body)) {
                var headers: [String: String] = [:]
                if let retry = response.headers["retry-after"] { headers["Retry-After"] = retry }
                throw ClientError.api(APIError(status: response.status, code: decoded.error.code,
                                               message: decoded.error.message, headers: headers))
            }
            throw ClientError.badResponse("HTTP \(response.status) from \(method) \(path)")
        }
    }

    /// When our key is refused, is that because another node holds the port (this data dir's
    /// daemon stopped and another's runs on the same port)? Only asked after a refusal.
    private func otherNodeAnswering() -> ClientError? {
        guard let dataDir, let ours = try? NodeIdentity.load(from: dataDir.identityKeyFile).nodeId,
              let response = try? http.send(method: "GET", url: baseURL + API.health(), headers: [:], body: nil),
              response.status == 200, let health = try? SafeJSON.decode(HealthResponse.self, from: Data(response.body)),
              health.nodeId != ours else { return nil }
        let port = baseURL.split(separator: ":").last.map(String.init) ?? baseURL
        return .otherNode(dataDir: dataDir.root, address: "port \(port)", nodeId: health.nodeId)
    }

    public func call<T: Decodable>(_ method: String, _ path: String, as type: T.Type) throws -> T {
        try decode(type, try request(method, path))
    }

    public func call<T: Decodable, B: Encodable>(_ method: String, _ path: String, body: B, as type: T.Type) throws -> T {
        try decode(type, try request(method, path, body: Array(try JSONEncoder().encode(body))))
    }

    private func decode<T: Decodable>(_ type: T.Type, _ response: CurlHTTPClient.Response) throws -> T {
        do {
            return try SafeJSON.decode(type, from: Data(response.body))
        } catch {
            throw ClientError.badResponse("\(T.self) could not be decoded (\(error))")
        }
    }

    // MARK: Endpoints

    public func health() throws -> HealthResponse { try call("GET", API.health(), as: HealthResponse.self) }
    public func status() throws -> StatusResponse { try call("GET", API.status(), as: StatusResponse.self) }
    public func identity() throws -> IdentityResponse { try call("GET", API.identity(), as: IdentityResponse.self) }

    public func audit(limit: Int, after: Int64 = 0) throws -> [AuditEntry] {
        try call("GET", API.audit(query: ["limit": limit, "after": after]), as: AuditListResponse.self).entries
    }

    /// With `ifRevision`, a compare-and-set (0: only if absent); a mismatch is a 412
    /// `revision_mismatch` API error.
    public func contextSet(_ key: String, value: String, ttl: Int?, ifRevision: Int64? = nil) throws -> ContextEntry {
        try call("PUT", API.contextEntry(key),
                 body: ContextPutRequest(value: value, ttl: ttl, ifRevision: ifRevision), as: ContextEntry.self)
    }

    public func contextGet(_ key: String) throws -> ContextEntry {
        try call("GET", API.contextEntry(key), as: ContextEntry.self)
    }

    public func contextDelete(_ key: String, ifRevision: Int64? = nil) throws {
        _ = try call("DELETE", API.contextEntry(key, query: ["ifRevision": ifRevision]), as: DeletedResponse.self)
    }

    /// Whether a page that ends at `next` moved past `previous` (byte-wise, as the daemon pages:
    /// two different keys can be equal as Strings). A page that does not, or an empty one, ends
    /// a listing: a broken or hostile daemon could otherwise keep a client asking forever.
    static func movesOn(from previous: String?, to next: String) -> Bool {
        previous.map { $0.utf8.lexicographicallyPrecedes(next.utf8) } ?? true
    }

    /// The first `limit` items of a listing the daemon answers a page at a time: `fetch(after,
    /// wanted)` reads the page past cursor `after` (nil: the first), of at most `wanted` items,
    /// and gives its items, whether more remain and the cursor of its last item. Stops at an
    /// empty page or one that does not move on (`movesOn`).
    static func allPages<Item>(limit: Int = .max,
                               _ fetch: (_ after: String?, _ wanted: Int) throws -> (items: [Item], more: Bool, next: String?))
        rethrows -> [Item] {
        var items: [Item] = []
        var after: String?
        while items.count < limit {
            let page = try fetch(after, limit - items.count)
            items += page.items.prefix(limit - items.count)
            guard page.more, !page.items.isEmpty, let next = page.next, movesOn(from: after, to: next) else { break }
            after = next
        }
        return items
    }

    /// Live entries (keys starting with `prefix`), in key order: the first `limit` of them (the
    /// daemon's own default), read a page at a time (a daemon caps a page at about 4 MiB).
    public func contextList(prefix: String?, limit: Int = 1000) throws -> [ContextEntry] {
        try Self.allPages(limit: limit) { afterKey, wanted in
            let page = try call("GET", API.context(query: ["prefix": prefix, "afterKey": afterKey, "limit": String(wanted)]),
                                as: ContextListResponse.self)
            return (page.entries, page.more, page.nextAfterKey ?? page.entries.last?.key)
        }
    }
}
