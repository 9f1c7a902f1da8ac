/// What another machine (a peer) or an extra key (`auth.allowedKeys`) may do on this node. The
/// node's owner can do everything; everyone else holds a set of these, given at pairing or with
/// `loopsy peers grant`.
public enum Capability: String, Sendable, Codable, CaseIterable, Comparable {
    case contextRead = "context:read"
    case contextWrite = "context:write"
    case messages
    case exec
    case transfer
    case tasks
    /// Answer the permission prompts of this machine's Claude Code sessions sent to it.
    case approvals

    public static func < (lhs: Capability, rhs: Capability) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// What the grant lets its holder do, for prompts and `loopsy peers`.
    public var summary: String {
        switch self {
        case .contextRead: return "read the shared context store"
        case .contextWrite: return "write the shared context store and take locks"
        case .messages: return "send messages to this machine"
        case .exec: return "run programs on this machine"
        case .transfer: return "read and write files on this machine"
        case .tasks: return "run Claude Code tasks on this machine"
        case .approvals: return "answer the permission prompts of Claude Code sessions on this machine"
        }
    }

    /// Grants that hand over the machine: pairing asks about each one.
    public var isPowerful: Bool { self == .exec || self == .transfer || self == .tasks || self == .approvals }

    /// Parses `context:read,exec` or `context exec` style lists; `context` alone means both
    /// context grants and `all` every grant. Unknown names throw with the list of known ones.
    public static func parseList(_ words: [String]) throws -> Set<Capability> {
        var result = Set<Capability>()
        for word in words.flatMap({ $0.split(whereSeparator: { $0 == "," || $0 == " " }) }) {
            let name = word.lowercased()
            if name == "all" { result.formUnion(allCases); continue }
            if name == "context" { result.formUnion([.contextRead, .contextWrite]); continue }
            guard let capability = Capability(rawValue: name) else {
                throw CapabilityError(name: String(word))
            }
            result.insert(capability)
        }
        return result
    }
}

public struct CapabilityError: Error, CustomStringConvertible, Sendable {
    public var name: String
    public var description: String {
        "unknown grant '\(name)'; grants are \(Capability.allCases.map(\.rawValue).joined(separator: ", ")) "
            + "(or 'context' for both context grants, 'all' for every one)"
    }
}
