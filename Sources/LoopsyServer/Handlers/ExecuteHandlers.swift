import LoopsyAPI
import LoopsyCore
import LoopsyRun
import LoopsyConfig
import LoopsyHTTP

/// Remote execution: run, stream, list and cancel jobs.
public enum ExecuteHandlers {
    static func execute(_ context: RequestContext) throws -> HTTPResponse {
        let (execution, command) = try approve(context)
        let stream = HTTPStream()
        let sink = CollectingSink(stream: stream, maxTextBytes: context.node.config.execution.maxOutputBytes)
        let info = try execution.start(command, caller: context.caller.id, owner: context.caller.isOwner,
                                       streamed: false, sink: sink)
        stream.onClose { _ = execution.cancel(info.jobId) }
        return HTTPResponse(status: 200, headers: [("Content-Type", "application/json"), ("X-Loopsy-Job", info.jobId)],
                            stream: stream)
    }

    static func stream(_ context: RequestContext) throws -> HTTPResponse {
        let (execution, command) = try approve(context)
        let stream = HTTPStream()
        let sink = EventStreamSink(stream: stream)
        let info = try execution.start(command, caller: context.caller.id, owner: context.caller.isOwner,
                                       streamed: true, sink: sink) { info in
            sink.started(info)
        }
        stream.onClose { _ = execution.cancel(info.jobId) }
        return HTTPResponse(status: 200, headers: [("Content-Type", "text/event-stream"), ("X-Loopsy-Job", info.jobId),
                                                   ("X-Accel-Buffering", "no")], stream: stream)
    }

    static func jobs(_ context: RequestContext) throws -> HTTPResponse {
        let execution = context.node.execution
        // Both parameters are checked even when unused: a wrong one is a 400, not ignored.
        let all = try QueryValue.flag(context, "all")
        let limit = try QueryValue.int(context, "limit", default: 100, range: 1...1000)
        // Jobs belong to the caller that started them; only the owner sees everyone's.
        let caller = context.caller.isOwner ? nil : context.caller.id
        var jobs = execution.running().filter { caller == nil || $0.caller == caller }
        var more = false
        if all {
            let finished = try execution.recent(limit: limit, caller: caller, maxBytes: listBytes)
            jobs += finished.jobs
            more = finished.more
        }
        return try .json(JobListResponse(jobs: jobs, more: more))
    }

    /// Most bytes of commands, arguments and directories (as stored) among the finished jobs of
    /// one listing, past the newest: 1000 jobs of 1 MiB of arguments made an answer of gigabytes.
    static let listBytes = 4 << 20

    static func cancel(_ context: RequestContext) throws -> HTTPResponse {
        let id = context.parameter("jobId")
        let execution = context.node.execution
        // Another caller's job is as absent as a finished one: its id says nothing.
        let visible = context.caller.isOwner
            || execution.running().contains { $0.jobId == id && $0.caller == context.caller.id }
        guard visible, execution.cancel(id) else { throw APIError.notFound("running job '\(id)'") }
        return try .json(CancelResponse(jobId: id, cancelled: true))
    }

    private static func approve(_ context: RequestContext) throws -> (ExecutionService, ApprovedCommand) {
        let request = try context.decode(ExecuteRequest.self)
        let execution = context.node.execution
        return (execution, try execution.approve(request))
    }
}
