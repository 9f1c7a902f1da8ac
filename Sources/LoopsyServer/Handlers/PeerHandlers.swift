import LoopsyAPI
import LoopsyCore
import LoopsyPeers
import LoopsyClient
import LoopsyHTTP
import LoopsyStore

/// The peer registry and forwarding: `/peers/{peer}/...` relays any API call to a peer with
/// the credential and pin this node holds, so local clients never see a peer's key.
public enum PeerHandlers {
    static func list(_ context: RequestContext) throws -> HTTPResponse {
        let defaults = context.node.authenticator.defaultGrants
        return try .json(PeerListResponse(peers: try context.node.peers.store.all().map { record in
            var info = record.info
            if info.acceptsCredential {
                info.grants = (record.grants ?? defaults).sorted()
                info.defaultGrants = record.grants == nil
                info.transferPaths = record.transferPaths
            }
            return info
        }))
    }

    static func add(_ context: RequestContext) throws -> HTTPResponse {
        let request = try context.decode(PeerAddRequest.self)
        let context = context.withoutBody
        // Probing the address takes up to 10 s per scheme: off the HTTP worker.
        return try context.offload {
            let (record, notes) = try context.node.peers.add(request)
            for note in notes { context.node.logger.warn("peers add \(request.address): \(note)") }
            context.node.monitor?.wake()
            var response = try HTTPResponse.json(record.info, status: 201)
            if !notes.isEmpty { response.setHeader("X-Loopsy-Notice", notes.joined(separator: " | ")) }
            return response
        }
    }

    static func remove(_ context: RequestContext) throws -> HTTPResponse {
        let record = try context.node.peers.resolve(context.parameter("nodeId"))
        try context.node.peers.store.remove(record.nodeId)
        context.node.logger.info("peer \(record.info.name) (\(record.nodeId)) removed; its credential is revoked")
        return try .json(DeletedResponse(deleted: true))
    }

    static func handshake(_ context: RequestContext) throws -> HTTPResponse {
        let request = try context.decode(PeerHandshakeRequest.self)
        if let peer = context.caller.peerNodeId, peer != request.nodeId {
            throw APIError.forbidden("a peer can only introduce itself", code: .credentialNodeMismatch)
        }
        let response = try context.node.peers.acceptHandshake(request, remoteAddress: context.request.remoteAddress,
                                                              secure: context.request.secure)
        context.node.monitor?.wake()
        return try .json(response)
    }

    // MARK: Forwarding

    /// Called once the request is admitted, before its body arrives: the relay starts now so the
    /// body streams through.
    static func forwardSink(_ context: RequestContext) throws -> any HTTPBodySink {
        try startRelay(context, hasBody: true)
    }

    static func forward(_ context: RequestContext) throws -> HTTPResponse {
        let relay: PeerRelay
        if let started = context.request.bodySink as? PeerRelay {
            relay = started
        } else {
            relay = try startRelay(context, hasBody: false)
        }
        relay.endBody()
        return relay.response()
    }

    private static func startRelay(_ context: RequestContext, hasBody: Bool) throws -> PeerRelay {
        // One hop only: the route is the owner's, and a call another node relays here arrives
        // with that node's peer credential, so it is never relayed again.
        let path = context.parameter("path")
        try PeerRelay.checkPath(path)
        let record = try context.node.peers.resolve(context.parameter("peer"))
        return try PeerRelay.start(service: context.node.peers, record: record, method: context.request.method,
                                   path: path, query: PeerRelay.encodedQuery(context.request.query),
                                   headers: context.request.headers, hasBody: hasBody)
    }

}
