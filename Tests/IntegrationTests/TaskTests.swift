import Foundation
import LoopsyAPI
import LoopsyClient
import Testing

/// Claude Code tasks, run by real daemons with the fake `claude` (Tests/Support/fake-claude) on PATH.
@Suite struct TaskTests {
    static let fakeClaude = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Support/fake-claude").path

    /// A node whose daemon finds the fake claude; `argv` collects what it was started with.
    /// claude gets only the daemon variables aiTasks.environment names, so FAKE_CLAUDE_ARGV is
    /// listed there; `environment` adds more to the daemon's own.
    static func node(_ name: String = "alpha", environment: [String: String] = [:],
                     extra: @escaping (String) -> String = { $0 }) throws -> (TestNode, String) {
        let node = try PeerTests.named(name) { text in
            var text = replacingLine(text, "  approvalTimeoutSeconds: 300", "  approvalTimeoutSeconds: 3")
            text = replacingLine(text, "  maxDurationSeconds: 3600", "  maxDurationSeconds: 20")
            text = replacingLine(text, "  environment: [ANTHROPIC_API_KEY,", "  environment: [FAKE_CLAUDE_ARGV, ANTHROPIC_API_KEY,")
            return extra(text)
        }
        let argv = node.dataDir + "/argv.jsonl"
        try node.start(environment: ["PATH": fakeClaude + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? ""),
                                     "FAKE_CLAUDE_ARGV": argv].merging(environment) { $1 })
        return (node, argv)
    }

    /// What the fake claude recorded of its last start: argv, environment, cwd.
    static func recorded(_ argvFile: String) throws -> [String: Any] {
        let line = try #require(try String(contentsOfFile: argvFile, encoding: .utf8).split(separator: "\n").last)
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    /// Claude Code gets the minimal environment, the names in aiTasks.environment and what its
    /// hook needs — not whatever else the daemon has (its keys, tokens, …).
    @Test func claudeGetsOnlyTheListedEnvironment() throws {
        let (node, argvFile) = try Self.node(environment: ["SECRET_THING": "x", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
                                                           "LOOPSY_SOMETHING": "daemon's"])
        defer { node.cleanUp() }
        let task = try Self.finished(node.client, try node.client.startTask(AITaskRequest(prompt: "hello")).id)
        #expect(task.state.rawValue == "completed")
        let environment = try #require(try Self.recorded(argvFile)["env"] as? [String: String])
        #expect(environment["SECRET_THING"] == nil, "an unlisted daemon variable reached claude")
        #expect(environment["LOOPSY_SOMETHING"] == nil)
        #expect(environment["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9")  // in aiTasks.environment by default
        #expect(environment["FAKE_CLAUDE_ARGV"] == argvFile)  // listed by this test's config
        #expect(environment["PATH"]?.contains(Self.fakeClaude + ":") == true)  // a pyenv shim may put its own first
        #expect(environment["LOOPSY_TASK_ID"] == task.id && environment["LOOPSY_DATA_DIR"] != nil)
        // aiTasks.environment as this node's config.yaml lists it.
        let config = try String(contentsOfFile: node.dataDir + "/config.yaml", encoding: .utf8)
        let listLine = try #require(config.split(separator: "\n").first { $0.contains("# passed to claude") })
        let listed = listLine.drop { $0 != "[" }.dropFirst().prefix { $0 != "]" }.split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(listed.contains("FAKE_CLAUDE_ARGV") && listed.contains("ANTHROPIC_BASE_URL"))
        let allowed = Set(["HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "TMPDIR", "TERM", "PATH",
                           "LOOPSY_TASK_ID", "LOOPSY_DATA_DIR"] + listed)
        // What starts the fake's python may add a few of its own: python (LC_CTYPE), a pyenv shim
        // (PYENV_*, and bash's SHLVL and PWD).
        let unexpected = Set(environment.keys).subtracting(allowed).subtracting(["LC_CTYPE", "SHLVL", "PWD", "_"])
            .filter { !$0.hasPrefix("PYENV") && !$0.hasPrefix("_PYENV") }
        #expect(unexpected.isEmpty, "\(unexpected.sorted())")
        // The hook still reaches the daemon: a permission request is asked and answered.
        let asking = try node.client.startTask(AITaskRequest(prompt: "use-tool", allowedTools: ["Bash"]))
        #expect(try Self.finished(node.client, asking.id).state.rawValue == "completed")
    }

    /// A task's cwd goes through the same check as a command's: it must be an absolute, existing
    /// directory, and its real path is used.
    @Test func aTaskCwdIsCheckedLikeACommands() throws {
        let (node, argvFile) = try Self.node()
        defer { node.cleanUp() }
        let relative = try node.http("POST", "/api/v1/ai-tasks", body: #"{"prompt":"x","cwd":"relative/dir"}"#)
        #expect(relative.status == 400 && relative.errorCode == "bad_cwd")
        let file = try node.http("POST", "/api/v1/ai-tasks", body: #"{"prompt":"x","cwd":"/etc/passwd"}"#)
        #expect(file.status == 400 && file.errorCode == "bad_cwd")
        try FileManager.default.createDirectory(atPath: node.dataDir + "/real", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: node.dataDir + "/link", withDestinationPath: node.dataDir + "/real")
        let task = try node.client.startTask(AITaskRequest(prompt: "hello", cwd: node.dataDir + "/link"))
        _ = try Self.finished(node.client, task.id)
        #expect(try Self.recorded(argvFile)["cwd"] as? String == URL(fileURLWithPath: node.dataDir + "/real").resolvingSymlinksInPath().path)
    }

    /// Waits until the task is finished and returns it.
    static func finished(_ client: LoopsyClient, _ id: String, within seconds: Double = 20) throws -> AITaskInfo {
        var task = try client.task(id)
        _ = try eventually(seconds) {
            task = try client.task(id)
            return task.isFinished
        }
        return task
    }

    /// The user's global Claude Code settings file, as bytes (nil when there is none).
    static func userClaudeSettings() throws -> Data? {
        let path = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".claude/settings.json").path
        return FileManager.default.fileExists(atPath: path) ? try Data(contentsOf: URL(fileURLWithPath: path)) : nil
    }

    static func streamed(_ client: LoopsyClient, _ id: String, since: Int64 = 0) throws -> [SSEEvent] {
        var events: [SSEEvent] = []
        try client.streamTask(id, since: since) { events.append($0); return true }
        return events
    }

    @Test func aTaskRunsWithTheCLIFlagsAndStreamsTypedEvents() throws {
        let settingsBefore = try Self.userClaudeSettings()
        let (node, argvFile) = try Self.node()
        defer { node.cleanUp() }
        let client = node.client
        let task = try client.startTask(AITaskRequest(
            prompt: "hello", cwd: node.dataDir, model: "claude-opus-4", permissionMode: "acceptEdits",
            allowedTools: ["Read", "Bash(git status)"], disallowedTools: ["WebFetch"], maxBudgetUsd: 0.5,
            resumeSessionId: "sess-123"))
        #expect(task.state.rawValue == "running" || task.state.rawValue == "completed")
        let events = try Self.streamed(client, task.id)
        #expect(events.map(\.event) == ["init", "thinking", "text", "result", "exit"])
        #expect(events.map(\.id) == (1...5).map { String($0) })
        #expect(events[2].data.contains("Working on: hello"))
        let done = try Self.finished(client, task.id)
        #expect(done.state.rawValue == "completed" && done.exitCode == 0 && done.sessionId == "sess-123")
        #expect(abs((done.costUsd ?? 0) - 0.0012) < 1e-9)

        let line = try #require(try String(contentsOfFile: argvFile, encoding: .utf8).split(separator: "\n").first)
        let recorded = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        let argv = try #require(recorded?["argv"] as? [String])
        #expect(Array(argv.prefix(4)) == ["-p", "--output-format", "stream-json", "--verbose"])
        // The prompt comes last, after "--": it can never be taken for an option.
        #expect(Array(argv.suffix(2)) == ["--", "hello"])
        for (flag, value) in [("--model", "claude-opus-4"), ("--permission-mode", "acceptEdits"),
                              ("--allowedTools", "Read,Bash(git status)"), ("--disallowedTools", "WebFetch"),
                              ("--max-budget-usd", "0.5"), ("--resume", "sess-123")] {
            let index = try #require(argv.firstIndex(of: flag), "\(flag) missing")
            #expect(argv[index + 1] == value)
        }
        #expect(recorded?["cwd"] as? String == node.dataDir)
        // No key in argv or environment; the task's settings file is gone afterwards.
        #expect(!line.contains(node.apiKey))
        let settings = try #require(argv.firstIndex(of: "--settings").map { argv[$0 + 1] })
        #expect(!FileManager.default.fileExists(atPath: settings))
        // The user's own Claude settings were not touched (the original appended its hook there).
        #expect(try Self.userClaudeSettings() == settingsBefore)
    }

    /// A task another caller starts runs without the directory's own Claude settings and MCP
    /// servers (`-p` trusts the workspace: a pushed .claude/settings.json hook ran with no
    /// approval), and resumes only a session of a task that caller started (`--resume` opens
    /// any session on the machine by id or title: the owner's conversations).
    @Test func anotherCallersTaskGetsNoProjectSettingsAndResumesOnlyItsOwnSessions() throws {
        let helper = String(repeating: "h", count: 40)
        let (node, argvFile) = try Self.node { replacingLine($0, "allowedKeys: {}", "allowedKeys: {helper: \(helper)}") }
        defer { node.cleanUp() }
        #expect(try node.cli("peers", "grant", "key:helper", "tasks").status == 0)
        let own = try Self.finished(node.client, try node.client.startTask(AITaskRequest(prompt: "mine", cwd: node.dataDir)).id)
        var argv = try #require(try Self.recorded(argvFile)["argv"] as? [String])
        #expect(!argv.contains("--setting-sources") && !argv.contains("--strict-mcp-config"), "\(argv)")
        func start(_ body: String) throws -> CurlHTTPClient.Response {
            try node.http("POST", "/api/v1/ai-tasks", body: body, key: helper)
        }
        let started = try start(#"{"prompt":"theirs","cwd":"\#(node.dataDir)"}"#)
        #expect(started.status == 201, "\(started.text)")
        let theirs = try Self.finished(node.client, try started.json(AITaskInfo.self).id)
        argv = try #require(try Self.recorded(argvFile)["argv"] as? [String])
        let sources = try #require(argv.firstIndex(of: "--setting-sources"), "\(argv)")
        #expect(argv[sources + 1] == "user" && argv.contains("--strict-mcp-config"), "\(argv)")
        // Not the owner's session, not a title, not a made-up id; its own task's session, yes.
        let ownSession = try #require(own.sessionId)
        for resume in [ownSession, "Deploy script fix", "0b7e3a52-1111-4222-8333-944445555666"] {
            let refused = try start(#"{"prompt":"x","resumeSessionId":"\#(resume)"}"#)
            #expect(refused.status == 403 && refused.errorCode == "task_options_forbidden", "\(resume): \(refused.text)")
        }
        let resumed = try start(#"{"prompt":"again","resumeSessionId":"\#(try #require(theirs.sessionId))"}"#)
        #expect(resumed.status == 201, "\(resumed.text)")
        _ = try Self.finished(node.client, try resumed.json(AITaskInfo.self).id)
    }

    /// The terminal's control sequences (cursor, colours) never reach stored events.
    @Test func textEventsCarryNoTerminalControlSequences() throws {
        let (node, _) = try Self.node()
        defer { node.cleanUp() }
        let task = try Self.finished(node.client, try node.client.startTask(AITaskRequest(prompt: "plain-line")).id)
        let events = try node.client.taskEvents(task.id)
        #expect(task.state.rawValue == "completed")
        #expect(events.contains { $0.type == "init" }, "the first line, behind an escape sequence, was not parsed")
        #expect(events.contains { $0.type == "output" && $0.data.contains("\"note: all done\"") }, "\(events.map(\.data))")
        #expect(!events.contains { $0.data.contains("\\u001b") || $0.data.contains("[?25") }, "\(events.map(\.data))")
        let shown = try node.cli("task", "show", "local", task.id)
        #expect(shown.stdout.contains("note: all done") && !shown.stdout.contains("[?25"), "\(shown.stdout)")
        // The list, newest first, says when older tasks were left out.
        let second = try Self.finished(node.client, try node.client.startTask(AITaskRequest(prompt: "plain-line")).id)
        let newest = try node.cli("task", "list", "local", "--limit", "1")
        #expect(newest.status == 0 && newest.stdout.contains(second.id) && !newest.stdout.contains(task.id)
            && newest.stdout.contains("older tasks not shown"), "\(newest.stdout)")
        let both = try node.cli("task", "list", "local")
        #expect(both.stdout.contains(task.id) && both.stdout.contains(second.id) && !both.stdout.contains("older"),
                "\(both.stdout)")
        let refused = try node.cli("task", "list", "local", "--limit", "0")
        #expect(refused.status != 0 && refused.stderr.contains("--limit"), "\(refused.stderr)")
    }

    @Test func permissionRequestsWaitForAnAnswerThroughTheAPI() throws {
        let (node, _) = try Self.node()
        defer { node.cleanUp() }
        let client = node.client
        // Approved.
        var task = try client.startTask(AITaskRequest(prompt: "use-tool"))
        #expect(try eventually(10) { try client.task(task.id).state.rawValue == "waiting_approval" })
        let request = try #require(try client.task(task.id).pendingApprovals.first)
        #expect(request.toolName == "Bash" && request.toolInput.contains("echo hi"))
        // The event carries the tool's input as an object, like tool_use's `input`.
        let asked = try #require(try client.taskEvents(task.id).first { $0.type == "permission_request" })
        #expect(asked.data.contains(#""toolInput":{"#) && asked.data.contains(#""command":"echo hi""#), "\(asked.data)")
        _ = try client.approveTask(task.id, ApprovalRequest(requestId: request.requestId, approved: true))
        task = try Self.finished(client, task.id)
        var events = try client.taskEvents(task.id)
        #expect(task.state.rawValue == "completed")
        #expect(events.contains { $0.type == "tool_result" && $0.data.contains("hi\\n") && $0.data.contains("\"isError\":false") })
        #expect(events.contains { $0.type == "permission_decision" && $0.data.contains("\"approved\":true") })
        // Denied, with a message the model sees.
        task = try client.startTask(AITaskRequest(prompt: "use-tool"))
        #expect(try eventually(10) { try !client.task(task.id).pendingApprovals.isEmpty })
        let second = try client.task(task.id).pendingApprovals[0]
        _ = try client.approveTask(task.id, ApprovalRequest(requestId: second.requestId, approved: false, message: "not on main"))
        task = try Self.finished(client, task.id)
        events = try client.taskEvents(task.id)
        #expect(events.contains { $0.type == "tool_result" && $0.data.contains("not on main") })
        // Unanswered: denied when aiTasks.approvalTimeoutSeconds pass.
        task = try client.startTask(AITaskRequest(prompt: "use-tool"))
        task = try Self.finished(client, task.id, within: 15)
        #expect(try client.taskEvents(task.id).contains { $0.type == "permission_decision" && $0.data.contains("nobody answered") })
        // Tools the task allows up front are not asked about.
        task = try client.startTask(AITaskRequest(prompt: "use-tool", allowedTools: ["Bash"]))
        task = try Self.finished(client, task.id)
        #expect(try client.taskEvents(task.id).allSatisfy { $0.type != "permission_request" })
        // Answering a request that does not exist is a 404.
        #expect(throws: ClientError.self) { try client.approveTask(task.id, ApprovalRequest(requestId: "nope", approved: true)) }
    }

    @Test func streamsResumeWithoutGapsOrDuplicatesAcrossADaemonRestart() throws {
        let (node, _) = try Self.node()
        defer { node.cleanUp() }
        let task = try node.client.startTask(AITaskRequest(prompt: "sleep 1"))
        let all = try Self.streamed(node.client, task.id)
        let ids = all.compactMap { $0.id.flatMap(Int.init) }
        #expect(ids == Array(1...ids.count) && ids.count > 5)
        let rest = try Self.streamed(node.client, task.id, since: 3)
        #expect(rest.compactMap { $0.id.flatMap(Int.init) } == Array(4...ids.count))
        let header = try node.http("GET", "/api/v1/ai-tasks/\(task.id)/stream", headers: ["Last-Event-ID": "\(ids.count - 1)"])
        #expect(header.text.hasPrefix("id: \(ids.count)\nevent: exit\n"))
        node.kill9()
        try node.start(environment: ["PATH": Self.fakeClaude + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "")])
        let again = try Self.streamed(node.client, task.id)
        #expect(again.map(\.data) == all.map(\.data))
    }

    /// A reader far behind gets a task's history in pages: each stream ends after
    /// TaskService.replayPage events and the next resumes from the last id (the CLI and the
    /// dashboard do that), instead of every stored event read and buffered for one request.
    @Test func aLongHistoryIsReplayedInPages() throws {
        let (node, _) = try Self.node()
        defer { node.cleanUp() }
        let task = try node.client.startTask(AITaskRequest(prompt: "chatter 2500"))
        #expect(try Self.finished(node.client, task.id).isFinished)
        var pages: [Int] = []
        var since: Int64 = 0
        var ids: [Int64] = []
        while pages.count < 10 {
            let page = try Self.streamed(node.client, task.id, since: since).compactMap { $0.id.flatMap(Int64.init) }
            guard let last = page.last else { break }
            pages.append(page.count)
            ids += page
            since = last
        }
        #expect(pages.count >= 3 && pages.dropLast().allSatisfy { $0 == 1000 } && pages.last! <= 1000, "\(pages)")
        #expect(ids == Array(1...Int64(ids.count)) && ids.count > 2500, "every event once, in order")
        // The CLI shows all of it, followed or not.
        for arguments in [["task", "show", "local", task.id, "--follow"], ["task", "show", "local", task.id]] {
            let shown = try node.cli(arguments)
            let text = shown.stdout + shown.stderr
            #expect(shown.status == 0 && text.contains("note 0") && text.contains("note 2499"), "\(arguments)")
        }
    }

    /// A task stores at most aiTasks.maxEventBytes of events: past it, one `truncated` event
    /// says so and only the result and the end are kept, however much the program says.
    @Test func aTasksEventsAreCappedByMaxEventBytes() throws {
        let (node, _) = try Self.node { $0.replacingOccurrences(of: "  maxEventBytes: 67108864", with: "  maxEventBytes: 65536") }
        defer { node.cleanUp() }
        let task = try node.client.startTask(AITaskRequest(prompt: "ramble 100 8000"))
        let done = try Self.finished(node.client, task.id)
        #expect(done.state.rawValue == "completed")
        let events = try Self.streamed(node.client, task.id)
        let kept = events.filter { $0.event == "text" && $0.data.contains("rrrr") }
        // 8 KB of text and 64 bytes of overhead each: 8 fit in 64 KiB with the first events.
        #expect(kept.count == 8, "\(kept.count) of 100 text events of 8 KB kept under 64 KiB")
        #expect(events.filter { $0.event != "truncated" }.reduce(0) { $0 + $1.data.utf8.count + 64 } <= 65536 + 1024,
                "64 KiB of events, and a result and an exit")
        // What comes after the first dropped event is dropped too, small or not: no gap.
        #expect(!events.contains { $0.data.contains("ramble done") })
        #expect(events.filter { $0.event == "truncated" }.count == 1)
        let notice = try #require(events.first { $0.event == "truncated" })
        #expect(notice.data.contains("aiTasks.maxEventBytes") && notice.data.contains("65536"))
        #expect(events.contains { $0.event == "result" })
        #expect(events.last?.event == "exit")
    }

    /// Callers other than the owner run at most half of aiTasks.maxConcurrent each (2 of 3) and
    /// together leave the last place to the owner.
    @Test func callersOtherThanTheOwnerLeaveItATask() throws {
        let helper = String(repeating: "t", count: 40), second = String(repeating: "u", count: 40)
        let (node, _) = try Self.node {
            replacingLine($0, "  allowedKeys: {}", "  allowedKeys: {helper: \(helper), second: \(second)}")
        }
        defer { node.cleanUp() }
        for name in ["helper", "second"] { #expect(try node.cli("peers", "grant", "key:\(name)", "tasks").status == 0) }
        func start(_ key: String) throws -> CurlHTTPClient.Response {
            try node.http("POST", "/api/v1/ai-tasks", body: #"{"prompt":"sleep 30"}"#, key: key)
        }
        var started: [String] = []
        for key in [helper, helper] {
            let answer = try start(key)
            #expect(answer.status < 300, "\(answer.text)")
            if let task = try? answer.json(AITaskInfo.self) { started.append(task.id) }
        }
        let overShare = try start(helper)
        #expect(overShare.status == 429 && overShare.text.contains("half of aiTasks.maxConcurrent"), "\(overShare.text)")
        let ownersPlace = try start(second)
        #expect(ownersPlace.status == 429 && ownersPlace.text.contains("kept for this node's owner"), "\(ownersPlace.text)")
        let own = try node.client.startTask(AITaskRequest(prompt: "hello"))
        #expect(try Self.finished(node.client, own.id).state.rawValue == "completed")
        for id in started { _ = try? node.client.cancelTask(id) }
    }

    @Test func cancelKillsTheWholeTaskAndLimitsHold() throws {
        let (node, _) = try Self.node { replacingLine($0, "  maxConcurrent: 3", "  maxConcurrent: 1") }
        defer { node.cleanUp() }
        let client = node.client
        let long = try client.startTask(AITaskRequest(prompt: "sleep 60 marker-\(UUID().uuidString.prefix(8))"))
        // One at a time: the second is refused.
        let refused = try node.http("POST", "/api/v1/ai-tasks", body: #"{"prompt":"hello"}"#)
        #expect(refused.status == 429 && refused.headers["retry-after"] != nil)
        #expect(try eventually(5) { try client.taskEvents(long.id).count >= 3 })
        _ = try client.cancelTask(long.id)
        let cancelled = try Self.finished(client, long.id, within: 10)
        #expect(cancelled.state.rawValue == "cancelled")
        let marker = long.prompt.split(separator: " ").last.map(String.init) ?? ""
        #expect(try eventually(5) { try run("/usr/bin/pgrep", ["-f", marker]).stdout.isEmpty })
        // Deleting a finished task.
        _ = try client.cancelTask(long.id)
        let gone = try node.http("GET", "/api/v1/ai-tasks/\(long.id)")
        #expect(gone.status == 404)
        // Bad input.
        let empty = try node.http("POST", "/api/v1/ai-tasks", body: #"{"prompt":""}"#)
        #expect(empty.status == 400)
        let missing = try node.http("POST", "/api/v1/ai-tasks", body: #"{"prompt":"x","cwd":"/nonexistent"}"#)
        #expect(missing.errorCode == "bad_cwd")
        let mode = try node.http("POST", "/api/v1/ai-tasks", body: #"{"prompt":"x","permissionMode":"yolo"}"#)
        #expect(mode.status == 400)
        let flag = try node.http("POST", "/api/v1/ai-tasks", body: #"{"prompt":"x","model":"--help"}"#)
        #expect(flag.status == 400)
        // The message names both ends of the budget's range (it said only "more than 0").
        for budget in ["0", "1e308", "10000.01"] {
            let over = try node.http("POST", "/api/v1/ai-tasks", body: #"{"prompt":"x","maxBudgetUsd":\#(budget)}"#)
            #expect(over.status == 400 && over.text.contains("at most 10000"), "\(budget): \(over.text)")
        }
    }

    @Test func aTaskEndsWhenClaudeExitsEvenIfAHelperKeepsTheTerminal() throws {
        let (node, _) = try Self.node()
        defer { node.cleanUp() }
        let started = Date()
        let task = try node.client.startTask(AITaskRequest(prompt: "orphan"))
        let done = try Self.finished(node.client, task.id, within: 10)
        #expect(done.state.rawValue == "completed")
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(try node.client.taskEvents(task.id).last?.type == "exit")
    }

    @Test func aPromptThatLooksLikeAnOptionStaysAPrompt() throws {
        let (node, argvFile) = try Self.node()
        defer { node.cleanUp() }
        let prompt = #"--mcp-config={"mcpServers":{"x":{"command":"touch","args":["/tmp/pwned"]}}}"#
        let task = try node.client.startTask(AITaskRequest(prompt: prompt))
        _ = try Self.finished(node.client, task.id)
        let line = try #require(try String(contentsOfFile: argvFile, encoding: .utf8).split(separator: "\n").last)
        let argv = try #require((try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["argv"] as? [String])
        #expect(Array(argv.suffix(2)) == ["--", prompt])
        #expect(try node.client.taskEvents(task.id).contains { $0.type == "text" && $0.data.contains("mcp-config") })
    }

    @Test func aTaskRunsOnAPeerThroughForwarding() throws {
        let alpha = try PeerTests.named("alpha")
        defer { alpha.cleanUp() }
        try alpha.start()
        let bravo = try PeerTests.named("bravo", tls: true)
        defer { bravo.cleanUp() }
        try bravo.start(environment: ["PATH": Self.fakeClaude + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "")],
                        host: "127.0.0.2")
        #expect(try PeerTests.pair(alpha, bravo).status == 0)
        // Without the tasks grant bravo refuses, naming the grant and the command that gives it.
        let refused = try alpha.cli("task", "run", "bravo", "hello from alpha")
        let alphaNode = try alpha.nodeId
        #expect(refused.status != 0 && refused.stderr.contains("no 'tasks' grant on bravo")
                && refused.stderr.contains("loopsy peers grant \(alphaNode) tasks"), "\(refused.stderr)")
        #expect(try bravo.cli("peers", "grant", "alpha", "tasks").status == 0)
        let result = try alpha.cli("task", "run", "bravo", "hello from alpha")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("Working on: hello from alpha"))
        #expect(result.stderr.contains("task completed"))
        let tasks = try bravo.client.tasks()
        let alphaId = try alpha.nodeId
        #expect(tasks.count == 1 && tasks[0].caller == "peer:\(alphaId)")
        // A peer cannot widen a task's permissions, nor see or answer the owner's tasks.
        let bypass = try alpha.http("POST", "/api/v1/peers/bravo/ai-tasks", body: #"{"prompt":"x","permissionMode":"bypassPermissions"}"#)
        #expect(bypass.status == 403 && bypass.errorCode == "task_options_forbidden")
        let own = try bravo.client.startTask(AITaskRequest(prompt: "hello"))
        let peek = try alpha.http("GET", "/api/v1/peers/bravo/ai-tasks/\(own.id)")
        #expect(peek.status == 404)
        let listed = try alpha.http("GET", "/api/v1/peers/bravo/ai-tasks")
        #expect(listed.status == 200 && !listed.text.contains(own.id))
        // Without Claude Code installed the peer says so.
        let plain = try TestNode { replacingLine($0, "  claudePath: claude", "  claudePath: /nonexistent/claude") }
        defer { plain.cleanUp() }
        try plain.start()
        let noClaude = try plain.http("POST", "/api/v1/ai-tasks", body: #"{"prompt":"x"}"#)
        #expect(noClaude.errorCode == "claude_missing")
    }

    /// With execution.allowlist set, a peer's task cannot approve its own permission requests:
    /// only the node's owner answers them.
    @Test func withAnAllowlistOnlyTheOwnerAnswersAPeersTask() throws {
        let alpha = try PeerTests.named("alpha")
        defer { alpha.cleanUp() }
        try alpha.start()
        let bravo = try PeerTests.named("bravo", tls: true) { text in
            var text = replacingLine(text, "  # allowlist: [git, ls, cat]", "  allowlist: [echo]")
            text = replacingLine(text, "  approvalTimeoutSeconds: 300", "  approvalTimeoutSeconds: 30")
            return text
        }
        defer { bravo.cleanUp() }
        try bravo.start(environment: ["PATH": Self.fakeClaude + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "")],
                        host: "127.0.0.2")
        #expect(try PeerTests.pair(alpha, bravo).status == 0)
        #expect(try bravo.cli("peers", "grant", "alpha", "tasks").status == 0)
        let started = try alpha.http("POST", "/api/v1/peers/bravo/ai-tasks", body: #"{"prompt":"use-tool"}"#)
        #expect(started.status == 201, "\(started.text)")
        let task = try started.json(AITaskInfo.self)
        #expect(try eventually(10) { try !bravo.client.task(task.id).pendingApprovals.isEmpty })
        let request = try #require(try bravo.client.task(task.id).pendingApprovals.first)
        let body = #"{"requestId":"\#(request.requestId)","approved":true}"#
        let byPeer = try alpha.http("POST", "/api/v1/peers/bravo/ai-tasks/\(task.id)/approve", body: body)
        #expect(byPeer.status == 403 && byPeer.errorCode == "approval_owner_only", "\(byPeer.status) \(byPeer.text)")
        #expect(try bravo.client.task(task.id).pendingApprovals.count == 1)  // still waiting
        _ = try bravo.client.approveTask(task.id, ApprovalRequest(requestId: request.requestId, approved: true))
        let done = try Self.finished(bravo.client, task.id)
        #expect(done.state.rawValue == "completed")
        #expect(try bravo.client.taskEvents(task.id).contains { $0.type == "permission_decision" && $0.data.contains("\"approved\":true") })
    }

    @Test func aTaskPastItsMaximumDurationIsStoppedAndADaemonCrashFailsItsTasks() throws {
        let (node, _) = try Self.node { replacingLine($0, "  maxDurationSeconds: 20", "  maxDurationSeconds: 1") }
        defer { node.cleanUp() }
        let long = try node.client.startTask(AITaskRequest(prompt: "sleep 30"))
        let stopped = try Self.finished(node.client, long.id, within: 10)
        #expect(stopped.state.rawValue == "failed" && stopped.error?.contains("maxDurationSeconds") == true)
        // A crash while a task runs: the next start marks it failed rather than running forever.
        let config = node.dataDir + "/config.yaml"
        let text = try String(contentsOfFile: config, encoding: .utf8)
        try replacingLine(text, "  maxDurationSeconds: 1", "  maxDurationSeconds: 60").write(toFile: config, atomically: true, encoding: .utf8)
        node.stop()
        try node.start(environment: ["PATH": Self.fakeClaude + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "")])
        let running = try node.client.startTask(AITaskRequest(prompt: "sleep 30"))
        #expect(try eventually(5) { try node.client.taskEvents(running.id).count >= 3 })
        node.kill9()
        try node.start()
        let failed = try node.client.task(running.id)
        #expect(failed.state.rawValue == "failed" && failed.error == "the daemon stopped while the task ran")
    }
}
