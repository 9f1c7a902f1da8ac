import LoopsyAPI
import LoopsyMessaging
import LoopsyStore
import LoopsyHTTP

/// Permission prompts of live Claude Code sessions (loopsy-mcp records them, people answer).
public enum ApprovalHandlers {
    static func create(_ context: RequestContext) throws -> HTTPResponse {
        try .json(try context.node.approvals.create(try context.decode(ApprovalCreateRequest.self)), status: 201)
    }

    static func list(_ context: RequestContext) throws -> HTTPResponse {
        let limit = try QueryValue.int(context, "limit", default: 100, range: 1...1000)
        let state = try context.request.query["state"].map { text in
            guard let state = ApprovalState.allCases.first(where: { $0.rawValue == text }) else {
                throw APIError.badRequest("state must be one of " + ApprovalState.allCases.map(\.rawValue).joined(separator: ", "),
                                          code: .badQuery)
            }
            return state
        }
        return try .json(ApprovalListResponse(approvals: try context.node.approvals.store.list(
            state: state, limit: limit, now: Clock.nowMillis())))
    }

    /// The approval; with `wait`, answered once it is no longer pending (or when the wait ends).
    static func get(_ context: RequestContext) throws -> HTTPResponse {
        let id = context.parameter("id")
        let wait = try QueryValue.int(context, "wait", default: 0, range: 0...60)
        return try context.respondAsStream(try context.node.approvals.approval(id, wait: wait))
    }

    static func answer(_ context: RequestContext) throws -> HTTPResponse {
        let body = try context.decode(ApprovalAnswerRequest.self)
        return try .json(try context.node.approvals.answer(context.parameter("id"), behavior: body.behavior,
                                                           caller: context.caller))
    }
}
