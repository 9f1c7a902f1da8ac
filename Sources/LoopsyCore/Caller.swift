import LoopsyAPI

/// Who made a request: a typed value the route table's access rules are written against.
///
/// - `owner`: the node's own key (its CLI, MCP server, scripts on this machine);
/// - `dashboard`: the owner through a dashboard session cookie (CSRF-checked);
/// - `key`: a named `auth.allowedKeys` entry (another machine or a tool set up by hand);
/// - `peer`: a paired or handshaken node, by the credential this node gave it;
/// - `anonymous`: no credential (only open routes admit it).
///
/// Keys and peers hold grants (`Capability`); the owner holds them all.
public struct Caller: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case owner, dashboard, key, peer, anonymous

        /// Its bit in `RouteAccess`'s set of kinds.
        var bit: UInt8 {
            switch self {
            case .owner: 1
            case .dashboard: 2
            case .key: 4
            case .peer: 8
            case .anonymous: 16
            }
        }
    }

    public var kind: Kind
    /// The key's name, the peer's nodeId or the anonymous caller's address ("" for the owner).
    public var name: String
    /// What a key or peer may do here (ignored for the owner, who may do everything).
    public var grants: Set<Capability>
    /// A key's or peer's own transfer roots, narrowing `transfer.allowedPaths`; nil: no narrowing.
    public var transferPaths: [String]?
    /// X-Loopsy-Node-Id sent with a credential that is not bound to a node (the owner's key or an
    /// extra key). It identifies nothing and grants nothing; the audit log shows it as a claim.
    public var claimedNode: String?

    public init(kind: Kind, name: String = "", grants: Set<Capability> = [], transferPaths: [String]? = nil) {
        self.kind = kind
        self.name = name
        self.grants = grants
        self.transferPaths = transferPaths
    }

    public static let local = Caller(kind: .owner)
    public static let dashboard = Caller(kind: .dashboard)
    public static func anonymous(_ address: String) -> Caller { Caller(kind: .anonymous, name: address) }
    public static func peer(_ nodeId: String, grants: Set<Capability> = [], transferPaths: [String]? = nil) -> Caller {
        Caller(kind: .peer, name: nodeId, grants: grants, transferPaths: transferPaths)
    }
    public static func key(_ name: String, grants: Set<Capability> = [], transferPaths: [String]? = nil) -> Caller {
        Caller(kind: .key, name: name, grants: grants, transferPaths: transferPaths)
    }

    /// The stable identity jobs, tasks, locks and rate limits are keyed on: "local",
    /// "local (dashboard)", "key:<name>", "peer:<nodeId>" or "anonymous@<address>".
    public var id: String {
        switch kind {
        case .owner: return "local"
        case .dashboard: return "local (dashboard)"
        case .key: return "key:\(name)"
        case .peer: return "peer:\(name)"
        case .anonymous: return "anonymous@\(name)"
        }
    }

    /// What the audit log records: the identity, and an unbound node claim as a claim.
    public var auditName: String {
        guard let claimedNode else { return id }
        return id + " (claims node \(claimedNode))"
    }

    /// The owner, by key or dashboard session.
    public var isOwner: Bool { kind == .owner || kind == .dashboard }

    /// The node a peer credential belongs to.
    public var peerNodeId: String? { kind == .peer ? name : nil }

    /// How the owner names this caller in `loopsy peers grant` (a peer by nodeId, a key as key:NAME).
    public var grantName: String { kind == .key ? "key:\(name)" : name }

    public func holds(_ capability: Capability) -> Bool { isOwner || grants.contains(capability) }
}

/// Who may call a route, declared in the route table and enforced once by the dispatcher:
/// the caller kinds admitted and, for keys and peers, the grant they must hold.
public struct RouteAccess: Sendable, Equatable {
    /// The kinds of caller admitted, one bit each (`Caller.Kind.bit`): checked for every request,
    /// where a `Set` hashed the kind each time.
    private var kindBits: UInt8
    public var grant: Capability?

    public var kinds: Set<Caller.Kind> {
        get { Set(Caller.Kind.allCases.filter { kindBits & $0.bit != 0 }) }
        set { kindBits = newValue.reduce(0) { $0 | $1.bit } }
    }

    public init(kinds: Set<Caller.Kind>, grant: Capability?) {
        kindBits = kinds.reduce(0) { $0 | $1.bit }
        self.grant = grant
    }

    /// Anyone, without a credential (health, identity, the pairing steps, the dashboard's files).
    public static let open = RouteAccess(kinds: Set(Caller.Kind.allCases), grant: nil)
    /// The node's owner only (its key or its dashboard).
    public static let owner = RouteAccess(kinds: [.owner, .dashboard], grant: nil)
    /// The owner's key itself, not a dashboard session.
    public static let ownerKey = RouteAccess(kinds: [.owner], grant: nil)
    /// Any valid credential (the API description).
    public static let credential = RouteAccess(kinds: [.owner, .dashboard, .key, .peer], grant: nil)
    /// The owner, or a key or peer holding `capability`.
    public static func grant(_ capability: Capability) -> RouteAccess {
        RouteAccess(kinds: [.owner, .dashboard, .key, .peer], grant: capability)
    }
    /// The owner, or a peer holding `capability` (never an extra key: what is sent to peers).
    public static func grantToPeers(_ capability: Capability) -> RouteAccess {
        RouteAccess(kinds: [.owner, .dashboard, .peer], grant: capability)
    }
    /// Node to node: only a peer's own credential (holding `capability` when given).
    public static func peer(_ capability: Capability? = nil) -> RouteAccess {
        RouteAccess(kinds: [.peer], grant: capability)
    }
    /// The owner or a peer introducing itself (handshakes).
    public static let ownerOrPeer = RouteAccess(kinds: [.owner, .dashboard, .peer], grant: nil)

    public var isOpen: Bool { kindBits & Caller.Kind.anonymous.bit != 0 }

    /// Whether `caller` may call the route.
    public func admits(_ caller: Caller) -> Bool {
        guard kindBits & caller.kind.bit != 0 else { return false }
        guard let grant, !caller.isOwner else { return true }
        return caller.grants.contains(grant)
    }

    /// The 403 for a caller the route does not admit (anonymous callers get the authenticator's
    /// 401 before this is asked).
    public func refusal(for caller: Caller, node: String) -> APIError {
        if kinds.contains(caller.kind), let grant {
            return .forbidden("\(caller.kind == .peer ? "this peer" : "key '\(caller.name)'") has no '\(grant.rawValue)' "
                + "grant on \(node) (it would let it \(grant.summary)); the owner of \(node) can give it with: "
                + "loopsy peers grant \(caller.grantName) \(grant.rawValue)", code: .grantRequired)
        }
        if kinds == [.peer] {
            return .forbidden("only a peer's own credential may call this node-to-node route", code: .peerOnly)
        }
        if kinds == [.owner] {
            return .forbidden("only this node's own key may do this (not a dashboard session or another key)",
                              code: .ownerKeyOnly)
        }
        return .forbidden("only the owner of \(node) may do this; \(caller.kind == .peer ? "peers" : "extra keys") "
            + "cannot, whatever they are granted", code: .ownerOnly)
    }

    /// For the API description: who may call, in words.
    public var summary: String {
        if isOpen { return "anyone (no credential)" }
        if kinds == [.peer] { return "peers only" + (grant.map { " holding the '\($0.rawValue)' grant" } ?? "") }
        if kinds == [.owner] { return "the owner's key only" }
        if kinds == [.owner, .dashboard] { return "the owner only" }
        if let grant, kinds == [.owner, .dashboard, .peer] {
            return "the owner, and peers holding the '\(grant.rawValue)' grant"
        }
        if let grant { return "the owner, and keys or peers holding the '\(grant.rawValue)' grant" }
        if !kinds.contains(.key) { return "the owner and peers" }
        return "any credential"
    }
}
