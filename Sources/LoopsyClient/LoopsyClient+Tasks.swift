import FoundationEssentials
import LoopsyAPI

extension LoopsyClient {
    public func startTask(_ request: AITaskRequest) throws -> AITaskInfo {
        try call("POST", API.aiTasks(), body: request, as: AITaskInfo.self)
    }

    public func tasks(limit: Int = 50) throws -> [AITaskInfo] {
        try taskList(limit: limit).tasks
    }

    /// The newest `limit` tasks, and whether older ones were left out.
    public func taskList(limit: Int = 50) throws -> AITaskListResponse {
        try call("GET", API.aiTasks(query: ["limit": limit]), as: AITaskListResponse.self)
    }

    public func task(_ id: String) throws -> AITaskInfo {
        try call("GET", API.aiTask(id), as: AITaskInfo.self)
    }

    public func taskEvents(_ id: String, since: Int64 = 0) throws -> [AITaskEvent] {
        try call("GET", API.aiTaskEvents(id, query: ["since": since]), as: AITaskEventsResponse.self)
            .events
    }

    public func approveTask(_ id: String, _ approval: ApprovalRequest) throws -> AITaskInfo {
        try call("POST", API.aiTaskApprove(id), body: approval, as: AITaskInfo.self)
    }

    public func cancelTask(_ id: String) throws -> AITaskInfo {
        try call("DELETE", API.aiTask(id), as: AITaskInfo.self)
    }

    public func askPermission(_ id: String, _ question: PermissionAsk) throws -> PermissionDecision {
        try call("POST", API.aiTaskPermissions(id), body: question,
                 as: PermissionDecision.self)
    }

    /// Streams a task's events from `since` until it ends (or `onEvent` returns false).
    public func streamTask(_ id: String, since: Int64 = 0, isCancelled: (() -> Bool)? = nil,
                           onEvent: @escaping (SSEEvent) -> Bool) throws {
        var parser = SSEParser()
        try stream("GET", API.aiTaskStream(id, query: ["since": since]), body: nil,
                   isCancelled: isCancelled) { bytes in
            for event in parser.feed(bytes) where !onEvent(event) { return false }
            return !parser.overflowed
        }
        try parser.checkOverflow(API.aiTaskStream(id))
    }
}
