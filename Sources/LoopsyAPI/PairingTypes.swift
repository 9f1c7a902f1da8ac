/// `POST /pair/start` (this node waits to be paired): the invite code a person reads out.
public struct PairStartResponse: Codable, Sendable {
    public var code: String
    public var nodeId: String
    public var addresses: [String]
    public var port: Int
    public var expiresAt: Int64
    /// Whether this node serves its peers over HTTPS (the command to print names the scheme).
    public var tls: Bool?
    public init(code: String, nodeId: String, addresses: [String], port: Int, expiresAt: Int64, tls: Bool? = nil) {
        self.code = code
        self.nodeId = nodeId
        self.addresses = addresses
        self.port = port
        self.expiresAt = expiresAt
        self.tls = tls
    }
}

/// `POST /pair/initiate` (this node pairs with one that waits).
public struct PairInitiateRequest: Codable, Sendable {
    public var address: String
    public var port: Int?
    public var code: String
    /// "http" or "https" when the person knows how the other machine serves peers (the command
    /// `loopsy pair` printed there says so); otherwise HTTPS is tried first.
    public var scheme: String?
    public init(address: String, port: Int? = nil, code: String, scheme: String? = nil) {
        self.address = address
        self.port = port
        self.code = code
        self.scheme = scheme
    }
}

public struct PairConfirmRequest: Codable, Sendable {
    /// True when the person saw the same SAS on both screens.
    public var accept: Bool
    /// What the other machine may do on this one once paired (nil: peers.defaultGrants).
    public var grants: [Capability]?
    public init(accept: Bool, grants: [Capability]? = nil) {
        self.accept = accept
        self.grants = grants
    }
}

/// `GET /pair/status`: this node's pairing session, as its own CLI shows it.
public struct PairStatus: Codable, Sendable, Equatable {
    /// responder (ran `loopsy pair`), initiator (ran `loopsy pair <address>`) or none.
    public var role: String
    /// waiting, sas, confirmed, completed, failed, cancelled, expired, or none.
    public var state: String
    /// The invite code, shown to the responder until someone uses it.
    public var code: String?
    /// The short authentication string both people compare.
    public var sas: String?
    public var confirmedHere: Bool
    public var peerName: String?
    public var peerNodeId: String?
    public var error: String?
    public var expiresAt: Int64?
    /// peers.defaultGrants here: what the other machine may do unless this person chooses otherwise.
    public var defaultGrants: [Capability]?

    public init(role: String, state: String, code: String?, sas: String?, confirmedHere: Bool, peerName: String?,
                peerNodeId: String?, error: String?, expiresAt: Int64?) {
        self.role = role
        self.state = state
        self.code = code
        self.sas = sas
        self.confirmedHere = confirmedHere
        self.peerName = peerName
        self.peerNodeId = peerNodeId
        self.error = error
        self.expiresAt = expiresAt
    }
}

// MARK: Node to node (no key needed; nothing in them is secret)

/// Step 1, initiator → responder: a hash that binds the invite code to the initiator's key.
public struct PairCommit: Codable, Sendable {
    public var commitment: String
    public init(commitment: String) { self.commitment = commitment }
}

/// The responder's ephemeral ECDH public key and nonce (base64).
public struct PairKeyShare: Codable, Sendable {
    public var publicKey: String
    public var nonce: String
    public init(publicKey: String, nonce: String) {
        self.publicKey = publicKey
        self.nonce = nonce
    }
}

/// Step 3, after both people confirmed: AEAD-sealed identity and credential (base64).
public struct PairSealed: Codable, Sendable {
    public var box: String
    public init(box: String) { self.box = box }
}

public struct PairExchangeReply: Codable, Sendable {
    /// waiting (the other person has not confirmed yet) or done.
    public var state: String
    public var box: String?
    public init(state: String, box: String?) {
        self.state = state
        self.box = box
    }
}
