import Dispatch
import FoundationEssentials
import LoopsyAPI
import LoopsyCore
import LoopsyConfig
import LoopsyPOSIX
import LoopsyStore
#if canImport(Glibc)
import Glibc
#endif

/// Claude Code tasks: `claude -p <prompt> --output-format stream-json --verbose` on a PTY, its
/// lines parsed into typed events stored in SQLite (streams resume from any event), permission
/// requests routed to whoever approves through the API, cancel and a maximum duration that kill
/// the task's process group. Per-task settings (the PreToolUse hook that asks this daemon) live
/// in a file of the task's own, passed with --settings and removed afterwards: nothing is added
/// to the user's Claude settings, and no key is put in argv or the environment.
public final class TaskService: Sendable {
    public let store: TaskStore
    private let config: LoopsyConfig.AITasks
    /// The same policy as /execute: the cwd check, the environment's minimal set, and whether an
    /// allowlist is in force (then only the owner answers a peer's permission requests).
    private let policy: ExecutionPolicy
    private let dataDir: DataDir
    private let logger: Logger
    private let tasks = PlainMutex<[String: RunningTask]>([:])

    /// A task whose process runs.
    final class RunningTask: Sendable {
        struct State {
            var pid: pid_t = 0
            var subscribers: [ObjectIdentifier: any EventSink] = [:]
            var pending: [String: (request: PermissionRequest, answer: Pending<PermissionDecision>)] = [:]
            var cancelled = false
            var timedOut = false
            var resultIsError = false
            var sawResult = false
            /// Set when the task ended: a stream that arrives later is finished at once.
            var finished = false
            /// Set once the process ended: a permission question that comes later is refused at once.
            var askingClosed = false
            /// Event data stored so far, against `aiTasks.maxEventBytes`; events dropped past it.
            var storedBytes = 0
            var dropped = 0
        }
        let id: String
        let request: AITaskRequest
        let caller: String
        /// Started with the node's own key (not by a peer).
        let startedByOwner: Bool
        let state = PlainMutex(State())
        init(id: String, request: AITaskRequest, caller: String, startedByOwner: Bool) {
            self.id = id
            self.request = request
            self.caller = caller
            self.startedByOwner = startedByOwner
        }
    }

    private let changes: ChangeBus?

    public convenience init(pool: DatabasePool, config: LoopsyConfig.AITasks, execution: ExecutionService, dataDir: DataDir,
                            logger: Logger, changes: ChangeBus? = nil) {
        self.init(pool: pool, config: config, policy: execution.policy, dataDir: dataDir, logger: logger, changes: changes)
    }

    init(pool: DatabasePool, config: LoopsyConfig.AITasks, policy: ExecutionPolicy, dataDir: DataDir, logger: Logger,
         changes: ChangeBus? = nil) {
        store = TaskStore(pool: pool)
        self.policy = policy
        self.changes = changes
        self.config = config
        self.dataDir = dataDir
        self.logger = logger
        if let interrupted = try? store.failInterrupted(now: Clock.nowMillis()), !interrupted.isEmpty {
            logger.warn("ai tasks: \(interrupted.count) task(s) were running when the daemon stopped; marked failed")
        }
    }

    static let permissionModes = ["default", "acceptEdits", "plan", "bypassPermissions"]

    // MARK: Starting

    /// `owner`: the node's own key. Other callers (peers) cannot widen what the task may do
    /// without asking: every permission then goes through an approval.
    public func start(_ request: AITaskRequest, caller: String, owner: Bool) throws -> AITaskInfo {
        try validate(request)
        if !owner && (request.permissionMode == "bypassPermissions" || !(request.allowedTools ?? []).isEmpty) {
            throw APIError.forbidden("only this node's own key may start a task with bypassPermissions or allowedTools; "
                + "a peer's task asks for each permission", code: .taskOptionsForbidden)
        }
        // Another caller resumes only a session of a task it started itself: `--resume` also
        // opens any session on this machine by its id or its title (the owner's conversations).
        if !owner, let resume = request.resumeSessionId {
            guard Self.isSessionId(resume), try store.hasSession(resume, caller: caller) else {
                throw APIError.forbidden("a peer may resume only the session of a task it started here (that task's "
                    + "sessionId)", code: .taskOptionsForbidden)
            }
        }
        // The same directory check as a command's: absolute, an existing directory, its real path.
        let cwd = try policy.directory(request.cwd ?? DataDir.homeDirectory())
        guard let claude = Programs.onPath(config.claudePath) else {
            throw APIError(status: 503, code: .claudeMissing, message: "the Claude Code CLI ('\(config.claudePath)') is "
                + "not installed on this machine; install it or set aiTasks.claudePath")
        }
        let id = "task_" + Secrets.apiKey().prefix(16)
        let task = RunningTask(id: id, request: request, caller: caller, startedByOwner: owner)
        let shares = PlaceShares(limit: config.maxConcurrent, setting: "aiTasks.maxConcurrent", holders: "tasks running")
        try tasks.withLock { tasks in
            if let refusal = shares.refusal(owner: owner, total: tasks.count,
                                            byCaller: tasks.values.count { $0.caller == caller },
                                            byOthers: tasks.values.count { !$0.startedByOwner }) {
                throw APIError.tooManyRequests(shares.message(refusal), retryAfter: 10)
            }
            tasks[id] = task
        }
        do {
            let options = String(decoding: try JSONEncoder().encode(request), as: UTF8.self)
            try store.create(id: id, caller: caller, prompt: request.prompt, cwd: cwd, options: options,
                             now: Clock.nowMillis())
            let settings = try writeSettings(id)
            try launch(task, claude: claude, cwd: cwd, settings: settings)
        } catch {
            _ = tasks.withLock { $0.removeValue(forKey: id) }
            try? store.update(id, state: .failed, finishedAt: Clock.nowMillis(), error: "\(error)")
            throw error
        }
        return try info(id) ?? { throw APIError.notFound("task \(id)") }()
    }

    private func validate(_ request: AITaskRequest) throws {
        guard !request.prompt.trimming().isEmpty, request.prompt.utf8.count <= 200_000 else {
            throw APIError.badRequest("prompt must be 1–200000 bytes", code: .badPrompt)
        }
        if let mode = request.permissionMode, !Self.permissionModes.contains(mode) {
            throw APIError.badRequest("permissionMode must be one of \(Self.permissionModes.joined(separator: ", "))")
        }
        for tool in (request.allowedTools ?? []) + (request.disallowedTools ?? []) {
            guard !tool.isEmpty, tool.utf8.count <= 200, !tool.unicodeScalars.contains(where: { $0.value < 0x20 }),
                  !tool.hasPrefix("-") else {
                throw APIError.badRequest("tool names must be 1–200 printable characters, not starting with '-'")
            }
        }
        if let budget = request.maxBudgetUsd, !(budget > 0 && budget <= 10_000) {
            throw APIError.badRequest("maxBudgetUsd must be more than 0 and at most 10000")
        }
        if let resume = request.resumeSessionId,
           resume.isEmpty || resume.hasPrefix("-") || resume.utf8.count > 200 {
            throw APIError.badRequest("resumeSessionId is not a session id")
        }
        if let model = request.model, model.isEmpty || model.hasPrefix("-") || model.utf8.count > 200 {
            throw APIError.badRequest("model is not a model name")
        }
    }

    /// The task's own settings file: a PreToolUse hook that asks this daemon.
    private func writeSettings(_ id: String) throws -> String {
        let directory = dataDir.root + "/tasks/" + id
        try SecureFile.makeDirectory(dataDir.root + "/tasks")
        try SecureFile.makeDirectory(directory)
        let loopsy = Programs.companion("loopsy") ?? "loopsy"
        let command = "'\(loopsy)' task hook --task \(id)"
        let settings: JSONValue = ["hooks": ["PreToolUse": [[
            "matcher": "*",
            "hooks": [["type": "command", "command": .string(command), "timeout": .integer(config.approvalTimeoutSeconds + 60)]],
        ]]]]
        let path = directory + "/settings.json"
        try SecureFile.write(path, contents: settings.serialized() + "\n", mode: 0o600)
        return path
    }

    private func arguments(_ request: AITaskRequest, settings: String, owner: Bool) -> [String] {
        var arguments = ["-p", "--output-format", "stream-json", "--verbose", "--settings", settings]
        // `-p` skips the workspace trust dialog, so the directory's own .claude/settings.json
        // (hooks that run at once, with no approval) and .mcp.json would apply: for another
        // caller's task only the user's settings and this task's hook count, and no MCP server.
        if !owner { arguments += ["--setting-sources", "user", "--strict-mcp-config"] }
        if let model = request.model { arguments += ["--model", model] }
        if let mode = request.permissionMode { arguments += ["--permission-mode", mode] }
        if let tools = request.allowedTools, !tools.isEmpty { arguments += ["--allowedTools", tools.joined(separator: ",")] }
        if let tools = request.disallowedTools, !tools.isEmpty {
            arguments += ["--disallowedTools", tools.joined(separator: ",")]
        }
        if let budget = request.maxBudgetUsd { arguments += ["--max-budget-usd", String(budget)] }
        if let session = request.resumeSessionId { arguments += ["--resume", session] }
        // The prompt is the CLI's positional argument: after "--", so a prompt that starts with
        // "-" (say "--mcp-config=…") can never be read as an option.
        return arguments + ["--", request.prompt]
    }

    private func launch(_ task: RunningTask, claude: String, cwd: String, settings: String) throws {
        // Not the daemon's whole environment: the minimal set, the names in aiTasks.environment,
        // and what the task's PreToolUse hook (`loopsy task hook`) needs to reach this daemon.
        var environment = policy.environment(passing: config.environment).filter { !$0.key.hasPrefix("LOOPSY_") }
        environment["LOOPSY_DATA_DIR"] = dataDir.root
        environment["LOOPSY_TASK_ID"] = task.id
        // Registered as a task's main process as it starts; the user's umask, not the daemon's.
        let pid: pid_t, master: Int32
        do {
            (pid, master) = try Subprocess.spawnOnTerminal(
                executable: claude, argv: [claude] + arguments(task.request, settings: settings, owner: task.startedByOwner),
                environment: environment.map { "\($0.key)=\($0.value)" }, cwd: cwd, umask: UserUmask.value,
                around: { ChildProcesses.shared.spawn($0) })
        } catch {
            throw SystemCallFailure("forkpty", error)
        }
        task.state.withLock { $0.pid = pid }
        try store.update(task.id, state: .running, startedAt: Clock.nowMillis())
        logger.info("ai task \(task.id) started (pid \(pid)) in \(cwd)")
        DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(config.maxDurationSeconds)) { [weak task, self] in
            guard let task else { return }
            task.state.withLock { $0.timedOut = true }
            kill(task)
        }
        // One blocking reader per task (at most aiTasks.maxConcurrent of them).
        let reader: @Sendable () -> Void = { [self, master] in readLoop(task, master: master, pid: pid) }
        if !DedicatedThread.start("loopsy-task", reader) { DispatchQueue.global().async(execute: reader) }
    }

    // MARK: Output

    /// Reads the terminal until claude has exited and its output is drained. The end is the
    /// process's exit (a pidfd), not the terminal's EOF: a descendant that keeps the terminal
    /// open (a detached helper, say) must not keep the task "running".
    private func readLoop(_ task: RunningTask, master: Int32, pid: pid_t) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var line: [UInt8] = []
        let exited = Descriptors.processFD(pid)
        defer { if exited >= 0 { close(exited) } }
        var exitSeen = false
        while true {
            var fds = [pollfd(fd: master, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: exited, events: Int16(POLLIN), revents: 0)]
            // After the exit, whatever is still buffered is read; 200 ms of silence ends it.
            let ready = retryingInterrupts { poll(&fds, exited >= 0 && !exitSeen ? 2 : 1, exitSeen ? 200 : -1) }
            if ready <= 0 { break }
            if fds[1].revents != 0 { exitSeen = true }
            guard fds[0].revents != 0 else { continue }
            let count = retryingInterrupts { read(master, &buffer, buffer.count) }
            if count <= 0 { break }  // EIO once the child and its terminal are gone
            // A task cancelled or past its time is drained, not recorded: what its terminal
            // still held (tens of thousands of short lines) kept it "running", its slot taken,
            // for minutes after the cancel.
            if task.state.withLock({ $0.cancelled || $0.timedOut }) {
                line.removeAll(keepingCapacity: true)
                continue
            }
            for byte in buffer[0..<count] {
                if byte == UInt8(ascii: "\n") {
                    handle(line, task)
                    line.removeAll(keepingCapacity: true)
                } else if byte != UInt8(ascii: "\r") {
                    line.append(byte)
                }
            }
            if line.count > 8 * 1024 * 1024 { line.removeAll() }  // a runaway line is dropped, not kept
        }
        if !line.isEmpty { handle(line, task) }
        close(master)
        var status: Int32 = 0
        _ = retryingInterrupts { waitpid(pid, &status, 0) }
        ChildProcesses.shared.release(pid)  // what it left behind goes now
        finish(task, status: status)
    }

    private func handle(_ bytes: [UInt8], _ task: RunningTask) {
        // The terminal adds control sequences (cursor shown or hidden, colours): text events
        // carry only the text.
        let text = TerminalText.plain(String(decoding: bytes, as: UTF8.self))
        guard !text.trimming().isEmpty else { return }
        guard text.hasPrefix("{"), let message = try? JSONValue.parse(text) else {
            emit(task, "output", ["text": .string(text)])
            return
        }
        switch message["type"] {
        case "system":
            let session = Self.sessionId(message["session_id"])
            if let session { try? store.recordResult(task.id, sessionId: session, costUsd: nil) }
            emit(task, "init", ["sessionId": session.map { .string($0) } ?? .null, "model": message["model"] ?? .null,
                                "cwd": message["cwd"] ?? .null])
        case "assistant":
            for item in Self.content(message) {
                switch item["type"] {
                case "text": emit(task, "text", ["text": item["text"] ?? ""])
                case "thinking": emit(task, "thinking", ["text": item["thinking"] ?? ""])
                case "tool_use":
                    emit(task, "tool_use", ["id": item["id"] ?? .null, "name": item["name"] ?? .null,
                                            "input": item["input"] ?? .null])
                default: emit(task, "other", ["message": item])
                }
            }
        case "user":
            for item in Self.content(message) where item["type"] == "tool_result" {
                emit(task, "tool_result", ["toolUseId": item["tool_use_id"] ?? .null,
                                           "isError": item["is_error"] ?? false, "content": Self.flatten(item["content"])])
            }
        case "result":
            // A cost no answer could carry (negative, past WireRange.costUsd) is not kept.
            let cost: Double? = {
                let value: Double
                switch message["total_cost_usd"] {
                case .number(let number)?: value = number
                case .integer(let number)?: value = Double(number)
                default: return nil
                }
                return WireRange.costUsd.contains(value) ? value : nil
            }()
            let session = Self.sessionId(message["session_id"])
            try? store.recordResult(task.id, sessionId: session, costUsd: cost)
            task.state.withLock { state in
                state.sawResult = true
                state.resultIsError = message["is_error"] == true
            }
            emit(task, "result", ["subtype": message["subtype"] ?? .null, "isError": message["is_error"] ?? false,
                                  "costUsd": message["total_cost_usd"] ?? .null,
                                  "sessionId": session.map { .string($0) } ?? .null,
                                  "durationMs": message["duration_ms"] ?? .null, "numTurns": message["num_turns"] ?? .null,
                                  "result": message["result"] ?? .null])
        default:
            emit(task, "other", ["message": message])
        }
    }

    /// A session id as Claude Code makes them (a UUID): at most 64 letters, digits and dashes.
    /// Anything else the program prints there is not kept (8 MB ones made each task list
    /// hundreds of MB) and cannot be resumed.
    static func sessionId(_ value: JSONValue?) -> String? {
        guard case .string(let text)? = value, isSessionId(text) else { return nil }
        return text
    }

    static func isSessionId(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count) && text.utf8.first != UInt8(ascii: "-")
            && text.utf8.allSatisfy { $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || (48...57).contains($0)
                || (65...90).contains($0) || (97...122).contains($0) }
    }

    private static func content(_ message: JSONValue) -> [JSONValue] {
        if case .array(let items)? = message["message"]?["content"] { return items }
        return []
    }

    private static func flatten(_ content: JSONValue?) -> JSONValue {
        guard case .array(let parts)? = content else { return content ?? "" }
        var text = ""
        for part in parts { if case .string(let piece)? = part["text"] { text += piece } }
        return .string(text)
    }

    /// Stores an event and hands it to every live stream, in one step per task (so a stream
    /// that subscribes while replaying misses nothing and sees nothing twice).
    private func emit(_ task: RunningTask, _ type: String, _ fields: KeyValuePairs<String, JSONValue>) {
        task.state.withLock { state in
            let data = Self.compact(.object(fields.map { ($0.key, $0.value) }))
            let cost = data.utf8.count + Self.eventOverhead
            // Once one event was dropped, every later one but the essential is: a reader must not
            // meet a gap in the middle of what is kept.
            let kept = type == "exit"
                || (Self.essential.contains(type) && state.storedBytes + cost <= config.maxEventBytes + Self.essentialSlack)
                || (state.dropped == 0 && state.storedBytes + cost <= config.maxEventBytes)
            guard kept else {
                state.dropped += 1
                guard state.dropped == 1 else { return }
                // Said once, where a reader sees it, in place of what is left out.
                let note = Self.compact(.object([
                    ("maxEventBytes", .integer(config.maxEventBytes)),
                    ("message", .string("this task's events reached aiTasks.maxEventBytes: from here on only its "
                                        + "permission requests, result and end are kept"))]))
                store(note, as: "truncated", for: task, &state)
                return
            }
            state.storedBytes += cost
            store(data, as: type, for: task, &state)
        }
        // Live views hear of what needs a person, and of the end.
        if ["permission_request", "permission_decision", "result"].contains(type) {
            changes?.publish(.aiTasks, detail: ["id": task.id, "event": type])
        }
    }

    /// The events kept past `aiTasks.maxEventBytes`, within `essentialSlack` more: what a reader
    /// cannot do without. The end (`exit`, which only the daemon writes) is always kept; a
    /// `result` is whatever line the program printed with that type, so these are capped too.
    static let essential: Set<String> = ["permission_request", "permission_decision", "result"]
    static let essentialSlack = 1 << 20
    /// What an event costs besides its data (its row, number, time, type and index entry): many
    /// empty events are not free.
    static let eventOverhead = 64

    /// Stores one event and sends it to the task's live streams (under the task's lock).
    private func store(_ data: String, as type: String, for task: RunningTask, _ state: inout RunningTask.State) {
        guard let event = try? store.append(task.id, type: type, data: data, now: Clock.nowMillis()) else {
            logger.warn("ai task \(task.id): could not store a \(type) event")
            return
        }
        let streamed = Self.streamed(event)
        for (key, sink) in state.subscribers where !sink.send(streamed, replayed: false) {
            sink.finish()  // a reader this far behind resumes with ?since=
            state.subscribers.removeValue(forKey: key)
        }
    }

    static func compact(_ value: JSONValue) -> String {
        (try? JSONEncoder().encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    static func streamed(_ event: AITaskEvent) -> StreamedEvent {
        StreamedEvent(id: event.seq, name: event.type, data: event.data)
    }

    private func finish(_ task: RunningTask, status: Int32) {
        let exitCode = Int(ExitStatus(waitStatus: status).code)
        let (cancelled, timedOut, sawResult, resultIsError, pending) = task.state.withLock { state in
            state.askingClosed = true
            defer { state.pending = [:] }
            return (state.cancelled, state.timedOut, state.sawResult, state.resultIsError, state.pending)
        }
        // A hook still waiting gets a refusal.
        for (_, waiting) in pending { waiting.answer.succeed(PermissionDecision(approved: false, message: "the task ended")) }
        let state: TaskState
        var error: String?
        if cancelled {
            state = .cancelled
        } else if timedOut {
            state = .failed
            error = "stopped after aiTasks.maxDurationSeconds (\(config.maxDurationSeconds) s)"
        } else if exitCode == 0 && sawResult && !resultIsError {
            state = .completed
        } else {
            state = .failed
            error = sawResult ? "Claude reported an error" : "claude exited with \(exitCode) without a result"
        }
        emit(task, "exit", ["exitCode": .integer(exitCode), "state": .string(state.rawValue), "error": error.map { .string($0) } ?? .null])
        try? store.update(task.id, state: state, finishedAt: Clock.nowMillis(), exitCode: exitCode, error: error)
        removeSettings(task.id)
        _ = tasks.withLock { $0.removeValue(forKey: task.id) }
        changes?.publish(.aiTasks, detail: ["id": task.id, "state": state.rawValue])
        let streams = task.state.withLock { state -> [any EventSink] in
            state.finished = true
            defer { state.subscribers.removeAll() }
            return Array(state.subscribers.values)
        }
        streams.forEach { $0.finish() }
        logger.info("ai task \(task.id) \(state.rawValue) (exit \(exitCode))")
    }

    private func removeSettings(_ id: String) {
        let directory = dataDir.root + "/tasks/" + id
        unlink(directory + "/settings.json")
        rmdir(directory)
    }

    // MARK: Control

    public func info(_ id: String) throws -> AITaskInfo? {
        try store.get(id).map(withPendingApprovals)
    }

    /// The newest tasks (only `caller`'s when given), at most `limit` and, past the first, about
    /// `maxBytes` of prompts.
    public func list(limit: Int, caller: String?, maxBytes: Int = .max) throws -> (tasks: [AITaskInfo], more: Bool) {
        let page = try store.list(limit: limit, caller: caller, maxBytes: maxBytes)
        return (page.tasks.map(withPendingApprovals), page.more)
    }

    /// A stored task plus what it waits for now (running tasks only; kept in memory).
    private func withPendingApprovals(_ stored: AITaskInfo) -> AITaskInfo {
        guard let task = tasks.withLock({ $0[stored.id] }) else { return stored }
        var info = stored
        info.pendingApprovals = task.state.withLock { $0.pending.values.map(\.request) }.sorted { $0.createdAt < $1.createdAt }
        return info
    }

    /// The task, if `caller` may see and control it: the node's own key sees every task, anyone
    /// else only the tasks it started (a peer cannot answer the owner's permission prompts).
    public func authorize(_ id: String, caller: String, owner: Bool) throws {
        guard let task = try store.get(id), owner || task.caller == caller else { throw APIError.notFound("task \(id)") }
    }

    /// Cancels a running task (SIGTERM to its process group, SIGKILL 2 s later) or deletes a finished one.
    public func cancel(_ id: String) throws -> AITaskInfo? {
        if let task = tasks.withLock({ $0[id] }) {
            task.state.withLock { $0.cancelled = true }
            kill(task)
            return try info(id)
        }
        guard let info = try store.get(id) else { throw APIError.notFound("task \(id)") }
        try store.delete(id)
        return info
    }

    private func kill(_ task: RunningTask) {
        let pid = task.state.withLock { $0.pid }
        guard pid > 0 else { return }
        Glibc.kill(-pid, SIGTERM)
        // Descendants that left the task's session or group are asked too.
        ChildProcesses.shared.ifRunning(pid) { ProcessTree.signalDescendants(of: pid, outsideGroup: pid, SIGTERM) }
        // Whatever in the group ignores SIGTERM goes too (the group id is the task's pid; it
        // stays reserved while any member lives), and so does the whole tree, frozen first so
        // nothing forks away, while claude is not reaped yet.
        DispatchQueue.global().asyncAfter(deadline: .now() + 2) {
            ChildProcesses.shared.ifRunning(pid) { ProcessTree.freezeAndKill([pid], includingRoots: true) }
            Glibc.kill(-pid, SIGKILL)
        }
    }

    /// The task's hook asks: the answer waits (suspended, no thread held) for an approval, a
    /// denial or the timeout (which denies).
    public func ask(_ id: String, _ question: PermissionAsk) throws -> Answer<PermissionDecision> {
        guard let task = tasks.withLock({ $0[id] }) else { throw APIError.notFound("running task \(id)") }
        let request = task.request
        if (request.disallowedTools ?? []).contains(question.toolName) {
            return .now(PermissionDecision(approved: false, message: "\(question.toolName) is disallowed for this task"))
        }
        if request.permissionMode == "bypassPermissions" || (request.allowedTools ?? []).contains(question.toolName) {
            return .now(PermissionDecision(approved: true, message: "allowed by the task's options"))
        }
        let now = Clock.nowMillis()
        let permission = PermissionRequest(requestId: "perm_" + Secrets.apiKey().prefix(12), toolName: question.toolName,
                                           toolInput: question.toolInput.prefix(utf8Bytes: 64 * 1024), createdAt: now,
                                           expiresAt: now + Int64(config.approvalTimeoutSeconds) * 1000)
        let answer = Pending<PermissionDecision>()
        let open = task.state.withLock { state -> Bool in
            guard !state.askingClosed else { return false }
            state.pending[permission.requestId] = (permission, answer)
            return true
        }
        guard open else { return .now(PermissionDecision(approved: false, message: "the task ended")) }
        try? store.update(id, state: .waitingApproval)
        // The tool's input as the object it is, like a tool_use event's `input`.
        let input = (try? JSONValue.parse(permission.toolInput)) ?? .string(permission.toolInput)
        emit(task, "permission_request", ["requestId": .string(permission.requestId), "toolName": .string(permission.toolName),
                                          "toolInput": input, "expiresAt": .integer(Int(permission.expiresAt))])
        DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(config.approvalTimeoutSeconds)) { [self] in
            try? decide(id, ApprovalRequest(requestId: permission.requestId, approved: false,
                                            message: "nobody answered within \(config.approvalTimeoutSeconds) s"),
                        owner: true)
        }
        return .later(answer)
    }

    /// An approval or denial from the API (a person, the dashboard, an agent with the key).
    /// `owner`: whether the node's own key answers. When execution.allowlist is set, a task a
    /// peer started is answered only by the owner: the peer could otherwise approve its own
    /// model's Bash calls and run what the allowlist refuses it through /execute.
    public func decide(_ id: String, _ approval: ApprovalRequest, owner: Bool) throws {
        guard let task = tasks.withLock({ $0[id] }) else { throw APIError.notFound("running task \(id)") }
        if policy.allowlist != nil && !task.startedByOwner && !owner {
            throw APIError.forbidden("execution.allowlist is set on this node, so only its owner may approve or deny the "
                + "permission requests of a task a peer started", code: .approvalOwnerOnly)
        }
        guard let waiting = task.state.withLock({ $0.pending.removeValue(forKey: approval.requestId) }) else {
            throw APIError.notFound("pending permission request \(approval.requestId)")
        }
        let message = approval.message ?? (approval.approved ? "approved" : "denied")
        emit(task, "permission_decision", ["requestId": .string(approval.requestId), "approved": .bool(approval.approved),
                                           "message": .string(message)])
        if task.state.withLock({ $0.pending.isEmpty }) { try? store.update(id, state: .running) }
        waiting.answer.succeed(PermissionDecision(approved: approval.approved, message: message))
    }

    /// Events replayed in one subscription at most. A reader further behind gets them in
    /// pieces: its stream ends after one, and it resumes from the last id (as SSE readers do),
    /// instead of up to 100,000 stored events read into memory and its stream's buffer at once.
    public static let replayPage = 1000
    /// And at most this much event data (read from the database before any is sent; what the
    /// stream buffers for a reader is bounded about as much), unless one event alone is more.
    public static let replayPageBytes = 4 << 20

    /// Sends the task's events after `since` to `sink`, then live ones until it ends. Returns
    /// what ends the subscription early (the reader left). A reader behind by more than a
    /// page (`replayPage` events or `replayPageBytes`, or the sink's buffer) gets that page and
    /// the end of the stream; it resumes from its cursor.
    public func subscribe(_ id: String, since: Int64, _ sink: any EventSink) throws -> @Sendable () -> Void {
        guard try store.get(id) != nil else { throw APIError.notFound("task \(id)") }
        /// Sends one page; true when that was all there was.
        func replay() throws -> Bool {
            let page = try store.eventsPage(id, after: since, limit: Self.replayPage, maxBytes: Self.replayPageBytes)
            for event in page.events where !sink.send(Self.streamed(event), replayed: true) { return false }
            return !page.more
        }
        guard let live = tasks.withLock({ $0[id] }) else {
            _ = try replay()
            sink.finish()
            return {}
        }
        let key = ObjectIdentifier(sink)
        try live.state.withLock { state in
            // Live events are stored before they are sent: a reader that comes back for the
            // rest of its replay misses none.
            if try !replay() || state.finished {
                sink.finish()
            } else {
                state.subscribers[key] = sink
            }
        }
        return { [weak live] in _ = live?.state.withLock { $0.subscribers.removeValue(forKey: key) } }
    }

    public func shutdown() {
        let running = tasks.withLock { Array($0.values) }
        for task in running {
            task.state.withLock { $0.cancelled = true }
            kill(task)
        }
    }

    public func prune() {
        _ = try? store.prune(now: Clock.nowMillis(), retentionMillis: Int64(config.retentionDays) * 86_400_000,
                             keep: 1000)
    }
}

/// Text read from a terminal, without its control sequences.
enum TerminalText {
    /// `text` without ANSI escape sequences (CSI `ESC [ … final`, OSC `ESC ] … BEL|ESC \`, and
    /// two-byte `ESC x`) and without other C0/C1 control characters except tab.
    static func plain(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var result = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            index += 1
            switch scalar.value {
            case 0x1B:
                guard index < scalars.count else { break }
                let kind = scalars[index].value
                index += 1
                if kind == 0x5B {  // CSI: parameters and intermediates, then one final byte
                    while index < scalars.count, !(0x40...0x7E).contains(scalars[index].value) { index += 1 }
                    index += 1
                } else if kind == 0x5D || kind == 0x50 || kind == 0x5F {  // OSC, DCS, APC: up to BEL or ST
                    while index < scalars.count {
                        let value = scalars[index].value
                        index += 1
                        if value == 0x07 { break }
                        if value == 0x1B, index < scalars.count, scalars[index].value == 0x5C { index += 1; break }
                    }
                }
            case 0x09: result.append(scalar)
            default: if !UnsafeText.isControl(scalar) { result.append(scalar) }
            }
        }
        return String(result)
    }
}
