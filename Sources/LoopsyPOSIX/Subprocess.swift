import CPosix
#if canImport(Glibc)
import Glibc
#endif

/// How a process ended, decoded from a wait status.
public enum ExitStatus: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    public init(waitStatus: Int32) {
        self = cposix_wifsignaled(waitStatus) != 0 ? .signaled(cposix_wtermsig(waitStatus))
            : .exited(cposix_wexitstatus(waitStatus))
    }

    /// The code a shell would report: the exit code, or 128 + the signal.
    public var code: Int32 {
        switch self {
        case .exited(let code): return code
        case .signaled(let signal): return 128 + signal
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): return "exit \(code)"
        case .signaled(let signal): return "signal \(signal)"
        }
    }
}

/// A program to start: the one way the clients spawn processes.
///
/// The child inherits this process's environment. Standard streams are inherited unless told
/// otherwise; every other descriptor is closed in the child when `closeOtherDescriptors`.
public struct Subprocess {
    public enum Input: Sendable { case inherit, null }
    public enum Output: Sendable {
        case inherit
        case discard
        /// Appended to this file, made with mode 0600 if missing.
        case append(String)
        /// A pipe this process reads (`run` returns it; `spawn` gives its descriptor).
        case capture
    }

    /// A started child.
    public struct Child: Sendable {
        public let pid: pid_t
        /// The read end of the captured stdout, when captured (the caller closes it).
        public let output: Int32?

        /// Waits for the child to end (retrying EINTR).
        public func wait() -> ExitStatus {
            var status: Int32 = 0
            _ = retryingInterrupts { waitpid(pid, &status, 0) }
            return ExitStatus(waitStatus: status)
        }

        public func signal(_ signal: Int32) { kill(pid, signal) }
    }

    public var executable: String
    public var arguments: [String]
    public var stdin = Input.inherit
    public var stdout = Output.inherit
    /// `.inherit`, `.discard` or `.append` (`.capture` is for stdout only).
    public var stderr = Output.inherit
    /// stderr goes where stdout goes.
    public var stderrToStdout = false
    /// A session of its own (setsid): no controlling terminal, outlives this process's group.
    public var newSession = false
    /// Closes every descriptor above 2 in the child: a caller's pipe must not live on in it.
    public var closeOtherDescriptors = false
    /// Looks `executable` up on PATH when it has no "/".
    public var searchPath = false

    public init(_ executable: String, _ arguments: [String] = []) {
        self.executable = executable
        self.arguments = arguments
    }

    public func spawn() throws(Errno) -> Child {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        if stdin == .null { posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0) }
        var pipeEnds: [Int32] = [-1, -1]
        if case .capture = stdout {
            guard cposix_pipe_cloexec(&pipeEnds) == 0 else { throw Errno.current }
            posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
        } else {
            Self.redirect(stdout, to: 1, &actions)
        }
        if stderrToStdout {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            Self.redirect(stderr, to: 2, &actions)
        }
        if closeOtherDescriptors { cposix_spawn_addclosefrom(&actions, 3) }
        // The child starts with no signal blocked and every signal at its default: a caller
        // that ignores SIGPIPE or blocks SIGTERM (as loopsyd does) must not pass that on.
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        var flags = Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if newSession { flags |= cposix_spawn_setsid_flag() }
        posix_spawnattr_setflags(&attributes, flags)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let result = searchPath ? posix_spawnp(&pid, executable, &actions, &attributes, argv, environ)
            : posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        if pipeEnds[1] >= 0 { close(pipeEnds[1]) }
        guard result == 0 else {
            if pipeEnds[0] >= 0 { close(pipeEnds[0]) }
            throw Errno(result)
        }
        return Child(pid: pid, output: pipeEnds[0] >= 0 ? pipeEnds[0] : nil)
    }

    /// Runs to the end; the output is empty unless stdout is `.capture` (then at most
    /// `outputLimit` bytes are kept, the rest read and dropped so the child never blocks).
    public func run(outputLimit: Int = 1 << 20) throws(Errno) -> (status: ExitStatus, output: [UInt8]) {
        let child = try spawn()
        var output: [UInt8] = []
        if let fd = child.output {
            defer { close(fd) }
            output = (try? FileIO.readAll(fd, limit: outputLimit)) ?? []
            if output.count > outputLimit {
                output.removeLast(output.count - outputLimit)
                var sink = [UInt8](repeating: 0, count: 64 * 1024)
                while sink.withUnsafeMutableBytes({ raw in retryingInterrupts { read(fd, raw.baseAddress, raw.count) } }) > 0 {}
            }
        }
        return (child.wait(), output)
    }

    /// Becomes the program (execv): same pid, same terminal, signals go straight to it. Only
    /// `executable`, `arguments` and `searchPath` apply. Returns only by throwing.
    public func replacingThisProcess() throws(Errno) -> Never {
        fflush(nil)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        if searchPath { execvp(executable, argv) } else { execv(executable, argv) }
        let error = Errno.current
        argv.forEach { free($0) }
        throw error
    }

    private static func redirect(_ output: Output, to fd: Int32, _ actions: inout posix_spawn_file_actions_t) {
        switch output {
        case .inherit, .capture: break
        case .discard: posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_WRONLY, 0)
        case .append(let path): posix_spawn_file_actions_addopen(&actions, fd, path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        }
    }
}

extension Subprocess.Input: Equatable {}
