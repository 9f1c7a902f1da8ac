import FoundationEssentials
import LoopsyAPI

extension LoopsyClient {
    public func peers() throws -> [PeerInfo] {
        try call("GET", API.peers(), as: PeerListResponse.self).peers
    }

    /// Adds a peer; the notes say what the daemon could not do (plain HTTP, no call-back key).
    public func addPeer(_ request: PeerAddRequest) throws -> (peer: PeerInfo, notes: [String]) {
        let response = try self.request("POST", API.peers(), body: Array(try JSONEncoder().encode(request)))
        let peer: PeerInfo
        do {
            peer = try SafeJSON.decode(PeerInfo.self, from: Data(response.body))
        } catch {
            throw ClientError.badResponse("peer could not be decoded (\(error))")
        }
        let notes = response.headers["x-loopsy-notice"].map {
            $0.split(separator: "|").map { $0.trimming() }
        } ?? []
        return (peer, notes)
    }

    public func removePeer(_ reference: String) throws {
        _ = try call("DELETE", API.peer(reference), as: DeletedResponse.self)
    }
}

extension LoopsyClient {
    /// What each peer with a credential and each extra key may do on this node.
    public func grants() throws -> [GrantInfo] {
        try call("GET", API.grants(), as: GrantListResponse.self).grants
    }

    /// Grants or revokes capabilities of a peer (name, nodeId or address) or a key ("key:NAME").
    public func changeGrants(_ who: String, _ change: GrantChangeRequest) throws -> GrantInfo {
        try call("POST", API.grant(who), body: change, as: GrantInfo.self)
    }
}
