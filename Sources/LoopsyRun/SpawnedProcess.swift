import CPosix
import LoopsyAPI
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// A child process leading its own process group, with stdout and stderr on pipes and an
/// eventfd that asks its I/O loop to cancel it.
final class SpawnedProcess: Sendable {
    let pid: pid_t
    let stdoutFD: Int32
    let stderrFD: Int32
    let cancelFD: Int32
    /// Readable when the child exits, so the I/O loop sleeps until something happens; -1 on
    /// kernels without pidfd (the loop then polls waitpid).
    let exitFD: Int32

    private init(pid: pid_t, stdoutFD: Int32, stderrFD: Int32, cancelFD: Int32) {
        self.pid = pid
        self.stdoutFD = stdoutFD
        self.stderrFD = stderrFD
        self.cancelFD = cancelFD
        exitFD = cposix_pidfd_open(pid)
    }

    deinit {
        close(stdoutFD)
        close(stderrFD)
        close(cancelFD)
        if exitFD >= 0 { close(exitFD) }
    }

    /// `forking`: use the fork fallback even where unshare works (tests).
    static func spawn(_ command: ApprovedCommand, forking: Bool = false) throws -> SpawnedProcess {
        var out: [Int32] = [-1, -1], err: [Int32] = [-1, -1]
        guard cposix_pipe_cloexec(&out) == 0 else { throw spawnError("pipe", errno) }
        guard cposix_pipe_cloexec(&err) == 0 else {
            close(out[0]); close(out[1])
            throw spawnError("pipe", errno)
        }
        let cancelFD = cposix_eventfd()
        defer { close(out[1]); close(err[1]) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, out[1], 1)
        posix_spawn_file_actions_adddup2(&actions, err[1], 2)
        cposix_spawn_addclosefrom(&actions, 3)
        cposix_spawn_addchdir(&actions, command.cwd)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Own process group (so cancel reaches grandchildren), signals unblocked and default:
        // the daemon blocks SIGTERM/SIGINT and ignores SIGPIPE, which children would inherit.
        posix_spawnattr_setflags(&attributes, cposix_spawn_flags_for_job())
        posix_spawnattr_setpgroup(&attributes, 0)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)

        let argv = command.argv.map { strdup($0) } + [nil]
        let envp = command.environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        var result: Int32 = 0
        // Registered as a job's main process as it starts (the reaper leaves it to its I/O loop),
        // with the user's umask rather than the daemon's 077.
        _ = ChildProcesses.shared.spawn {
            if !forking {
                result = cposix_spawn_with_umask(&pid, command.executable, &actions, &attributes, argv, envp, UserUmask.value)
                if result >= 0 { return result == 0 ? pid : -1 }
            }
            // unshare(CLONE_FS) refused (a container's seccomp profile): the same spawn by fork.
            result = cposix_fork_exec_job(&pid, command.executable, argv, envp, command.cwd, out[1], err[1], UserUmask.value)
            return result == 0 ? pid : -1
        }
        guard result == 0 else {
            close(out[0]); close(err[0]); close(cancelFD)
            throw spawnError(command.argv[0], result)
        }
        return SpawnedProcess(pid: pid, stdoutFD: out[0], stderrFD: err[0], cancelFD: cancelFD)
    }

    func signalCancel() {
        var one: UInt64 = 1
        _ = write(cancelFD, &one, 8)
    }

    /// Signals the whole process group.
    func signalGroup(_ signal: Int32) {
        kill(-pid, signal)
    }

    /// Signals the descendants that left the process group (setsid, setpgid); only while the
    /// child is not reaped yet (its pid could name another process after that).
    func signalEscapedDescendants(_ signal: Int32) {
        ProcessTree.signalDescendants(of: pid, outsideGroup: pid, signal)
    }

    /// Stops the child and every descendant, then kills them all (a fork in between cannot
    /// escape); only while the child is not reaped yet.
    func freezeAndKillTree() {
        ProcessTree.freezeAndKill([pid], includingRoots: true)
    }

    private static func spawnError(_ what: String, _ code: Int32) -> APIError {
        if code == ENOEXEC || code == EACCES {
            return APIError.badRequest("'\(what)' cannot be executed: \(String(cString: strerror(code)))",
                                       code: "command_not_executable")
        }
        return APIError(status: 500, code: "spawn_failed",
                        message: "could not start '\(what)': \(String(cString: strerror(code)))")
    }
}
