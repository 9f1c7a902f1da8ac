import LoopsyAPI
import LoopsyCore
import LoopsyPeers
import LoopsyRun
import LoopsyHTTP
import LoopsyStore
#if canImport(Glibc)
import Glibc
#endif

/// Health, status, identity, audit and the API description.
public enum SystemHandlers {
    /// Capabilities this build offers to peers.
    static func health(_ context: RequestContext) throws -> HTTPResponse {
        try .json(HealthResponse(status: "ok", nodeId: context.node.identity.nodeId, version: LoopsyVersion.current,
                                 uptime: context.node.uptime))
    }

    static func identity(_ context: RequestContext) throws -> HTTPResponse {
        try .json(context.node.peers.local.identityResponse())
    }

    static func status(_ context: RequestContext) throws -> HTTPResponse {
        let node = context.node
        let peers = try node.peers.store.count()
        return try .json(StatusResponse(
            nodeId: node.identity.nodeId, hostname: node.hostname, version: LoopsyVersion.current, port: node.port,
            // Where the node keeps its data, and its pid, are the owner's business.
            uptime: node.uptime, pid: context.caller.isOwner ? Int(getpid()) : 0,
            dataDir: context.caller.isOwner ? node.dataDir.root : "", peers: peers.all, peersOnline: peers.online, jobs: node.execution.runningJobs,
            context: try node.contextStore.count()))
    }

    static func events(_ context: RequestContext) throws -> HTTPResponse {
        guard let stream = context.node.events.subscribe() else {
            throw APIError.serviceUnavailable("\(context.node.events.maxSubscribers) live views are open already; "
                + "close one and retry")
        }
        return HTTPResponse(status: 200, headers: [("Content-Type", "text/event-stream"), ("X-Accel-Buffering", "no")],
                            stream: stream)
    }

    static func audit(_ context: RequestContext) throws -> HTTPResponse {
        let limit = try QueryValue.int(context, "limit", default: 100, range: 1...1000)
        let after = try QueryValue.int(context, "after", default: 0, range: 0...Int.max)
        context.node.auditLog.flushNow()
        return try .json(AuditListResponse(entries: try context.node.auditStore.recent(limit: limit,
                                                                                       afterId: Int64(after))))
    }
}

enum QueryValue {
    static func int(_ context: RequestContext, _ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = context.request.query[name] else { return value }
        guard let number = Int(text), range.contains(number) else {
            throw APIError.badRequest("query parameter '\(name)' must be an integer from \(range.lowerBound) "
                + "to \(range.upperBound)", code: .badQuery)
        }
        return number
    }
}
