/// `POST /ai-tasks`: run Claude Code (`claude -p`) with this prompt in `cwd`.
public struct AITaskRequest: Codable, Sendable {
    public var prompt: String
    public var cwd: String?
    public var model: String?
    /// default, acceptEdits, plan or bypassPermissions (the CLI's --permission-mode).
    public var permissionMode: String?
    public var allowedTools: [String]?
    public var disallowedTools: [String]?
    public var maxBudgetUsd: Double?
    public var resumeSessionId: String?

    public init(prompt: String, cwd: String? = nil, model: String? = nil, permissionMode: String? = nil,
                allowedTools: [String]? = nil, disallowedTools: [String]? = nil, maxBudgetUsd: Double? = nil,
                resumeSessionId: String? = nil) {
        self.prompt = prompt
        self.cwd = cwd
        self.model = model
        self.permissionMode = permissionMode
        self.allowedTools = allowedTools
        self.disallowedTools = disallowedTools
        self.maxBudgetUsd = maxBudgetUsd
        self.resumeSessionId = resumeSessionId
    }
}

/// A permission the task waits for (a tool call Claude wants to make).
public struct PermissionRequest: Codable, Sendable, Equatable {
    public var requestId: String
    public var toolName: String
    /// The tool's input, as JSON text.
    public var toolInput: String
    public var createdAt: Int64
    public var expiresAt: Int64

    public init(requestId: String, toolName: String, toolInput: String, createdAt: Int64, expiresAt: Int64) {
        self.requestId = requestId
        self.toolName = toolName
        self.toolInput = toolInput
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}

public struct AITaskInfo: Codable, Sendable, Equatable {
    public var id: String
    /// pending, running, waiting_approval, completed, failed or cancelled.
    public var state: TaskState
    public var prompt: String
    public var cwd: String
    public var caller: String
    public var createdAt: Int64
    public var startedAt: Int64?
    public var finishedAt: Int64?
    public var exitCode: Int?
    /// Claude Code's session id (for resumeSessionId).
    public var sessionId: String?
    public var costUsd: Double?
    public var error: String?
    /// The number of events so far (stream them with ?since=).
    public var lastEvent: Int64
    public var pendingApprovals: [PermissionRequest]

    public init(id: String, state: TaskState, prompt: String, cwd: String, caller: String, createdAt: Int64,
                startedAt: Int64?, finishedAt: Int64?, exitCode: Int?, sessionId: String?, costUsd: Double?,
                error: String?, lastEvent: Int64, pendingApprovals: [PermissionRequest]) {
        self.id = id
        self.state = state
        self.prompt = prompt
        self.cwd = cwd
        self.caller = caller
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.exitCode = exitCode
        self.sessionId = sessionId
        self.costUsd = costUsd
        self.error = error
        self.lastEvent = lastEvent
        self.pendingApprovals = pendingApprovals
    }

    public var isFinished: Bool { state.isFinished }
}

/// Tasks, newest first. `more`: older ones were left out (the `limit`, or about 4 MiB of
/// prompts); a larger `limit` shows more of them.
public struct AITaskListResponse: Codable, Sendable {
    public var tasks: [AITaskInfo]
    public var more: Bool
    public init(tasks: [AITaskInfo], more: Bool = false) {
        self.tasks = tasks
        self.more = more
    }

    private enum CodingKeys: String, CodingKey { case tasks, more }

    /// A daemon from before `more` did not send it.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        tasks = try container.decode([AITaskInfo].self, forKey: .tasks)
        more = try container.decodeIfPresent(Bool.self, forKey: .more) ?? false
    }
}

/// One stored event of a task; `data` is its JSON object as text (what the SSE event carries).
public struct AITaskEvent: Codable, Sendable, Equatable {
    public var seq: Int64
    public var time: Int64
    /// text, thinking, tool_use, tool_result, permission_request, permission_decision, result,
    /// output (a line that is not stream-json), error, truncated (aiTasks.maxEventBytes reached), exit.
    public var type: String
    public var data: String

    public init(seq: Int64, time: Int64, type: String, data: String) {
        self.seq = seq
        self.time = time
        self.type = type
        self.data = data
    }
}

public struct AITaskEventsResponse: Codable, Sendable {
    public var events: [AITaskEvent]
    public init(events: [AITaskEvent]) { self.events = events }
}

/// `POST /ai-tasks/{id}/approve`.
public struct ApprovalRequest: Codable, Sendable {
    public var requestId: String
    public var approved: Bool
    public var message: String?
    public init(requestId: String, approved: Bool, message: String? = nil) {
        self.requestId = requestId
        self.approved = approved
        self.message = message
    }
}

/// `POST /ai-tasks/{id}/permissions`: the task's PreToolUse hook asks (and waits for) a decision.
public struct PermissionAsk: Codable, Sendable {
    public var toolName: String
    public var toolInput: String
    public init(toolName: String, toolInput: String) {
        self.toolName = toolName
        self.toolInput = toolInput
    }
}

public struct PermissionDecision: Codable, Sendable {
    public var approved: Bool
    public var message: String
    public init(approved: Bool, message: String) {
        self.approved = approved
        self.message = message
    }
}

/// Where an AI task is in its life. Open like `ErrorCode`'s text: a newer peer's state decodes
/// (and prints) as itself instead of failing the whole answer.
public struct TaskState: WireWord {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let pending = TaskState(rawValue: "pending")
    public static let running = TaskState(rawValue: "running")
    /// Its Claude asked for a permission and waits for the answer.
    public static let waitingApproval = TaskState(rawValue: "waiting_approval")
    public static let completed = TaskState(rawValue: "completed")
    public static let failed = TaskState(rawValue: "failed")
    public static let cancelled = TaskState(rawValue: "cancelled")
    /// The states this build sets.
    public static let allCases: [TaskState] = [.pending, .running, .waitingApproval, .completed, .failed, .cancelled]

    /// Completed, failed or cancelled: it will not change again.
    public var isFinished: Bool { [.completed, .failed, .cancelled].contains(self) }
}
