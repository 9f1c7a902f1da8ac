import Crypto
import FoundationEssentials
import LoopsyAPI
import LoopsyPOSIX
import LoopsyClient
import LoopsyConfig
import LoopsyStore
import Synchronization

/// This node as peers see it: what /identity says and what handshakes carry.
public struct LocalNodeInfo: Sendable {
    public var identity: NodeIdentity
    public var hostname: String
    /// Whether peers reach us over HTTPS.
    public var tls: Bool
    /// The address we tell peers to call, when server.host names one; otherwise they use the
    /// address our request came from.
    public var advertisedAddress: String
    public let portCell: PortCell

    public init(identity: NodeIdentity, hostname: String, tls: Bool, advertisedAddress: String, portCell: PortCell) {
        self.identity = identity
        self.hostname = hostname
        self.tls = tls
        self.advertisedAddress = advertisedAddress
        self.portCell = portCell
    }

    public var port: Int { portCell.value }
    public var publicKeyBase64: String { Data(identity.privateKey.publicKey.x963Representation).base64EncodedString() }
    public var fingerprint: String { TLSCertificate.fingerprint(of: identity.privateKey.publicKey) }

    public func identityResponse() -> IdentityResponse {
        IdentityResponse(nodeId: identity.nodeId, hostname: hostname, platform: "linux", version: LoopsyVersion.current,
                         port: port, capabilities: LoopsyVersion.capabilities, publicKey: publicKeyBase64,
                         fingerprint: fingerprint, tls: tls)
    }
}

/// The port the server bound, readable from any thread.
public final class PortCell: Sendable {
    private let storage = Atomic<Int>(0)
    public init() {}
    public var value: Int {
        get { storage.load(ordering: .relaxed) }
        set { storage.store(newValue, ordering: .relaxed) }
    }
}

/// Knows the peers and how to call them: probing and adding, handshakes, resolving a name to a
/// peer, and building clients that present the peer's credential and pin its TLS key.
public final class PeerService: Sendable {
    public let store: PeerStore
    public let local: LocalNodeInfo
    private let pinnedCerts: [String: String]
    /// Checks of addresses peers claim in handshakes, off the HTTP workers.
    private let handshakeProbes = WorkPool(name: "handshake-probe", threads: 2, queueLimit: 16)
    private let auditStore: AuditStore
    private let logger: Logger

    public init(store: PeerStore, local: LocalNodeInfo, pinnedCerts: [String: String], auditStore: AuditStore, logger: Logger) {
        self.store = store
        self.local = local
        self.pinnedCerts = pinnedCerts
        self.auditStore = auditStore
        self.logger = logger
    }

    // MARK: Calling a peer

    /// Where and how we call a peer: HTTPS with its key pinned when we know the key, plain HTTP
    /// only for peers that do not serve TLS.
    public struct Endpoint: Sendable {
        public var baseURL: String
        public var pin: String?
        public var fingerprint: String?
        public var apiKey: String?
    }

    public func endpoint(for record: PeerRecord) throws -> Endpoint {
        let info = record.info
        let configured = pinnedCerts[info.nodeId] ?? pinnedCerts[info.name]
        let fingerprint = configured ?? info.fingerprint
        let tls = info.tls || configured != nil
        let host = info.address.contains(":") ? "[\(info.address)]" : info.address
        let pin = tls ? fingerprint.flatMap(TLSCertificate.curlPin) : nil
        // Never fall back to an unpinned call for a peer whose key we know.
        if tls, fingerprint != nil, pin == nil {
            throw APIError.badGateway("the pinned fingerprint for \(info.name) is not 64 hex digits; fix "
                + "tls.pinnedCerts", code: .peerPinInvalid)
        }
        return Endpoint(baseURL: "\(tls ? "https" : "http")://\(host):\(info.port)", pin: pin, fingerprint: fingerprint,
                        apiKey: record.apiKey)
    }

    /// The longest answer the daemon keeps from a peer's API on its own calls (deliveries,
    /// receipts, context broadcasts, handshakes, health: all answered in under a kilobyte). A
    /// paired peer answering each call with 500 MiB held the daemon at a gigabyte on every
    /// retry. What a person asks a peer for goes through the relay, which streams.
    public static let maxAnswerBytes = 1 << 20

    /// A client for the peer's API, carrying our nodeId so its audit log says who called.
    /// `authenticated: false` leaves the credential out (health checks need none).
    /// `maxAnswerBytes`: more than `PeerService.maxAnswerBytes` only for a call whose answer
    /// repeats what it sent (a context write answers with the entry, value included).
    public func client(for record: PeerRecord, timeoutSeconds: Int = 30, authenticated: Bool = true,
                       maxAnswerBytes: Int = PeerService.maxAnswerBytes) throws -> LoopsyClient {
        let endpoint = try endpoint(for: record)
        return LoopsyClient(baseURL: endpoint.baseURL, apiKey: authenticated ? endpoint.apiKey : nil,
                            timeoutSeconds: timeoutSeconds, pinnedPublicKey: endpoint.pin,
                            headers: ["X-Loopsy-Node-Id": local.identity.nodeId], maxAnswerBytes: maxAnswerBytes)
    }

    /// Logs and audits a peer presenting a TLS key other than the pinned one.
    func reportPinMismatch(_ record: PeerRecord, context: String) {
        logger.error("peer \(record.info.name) (\(record.nodeId)) at \(record.info.address):\(record.info.port) "
            + "presented a TLS key that does not match its pinned fingerprint \(record.info.fingerprint ?? "?") "
            + "during \(context); refusing to talk to it. If it was re-installed, remove and re-add it.")
        try? auditStore.append([AuditEntry(
            id: 0, time: Clock.nowMillis(), requestId: "-", caller: "peer:\(record.nodeId)", method: "TLS",
            path: "pin-mismatch \(context)", status: 495, durationMs: 0,
            remote: "\(record.info.address):\(record.info.port)")])
    }

    /// The APIError for a failed call to a peer.
    public func apiError(_ error: any Error, calling record: PeerRecord, context: String) -> APIError {
        let name = "\(record.info.name) (\(record.info.address):\(record.info.port))"
        switch error {
        case ClientError.network(.pinMismatch):
            reportPinMismatch(record, context: context)
            return .badGateway("peer \(name) presented a TLS key that does not match its pinned fingerprint; "
                + "the call was refused. Check the peer, then `loopsy peers remove` and add it again if it was "
                + "re-installed", code: .peerPinMismatch)
        case ClientError.daemonUnreachable:
            return .badGateway("peer \(name) is not answering; `loopsy peers` shows its status")
        case ClientError.api(let apiError):
            return apiError
        default:
            return .badGateway("calling peer \(name) failed: \(error)")
        }
    }

    // MARK: Resolving names

    /// Whether a reference that names a peer called `name` would, as `resolve` reads it, also
    /// name the peer with `otherName`, `nodeId` and `address`: a name matches a reference case
    /// aside and with or without ".local" ("Alice" and "alice.local" clash with "alice"), a
    /// nodeId by a prefix of 6 or more, an address exactly. Compared exactly, a handshake named
    /// "Alice", or the start of alice's nodeId, kept that name, and the reference named two peers.
    static func nameClashes(_ name: String, withName otherName: String, nodeId: String, address: String) -> Bool {
        let lowered = name.lowercased(), other = otherName.lowercased()
        if lowered == other || lowered == other + ".local" || other == lowered + ".local" { return true }
        // The references that name this peer by its name: itself, and without ".local".
        let references = [lowered] + (lowered.hasSuffix(".local") ? [String(lowered.dropLast(6))] : [])
        return references.contains { reference in
            (reference.utf8.count >= 6 && nodeId.hasPrefix(reference)) || address.lowercased() == reference
        }
    }

    /// The one peer `reference` names: a nodeId, name, address or nodeId prefix.
    public func resolve(_ reference: String) throws -> PeerRecord {
        // A nodeId (what the CLI and MCP pass most) is one indexed lookup, not a table scan.
        if let exact = try store.get(reference) { return exact }
        let all = try store.all()
        let lowered = reference.lowercased()
        var matches = all.filter { record in
            record.info.name.lowercased() == lowered || record.info.name.lowercased() == lowered + ".local"
                || record.info.address == reference
                || (reference.utf8.count >= 6 && record.nodeId.hasPrefix(lowered))
        }
        // A session of this machine (`loopsy session start worker-2`) is the peer "<host>-worker-2"
        // on a loopback address; its session name alone names it too.
        if matches.isEmpty {
            let sessionName = (Programs.hostname() + "-" + reference).lowercased()
            matches = all.filter { $0.info.name.lowercased() == sessionName && $0.info.address.hasPrefix("127.") }
        }
        if matches.count == 1 { return matches[0] }
        // A name several nodes claim (names are theirs to choose): one we can call wins.
        let callable = matches.filter { $0.apiKey != nil }
        if callable.count == 1 { return callable[0] }
        if matches.isEmpty {
            throw APIError(status: 404, code: .unknownPeer,
                           message: "no known peer is named '\(reference)'; `loopsy peers` lists them, "
                               + "`loopsy peers add <address>` adds one")
        }
        let candidates = matches.map { "\($0.info.name) (\($0.nodeId), \($0.info.address))" }.joined(separator: "; ")
        throw APIError.conflict("'\(reference)' names \(matches.count) peers: \(candidates); use a nodeId",
                                code: .ambiguousPeer)
    }

    // MARK: Probing and adding

    /// What a daemon at an address says about itself, checked: its public key must give its
    /// nodeId and, over TLS, be the key its certificate carries.
    struct Probe {
        var identity: IdentityResponse
        var publicKey: P256.Signing.PublicKey
        var tls: Bool
        var fingerprint: String
    }

    /// `requireTLS`: a secret is about to be sent, so a daemon that does not speak TLS (or an
    /// attacker breaking the handshake) is refused rather than talked to in clear.
    /// The schemes to try for a daemon at `address`, in order. Every loopsyd serves plain HTTP
    /// on 127.0.0.1, so that is asked in HTTP only; elsewhere HTTPS first, unless what we know
    /// of that address (its mDNS advert, an earlier probe) says it serves plain HTTP. A TLS
    /// ClientHello sent to a plain-HTTP daemon is a malformed request in its log, and plain HTTP
    /// sent to a TLS one a failed handshake in its own: each is asked the way it speaks.
    func schemes(for address: String, port: Int) -> [String] {
        if address == "127.0.0.1" || address == "localhost" { return ["http"] }
        let known = (try? store.all())?.first { $0.info.address == address && $0.info.port == port }
        return known.map { $0.info.tls || $0.info.fingerprint != nil } == false ? ["http", "https"] : ["https", "http"]
    }

    func probe(address: String, port: Int, requireTLS: Bool = false) throws -> Probe {
        let host = address.contains(":") ? "[\(address)]" : address
        let headers = ["X-Loopsy-Node-Id": local.identity.nodeId]
        var found: (identity: IdentityResponse, tls: Bool)?
        var failure: (any Error)?
        for scheme in schemes(for: address, port: port) {
            do {
                let identity = try LoopsyClient(baseURL: "\(scheme)://\(host):\(port)", apiKey: nil, timeoutSeconds: 10,
                                                headers: headers).identity()
                found = (identity, scheme == "https")
                break
            } catch ClientError.daemonUnreachable {
                throw APIError.badGateway("nothing answers at \(address):\(port); is loopsyd running there, and is its "
                    + "server.host reachable from here?")
            } catch ClientError.network(.timedOut) {
                throw APIError.badGateway("\(address):\(port) did not answer in time")
            } catch {
                failure = failure ?? error
            }
        }
        guard let found else {
            throw APIError.badGateway("\(address):\(port) does not answer like a loopsy daemon (\(failure.map { "\($0)" } ?? "?"))")
        }
        if requireTLS && !found.tls {
            throw APIError.badGateway("\(address):\(port) did not complete a TLS handshake; the key is not sent over "
                + "plain HTTP. Enable tls on that node, or give --insecure-http if you accept that the key crosses the "
                + "network in clear", code: .peerTlsRequired)
        }
        let identity = found.identity, tls = found.tls
        guard let keyBytes = Data(base64Encoded: identity.publicKey),
              let publicKey = try? P256.Signing.PublicKey(x963Representation: keyBytes),
              NodeIdentity.nodeId(for: publicKey) == identity.nodeId else {
            throw APIError.badGateway("\(address):\(port) claims nodeId \(identity.nodeId) but its public key does not "
                + "give that id; refusing it", code: .peerIdentityInvalid)
        }
        let fingerprint = TLSCertificate.fingerprint(of: publicKey)
        if tls {
            // The TLS key must be the identity key: otherwise something between us answered.
            do {
                _ = try LoopsyClient(baseURL: "https://\(host):\(port)", apiKey: nil, timeoutSeconds: 10,
                                     pinnedPublicKey: TLSCertificate.curlPin(fingerprint: fingerprint),
                                     headers: headers).health()
            } catch {
                throw APIError.badGateway("\(address):\(port) serves TLS with a key other than node \(identity.nodeId)'s "
                    + "(\(error)); refusing it", code: .peerPinMismatch)
            }
        }
        return Probe(identity: identity, publicKey: publicKey, tls: tls, fingerprint: fingerprint)
    }

    /// Addresses a claimed peer address may never be: this machine, link-local, unspecified.
    /// The name a node introducing itself (a handshake, a pairing) is stored under: its own,
    /// shown safely, unless another peer already has it (commands and channels.approvers name
    /// peers), in which case the newcomer's gets its nodeId prefix.
    func uniqueName(_ hostname: String, nodeId: String) throws -> String {
        let name = PeerStore.displayName(hostname)
        let clashes = try store.all().contains {
            $0.nodeId != nodeId && Self.nameClashes(name, withName: $0.info.name, nodeId: $0.nodeId, address: $0.info.address)
        }
        return clashes ? name + "-" + nodeId.prefix(6) : name
    }

    /// Calls to a node go where its connection came from, or to the address it says it has
    /// only once it answers there with its own (pinned) TLS key, checked off the caller's
    /// thread; never a loopback, link-local or unspecified one. Otherwise whoever introduces
    /// itself could aim this node's deliveries and health checks at any host and port.
    func adopt(claimedAddress claimed: String, of sighting: PeerSighting, cameFrom remoteAddress: String) {
        guard claimed != remoteAddress, sighting.tls, let fingerprint = sighting.fingerprint,
              HostAddress.isIPLiteral(claimed), !Self.isLocalOnly(claimed) else { return }
        let nodeId = sighting.nodeId
        let submitted = handshakeProbes.submit { [self] in
            if answersWithKey(address: claimed, port: sighting.port, fingerprint: fingerprint) {
                var moved = sighting
                moved.address = claimed
                _ = try? store.update(moved)
                logger.info("peer \(nodeId) answers at \(claimed) with its key: calls go there")
            } else {
                logger.info("peer \(nodeId) says it is at \(claimed) but did not answer there with its key; "
                    + "calls go to \(remoteAddress)")
            }
        }
        if !submitted { logger.warn("peer \(nodeId)'s claimed address not checked: too many introductions at once") }
    }

    static func isLocalOnly(_ address: String) -> Bool {
        let lower = address.lowercased()
        return HostAddress.isLoopback(address) || address.hasPrefix("169.254.") || lower.hasPrefix("fe80:")
            || address == "0.0.0.0" || address == "::" || address.hasPrefix("0.")
    }

    /// Whether `address:port` serves TLS with the key whose fingerprint is given (a short,
    /// pinned health call: whoever answers must hold that node's private key).
    private func answersWithKey(address: String, port: Int, fingerprint: String) -> Bool {
        let host = address.contains(":") ? "[\(address)]" : address
        return (try? LoopsyClient(baseURL: "https://\(host):\(port)", apiKey: nil, timeoutSeconds: 3,
                                  pinnedPublicKey: TLSCertificate.curlPin(fingerprint: fingerprint),
                                  headers: ["X-Loopsy-Node-Id": local.identity.nodeId]).health()) != nil
    }

    /// `POST /peers`: probe, record, and with a key also check it and introduce ourselves.
    public func add(_ request: PeerAddRequest) throws -> (PeerRecord, [String]) {
        let port = request.port ?? 19532
        guard (1...65535).contains(port) else { throw APIError.badRequest("port must be from 1 to 65535") }
        guard !request.address.isEmpty, request.address.utf8.count <= 253,
              request.address.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") }) else {
            throw APIError.badRequest("address must be an IP address or host name")
        }
        let secret = request.apiKey?.isEmpty == false || request.fingerprint != nil
        let probe = try probe(address: request.address, port: port,
                              requireTLS: secret && request.allowInsecure != true)
        let identity = probe.identity
        if identity.nodeId == local.identity.nodeId {
            throw APIError.badRequest("\(request.address):\(port) is this node itself", code: .peerIsSelf)
        }
        if let expected = request.fingerprint?.lowercased(), expected != probe.fingerprint {
            throw APIError.conflict("the daemon at \(request.address):\(port) has key fingerprint \(probe.fingerprint), "
                + "not the expected \(expected); refusing it", code: .fingerprintMismatch)
        }
        var notes: [String] = []
        var record = try store.upsert(PeerSighting(
            nodeId: identity.nodeId, name: identity.hostname, address: request.address, port: port,
            platform: identity.platform, version: identity.version, capabilities: identity.capabilities,
            publicKey: identity.publicKey, fingerprint: probe.tls ? probe.fingerprint : nil, tls: probe.tls,
            source: .manual))
        if !probe.tls {
            notes.append("\(request.address) serves plain HTTP: calls to it are not encrypted. Enable tls on it.")
        }
        if let apiKey = request.apiKey, !apiKey.isEmpty {
            try store.setOutgoingCredential(identity.nodeId, apiKey: apiKey)
            record.apiKey = apiKey
            let peerClient = try client(for: record, timeoutSeconds: 10)
            do {
                _ = try peerClient.status()
            } catch ClientError.api(let error) where error.status == 401 || error.status == 403 {
                try store.setOutgoingCredential(identity.nodeId, apiKey: nil)
                throw APIError.forbidden("the peer refused the key: give one of its keys (`loopsy key show` on it)",
                                         code: .peerRefusedKey)
            } catch {
                throw apiError(error, calling: record, context: "peers add")
            }
            notes.append(contentsOf: try introduce(to: record, client: peerClient))
        }
        if let grants = request.grants {
            try store.setGrants(identity.nodeId, grants: Set(grants), transferPaths: record.transferPaths)
        }
        _ = try store.recordCheck(identity.nodeId, ok: true, error: nil, offlineAfter: 1)
        return (try store.get(identity.nodeId) ?? record, notes)
    }

    /// Tells the peer who we are. Over a pinned TLS connection both sides then trade keys of
    /// their own: we give it a credential for calling us, it gives us one for calling it, which
    /// replaces the key the user typed (so that key is not kept here).
    private func introduce(to record: PeerRecord, client: LoopsyClient) throws -> [String] {
        // Over loopback (sessions on one machine) nothing crosses a network.
        let secure = try endpoint(for: record).pin != nil || HostAddress.isLoopback(record.info.address)
        let credential = secure ? Secrets.apiKey() : nil
        if let credential {
            try store.setAcceptedCredential(record.nodeId, keyHash: Secrets.keyHash(credential))
        }
        let info = local.identityResponse()
        let handshake = PeerHandshakeRequest(
            nodeId: info.nodeId, hostname: info.hostname, publicKey: info.publicKey, address: local.advertisedAddress,
            port: info.port, tls: info.tls, platform: info.platform, version: info.version,
            capabilities: info.capabilities, credential: credential)
        do {
            let response = try client.call("POST", API.peersHandshake(), body: handshake,
                                           as: PeerHandshakeResponse.self)
            var notes: [String] = []
            if let own = response.credential, secure, own.utf8.count >= 32 {
                try store.setOutgoingCredential(record.nodeId, apiKey: own)
            } else {
                notes.append("\(record.info.name) gave no key of its own (no TLS): the key you gave is kept for "
                    + "calling it")
            }
            if !response.credentialStored {
                notes.append("\(record.info.name) did not take a key for calling back; add this node there by hand")
            }
            return notes
        } catch {
            if credential != nil { try? store.setAcceptedCredential(record.nodeId, keyHash: nil) }
            return ["introducing this node to \(record.info.name) failed "
                + "(\(apiError(error, calling: record, context: "handshake").message)); it can still be called from here"]
        }
    }

    /// `POST /peers/handshake`: a node that holds one of our keys introduces itself.
    public func acceptHandshake(_ request: PeerHandshakeRequest, remoteAddress: String, secure arrivedOverTLS: Bool) throws
        -> PeerHandshakeResponse {
        let secure = arrivedOverTLS || HostAddress.isLoopback(remoteAddress)
        guard let keyBytes = Data(base64Encoded: request.publicKey),
              let publicKey = try? P256.Signing.PublicKey(x963Representation: keyBytes),
              NodeIdentity.nodeId(for: publicKey) == request.nodeId else {
            throw APIError.badRequest("publicKey does not give nodeId \(request.nodeId)", code: .peerIdentityInvalid)
        }
        guard request.nodeId != local.identity.nodeId else {
            throw APIError.badRequest("a node cannot introduce itself to itself", code: .peerIsSelf)
        }
        guard (1...65535).contains(request.port) else { throw APIError.badRequest("port must be from 1 to 65535") }
        let fingerprint = TLSCertificate.fingerprint(of: publicKey)
        // Calls go where the handshake came from, or to the address the body names only once it
        // answers there with the node's own (pinned) TLS key: otherwise any credential could aim
        // this node's deliveries and health checks at any host:port.
        // An unpinned peer keeps the address it has: a stolen credential must not be able to move
        // it somewhere this node would then send its own credential for it in clear.
        let existing = try store.get(request.nodeId)
        let moveAddress = existing == nil || existing?.info.fingerprint != nil || request.tls
        let sighting = PeerSighting(
            nodeId: request.nodeId, name: try uniqueName(request.hostname, nodeId: request.nodeId), address: remoteAddress,
            port: request.port, platform: request.platform, version: request.version, capabilities: request.capabilities,
            publicKey: request.publicKey, fingerprint: request.tls ? fingerprint : nil, tls: request.tls,
            source: .manual)
        try store.upsert(sighting, moveAddress: moveAddress)
        adopt(claimedAddress: request.address, of: sighting, cameFrom: remoteAddress)
        if request.tls { try store.setPin(request.nodeId, fingerprint: fingerprint) }
        var stored = false
        if let credential = request.credential, secure, credential.utf8.count >= 32 {
            try store.setOutgoingCredential(request.nodeId, apiKey: credential)
            stored = true
        }
        // Over TLS the introducer gets a key of its own (accepted only for its nodeId).
        var own: String?
        if secure {
            own = Secrets.apiKey()
            try store.setAcceptedCredential(request.nodeId, keyHash: Secrets.keyHash(own ?? ""))
        }
        logger.info("peer \(request.hostname) (\(request.nodeId)) introduced itself from \(remoteAddress)"
            + (stored ? " with a credential" : ""))
        return PeerHandshakeResponse(nodeId: local.identity.nodeId, credentialStored: stored, credential: own)
    }
}
