import LoopsyAPI
import LoopsyPeers
import LoopsyHTTP
import LoopsyStore

/// Per-peer and per-key grants: what another machine may do here (`loopsy peers grant|revoke`).
/// Owner only, as the route table declares; changes apply to the grantee's next request.
public enum GrantHandlers {
    static func list(_ context: RequestContext) throws -> HTTPResponse {
        try .json(GrantListResponse(grants: try all(context)))
    }

    static func change(_ context: RequestContext) throws -> HTTPResponse {
        let request = try context.decode(GrantChangeRequest.self)
        if let paths = request.transferPaths {
            guard paths.count <= 64, paths.allSatisfy({ ($0.hasPrefix("/") || $0 == "~" || $0.hasPrefix("~/"))
                                                         && !$0.contains("\0") && $0.unicodeScalars.count <= 1024 }) else {
                throw APIError.badRequest("transferPaths must be absolute paths (or start with ~/), at most 64",
                                          code: .badTransferPaths)
            }
        }
        let node = context.node
        let who = context.parameter("who")
        let defaults = node.authenticator.defaultGrants
        func apply(_ current: Set<Capability>?) -> Set<Capability> {
            var grants = request.reset == true ? defaults : (current ?? defaults)
            grants.formUnion(request.grant ?? [])
            grants.subtract(request.revoke ?? [])
            return grants
        }
        func narrowing(_ current: [String]?) -> [String]? {
            guard let paths = request.transferPaths else { return request.reset == true ? nil : current }
            return paths.isEmpty ? nil : paths
        }
        if who.hasPrefix("key:") {
            let name = String(who.dropFirst(4))
            guard node.authenticator.extraKeyNames.contains(name) else {
                throw APIError.notFound("key '\(name)' in auth.allowedKeys")
            }
            let current = try node.keyGrants.get(name)
            try node.keyGrants.set(name, grants: apply(current?.grants), transferPaths: narrowing(current?.transferPaths))
            node.logger.info("grants of key \(name) changed by the owner")
            return try .json(try info(forKey: name, context))
        }
        let record = try node.peers.resolve(who)
        guard record.info.acceptsCredential else {
            throw APIError.conflict("\(record.info.name) holds no credential for this node, so it cannot call it; pair "
                + "with it (`loopsy pair`) or add it with its key first", code: .peerHasNoCredential)
        }
        let grants = apply(record.grants)
        try node.peers.store.setGrants(record.nodeId, grants: grants, transferPaths: narrowing(record.transferPaths))
        node.logger.info("grants of peer \(record.info.name) (\(record.nodeId)) set to \(Grants.encode(grants))")
        guard let updated = try node.peers.store.get(record.nodeId) else { throw APIError.notFound("peer \(who)") }
        return try .json(info(forPeer: updated, defaults: defaults))
    }

    static func info(forPeer record: PeerRecord, defaults: Set<Capability>) -> GrantInfo {
        GrantInfo(kind: "peer", id: record.nodeId, name: record.info.name,
                  grants: (record.grants ?? defaults).sorted(), isDefault: record.grants == nil,
                  transferPaths: record.transferPaths)
    }

    private static func info(forKey name: String, _ context: RequestContext) throws -> GrantInfo {
        let entry = try context.node.keyGrants.get(name)
        return GrantInfo(kind: "key", id: "key:\(name)", name: name,
                         grants: (entry?.grants ?? context.node.authenticator.defaultGrants).sorted(),
                         isDefault: entry == nil, transferPaths: entry?.transferPaths)
    }

    private static func all(_ context: RequestContext) throws -> [GrantInfo] {
        let defaults = context.node.authenticator.defaultGrants
        let peers = try context.node.peers.store.all().filter(\.info.acceptsCredential)
            .map { info(forPeer: $0, defaults: defaults) }
        let keys = try context.node.authenticator.extraKeyNames.map { try info(forKey: $0, context) }
        return peers + keys
    }
}
