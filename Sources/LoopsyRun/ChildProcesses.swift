import LoopsyConfig
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// The daemon's children: the main processes of running jobs and AI tasks (each reaped by its
/// own I/O loop), and orphans — processes a job or task left behind, which the kernel hands to
/// loopsyd because it is a child subreaper.
///
/// The reaper thread looks at loopsyd's children every second while it has any (and at once
/// when a job or task starts or ends); with none, it sleeps until the next one starts. A child
/// that is not a registered main process is an orphan. One that was seen in an ended job's
/// tree (its I/O loop looks every second) goes at once. Any other is charged to the
/// jobs and tasks that may own it: the one whose process group or session it is still in, else
/// every one running when it was first seen. Once none of its owners runs any more it is
/// killed with its whole tree (freeze then kill) and reaped with waitpid(pid, WNOHANG) — never
/// waitpid(-1), which could take a job's exit status from its I/O loop.
public final class ChildProcesses: Sendable {
    public static let shared = ChildProcesses()

    private struct State {
        /// Main processes of running jobs and tasks.
        var owned: Set<pid_t> = []
        /// Orphans and the owners that may still want them.
        var orphans: [pid_t: Set<pid_t>] = [:]
        /// Processes last seen in the tree of a job that has ended (pid and start time): they go
        /// at the next sweep whoever else is running.
        var leftovers: [pid_t: UInt64] = [:]
        var reaperStarted = false
        /// The reaper's last sweep found nothing to watch: it sleeps until a spawn wakes it.
        var reaperSleeping = false
    }

    private let state = PlainMutex(State())
    private let wakeFD = Descriptors.eventFD()
    /// Seconds between looks at the daemon's children when nothing wakes the reaper.
    static let interval: Int32 = 1000

    /// Runs `spawn` (which returns the new child's pid, or <= 0 when it failed) and registers
    /// the child before the reaper can look again, so a new job is never taken for an orphan.
    /// A reaper sleeping for want of children is woken to watch again (one already watching
    /// is left alone: a job's start needs no sweep).
    func spawn(_ spawn: () -> pid_t) -> pid_t {
        let (pid, sleeping) = state.withLock { state -> (pid_t, Bool) in
            let pid = spawn()
            guard pid > 0 else { return (pid, false) }
            state.owned.insert(pid)
            defer { state.reaperSleeping = false }
            return (pid, state.reaperSleeping)
        }
        if sleeping { wake() }
        return pid
    }

    /// The main process `pid` was reaped by its owner: what it left behind may go now.
    /// `leftovers`: its descendants as last seen (pid and start time), which are its for sure.
    func release(_ pid: pid_t, leftovers: [pid_t: UInt64] = [:]) {
        state.withLock { state in
            state.owned.remove(pid)
            state.leftovers.merge(leftovers) { $1 }
        }
        wake()
    }

    /// Runs `body` if `pid` is still a registered (not yet released) main process.
    func ifRunning(_ pid: pid_t, _ body: () -> Void) {
        state.withLock { state in
            if state.owned.contains(pid) { body() }
        }
    }

    /// Makes loopsyd the subreaper of everything it starts and starts the reaper thread.
    public func startReaper(logger: Logger) {
        let first = state.withLock { state -> Bool in
            defer { state.reaperStarted = true }
            return !state.reaperStarted
        }
        guard first else { return }
        do {
            try ProcessControl.becomeChildSubreaper()
        } catch {
            logger.warn("prctl(PR_SET_CHILD_SUBREAPER) failed: \(error); processes that jobs leave behind go to init")
        }
        let started = DedicatedThread.start("loopsy-reaper") { [self] in
            // With no child at all (no job or task has run, or all have ended and nothing they
            // left is still here) there is nothing to look at until a spawn wakes the thread: an
            // idle daemon does not wake up every second.
            var watching = true
            while true {
                var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
                // Without an eventfd nothing could wake it: it keeps looking every second.
                _ = poll(&fds, 1, watching || wakeFD < 0 ? Self.interval : -1)
                if fds[0].revents != 0 {
                    var value: UInt64 = 0
                    _ = read(wakeFD, &value, 8)
                }
                watching = sweep()
            }
        }
        if !started { logger.warn("could not start the reaper thread") }
    }

    func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Kills and reaps orphans nobody may want any more (every orphan when `all`, at shutdown).
    /// Returns whether loopsyd had any child or running job or task (more to watch).
    @discardableResult
    func sweep(all: Bool = false) -> Bool {
        var watching = true
        let doomed = state.withLock { state -> [pid_t] in
            let children = ProcessTree.children(of: getpid())
            watching = !children.isEmpty || !state.owned.isEmpty
            // Decided under the lock a spawn takes, so a spawn after it sees the flag and wakes
            // the thread (the eventfd keeps the wake-up if it comes before the thread polls).
            state.reaperSleeping = !watching && !all
            var doomed: [pid_t] = []
            var orphans: [pid_t: Set<pid_t>] = [:]
            for child in children where !state.owned.contains(child) {
                let status = ProcessTree.status(child)
                if let started = state.leftovers[child], started == status?.started {
                    doomed.append(child)
                    continue
                }
                var owners: Set<pid_t>
                if let known = state.orphans[child] {
                    owners = known
                } else if let status, state.owned.contains(status.group) {
                    owners = [status.group]
                } else if let status, state.owned.contains(status.session) {
                    owners = [status.session]
                } else {
                    owners = state.owned
                }
                owners.formIntersection(state.owned)
                if all || owners.isEmpty { doomed.append(child) } else { orphans[child] = owners }
            }
            state.orphans = orphans
            // A job's descendants were handed to loopsyd when its main process exited, before
            // the release: whatever is not a child now is not coming.
            state.leftovers = [:]
            return doomed
        }
        guard !doomed.isEmpty else { return watching }
        ProcessTree.freezeAndKill(doomed, includingRoots: true)
        var left = doomed
        for _ in 0..<50 where !left.isEmpty {
            left = left.filter { pid in
                var status: Int32 = 0
                let result = waitpid(pid, &status, WNOHANG)
                return result == 0 || (result < 0 && errno == EINTR)
            }
            if !left.isEmpty { usleep(10_000) }
        }
        // Anything still dying is reaped on the next sweep.
        return true
    }

    /// Daemon shutdown, after jobs and tasks were asked to stop: whatever of them has not
    /// ended within `grace` seconds is killed with its tree, and so is every orphan.
    public func killEverything(grace: Double = 2) {
        for _ in 0..<Int(grace * 20) where !state.withLock({ $0.owned.isEmpty }) { usleep(50_000) }
        let owned = state.withLock { Array($0.owned) }
        ProcessTree.freezeAndKill(owned, includingRoots: true)
        sweep(all: true)
    }
}
