import LoopsyAPI
import LoopsyConfig
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// A command that passed the policy: what to spawn, where, with what environment and limits.
public struct ApprovedCommand: Sendable {
    var executable: String
    var argv: [String]
    var cwd: String
    var environment: [String]
    var timeoutMs: Int
}

/// The one check for everything that runs a program — /execute, /execute/stream and AI tasks:
/// denylist (on the name given and the real name of the program run, seen through wrappers whose
/// options are parsed as they parse them, refusing what is not understood), optional allowlist
/// (on the real file: PATH search, then realpath), cwd, environment and timeout rules.
struct ExecutionPolicy: Sendable {
    /// Program names and paths by their bytes, as the kernel names files (see BytewiseKey): as
    /// Strings, an allowed "Kx" also allowed a file named "\u{212A}x".
    let denylist: Set<BytewiseKey>
    let allowlist: Set<BytewiseKey>?
    let defaultTimeoutMs: Int
    let maxTimeoutMs: Int
    /// PATH used to find programs: the daemon's own, never the caller's.
    let searchPath: [String]
    /// The daemon's environment (commands and Claude Code get only named parts of it).
    private let daemonEnvironment: [String: String]
    /// What a command starts with: the minimal set plus execution.environment.
    let baseEnvironment: [String: String]

    init(config: LoopsyConfig.Execution, environment: [String: String]) {
        denylist = Set(config.denylist.map(BytewiseKey.init))
        allowlist = config.allowlist.map { Set($0.map(BytewiseKey.init)) }
        defaultTimeoutMs = config.defaultTimeout
        maxTimeoutMs = config.maxTimeout
        // Only absolute directories, and children get the same PATH as the one searched here: an
        // empty or relative entry is the cwd to execvp, where `timeout 5 echo` ran ./bin/echo
        // while /usr/bin/echo was the file checked.
        let absolute = (environment["PATH"] ?? "").split(separator: ":").map(String.init).filter { KernelPath.isAbsolute($0) }
        searchPath = absolute.isEmpty ? ["/usr/local/bin", "/usr/bin", "/bin"] : absolute
        var daemon = environment
        daemon["PATH"] = searchPath.joined(separator: ":")
        daemonEnvironment = daemon
        baseEnvironment = Self.environment(of: daemon, passing: config.environment)
    }

    /// Variables every program run here gets from the daemon (when it has them); more are passed
    /// only when named in execution.environment (commands) or aiTasks.environment (Claude Code).
    static let minimalVariables = ["HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "TMPDIR", "TERM", "PATH"]

    private static func environment(of daemon: [String: String], passing names: [String]) -> [String: String] {
        var result: [String: String] = [:]
        for name in minimalVariables + names {
            if let value = daemon[name] { result[name] = value }
        }
        return result
    }

    /// The minimal set plus the daemon's variables named in `names` (aiTasks.environment).
    func environment(passing names: [String]) -> [String: String] {
        Self.environment(of: daemonEnvironment, passing: names)
    }

    /// The shell that `flock -c`, `script`, `sudo -s`, … run ($SHELL, which callers may not set).
    private var shell: String { baseEnvironment["SHELL"].flatMap { $0.isEmpty ? nil : $0 } ?? "/bin/sh" }

    /// Variables a caller may not set: they change which program runs or what it loads, or how
    /// a wrapper reads its options, past the checks made here (SHELL: what flock -c, script and
    /// sudo -s run; POSIXLY_CORRECT: whether getopt permutes; the GIT_*, PAGER and EDITOR ones:
    /// commands an allowed git or less would run).
    static func forbiddenVariable(_ name: String) -> Bool {
        // By bytes, as getenv compares names.
        ["LD_", "BASH_FUNC_", "DYLD_", "GIT_CONFIG"].contains { name.utf8.starts(with: $0.utf8) }
            || forbiddenNames.contains(BytewiseKey(name))
    }

    private static let forbiddenNames: Set<BytewiseKey> = Set([
        "PATH", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "IFS", "PS4", "GCONV_PATH", "HOSTALIASES", "NLSPATH",
        "PYTHONSTARTUP", "PYTHONPATH", "PYTHONHOME", "PERL5OPT", "PERL5LIB", "RUBYOPT", "RUBYLIB", "NODE_OPTIONS",
        "NODE_PATH", "SHELL", "CDPATH", "GLOBIGNORE", "PROMPT_COMMAND", "ZDOTDIR", "POSIXLY_CORRECT", "GIT_SSH",
        "GIT_SSH_COMMAND", "GIT_EXTERNAL_DIFF", "GIT_PAGER", "GIT_EDITOR", "GIT_SEQUENCE_EDITOR", "GIT_ASKPASS",
        "GIT_PROXY_COMMAND", "GIT_EXEC_PATH", "GIT_TEMPLATE_DIR", "PAGER", "MANPAGER", "EDITOR", "VISUAL", "SUDO_EDITOR",
        "LESSOPEN", "LESSCLOSE", "SSH_ASKPASS", "BROWSER",
    ].map(BytewiseKey.init))

    func approve(_ request: ExecuteRequest, home: String) throws -> ApprovedCommand {
        guard !request.command.isEmpty, !request.command.contains("\0") else {
            throw APIError.badRequest("command must be a non-empty program name or path", code: .badCommand)
        }
        let args = request.args ?? []
        if args.contains(where: { $0.contains("\0") }) {
            throw APIError.badRequest("arguments must not contain NUL bytes", code: .badCommand)
        }
        let cwd = try directory(request.cwd ?? home)
        var environment = baseEnvironment
        for (name, value) in request.env ?? [:] {
            // By bytes, as getenv reads the child's environment: "GIT_SSH_COMMAND=\u{301}" has no "="
            // Character, but the child splits it at the "=" byte into GIT_SSH_COMMAND.
            guard !name.isEmpty, !name.utf8.contains(UInt8(ascii: "=")), !name.utf8.contains(0) else {
                throw APIError.badRequest("environment variable name '\(name)' is not valid (empty, or with \"=\" or NUL)",
                                          code: .badEnv)
            }
            guard !value.contains("\0") else {
                throw APIError.badRequest("the value of environment variable \(name) must not contain NUL bytes",
                                          code: .badEnv)
            }
            guard !Self.forbiddenVariable(name) else {
                throw APIError.badRequest("env may not set \(name): it would change which program runs or what it "
                    + "loads; the daemon's PATH and loader settings are used", code: .forbiddenEnv)
            }
            environment[name] = value
        }
        // Denied programs are refused whether or not they exist here.
        try check(argv: [request.command] + args, cwd: cwd)
        // The file checked is the file run: its real path (a symlink swapped afterwards changes nothing).
        guard let executable = resolve(request.command, cwd: cwd).map({ realPath($0) ?? $0 }) else {
            throw APIError.badRequest("program '\(request.command)' was not found (looked in \(searchPath.joined(separator: ":")))",
                                      code: .commandNotFound)
        }
        let timeout: Int
        if let requested = request.timeout {
            guard requested > 0 else {
                throw APIError.badRequest("timeout must be a positive number of milliseconds", code: .badTimeout)
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

    /// Refuses `argv` if it, or any program it runs through a known wrapper (its options parsed
    /// as the wrapper parses them; an option not understood is refused), is denied or not allowed.
    func check(argv: [String], cwd: String) throws {
        try check(InnerCommand(argv: argv, cwd: cwd), depth: 0)
    }

    private func check(_ command: InnerCommand, depth: Int) throws {
        guard let program = command.argv.first else { return }
        guard depth < 8 else {
            throw APIError.forbidden("the command nests wrappers too deeply to check", code: .commandDenied)
        }
        let given = basename(program)
        let shown = program.replacingEvery(String(ShellWords.dynamic), with: "…")
        if program == ShellWords.unreadable {
            // ShellWords gave up on part of a script (the command standing for it).
            throw APIError.forbidden("part of the script cannot be read with certainty (a here-document, a quote or "
                + "substitution left open, quotes inside \"${…}\", or nesting deeper than \(ShellWords.maxNesting)), "
                + "so what it runs cannot be checked; refused. Rewrite that part (printf instead of a here-document, "
                + "say)", code: .commandDenied)
        }
        if program.contains(ShellWords.dynamic) || program.isEmpty {
            throw APIError.forbidden("the program '\(shown)' is only known when the command runs (an expansion, a glob, "
                + "or find's/xargs' input), so it cannot be checked; refused", code: .commandDenied)
        }
        // Slashes by byte, as execve reads them (a "/" before a combining mark is one Character).
        if KernelPath.hasSlash(program) && !KernelPath.isAbsolute(program) && command.cwd == nil {
            throw APIError.forbidden("'\(program)' is a relative path in a directory only known when the command runs, so it "
                + "cannot be checked; refused", code: .commandDenied)
        }
        // The program as the kernel will find it: PATH search (the daemon's PATH), then realpath.
        let real = resolve(program, cwd: command.cwd ?? "/").flatMap(realPath)
        let realName = real.map(basename)
        // After `env -i`, `env -u PATH`, sudo, su, … the PATH is another one (glibc's, the shell's
        // built-in one, sudo's secure_path): the file found there is checked too.
        var others: [String] = []
        if command.pathReset && !KernelPath.hasSlash(program) {
            // Each fallback searches these in its own order: every file found is one that may run.
            let found = Self.resetSearchPath.map { $0 + "/" + program }.filter(isExecutableFile).compactMap(realPath)
            for file in found where file != real && !others.contains(file) { others.append(file) }
            // bash's built-in PATH ends in ".": a program found nowhere else is the cwd's.
            if found.isEmpty, let cwd = command.cwd {
                if let local = resolve("./" + program, cwd: cwd).flatMap(realPath), local != real { others.append(local) }
            } else if found.isEmpty && allowlist != nil {
                throw APIError.forbidden("'\(program)' would be looked up in a directory only known when the command runs, "
                    + "so it cannot be checked; refused", code: .commandDenied)
            }
        }
        var names = [given]
        for file in (real.map { [$0] } ?? []) + others where !names.contains(basename(file)) {
            names.append(basename(file))
        }
        if let denied = names.first(where: { denylist.contains(BytewiseKey($0)) }) {
            throw APIError.forbidden("'\(denied)' is in execution.denylist\(depth > 0 ? " (run through a wrapper)" : "")",
                                     code: .commandDenied)
        }
        if let allowlist {
            for file in (real.map { [$0] } ?? [nil]) + others {
                guard let file, allowlist.contains(BytewiseKey(basename(file))) || allowlist.contains(BytewiseKey(file)) else {
                    let what = file.map { "'\(given)' (\($0))" } ?? "'\(given)' (not found on the daemon's PATH)"
                    throw APIError.forbidden("\(what) is not in execution.allowlist\(depth > 0 ? " (run through a wrapper)" : "")",
                                             code: .commandNotAllowed)
                }
            }
        }
        // What the file is decides how it reads its arguments; a multi-call binary goes by its name.
        var name = realName ?? given
        if name == "busybox" && given != "busybox" {
            // A link to busybox runs the applet of its name: that name must be allowed too.
            if let allowlist, !allowlist.contains(BytewiseKey(given)) {
                throw APIError.forbidden("'\(given)' (busybox's applet) is not in execution.allowlist", code: .commandNotAllowed)
            }
            name = given
        }
        if name == "newgrp" && given == "sg" { name = "sg" }  // sg is newgrp under another name
        let argv = command.argv
        let context = WrapperContext(cwd: command.cwd, strict: allowlist != nil, open: command.open,
                                     fromScript: command.fromScript, shell: command.shellReset ? "/bin/sh" : shell)
        let inner = try Wrappers.innerCommands(of: argv, name: name, context: context)
        // In a script, an expanded word can split into several and move into the program's place:
        // a wrapper whose words before the program it runs are made at run time cannot be checked.
        if command.fromScript, Wrappers.isWrapper(name), !Self.expansionsOnlyAfterThePrograms(argv, inner) {
            throw APIError.forbidden("\(name): an argument is only known when the script runs, so the command it runs cannot "
                + "be checked; refused", code: .commandDenied)
        }
        for var inner in inner {
            inner.pathReset = inner.pathReset || command.pathReset
            inner.shellReset = inner.shellReset || command.shellReset
            try check(inner, depth: depth + 1)
        }
    }

    /// Whether every word of `argv` made at run time lies in an inner command taken whole from
    /// its end (`timeout 5 echo "$x"`), where it is that command's own (checked in its turn).
    private static func expansionsOnlyAfterThePrograms(_ argv: [String], _ inner: [InnerCommand]) -> Bool {
        let isDynamic: (String) -> Bool = { $0.contains(ShellWords.dynamic) }
        guard argv.dropFirst().contains(where: isDynamic) else { return true }
        guard !inner.isEmpty else { return false }
        return inner.allSatisfy { command in
            guard command.argv.count < argv.count, Array(argv.suffix(command.argv.count)) == command.argv else { return false }
            return !argv[1..<(argv.count - command.argv.count)].contains(where: isDynamic)
        }
    }

    /// Where a program is looked for once PATH is gone or replaced: every directory glibc's
    /// execvp, dash, bash or sudo's secure_path fall back to.
    static let resetSearchPath = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin", "/snap/bin"]

    func resolve(_ program: String, cwd: String) -> String? {
        if KernelPath.hasSlash(program) {
            let path = KernelPath.isAbsolute(program) ? program : cwd + "/" + program
            return isExecutableFile(path) ? path : nil
        }
        return searchPath.lazy.map { $0 + "/" + program }.first(where: isExecutableFile)
    }

    /// The one check for a working directory (commands and AI tasks): absolute, an existing
    /// directory; the real path (symlinks resolved) is what is used.
    func directory(_ path: String) throws -> String {
        guard path.hasPrefix("/") else {
            throw APIError.badRequest("cwd must be an absolute path", code: .badCwd)
        }
        // stat(2) would read the path only up to a NUL: "/tmp\0/x" ran in /tmp.
        guard !path.contains("\0") else {
            throw APIError.badRequest("cwd must not contain NUL bytes", code: .badCwd)
        }
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, let real = realPath(path) else {
            throw APIError.badRequest("cwd '\(path)' is not an existing directory", code: .badCwd)
        }
        return real
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
        KernelPath.names(path).last.map(String.init) ?? path
    }
}
