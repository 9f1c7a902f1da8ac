/// A field the wire carries as a word (a state, a status, a source): typed constants for the
/// words this build sets, and any other word a newer peer sends kept as it is instead of
/// failing the whole answer. Encodes, decodes and prints as its word; a literal is a word too
/// (`status == "online"` still reads, the constants are what the code uses).
public protocol WireWord: RawRepresentable, Codable, Hashable, Sendable, CustomStringConvertible,
    ExpressibleByStringLiteral where RawValue == String, StringLiteralType == String {
    init(rawValue: String)
}

extension WireWord {
    public var description: String { rawValue }
    public init(stringLiteral value: String) { self.init(rawValue: value) }
}

/// A peer's health as its checks found it.
public struct PeerStatus: WireWord {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let online = PeerStatus(rawValue: "online")
    public static let offline = PeerStatus(rawValue: "offline")
    /// Not checked yet.
    public static let unknown = PeerStatus(rawValue: "unknown")
    public static let allCases: [PeerStatus] = [.online, .offline, .unknown]
}

/// How this node learned of a peer.
public struct PeerSource: WireWord {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// An mDNS advert only (unpaired: it gets no key).
    public static let mdns = PeerSource(rawValue: "mdns")
    /// Added by hand (`loopsy peers add`, `loopsy connect`).
    public static let manual = PeerSource(rawValue: "manual")
    /// Paired (`loopsy pair`): keys exchanged after both people confirmed.
    public static let paired = PeerSource(rawValue: "paired")
    public static let allCases: [PeerSource] = [.mdns, .manual, .paired]
}

/// Whether a job still runs.
public struct JobState: WireWord {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Reserved, not yet spawned (it never leaves the daemon as such).
    public static let starting = JobState(rawValue: "starting")
    public static let running = JobState(rawValue: "running")
    public static let finished = JobState(rawValue: "finished")
    public static let allCases: [JobState] = [.starting, .running, .finished]
}
