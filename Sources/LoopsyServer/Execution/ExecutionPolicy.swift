import LoopsyAPI
import LoopsyConfig
#if canImport(Glibc)
import Glibc
#endif

/// A command that passed the policy: what to spawn, where, with what environment and limits.
struct ApprovedCommand: Sendable {
    var executable: String
    var argv: [String]
    var cwd: String
    var environment: [String]
    var timeoutMs: Int
}

/// The one check for everything that runs a program: denylist (on the program actually run,
/// seen through common wrappers), optional allowlist, cwd, environment and timeout rules.
struct ExecutionPolicy: Sendable {
    let denylist: Set<String>
    let allowlist: Set<String>?
    let defaultTimeoutMs: Int
    let maxTimeoutMs: Int
    /// PATH used to find programs: the daemon's own, never the caller's.
    let searchPath: [String]
    let baseEnvironment: [String: String]

    init(config: LoopsyConfig.Execution, environment: [String: String]) {
        denylist = Set(config.denylist)
        allowlist = config.allowlist.map(Set.init)
        defaultTimeoutMs = config.defaultTimeout
        maxTimeoutMs = config.maxTimeout
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        searchPath = path.split(separator: ":").map(String.init).filter { $0.hasPrefix("/") }
        var base = environment.filter { Self.inheritedVariables.contains($0.key) }
        base["PATH"] = path
        baseEnvironment = base
    }

    /// Variables a command inherits from the daemon; everything else comes from the caller.
    private static let inheritedVariables: Set<String> = ["HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "TMPDIR", "TERM"]

    /// Variables a caller may not set: they change which program runs or what it loads, past the
    /// checks made here.
    static func forbiddenVariable(_ name: String) -> Bool {
        name.hasPrefix("LD_") || name.hasPrefix("BASH_FUNC_") || name.hasPrefix("DYLD_")
            || ["PATH", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "IFS", "PS4", "GCONV_PATH", "HOSTALIASES",
                "NLSPATH", "PYTHONSTARTUP", "PERL5OPT", "NODE_OPTIONS"].contains(name)
    }

    func approve(_ request: ExecuteRequest, home: String) throws -> ApprovedCommand {
        guard !request.command.isEmpty, !request.command.contains("\0") else {
            throw APIError.badRequest("command must be a non-empty program name or path", code: "bad_command")
        }
        let args = request.args ?? []
        if args.contains(where: { $0.contains("\0") }) {
            throw APIError.badRequest("arguments must not contain NUL bytes", code: "bad_command")
        }
        let cwd = try directory(request.cwd ?? home)
        var environment = baseEnvironment
        for (name, value) in request.env ?? [:] {
            guard !name.isEmpty, !name.contains("="), !name.contains("\0"), !value.contains("\0") else {
                throw APIError.badRequest("environment variable name '\(name)' is not valid", code: "bad_env")
            }
            guard !Self.forbiddenVariable(name) else {
                throw APIError.badRequest("env may not set \(name): it would change which program runs or what it "
                    + "loads; the daemon's PATH and loader settings are used", code: "forbidden_env")
            }
            environment[name] = value
        }
        // Denied programs are refused whether or not they exist here.
        try check(argv: [request.command] + args, cwd: cwd, depth: 0)
        guard let executable = resolve(request.command, cwd: cwd) else {
            throw APIError.badRequest("program '\(request.command)' was not found (looked in \(searchPath.joined(separator: ":")))",
                                      code: "command_not_found")
        }
        let timeout: Int
        if let requested = request.timeout {
            guard requested > 0 else {
                throw APIError.badRequest("timeout must be a positive number of milliseconds", code: "bad_timeout")
            }
            timeout = min(requested, maxTimeoutMs)
        } else {
            timeout = min(defaultTimeoutMs, maxTimeoutMs)
        }
        return ApprovedCommand(executable: executable, argv: [request.command] + args, cwd: cwd,
                               environment: environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" },
                               timeoutMs: timeout)
    }

    // MARK: Programs behind the command

    /// Refuses `argv` if it, or any program it runs through a known wrapper, is denied or not
    /// allowed.
    func check(argv: [String], cwd: String, depth: Int) throws {
        guard let program = argv.first else { return }
        guard depth < 8 else {
            throw APIError.forbidden("the command nests wrappers too deeply to check", code: "command_denied")
        }
        let names = programNames(program, cwd: cwd)
        if let denied = names.first(where: denylist.contains) {
            throw APIError.forbidden("'\(denied)' is in execution.denylist\(depth > 0 ? " (run through a wrapper)" : "")",
                                     code: "command_denied")
        }
        if let allowlist, !names.contains(where: allowlist.contains) {
            throw APIError.forbidden("'\(names.first ?? program)' is not in execution.allowlist", code: "command_not_allowed")
        }
        for inner in Wrappers.innerCommands(of: argv, programName: names.last ?? program) {
            try check(argv: inner, cwd: cwd, depth: depth + 1)
        }
    }

    /// The name as given and the name of the file it resolves to (symlinks followed), so a
    /// link called `safe` to `/bin/rm` is still `rm`.
    private func programNames(_ program: String, cwd: String) -> [String] {
        var names = [basename(program)]
        if let path = resolve(program, cwd: cwd), let real = realPath(path) {
            let name = basename(real)
            if name != names[0] { names.append(name) }
        }
        return names
    }

    func resolve(_ program: String, cwd: String) -> String? {
        if program.contains("/") {
            let path = program.hasPrefix("/") ? program : cwd + "/" + program
            return isExecutableFile(path) ? path : nil
        }
        return searchPath.lazy.map { $0 + "/" + program }.first(where: isExecutableFile)
    }

    private func directory(_ path: String) throws -> String {
        guard path.hasPrefix("/") else {
            throw APIError.badRequest("cwd must be an absolute path", code: "bad_cwd")
        }
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw APIError.badRequest("cwd '\(path)' is not an existing directory", code: "bad_cwd")
        }
        return path
    }

    private func isExecutableFile(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFREG && access(path, X_OK) == 0
    }

    private func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    private func basename(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }
}
