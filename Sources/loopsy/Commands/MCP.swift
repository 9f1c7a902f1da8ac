import ArgumentParser
import FoundationEssentials
import LoopsyAPI
import LoopsyConfig
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

struct MCP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "Register loopsy-mcp with Claude Code.",
        discussion: """
            Uses the `claude` CLI when it is on PATH; otherwise edits Claude Code's own files \
            directly, keeping every other setting: ~/.claude.json (user scope: top-level \
            mcpServers; local scope: projects[<this directory>].mcpServers) or ./.mcp.json \
            (project scope). A --data-dir other than the default is passed to loopsy-mcp as \
            LOOPSY_DATA_DIR.
            """,
        subcommands: [Add.self, Remove.self, Status.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: "Register loopsy-mcp.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "user (every project), local (this directory, private) or project (./.mcp.json, shared).")
        var scope: ClaudeRegistration.Scope = .user
        @Option(help: "As a live channel, push only messages of this thread into the session (LOOPSY_CHANNEL_THREAD).")
        var thread: String?

        func validate() throws {
            if let thread, thread.isEmpty || thread.contains("=") || thread.contains("\0") {
                throw ValidationError("--thread must be a non-empty thread name")
            }
        }

        func run() throws {
            try runReporting {
                print(try ClaudeRegistration(dataDir: global.dataDir, thread: thread).add(scope: scope))
                print("""
                    To have messages and permission prompts pushed into a session live (a Claude Code channel, \
                    research preview), start Claude Code with:
                      claude --dangerously-load-development-channels server:\(ClaudeRegistration.name)
                    """)
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove", abstract: "Unregister loopsy-mcp.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "user, local or project.") var scope: ClaudeRegistration.Scope = .user

        func run() throws {
            try runReporting { print(try ClaudeRegistration(dataDir: global.dataDir).remove(scope: scope)) }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "Show where loopsy-mcp is registered.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try runReporting {
                let found = try ClaudeRegistration(dataDir: global.dataDir).registrations()
                guard !found.isEmpty else {
                    print("loopsy-mcp is not registered with Claude Code; run `loopsy mcp add`")
                    throw ExitCode(1)
                }
                for (scope, command) in found { print("\(scope.rawValue): \(command)") }
            }
        }
    }
}

/// Claude Code's MCP server registry, as its files hold it.
struct ClaudeRegistration {
    enum Scope: String, ExpressibleByArgument, CaseIterable {
        case user, local, project
    }

    static let name = "loopsy"
    let dataDir: String?
    /// LOOPSY_CHANNEL_THREAD for the registered server.
    var thread: String? = nil
    var home: String { DataDir.homeDirectory() }
    var userFile: String { home + "/.claude.json" }
    var projectFile: String { currentDirectory() + "/.mcp.json" }

    /// Is Claude Code installed for this user?
    static func claudeIsPresent() -> Bool {
        Programs.onPath("claude") != nil || access(DataDir.homeDirectory() + "/.claude.json", F_OK) == 0
    }

    func add(scope: Scope) throws -> String {
        let command = try Self.mcpExecutable()
        if let claude = Programs.onPath("claude") {
            var arguments = ["mcp", "add", "--scope", scope.rawValue]
            if let dataDir = explicitDataDir() { arguments += ["-e", "LOOPSY_DATA_DIR=\(dataDir)"] }
            if let thread { arguments += ["-e", "LOOPSY_CHANNEL_THREAD=\(thread)"] }
            arguments += [Self.name, "--", command]
            // `claude mcp add` refuses a name that exists: replace it.
            // Quietly: the first time there is nothing to remove, and claude says so on stderr.
            _ = try? Self.run(claude, ["mcp", "remove", "--scope", scope.rawValue, Self.name], quiet: true)
            try Self.run(claude, arguments, what: "claude mcp add")
            return "registered \(command) with Claude Code (\(scope.rawValue) scope) through `claude mcp add`"
        }
        var server: [(String, JSONValue)] = [("type", "stdio"), ("command", .string(command)), ("args", [])]
        var environment: [(String, JSONValue)] = []
        if let dataDir = explicitDataDir() { environment.append(("LOOPSY_DATA_DIR", .string(dataDir))) }
        if let thread { environment.append(("LOOPSY_CHANNEL_THREAD", .string(thread))) }
        if !environment.isEmpty { server.append(("env", .object(environment))) }
        let file = try edit(scope) { servers in servers.setting(Self.name, to: .object(server)) }
        return "registered \(command) with Claude Code (\(scope.rawValue) scope) in \(file)"
    }

    func remove(scope: Scope) throws -> String {
        if let claude = Programs.onPath("claude") {
            try Self.run(claude, ["mcp", "remove", "--scope", scope.rawValue, Self.name], what: "claude mcp remove")
            return "removed loopsy from Claude Code (\(scope.rawValue) scope) through `claude mcp remove`"
        }
        guard registrations().contains(where: { $0.0 == scope }) else {
            throw CLIFailure(message: "loopsy is not registered in the \(scope.rawValue) scope", code: CLIFailure.apiError)
        }
        let file = try edit(scope) { servers in servers.setting(Self.name, to: nil) }
        return "removed loopsy from Claude Code (\(scope.rawValue) scope) in \(file)"
    }

    /// Where loopsy is registered, with the command each registration runs.
    func registrations() -> [(Scope, String)] {
        var found: [(Scope, String)] = []
        for scope in Scope.allCases {
            guard let document = try? read(path(scope)),
                  let entry = servers(in: document, scope: scope)?[Self.name] else { continue }
            if case .string(let command)? = entry["command"] { found.append((scope, command)) }
        }
        return found
    }

    // MARK: Files

    private func path(_ scope: Scope) -> String { scope == .project ? projectFile : userFile }

    private func servers(in document: JSONValue, scope: Scope) -> JSONValue? {
        switch scope {
        case .user, .project: return document["mcpServers"]
        case .local: return document["projects"]?[currentDirectory()]?["mcpServers"]
        }
    }

    private func read(_ path: String) throws -> JSONValue? {
        guard access(path, F_OK) == 0 else { return nil }
        let text = try SecureFile.read(path)
        if text.trimming().isEmpty { return nil }
        do {
            return try JSONValue.parse(text)
        } catch {
            throw CLIFailure(message: "\(path) is not valid JSON (\(error)); fix it before registering",
                             code: CLIFailure.apiError)
        }
    }

    /// Applies `change` to the scope's mcpServers object and writes the file back atomically,
    /// every other key kept in place.
    private func edit(_ scope: Scope, _ change: (JSONValue) -> JSONValue) throws -> String {
        let file = path(scope)
        var document = try read(file) ?? .object([])
        guard case .object = document else {
            throw CLIFailure(message: "\(file) does not hold a JSON object; fix it before registering",
                             code: CLIFailure.apiError)
        }
        switch scope {
        case .user, .project:
            document = document.setting("mcpServers", to: change(document["mcpServers"] ?? .object([])))
        case .local:
            let projects = document["projects"] ?? .object([])
            let project = projects[currentDirectory()] ?? .object([])
            let updated = project.setting("mcpServers", to: change(project["mcpServers"] ?? .object([])))
            document = document.setting("projects", to: projects.setting(currentDirectory(), to: updated))
        }
        let text = document.serialized() + "\n"
        let mode = SecureFile.mode(file) ?? (scope == .project ? 0o644 : 0o600)
        try SecureFile.write(file, contents: text, mode: mode)
        return file
    }

    private func explicitDataDir() -> String? {
        let resolved = DataDir.resolve(explicit: dataDir).root
        return resolved == DataDir.resolve(explicit: nil, environment: ["HOME": home]).root ? nil : resolved
    }

    private func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buffer, buffer.count) != nil else { return "." }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: Programs

    /// loopsy-mcp next to this loopsy, else on PATH.
    static func mcpExecutable() throws -> String {
        guard let path = Programs.companion("loopsy-mcp") else {
            throw CLIFailure(message: "loopsy-mcp was not found next to loopsy or on PATH; reinstall loopsy",
                             code: CLIFailure.unavailable)
        }
        return path
    }

    /// Runs a program to completion, its output passed through (or dropped when `quiet`).
    @discardableResult
    static func run(_ program: String, _ arguments: [String], what: String? = nil, quiet: Bool = false) throws -> Int32 {
        var process = Subprocess(program, arguments)
        if quiet {
            process.stdout = .discard
            process.stderr = .discard
        }
        let code: Int32
        do {
            code = try process.run().status.code
        } catch {
            throw CLIFailure(message: "cannot run \(program): \(error)", code: CLIFailure.unavailable)
        }
        if code != 0, let what {
            throw CLIFailure(message: "\(what) failed (exit \(code)); see its message above", code: CLIFailure.apiError)
        }
        return code
    }
}

extension ClaudeRegistration {
    /// Runs a program and returns its stdout.
    static func capture(_ program: String, _ arguments: [String]) throws -> String {
        var process = Subprocess(program, arguments)
        process.stdout = .capture
        process.stderr = .discard
        do {
            return String(decoding: try process.run().output, as: UTF8.self)
        } catch {
            throw CLIFailure(message: "cannot run \(program): \(error)", code: CLIFailure.unavailable)
        }
    }
}
