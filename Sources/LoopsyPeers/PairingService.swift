import Crypto
import Dispatch
import FoundationEssentials
import LoopsyAPI
import LoopsyClient
import LoopsyConfig
import LoopsyPOSIX
import LoopsyStore
#if canImport(Glibc)
import Glibc
#endif

/// One pairing session at a time, as responder (`loopsy pair`: shows the invite code, waits) or
/// initiator (`loopsy pair <address>`: types the code). The protocol is in docs/pairing.md:
/// commit → key share → reveal → both people compare the SAS and confirm on their own machine
/// → identities and credentials are exchanged inside AES-GCM. Any wrong code, out-of-order
/// message or bad MAC closes the session for good.
public final class PairingService: Sendable {
    private struct Session {
        var role: String
        var state: String
        var code: String?
        var expiresAt: Int64
        var privateKey: [UInt8]
        var ownNonce: [UInt8]
        var commitment: [UInt8]?
        var crypto: PairingCrypto.Session?
        var confirmedHere: Bool?
        /// What this person lets the other machine do here (nil: peers.defaultGrants).
        var grantsHere: Set<Capability>?
        var peerName: String?
        var peerNodeId: String?
        var error: String?
        /// Responder: the answer to a completed exchange, sent again if the initiator retries.
        var reply: PairExchangeReply?
        /// Initiator: where the responder is.
        var remote: Remote?

        var isOpen: Bool { !["completed", "failed", "cancelled", "expired"].contains(state) }
        // ("exchanging": the responder is storing the peer; it ends in completed or failed.)
    }

    struct Remote: Sendable {
        var baseURL: String
        var address: String
        var port: Int
    }

    private let session = PlainMutex<Session?>(nil)
    private let peers: PeerService
    private let timeout: Int64
    private let logger: Logger

    public init(peers: PeerService, timeoutSeconds: Int, logger: Logger) {
        self.peers = peers
        timeout = Int64(timeoutSeconds) * 1000
        self.logger = logger
    }

    // MARK: This node's own client

    public func start(addresses: [String]) -> PairStartResponse {
        let code = PairingCrypto.inviteCode()
        let expiresAt = Clock.nowMillis() + timeout
        session.withLock {
            $0 = Session(role: "responder", state: "waiting", code: code, expiresAt: expiresAt,
                         privateKey: Array(P256.KeyAgreement.PrivateKey().rawRepresentation),
                         ownNonce: PairingCrypto.randomBytes(32))
        }
        logger.info("pairing: waiting for another node (code valid for \(timeout / 1000) s)")
        return PairStartResponse(code: code, nodeId: peers.local.identity.nodeId, addresses: addresses,
                                 port: peers.local.port, expiresAt: expiresAt, tls: peers.local.tls)
    }

    public func status() -> PairStatus {
        session.withLock { session in
            guard var current = session else {
                return PairStatus(role: "none", state: "none", code: nil, sas: nil, confirmedHere: false, peerName: nil,
                                  peerNodeId: nil, error: nil, expiresAt: nil)
            }
            Self.expire(&current)
            session = current
            return PairStatus(role: current.role, state: current.state,
                              code: current.state == "waiting" ? current.code : nil, sas: current.crypto?.sas,
                              confirmedHere: current.confirmedHere == true, peerName: current.peerName,
                              peerNodeId: current.peerNodeId, error: current.error, expiresAt: current.expiresAt)
        }
    }

    /// The person compared the SAS: true if both screens showed the same digits.
    public func confirm(accept: Bool, grants: Set<Capability>? = nil) throws -> PairStatus {
        let initiatorGoes = try session.withLock { session -> Bool in
            guard var current = session, current.isOpen else {
                throw APIError.conflict("no pairing session is open; start one with `loopsy pair`", code: .noPairing)
            }
            Self.expire(&current)
            guard current.state == "sas" else {
                session = current
                throw APIError.conflict(current.state == "expired" ? "the pairing session expired; start again"
                                        : "there is no SAS to confirm yet (state \(current.state))", code: .pairingState)
            }
            current.confirmedHere = accept
            current.grantsHere = grants
            if accept {
                current.state = "confirmed"
            } else {
                current.state = "cancelled"
                current.error = "the codes did not match on both screens: nothing was exchanged"
            }
            session = current
            return current.role == "initiator"
        }
        if initiatorGoes {
            if accept {
                DispatchQueue.global().async { [self] in exchangeLoop() }
            } else {
                sendAbort()
            }
        }
        return status()
    }

    public func cancel() -> PairStatus {
        let wasInitiator = session.withLock { session -> Bool in
            guard var current = session, current.isOpen else { return false }
            current.state = "cancelled"
            current.error = "cancelled on this machine"
            session = current
            return current.role == "initiator" && current.crypto != nil
        }
        if wasInitiator { sendAbort() }
        return status()
    }

    // MARK: Initiator

    /// Runs commit → key share → reveal against the responder at `address`; afterwards the SAS
    /// is known and waits for this person's confirmation.
    public func initiate(_ request: PairInitiateRequest) throws -> PairStatus {
        let code = request.code.filter { !$0.isWhitespace && $0 != "-" }
        guard code.count == 6, code.allSatisfy(\.isASCII), code.allSatisfy(\.isNumber) else {
            throw APIError.badRequest("the invite code is the 6 digits `loopsy pair` shows on the other machine",
                                      code: .badCode)
        }
        let port = request.port ?? 19532
        guard (1...65535).contains(port), !request.address.isEmpty else {
            throw APIError.badRequest("give the other machine's address and port")
        }
        guard request.scheme == nil || request.scheme == "http" || request.scheme == "https" else {
            throw APIError.badRequest("scheme must be http or https", code: .badScheme)
        }
        let privateKey = P256.KeyAgreement.PrivateKey()
        let publicKey = Array(privateKey.publicKey.x963Representation)
        let nonce = PairingCrypto.randomBytes(32)
        let commitment = PairingCrypto.commitment(code: code, publicKey: publicKey, nonce: nonce)
        session.withLock {
            $0 = Session(role: "initiator", state: "connecting", code: nil, expiresAt: Clock.nowMillis() + timeout,
                         privateKey: Array(privateKey.rawRepresentation), ownNonce: nonce, commitment: commitment)
        }
        do {
            let remote = try reach(request.address, port: port, scheme: request.scheme)
            let client = LoopsyClient(baseURL: remote.baseURL, apiKey: nil, timeoutSeconds: 15)
            let share = try client.call("POST", API.pairCommit(), body: PairCommit(commitment: Hex.encode(commitment)),
                                        as: PairKeyShare.self)
            guard let responderKey = Data(base64Encoded: share.publicKey).map(Array.init),
                  let responderNonce = Data(base64Encoded: share.nonce).map(Array.init), responderNonce.count == 32 else {
                throw APIError.badGateway("the other machine answered the commitment with something that is not a key",
                                          code: .pairingFailed)
            }
            do {
                _ = try client.call("POST", API.pairReveal(),
                                    body: PairKeyShare(publicKey: Data(publicKey).base64EncodedString(),
                                                       nonce: Data(nonce).base64EncodedString()),
                                    as: PairStatusAck.self)
            } catch ClientError.api(let error) where error.is(.wrongCode) {
                throw APIError.forbidden("the invite code was wrong; the session on the other machine is now closed. "
                    + "Run `loopsy pair` there again for a new code", code: .wrongCode)
            }
            let transcript = PairingCrypto.transcript(commitment: commitment, responderKey: responderKey,
                                                      responderNonce: responderNonce, initiatorKey: publicKey,
                                                      initiatorNonce: nonce)
            let derived = try PairingCrypto.derive(privateKey: privateKey, peerKey: responderKey, transcript: transcript)
            session.withLock { session in
                session?.crypto = derived
                session?.remote = remote
                session?.state = "sas"
            }
            return status()
        } catch {
            let apiError = (error as? APIError) ?? APIError.badGateway("pairing with \(request.address):\(port) failed: "
                + (ClientError.describe(error)), code: .pairingFailed)
            session.withLock { session in
                session?.state = "failed"
                session?.error = apiError.message
            }
            throw apiError
        }
    }

    /// HTTPS when the responder serves it (unpinned: nothing secret travels outside the AEAD
    /// box, and the SAS authenticates the keys), else plain HTTP.
    private func reach(_ address: String, port: Int, scheme: String? = nil) throws -> Remote {
        let host = address.contains(":") ? "[\(address)]" : address
        for scheme in scheme.map({ [$0] }) ?? peers.schemes(for: address, port: port) {
            let base = "\(scheme)://\(host):\(port)"
            do {
                _ = try LoopsyClient(baseURL: base, apiKey: nil, timeoutSeconds: 5).health()
                return Remote(baseURL: base, address: address, port: port)
            } catch ClientError.daemonUnreachable {
                break
            } catch {
                continue
            }
        }
        throw APIError.badGateway("nothing answers as a loopsy node at \(address):\(port); is `loopsy pair` running "
            + "there, and is its server.host reachable from here?", code: .pairingUnreachable)
    }

    /// After this person confirmed: sends the sealed identity until the other person confirms
    /// too (their daemon answers "waiting" until then), the session expires or is cancelled.
    private func exchangeLoop() {
        guard let (remote, derived, payload) = try? preparePayload() else { return }
        let client = LoopsyClient(baseURL: remote.baseURL, apiKey: nil, timeoutSeconds: 10)
        while true {
            guard session.withLock({ session -> Bool in
                guard var current = session else { return false }
                Self.expire(&current)
                session = current
                return current.state == "confirmed"
            }) else { return }
            do {
                let reply = try client.call("POST", API.pairExchange(), body: PairSealed(box: payload.box),
                                            as: PairExchangeReply.self)
                if reply.state == "done", let box = reply.box {
                    guard let plain = PairingCrypto.open(box, key: derived.toInitiator, label: "responder",
                                                         transcript: derived.transcript) else {
                        fail("the other machine's answer did not authenticate (bad MAC): nothing was stored")
                        return
                    }
                    // This person may have cancelled while the answer was on its way.
                    guard session.withLock({ $0?.state == "confirmed" }) else { return }
                    do {
                        let info = try store(plain, role: "responder", transcript: derived.transcript,
                                             address: remote.address, fallbackPort: remote.port,
                                             credentialWeGave: payload.credential,
                                             grants: session.withLock { $0?.grantsHere })
                        session.withLock { session in
                            session?.state = "completed"
                            session?.peerName = info.name
                            session?.peerNodeId = info.nodeId
                        }
                    } catch {
                        fail("\(error)")
                    }
                    return
                }
            } catch ClientError.api(let error) where [403, 404, 409, 410].contains(error.status) {
                fail(error.status == 410 ? "the other person declined: the codes did not match, or they cancelled"
                     : "the other machine closed the session (\(error.message))")
                return
            } catch {
                // The other machine may be briefly unreachable: keep trying until expiry.
            }
            pause(seconds: 1)
        }
    }

    private func preparePayload() throws -> (Remote, PairingCrypto.Session, (box: String, credential: String)) {
        try session.withLock { session in
            guard let current = session, let remote = current.remote, let derived = current.crypto else {
                throw APIError.conflict("no pairing in progress")
            }
            let credential = Secrets.apiKey()
            let payload = try ownPayload(credential: credential, role: "initiator", transcript: derived.transcript)
            let box = try PairingCrypto.seal(Array(try JSONEncoder().encode(payload)), key: derived.toResponder,
                                             label: "initiator", transcript: derived.transcript)
            return (remote, derived, (box, credential))
        }
    }

    private func ownPayload(credential: String, role: String, transcript: [UInt8]) throws -> PairPayload {
        let info = peers.local.identityResponse()
        let signature = try peers.local.identity.privateKey.signature(
            for: PairPayload.signedBytes(role: role, transcript: transcript))
        return PairPayload(nodeId: info.nodeId, hostname: info.hostname, publicKey: info.publicKey, tls: info.tls,
                           port: info.port, address: peers.local.advertisedAddress, credential: credential,
                           platform: info.platform, version: info.version, capabilities: info.capabilities,
                           proof: Data(signature.derRepresentation).base64EncodedString())
    }

    private func fail(_ reason: String) {
        logger.warn("pairing failed: \(reason)")
        session.withLock { session in
            guard session?.isOpen == true else { return }
            session?.state = "failed"
            session?.error = reason
        }
    }

    private func sendAbort() {
        guard let (remote, derived) = session.withLock({ session -> (Remote, PairingCrypto.Session)? in
            guard let remote = session?.remote, let derived = session?.crypto else { return nil }
            return (remote, derived)
        }) else { return }
        let tag = PairingCrypto.abortTag(key: derived.abort, transcript: derived.transcript)
        _ = try? LoopsyClient(baseURL: remote.baseURL, apiKey: nil, timeoutSeconds: 5)
            .call("POST", API.pairAbort(), body: PairSealed(box: tag), as: PairStatusAck.self)
    }

    // MARK: Responder (routes that need no key)

    /// Step 1: the first commitment locks the session to its sender.
    public func commit(_ request: PairCommit) throws -> PairKeyShare {
        try session.withLock { session in
            var current = try Self.openResponder(&session)
            guard current.state == "waiting", current.commitment == nil else {
                Self.burn(&session, "a second commitment arrived")
                throw Self.closed
            }
            guard let commitment = Hex.decode(request.commitment), commitment.count == 32 else {
                Self.burn(&session, "malformed commitment")
                throw Self.closed
            }
            current.commitment = commitment
            current.state = "committed"
            session = current
            let key = try P256.KeyAgreement.PrivateKey(rawRepresentation: current.privateKey)
            return PairKeyShare(publicKey: Data(key.publicKey.x963Representation).base64EncodedString(),
                                nonce: Data(current.ownNonce).base64EncodedString())
        }
    }

    /// Step 2: the initiator's key must match its commitment under this node's code.
    public func reveal(_ request: PairKeyShare) throws {
        try session.withLock { session in
            var current = try Self.openResponder(&session)
            guard current.state == "committed", let commitment = current.commitment, let code = current.code else {
                Self.burn(&session, "a reveal arrived out of order")
                throw Self.closed
            }
            guard let key = Data(base64Encoded: request.publicKey).map(Array.init),
                  let nonce = Data(base64Encoded: request.nonce).map(Array.init),
                  PairingCrypto.commitment(code: code, publicKey: key, nonce: nonce) == commitment else {
                Self.burn(&session, "the invite code was wrong (or a message was tampered with)")
                throw APIError.forbidden("pairing failed: wrong invite code; this session is closed", code: .wrongCode)
            }
            let own = try P256.KeyAgreement.PrivateKey(rawRepresentation: current.privateKey)
            let transcript = PairingCrypto.transcript(
                commitment: commitment, responderKey: Array(own.publicKey.x963Representation),
                responderNonce: current.ownNonce, initiatorKey: key, initiatorNonce: nonce)
            do {
                current.crypto = try PairingCrypto.derive(privateKey: own, peerKey: key, transcript: transcript)
            } catch {
                Self.burn(&session, "the initiator's key is not a valid P-256 point")
                throw Self.closed
            }
            current.state = "sas"
            session = current
        }
    }

    /// Step 3: the initiator's sealed identity; answered with ours only once this node's own
    /// person confirmed the SAS here.
    public func exchange(_ request: PairSealed, remoteAddress: String) throws -> PairExchangeReply {
        let (derived, confirmed, cached) = try session.withLock { session
            -> (PairingCrypto.Session, Bool?, PairExchangeReply?) in
            guard var current = session, current.role == "responder" else { throw Self.closed }
            Self.expire(&current)
            session = current
            if current.state == "cancelled" && current.crypto != nil {
                throw APIError(status: 410, code: .pairingDeclined, message: "the other person declined")
            }
            guard ["sas", "confirmed", "exchanging", "completed"].contains(current.state), let derived = current.crypto else {
                if current.isOpen { Self.burn(&session, "an exchange arrived out of order") }
                throw Self.closed
            }
            return (derived, current.confirmedHere, current.reply)
        }
        guard let plain = PairingCrypto.open(request.box, key: derived.toResponder, label: "initiator",
                                             transcript: derived.transcript) else {
            session.withLock { Self.burn(&$0, "a sealed message failed authentication (bad MAC)") }
            throw Self.closed
        }
        if let cached { return cached }
        guard confirmed == true else { return PairExchangeReply(state: "waiting", box: nil) }
        // Exactly one exchange stores the peer: a concurrent one (a retry, or a replayed box)
        // waits and then gets the same answer.
        let claimed = session.withLock { session -> Bool in
            guard session?.state == "confirmed" else { return false }
            session?.state = "exchanging"
            return true
        }
        guard claimed else { return PairExchangeReply(state: "waiting", box: nil) }
        let credential = Secrets.apiKey()
        let info: PeerInfo
        let reply: PairExchangeReply
        do {
            info = try store(plain, role: "initiator", transcript: derived.transcript, address: remoteAddress,
                             fallbackPort: nil, credentialWeGave: credential,
                             grants: session.withLock { $0?.grantsHere })
            let payload = try ownPayload(credential: credential, role: "responder", transcript: derived.transcript)
            let box = try PairingCrypto.seal(Array(try JSONEncoder().encode(payload)), key: derived.toInitiator,
                                             label: "responder", transcript: derived.transcript)
            reply = PairExchangeReply(state: "done", box: box)
        } catch {
            session.withLock { session in
                session?.state = "confirmed"
                Self.burn(&session, "\(error)")
            }
            throw Self.closed
        }
        session.withLock { session in
            session?.reply = reply
            session?.state = "completed"
            session?.peerName = info.name
            session?.peerNodeId = info.nodeId
        }
        logger.info("pairing: paired with \(info.name) (\(info.nodeId))")
        return reply
    }

    /// The initiator's person declined (tag proves it is the same session).
    public func abort(_ request: PairSealed) throws {
        try session.withLock { session in
            guard let current = session, current.isOpen, let derived = current.crypto,
                  request.box == PairingCrypto.abortTag(key: derived.abort, transcript: derived.transcript) else {
                throw Self.closed
            }
            session?.state = "cancelled"
            session?.error = "the other person declined: the codes did not match on both screens, or they cancelled"
        }
    }

    // MARK: Helpers

    /// Stores the peer a verified payload describes: paired, pinned (its key is the identity the
    /// SAS vouched for), with the credential it gave us and the hash of the one we gave it.
    /// `role`: who sent the payload ("initiator" or "responder"); `transcript`: this session's.
    private func store(_ plain: [UInt8], role: String, transcript: [UInt8], address: String, fallbackPort: Int?,
                       credentialWeGave: String, grants: Set<Capability>?) throws -> PeerInfo {
        guard let payload = try? SafeJSON.decode(PairPayload.self, from: Data(plain)),
              let keyBytes = Data(base64Encoded: payload.publicKey),
              let publicKey = try? P256.Signing.PublicKey(x963Representation: keyBytes),
              NodeIdentity.nodeId(for: publicKey) == payload.nodeId, payload.credential.utf8.count >= 32,
              (1...65535).contains(payload.port),
              let proof = Data(base64Encoded: payload.proof),
              let signature = try? P256.Signing.ECDSASignature(derRepresentation: proof),
              publicKey.isValidSignature(signature, for: PairPayload.signedBytes(role: role, transcript: transcript)) else {
            throw APIError.badRequest("the other node's identity did not check out (no proof it holds its key)",
                                      code: .pairingFailed)
        }
        guard payload.nodeId != peers.local.identity.nodeId else {
            throw APIError.badRequest("the other node claims to be this node", code: .pairingFailed)
        }
        let fingerprint = TLSCertificate.fingerprint(of: publicKey)
        let store = peers.store
        // As for a handshake: calls go to the address the pairing came from (or was sent to),
        // or to the one the payload names once it answers there with the key just verified;
        // and a name another peer has is not taken over. A paired node named 127.0.0.1 and our
        // own port, and this node health-checked itself; it took another peer's name.
        let sighting = PeerSighting(
            nodeId: payload.nodeId, name: try peers.uniqueName(payload.hostname, nodeId: payload.nodeId), address: address,
            port: payload.port == 0 ? (fallbackPort ?? 19532) : payload.port, platform: payload.platform,
            version: payload.version, capabilities: payload.capabilities, publicKey: payload.publicKey,
            fingerprint: payload.tls ? fingerprint : nil, tls: payload.tls, source: .paired)
        try store.upsert(sighting)
        peers.adopt(claimedAddress: payload.address, of: sighting, cameFrom: address)
        try store.setSource(payload.nodeId, .paired)
        if payload.tls { try store.setPin(payload.nodeId, fingerprint: fingerprint, replace: true) }
        try store.setOutgoingCredential(payload.nodeId, apiKey: payload.credential)
        try store.setAcceptedCredential(payload.nodeId, keyHash: Secrets.keyHash(credentialWeGave))
        // Pairing decides afresh what the other machine may do (nil: the defaults).
        try store.setGrants(payload.nodeId, grants: grants, transferPaths: nil)
        guard let record = try store.get(payload.nodeId) else { throw APIError.notFound("peer \(payload.nodeId)") }
        return record.info
    }

    private static let closed = APIError.notFound("pairing session")

    private static func openResponder(_ session: inout Session?) throws -> Session {
        guard var current = session, current.role == "responder", current.isOpen else { throw closed }
        expire(&current)
        session = current
        guard current.isOpen else { throw closed }
        return current
    }

    private static func expire(_ session: inout Session) {
        if session.isOpen && Clock.nowMillis() > session.expiresAt {
            session.state = "expired"
            session.error = "the pairing session expired; start again with `loopsy pair`"
        }
    }

    private static func burn(_ session: inout Session?, _ reason: String) {
        guard session?.isOpen == true else { return }
        session?.state = "failed"
        session?.error = reason + "; the session is closed, start again with `loopsy pair`"
    }
}

/// The empty answer of reveal and abort.
public struct PairStatusAck: Codable, Sendable {
    public var ok: Bool
    public init(ok: Bool = true) { self.ok = ok }
}

private func pause(seconds: Double) {
    usleep(useconds_t(seconds * 1_000_000))
}
