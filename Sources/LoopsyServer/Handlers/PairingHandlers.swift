import LoopsyAPI
import LoopsyPeers
import LoopsyHTTP
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// `loopsy pair`: the local routes (this node's own key) drive a session; the node-to-node
/// routes need no key, do nothing without the invite code, and never carry a secret in clear.
public enum PairingHandlers {
    static func start(_ context: RequestContext) throws -> HTTPResponse {
        return try .json(context.node.pairing.start(addresses: localAddresses()))
    }

    // These call the other machine: off the HTTP worker.
    static func initiate(_ context: RequestContext) throws -> HTTPResponse {
        let request = try context.decode(PairInitiateRequest.self)
        let context = context.withoutBody
        return try context.offload { try .json(withDefaults(try context.node.pairing.initiate(request), context)) }
    }

    static func confirm(_ context: RequestContext) throws -> HTTPResponse {
        let request = try context.decode(PairConfirmRequest.self)
        let context = context.withoutBody
        return try context.offload {
            try .json(withDefaults(try context.node.pairing.confirm(accept: request.accept,
                                                                     grants: request.grants.map(Set.init)), context))
        }
    }

    static func cancel(_ context: RequestContext) throws -> HTTPResponse {
        let context = context.withoutBody
        return try context.offload { try .json(context.node.pairing.cancel()) }
    }

    static func status(_ context: RequestContext) throws -> HTTPResponse {
        return try .json(withDefaults(context.node.pairing.status(), context))
    }

    /// The owner's CLI asks about grants starting from these.
    private static func withDefaults(_ status: PairStatus, _ context: RequestContext) -> PairStatus {
        var status = status
        status.defaultGrants = context.node.authenticator.defaultGrants.sorted()
        return status
    }

    // MARK: Node to node

    static func commit(_ context: RequestContext) throws -> HTTPResponse {
        try .json(try context.node.pairing.commit(try context.decode(PairCommit.self)))
    }

    static func reveal(_ context: RequestContext) throws -> HTTPResponse {
        try context.node.pairing.reveal(try context.decode(PairKeyShare.self))
        return try .json(PairStatusAck())
    }

    static func exchange(_ context: RequestContext) throws -> HTTPResponse {
        try .json(try context.node.pairing.exchange(try context.decode(PairSealed.self),
                                                   remoteAddress: context.request.remoteAddress))
    }

    static func abort(_ context: RequestContext) throws -> HTTPResponse {
        try context.node.pairing.abort(try context.decode(PairSealed.self))
        return try .json(PairStatusAck())
    }


    /// This machine's IPv4 addresses other than loopback, to tell the other person.
    static func localAddresses() -> [String] {
        NetworkInterfaces.ipv4Addresses().filter { !$0.hasPrefix("127.") }
    }
}
