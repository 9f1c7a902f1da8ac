import LoopsyPOSIX
import LoopsyAPI
import LoopsyStore
#if canImport(Glibc)
import Glibc
#endif

/// The life of one job on its own thread: pump output to the sink under the per-stream cap,
/// watch the deadline and cancel requests, escalate SIGTERM to SIGKILL, reap the child.
struct JobIOLoop: Sendable {
    let job: RunningJob
    let process: SpawnedProcess
    let timeoutMs: Int
    let maxOutputBytes: Int
    let sink: any JobSink

    /// Seconds of silence between heartbeats.
    static let heartbeatInterval = 2.0
    /// Seconds between checks that the client is still there (nothing is sent for them).
    static let presenceInterval = 0.25
    /// How long to keep reading after the child exits (its last writes, or a grandchild's).
    static let drainAfterExit = 0.2
    /// Seconds between looks at the job's process tree: what was in it when the job ends is
    /// killed even while other jobs run (see ChildProcesses).
    static let treeInterval = 1.0

    func run() -> ExecuteResult {
        let started = Clock.monotonicSeconds()
        let deadline = started + Double(timeoutMs) / 1000
        var open: [OutputStreamName: Bool] = [.stdout: true, .stderr: true]
        var written: [OutputStreamName: Int] = [.stdout: 0, .stderr: 0]
        var truncated = false, timedOut = false, cancelled = false
        var killAt: Double?  // when SIGKILL follows the SIGTERM already sent
        var killed = false
        var status: Int32?
        var drainUntil = Double.infinity
        var lastActivity = started
        var lastPresenceCheck = started
        var lastTreeLook = started
        var tree: [pid_t: UInt64] = [:]
        var buffer = [UInt8](repeating: 0, count: 65536)

        func stop(now: Double) {
            guard killAt == nil && !killed else { return }
            process.signalGroup(SIGTERM)
            // Descendants that left the group (setsid) are asked too: the job's tree ends with it.
            if status == nil { process.signalEscapedDescendants(SIGTERM) }
            killAt = now + JobRunner.killGrace
        }

        while true {
            let now = Clock.monotonicSeconds()
            if status == nil {
                var raw: Int32 = 0
                if waitpid(process.pid, &raw, WNOHANG) == process.pid {
                    status = raw
                    drainUntil = now + Self.drainAfterExit
                }
            }
            let pipesOpen = open[.stdout]! || open[.stderr]!
            if status != nil && (!pipesOpen || now >= drainUntil) { break }
            if now >= deadline && !timedOut && status == nil {
                timedOut = true
                stop(now: now)
            }
            if let killAt, now >= killAt, !killed {
                if status == nil { process.freezeAndKillTree() }
                process.signalGroup(SIGKILL)
                killed = true
            }
            if status == nil && now - lastTreeLook >= Self.treeInterval {
                lastTreeLook = now
                // Everything seen stays listed (a descendant orphaned meanwhile is still the
                // job's), within reason.
                let seen = ProcessTree.identities(below: process.pid)
                if tree.count + seen.count > 4096 { tree = [:] }
                tree.merge(seen) { $1 }
            }
            if now - lastPresenceCheck >= Self.presenceInterval {
                lastPresenceCheck = now
                if !cancelled && status == nil && sink.clientGone() {
                    cancelled = true
                    stop(now: now)
                }
            }
            if now - lastActivity >= Self.heartbeatInterval {
                lastActivity = now
                if !sink.heartbeat() && !cancelled {
                    cancelled = true
                    stop(now: now)
                }
            }

            var fds = [pollfd(fd: process.cancelFD, events: Int16(POLLIN), revents: 0)]
            if status == nil && process.exitFD >= 0 { fds.append(pollfd(fd: process.exitFD, events: Int16(POLLIN), revents: 0)) }
            if open[.stdout]! { fds.append(pollfd(fd: process.stdoutFD, events: Int16(POLLIN), revents: 0)) }
            if open[.stderr]! { fds.append(pollfd(fd: process.stderrFD, events: Int16(POLLIN), revents: 0)) }
            var wake = min(deadline, lastActivity + Self.heartbeatInterval, drainUntil, killAt ?? .infinity,
                           lastPresenceCheck + Self.presenceInterval, status == nil ? lastTreeLook + Self.treeInterval : .infinity)
            if status == nil && process.exitFD < 0 { wake = min(wake, now + 0.05) }  // no pidfd: poll waitpid
            let timeout = Int32(max(0, min(1000, (wake - now) * 1000)).rounded(.up))
            if poll(&fds, nfds_t(fds.count), timeout) < 0 && errno != EINTR { break }

            for descriptor in fds where descriptor.revents != 0 {
                if descriptor.fd == process.exitFD { continue }  // waitpid at the top of the loop reaps it
                if descriptor.fd == process.cancelFD {
                    var value: UInt64 = 0
                    _ = read(process.cancelFD, &value, 8)
                    if !cancelled && status == nil {
                        cancelled = true
                        stop(now: Clock.monotonicSeconds())
                    }
                    continue
                }
                let name: OutputStreamName = descriptor.fd == process.stdoutFD ? .stdout : .stderr
                let count = read(descriptor.fd, &buffer, buffer.count)
                if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if count <= 0 {
                    open[name] = false
                    continue
                }
                lastActivity = Clock.monotonicSeconds()
                // Past the cap, output is read and dropped: the process keeps running and the
                // daemon's memory stays bounded.
                let room = max(0, maxOutputBytes - written[name]!)
                if room < count { truncated = true }
                guard room > 0 else { continue }
                written[name]! += min(room, count)
                if !sink.output(name, Array(buffer[0..<min(room, count)])) && !cancelled {
                    cancelled = true
                    stop(now: lastActivity)
                }
            }
        }
        // Whatever is left of the group (a background grandchild) does not outlive the job.
        if status == nil { process.freezeAndKillTree() }
        process.signalGroup(SIGKILL)
        if status == nil {
            var raw: Int32 = 0
            _ = retryingInterrupts { waitpid(process.pid, &raw, 0) }
            status = raw
        }
        // Reaped: what the job left behind (reparented to loopsyd, the subreaper) is killed and
        // reaped by the reaper now.
        ChildProcesses.shared.release(process.pid, leftovers: tree)
        let raw = status ?? 0
        var exitCode: Int?
        var signal: String?
        switch ExitStatus(waitStatus: raw) {
        case .exited(let code): exitCode = Int(code)
        case .signaled(let number): signal = Self.signalName(number)
        }
        return ExecuteResult(jobId: job.info.jobId, exitCode: exitCode, signal: signal, stdout: "", stderr: "",
                             durationMs: (Clock.monotonicSeconds() - started) * 1000, timedOut: timedOut,
                             truncated: truncated, cancelled: cancelled && !timedOut)
    }

    static func signalName(_ signal: Int32) -> String {
        let names: [Int32: String] = [SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL",
                                      SIGABRT: "SIGABRT", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV",
                                      SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM", SIGUSR1: "SIGUSR1",
                                      SIGUSR2: "SIGUSR2", SIGBUS: "SIGBUS", SIGTRAP: "SIGTRAP", SIGXCPU: "SIGXCPU"]
        return names[signal] ?? "SIG\(signal)"
    }
}
