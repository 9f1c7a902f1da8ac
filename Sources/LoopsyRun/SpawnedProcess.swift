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
        exitFD = Descriptors.processFD(pid)
    }

    deinit {
        close(stdoutFD)
        close(stderrFD)
        close(cancelFD)
        if exitFD >= 0 { close(exitFD) }
    }

    /// `forking`: use the fork fallback even where unshare works (tests).
    static func spawn(_ command: ApprovedCommand, forking: Bool = false) throws -> SpawnedProcess {
        let out: (read: Int32, write: Int32), err: (read: Int32, write: Int32)
        do {
            out = try Descriptors.pipe()
        } catch {
            throw spawnError("pipe", error.code)
        }
        do {
            err = try Descriptors.pipe()
        } catch {
            close(out.read); close(out.write)
            throw spawnError("pipe", error.code)
        }
        let cancelFD = Descriptors.eventFD()
        defer { close(out.write); close(err.write) }
        let job = Subprocess.Job(executable: command.executable, argv: command.argv, environment: command.environment,
                                 cwd: command.cwd, stdout: out.write, stderr: err.write, umask: UserUmask.value)
        // Registered as a job's main process as it starts (the reaper leaves it to its I/O loop),
        // with the user's umask rather than the daemon's 077.
        switch Subprocess.spawn(job, forking: forking, around: { ChildProcesses.shared.spawn($0) }) {
        case .success(let pid):
            return SpawnedProcess(pid: pid, stdoutFD: out.read, stderrFD: err.read, cancelFD: cancelFD)
        case .failure(let error):
            close(out.read); close(err.read); close(cancelFD)
            throw spawnError(command.argv[0], error.code)
        }
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
                                       code: .commandNotExecutable)
        }
        if code == E2BIG {
            // The kernel's limits on arguments and environment (one string at most 128 KiB,
            // all of them a quarter of the stack limit): the request's fault, not the daemon's.
            return APIError(status: 413, code: .payloadTooLarge,
                            message: "'\(what)' cannot be started: its arguments or environment are larger than the "
                                + "kernel allows (one argument at most 128 KiB); pass large data on stdin or in a file")
        }
        return APIError(status: 500, code: .spawnFailed,
                        message: "could not start '\(what)': \(String(cString: strerror(code)))")
    }
}
