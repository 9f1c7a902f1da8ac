/// A known peer as the API shows it. Credentials never appear here: `hasCredential` only says
/// whether we hold one for calling it, `acceptsCredential` whether it holds one for calling us.
public struct PeerInfo: Codable, Sendable, Equatable {
    public var nodeId: String
    public var name: String
    public var address: String
    public var addresses: [String]
    public var port: Int
    public var platform: String
    public var version: String
    public var capabilities: [String]
    /// Hex SHA-256 of the peer's TLS public key, when we know it (then every call pins it).
    public var fingerprint: String?
    /// Whether we call it over HTTPS.
    public var tls: Bool
    /// online, offline or unknown.
    public var status: PeerStatus
    public var lastSeen: Int64?
    public var lastChecked: Int64?
    public var failures: Int
    public var lastError: String?
    /// mdns, manual or paired.
    public var source: PeerSource
    public var hasCredential: Bool
    public var acceptsCredential: Bool
    public var createdAt: Int64
    public var updatedAt: Int64
    /// What this peer may do here (when it holds a credential for us): its own grants, or
    /// `peers.defaultGrants` when `defaultGrants` is true.
    public var grants: [Capability]?
    public var defaultGrants: Bool?
    /// The peer's own transfer roots, narrowing transfer.allowedPaths (nil: no narrowing).
    public var transferPaths: [String]?

    public init(nodeId: String, name: String, address: String, addresses: [String], port: Int, platform: String,
                version: String, capabilities: [String], fingerprint: String?, tls: Bool, status: PeerStatus,
                lastSeen: Int64?, lastChecked: Int64?, failures: Int, lastError: String?, source: PeerSource,
                hasCredential: Bool, acceptsCredential: Bool, createdAt: Int64, updatedAt: Int64,
                grants: [Capability]? = nil, defaultGrants: Bool? = nil, transferPaths: [String]? = nil) {
        self.grants = grants
        self.defaultGrants = defaultGrants
        self.transferPaths = transferPaths
        self.nodeId = nodeId
        self.name = name
        self.address = address
        self.addresses = addresses
        self.port = port
        self.platform = platform
        self.version = version
        self.capabilities = capabilities
        self.fingerprint = fingerprint
        self.tls = tls
        self.status = status
        self.lastSeen = lastSeen
        self.lastChecked = lastChecked
        self.failures = failures
        self.lastError = lastError
        self.source = source
        self.hasCredential = hasCredential
        self.acceptsCredential = acceptsCredential
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

public struct PeerListResponse: Codable, Sendable {
    public var peers: [PeerInfo]
    public init(peers: [PeerInfo]) { self.peers = peers }
}

/// `POST /peers`: probe a daemon at an address and record it. `apiKey` is the credential that
/// daemon accepts (its own key or one of its `auth.allowedKeys`); with it we also introduce
/// ourselves, so it can call us back with a credential of its own.
public struct PeerAddRequest: Codable, Sendable {
    public var address: String
    public var port: Int?
    public var apiKey: String?
    /// The fingerprint the user expects (from the other machine's `loopsy status`); a mismatch
    /// refuses the peer.
    public var fingerprint: String?
    /// Accept a peer that does not serve TLS even though a key or fingerprint is given (the key
    /// then crosses the network in clear). Without it, such a peer is refused.
    public var allowInsecure: Bool?
    /// What the peer may do here once it calls back (nil: peers.defaultGrants).
    public var grants: [Capability]?

    public init(address: String, port: Int? = nil, apiKey: String? = nil, fingerprint: String? = nil,
                allowInsecure: Bool? = nil, grants: [Capability]? = nil) {
        self.grants = grants
        self.address = address
        self.port = port
        self.apiKey = apiKey
        self.fingerprint = fingerprint
        self.allowInsecure = allowInsecure
    }
}

/// `POST /peers/handshake`: a node introduces itself. `credential` is the key the receiver must
/// present when calling the sender; it is only accepted over TLS.
public struct PeerHandshakeRequest: Codable, Sendable {
    public var nodeId: String
    public var hostname: String
    public var publicKey: String
    public var address: String
    public var port: Int
    public var tls: Bool
    public var platform: String
    public var version: String
    public var capabilities: [String]
    public var credential: String?

    public init(nodeId: String, hostname: String, publicKey: String, address: String, port: Int, tls: Bool,
                platform: String, version: String, capabilities: [String], credential: String?) {
        self.nodeId = nodeId
        self.hostname = hostname
        self.publicKey = publicKey
        self.address = address
        self.port = port
        self.tls = tls
        self.platform = platform
        self.version = version
        self.capabilities = capabilities
        self.credential = credential
    }
}

public struct PeerHandshakeResponse: Codable, Sendable {
    public var nodeId: String
    /// Whether the receiver stored the credential (false when it came over plain HTTP).
    public var credentialStored: Bool
    /// Over TLS: a key of the receiver's own, for the sender to call it with from now on (so the
    /// key the sender used for the handshake need not be kept).
    public var credential: String?
    public init(nodeId: String, credentialStored: Bool, credential: String?) {
        self.nodeId = nodeId
        self.credentialStored = credentialStored
        self.credential = credential
    }
}


/// What a peer or an extra key may do here (`GET /grants`, `POST /grants/{who}`).
public struct GrantInfo: Codable, Sendable, Equatable {
    /// "peer" or "key".
    public var kind: String
    /// The peer's nodeId or the key's name.
    public var id: String
    /// The peer's name or the key's name.
    public var name: String
    public var grants: [Capability]
    /// True when these are peers.defaultGrants (never set explicitly).
    public var isDefault: Bool
    public var transferPaths: [String]?

    public init(kind: String, id: String, name: String, grants: [Capability], isDefault: Bool, transferPaths: [String]?) {
        self.kind = kind
        self.id = id
        self.name = name
        self.grants = grants
        self.isDefault = isDefault
        self.transferPaths = transferPaths
    }
}

public struct GrantListResponse: Codable, Sendable {
    public var grants: [GrantInfo]
    public init(grants: [GrantInfo]) { self.grants = grants }
}

/// `POST /grants/{who}`: add and remove capabilities; `transferPaths` replaces the transfer
/// roots (an empty array removes the narrowing); `reset` goes back to peers.defaultGrants first.
public struct GrantChangeRequest: Codable, Sendable {
    public var grant: [Capability]?
    public var revoke: [Capability]?
    public var transferPaths: [String]?
    public var reset: Bool?
    public init(grant: [Capability]? = nil, revoke: [Capability]? = nil, transferPaths: [String]? = nil,
                reset: Bool? = nil) {
        self.grant = grant
        self.revoke = revoke
        self.transferPaths = transferPaths
        self.reset = reset
    }
}
