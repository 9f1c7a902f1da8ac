import ArgumentParser
import FoundationEssentials
import LoopsyAPI
import LoopsyClient
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

struct Task: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "task",
        abstract: "Run Claude Code tasks on any machine, watch them, approve what they ask.",
        subcommands: [Run.self, List.self, Show.self, Approve.self, Cancel.self, Hook.self])

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run",
            abstract: "Dispatch a task and stream it.",
            discussion: """
                Runs `claude -p` on <peer> (or local) and prints what it does as it happens. When the task \
                asks for a permission you are asked here (y/n); with --detach the command returns at once \
                and `loopsy task show` or the dashboard follow it.
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Where: a peer, or local.") var peer: String
        @Argument(help: "The prompt.") var prompt: String
        @Option(help: "Directory to work in (absolute, on that machine).") var cwd: String?
        @Option(help: "Claude model.") var model: String?
        @Option(help: "default, acceptEdits, plan or bypassPermissions.") var permissionMode: String?
        @Option(name: .customLong("allow"), help: "A tool allowed without asking (repeatable).") var allowed: [String] = []
        @Option(name: .customLong("disallow"), help: "A tool never allowed (repeatable).") var disallowed: [String] = []
        @Option(help: "Stop when this many dollars are spent.") var maxBudget: Double?
        @Option(help: "Continue this Claude session.") var resume: String?
        @Flag(help: "Start it and return.") var detach = false

        func run() throws {
            var exitCode: Int32 = 0
            try runReporting {
                let client = try global.client(peer: peer, timeoutSeconds: 60)
                let task = try client.startTask(AITaskRequest(
                    prompt: prompt, cwd: cwd, model: model, permissionMode: permissionMode,
                    allowedTools: allowed.isEmpty ? nil : allowed, disallowedTools: disallowed.isEmpty ? nil : disallowed,
                    maxBudgetUsd: maxBudget, resumeSessionId: resume))
                if detach {
                    print(task.id)
                    return
                }
                printError("task \(task.id) on \(peer)")
                let final = try TaskWatcher(client: client, taskId: task.id, interactive: isatty(0) == 1).watch()
                exitCode = final.state == .completed ? 0 : 1
            }
            if exitCode != 0 { throw ExitCode(exitCode) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Tasks on a machine.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Where: a peer, or local.") var peer: String = "local"
        @Option(help: "How many of the newest tasks (1-1000).") var limit = 50
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            guard (1...1000).contains(limit) else { throw ValidationError("--limit must be from 1 to 1000") }
        }

        func run() throws {
            try runReporting {
                let list = try global.client(peer: peer).taskList(limit: limit)
                if json { return print(try JSONLine.encode(list, pretty: true)) }
                guard !list.tasks.isEmpty else { return print("no tasks") }
                for task in list.tasks {
                    let cost = task.costUsd.map { " " + dollars($0) } ?? ""
                    print("\(task.id)  \(task.state)\(cost)  \(task.prompt.prefix(60))")
                }
                if list.more { print("(older tasks not shown: --limit \(min(1000, limit * 2)) shows more)") }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "A task's state and events (follows it with -f).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Where: a peer, or local.") var peer: String
        @Argument(help: "Task id.") var id: String
        @Flag(name: .shortAndLong, help: "Keep following until it ends.") var follow = false
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            try runReporting {
                let client = try global.client(peer: peer)
                if json { return print(try JSONLine.encode(try client.task(id), pretty: true)) }
                if follow {
                    _ = try TaskWatcher(client: client, taskId: id, interactive: isatty(0) == 1).watch()
                    return
                }
                let task = try client.task(id)
                // In pages (the daemon answers at most 1000 events, or 16 MiB of them, at a time).
                var since: Int64 = 0
                while true {
                    let page = try client.taskEvents(id, since: since)
                    // Only events past the last one shown: a broken or hostile peer that
                    // answers the same page again does not make this print for ever.
                    for event in page where event.seq > since { TaskWatcher.render(event.type, event.data) }
                    guard let last = page.last, last.seq > since else { break }
                    since = last.seq
                }
                print("state: \(task.state)" + (task.error.map { " (\($0))" } ?? ""))
                for request in task.pendingApprovals {
                    print("waiting for approval \(request.requestId): \(request.toolName) \(request.toolInput)")
                }
            }
        }
    }

    struct Approve: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "approve", abstract: "Approve (or --deny) a permission a task asks for.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Where: a peer, or local.") var peer: String
        @Argument(help: "Task id.") var id: String
        @Argument(help: "The request id (from `loopsy task show`).") var requestId: String
        @Flag(help: "Deny instead.") var deny = false
        @Option(help: "A note for Claude.") var message: String?

        func run() throws {
            try runReporting {
                let task = try global.client(peer: peer).approveTask(id, ApprovalRequest(
                    requestId: requestId, approved: !deny, message: message))
                print("\(deny ? "denied" : "approved") \(requestId); task \(task.id) is \(task.state)")
            }
        }
    }

    struct Cancel: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a running task, or delete a finished one.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Where: a peer, or local.") var peer: String
        @Argument(help: "Task id.") var id: String

        func run() throws {
            try runReporting {
                let task = try global.client(peer: peer).cancelTask(id)
                print(task.isFinished ? "deleted \(id)" : "cancelling \(id)")
            }
        }
    }

    /// Claude Code's PreToolUse hook for a task loopsyd runs (named in the task's own settings
    /// file): asks this machine's daemon and answers with its decision. Fails closed.
    struct Hook: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "hook",
            abstract: "Internal: the permission hook of a dispatched task.", shouldDisplay: false)
        @OptionGroup var global: GlobalOptions
        @Option(help: "The task id.") var task: String

        func run() throws {
            let input = (try? FileIO.readAll(0)) ?? []
            var decision = PermissionDecision(approved: false, message: "loopsy could not ask for permission")
            if let event = try? JSONValue.parse(String(decoding: input, as: UTF8.self)),
               case .string(let tool)? = event["tool_name"] {
                let toolInput = (event["tool_input"] ?? .null).serialized()
                do {
                    decision = try global.client(timeoutSeconds: 86_400).askPermission(
                        task, PermissionAsk(toolName: tool, toolInput: toolInput))
                } catch {
                    decision.message = "loopsy could not ask for permission: \(CLIFailure.from(error).message)"
                }
            }
            let output: JSONValue = ["hookSpecificOutput": [
                "hookEventName": "PreToolUse",
                "permissionDecision": .string(decision.approved ? "allow" : "deny"),
                "permissionDecisionReason": .string(decision.message),
            ]]
            print(output.serialized())
        }
    }
}

/// Follows a task's stream and prints it; asks the person about permission requests.
struct TaskWatcher {
    let client: LoopsyClient
    let taskId: String
    let interactive: Bool

    func watch() throws -> AITaskInfo {
        var since: Int64 = 0
        // A dropped stream resumes where it stopped; so does one that ended after a page of a
        // long replay (the daemon sends a reader far behind its events in pieces).
        while true {
            let before = since
            do {
                try client.streamTask(taskId, since: since) { event in
                    // An event already shown is skipped, and only a larger id is progress.
                    if let id = event.id.flatMap(Int64.init) {
                        guard id > since else { return true }
                        since = id
                    }
                    Self.render(event.event, event.data)
                    if event.event == "permission_request" { ask(event.data) }
                    return true
                }
            } catch let error as ClientError {
                if case .api = error { throw error }
            }
            if since != before { continue }  // more may follow
            let task = try client.task(taskId)
            if task.isFinished {
                let cost = task.costUsd.map { ", " + dollars($0) } ?? ""
                printError("task \(task.state)\(cost)" + (task.error.map { ": \($0)" } ?? ""))
                return task
            }
            // A stream that ended with nothing new while the task runs (dropped, or a peer that
            // answers badly): a pause before the next try, not a loop of requests.
            usleep(500_000)
        }
    }

    private func ask(_ data: String) {
        guard let event = try? JSONValue.parse(data), case .string(let requestId)? = event["requestId"] else { return }
        guard interactive else {
            printError("  answer with: loopsy task approve <peer> \(taskId) \(requestId) [--deny]")
            return
        }
        let answer = (try? Prompt.ask("Allow it? [y/N]"))??.lowercased() ?? ""
        let approved = answer == "y" || answer == "yes"
        _ = try? client.approveTask(taskId, ApprovalRequest(requestId: requestId, approved: approved,
                                                            message: approved ? nil : "denied at the terminal"))
    }

    static func render(_ type: String, _ data: String) {
        let event = (try? JSONValue.parse(data)) ?? .null
        // What the program printed, or the model wrote, is shown, never obeyed by the terminal:
        // an ESC sequence in a tool result could erase the line above and draw a false prompt.
        func text(_ key: String) -> String {
            if case .string(let value)? = event[key] { return TerminalText.safe(value) }
            return ""
        }
        /// The first `limit` characters, and how much was left out (a command padded past what
        /// is shown must not hide its tail from the person approving it).
        func clipped(_ text: String, _ limit: Int) -> String {
            text.count <= limit ? text : "\(text.prefix(limit))… (\(text.count - limit) more characters)"
        }
        switch type {
        case "text": print(text("text"))
        case "output": print(text("text"))
        case "thinking": printError("  (thinking) " + text("text"))
        case "tool_use":
            printError("  → \(text("name")) \(clipped(TerminalText.safe((event["input"] ?? .null).serialized()), 200))")
        case "tool_result": printError("  ← \(clipped(text("content"), 200))")
        case "permission_request":
            let input = TerminalText.safe(event["toolInput"].map { $0.serialized() } ?? "")
            printError("  ? permission wanted: \(text("toolName")) \(clipped(input, 2000)) [\(text("requestId"))]")
        case "permission_decision":
            printError("  \(event["approved"] == true ? "✓ approved" : "✗ denied"): \(text("message"))")
        case "truncated": printError("  … \(text("message"))")
        default: break
        }
    }
}

/// "$0.0052": dollars to four decimals.
func dollars(_ amount: Double) -> String {
    let tenThousandths = Int((amount * 10_000).rounded())
    let fraction = String(tenThousandths % 10_000)
    return "$\(tenThousandths / 10_000)." + String(repeating: "0", count: 4 - fraction.count) + fraction
}
