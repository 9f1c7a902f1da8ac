import LoopsyAPI
import LoopsyRun
import LoopsyCore
import LoopsyHTTP

/// Claude Code tasks: dispatch, list, show, stream (resumable), approve, cancel; and the route
/// the task's own permission hook asks on.
public enum TaskHandlers {
    static func create(_ context: RequestContext) throws -> HTTPResponse {
        let request = try context.decode(AITaskRequest.self)
        return try .json(try context.node.tasks.start(request, caller: context.caller.id, owner: context.caller.isOwner),
                         status: 201)
    }

    static func list(_ context: RequestContext) throws -> HTTPResponse {
        let limit = try QueryValue.int(context, "limit", default: 50, range: 1...1000)
        let page = try context.node.tasks.list(limit: limit, caller: context.caller.isOwner ? nil : context.caller.id,
                                               maxBytes: listBytes)
        return try .json(AITaskListResponse(tasks: page.tasks, more: page.more))
    }

    /// Most bytes of prompts (as stored) in one listing, past the newest task: 1000 prompts of
    /// 200 kB made answers of 200 MB.
    static let listBytes = 4 << 20

    /// Only the node's own key, or whoever started the task.
    private static func authorized(_ context: RequestContext) throws -> String {
        let id = context.parameter("id")
        try context.node.tasks.authorize(id, caller: context.caller.id, owner: context.caller.isOwner)
        return id
    }

    static func get(_ context: RequestContext) throws -> HTTPResponse {
        let id = try authorized(context)
        guard let info = try context.node.tasks.info(id) else { throw APIError.notFound("task \(id)") }
        return try .json(info)
    }

    static func events(_ context: RequestContext) throws -> HTTPResponse {
        let id = try authorized(context)
        guard try context.node.tasks.info(id) != nil else { throw APIError.notFound("task \(id)") }
        let since = try QueryValue.int(context, "since", default: 0, range: 0...Int.max)
        let limit = try QueryValue.int(context, "limit", default: 1000, range: 1...10_000)
        let page = try context.node.tasks.store.eventsPage(id, after: Int64(since), limit: limit, maxBytes: eventsPageBytes)
        return try .json(AITaskEventsResponse(events: page.events))
    }

    /// Event data in one page of `events`, unless its first event alone is more: events are up
    /// to a line of output each, and 10,000 of them would be built into one body.
    static let eventsPageBytes = 16 << 20

    /// SSE from event `since` (or the Last-Event-ID a reconnecting client sends) onwards.
    static func stream(_ context: RequestContext) throws -> HTTPResponse {
        var since = try QueryValue.int(context, "since", default: 0, range: 0...Int.max)
        if context.request.query["since"] == nil, let last = context.request.header("last-event-id").flatMap(Int.init),
           last >= 0 {
            since = last
        }
        let stream = HTTPStream()
        let unsubscribe = try context.node.tasks.subscribe(try authorized(context), since: Int64(since),
                                                           SSEStreamSink(stream))
        stream.onClose(unsubscribe)
        return HTTPResponse(status: 200, headers: [("Content-Type", "text/event-stream")], stream: stream)
    }

    static func approve(_ context: RequestContext) throws -> HTTPResponse {
        let id = try authorized(context)
        try context.node.tasks.decide(id, try context.decode(ApprovalRequest.self), owner: context.caller.isOwner)
        guard let info = try context.node.tasks.info(id) else { throw APIError.notFound("task \(id)") }
        return try .json(info)
    }

    static func cancel(_ context: RequestContext) throws -> HTTPResponse {
        let id = try authorized(context)
        guard let info = try context.node.tasks.cancel(id) else { throw APIError.notFound("task \(id)") }
        return try .json(info)
    }

    /// Only this node's own key: the hook runs here, as the daemon's user.
    static func permission(_ context: RequestContext) throws -> HTTPResponse {
        let answer = try context.node.tasks.ask(context.parameter("id"), try context.decode(PermissionAsk.self))
        return try context.respond(answer) { try .json($0) }
    }
}

/// A domain's event stream as Server-Sent Events: `id`, `event` and `data` lines per event.
final class SSEStreamSink: EventSink {
    private let stream: HTTPStream

    init(_ stream: HTTPStream) { self.stream = stream }

    /// Replayed or live, an event that does not fit the stream's buffer is refused (the reader
    /// resumes from the last id it got): what one request holds is bounded either way.
    func send(_ event: StreamedEvent, replayed: Bool) -> Bool {
        stream.write(Array("id: \(event.id)\nevent: \(event.name)\ndata: \(event.data)\n\n".utf8))
    }

    func finish() { stream.finish() }
}
