import CPosix
#if canImport(Glibc)
import Glibc
#endif

/// Descriptors Linux gives that Swift's Glibc module cannot name (GNU extensions, macros).
public enum Descriptors {
    /// A pipe whose ends close on exec (a child gets one only through dup2).
    public static func pipe() throws(Errno) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard cposix_pipe_cloexec(&fds) == 0 else { throw Errno.current }
        return (fds[0], fds[1])
    }

    /// A non-blocking, close-on-exec eventfd (-1 on failure), to wake a poll loop.
    public static func eventFD() -> Int32 { cposix_eventfd() }

    /// A descriptor that polls readable when `pid` exits; -1 on kernels without pidfd (5.3+).
    public static func processFD(_ pid: pid_t) -> Int32 { cposix_pidfd_open(pid) }
}

/// Process attributes of this process.
public enum ProcessControl {
    /// Orphaned descendants are re-parented to this process (PR_SET_CHILD_SUBREAPER).
    public static func becomeChildSubreaper() throws(Errno) {
        guard cposix_set_child_subreaper() == 0 else { throw Errno.current }
    }

    /// Gives malloc's free memory back to the system (glibc's malloc_trim: the top of the heap,
    /// and whole free pages inside it): for a long-lived process after a burst of work.
    public static func returnFreeMemory() { _ = malloc_trim(0) }
}

/// File-system calls beyond Glibc's Swift view.
public enum FileSystem {
    /// O_PATH: a descriptor that names a file without opening it for reading or writing.
    public static var pathOnly: Int32 { cposix_o_path() }

    /// How openat2 may resolve a path (RESOLVE_*).
    public struct Resolve: OptionSet, Sendable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        /// No symbolic link anywhere in the path.
        public static let noSymlinks = Resolve(rawValue: UInt64(CPOSIX_RESOLVE_NO_SYMLINKS))
        /// No /proc magic links.
        public static let noMagicLinks = Resolve(rawValue: UInt64(CPOSIX_RESOLVE_NO_MAGICLINKS))
        /// Never outside the starting directory ("..", absolute links).
        public static let beneath = Resolve(rawValue: UInt64(CPOSIX_RESOLVE_BENEATH))
    }

    /// openat2(2); -1 with errno ENOSYS (or EINVAL) where the kernel lacks it.
    public static func openat2(_ directory: Int32, _ path: String, flags: Int32, mode: mode_t = 0,
                               resolve: Resolve) -> Int32 {
        cposix_openat2(directory, path, flags, mode, resolve.rawValue)
    }

    /// renameat within one directory; `noreplace` refuses to replace an existing `to`
    /// (RENAME_NOREPLACE). 0 or -1 with errno.
    public static func rename(in directory: Int32, from: String, to: String, noreplace: Bool) -> Int32 {
        cposix_renameat(directory, from, to, noreplace ? 1 : 0)
    }

    /// Starts writing `length` bytes from `offset` to disk without waiting (sync_file_range
    /// SYNC_FILE_RANGE_WRITE), so a later fsync has little left to do.
    public static func startWriteBack(_ fd: Int32, offset: off_t, length: off_t) {
        _ = cposix_start_writeback(fd, offset, length)
    }
}

extension Subprocess {
    /// What a job's child gets: stdin /dev/null, stdout and stderr on the given descriptors,
    /// nothing else open, `cwd`, a process group of its own, no signal blocked or ignored, and
    /// the user's `umask`.
    public struct Job {
        public var executable: String
        public var argv: [String]
        /// "NAME=value" entries: the whole environment.
        public var environment: [String]
        public var cwd: String
        public var stdout: Int32
        public var stderr: Int32
        public var umask: mode_t

        public init(executable: String, argv: [String], environment: [String], cwd: String, stdout: Int32,
                    stderr: Int32, umask: mode_t) {
            self.executable = executable
            self.argv = argv
            self.environment = environment
            self.cwd = cwd
            self.stdout = stdout
            self.stderr = stderr
            self.umask = umask
        }
    }

    /// Starts `job`: posix_spawn from a thread with its own umask (unshare(CLONE_FS)), or by
    /// fork where that is refused (a container's seccomp profile) or `forking` asks for it.
    /// `around` runs the spawn (the caller registers the child as it starts); it returns the pid
    /// or -1. Returns the pid, or the errno of the failure.
    public static func spawn(_ job: Job, forking: Bool = false,
                             around: (() -> pid_t) -> pid_t = { $0() }) -> Result<pid_t, Errno> {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, job.stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, job.stderr, 2)
        cposix_spawn_addclosefrom(&actions, 3)
        cposix_spawn_addchdir(&actions, job.cwd)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Own process group (so a cancel reaches grandchildren), signals unblocked and default:
        // the daemon blocks SIGTERM/SIGINT and ignores SIGPIPE, which children would inherit.
        posix_spawnattr_setflags(&attributes, cposix_spawn_flags_for_job())
        posix_spawnattr_setpgroup(&attributes, 0)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)

        let argv = job.argv.map { strdup($0) } + [nil]
        let envp = job.environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        var result: Int32 = 0
        _ = around {
            if !forking {
                result = cposix_spawn_with_umask(&pid, job.executable, &actions, &attributes, argv, envp, job.umask)
                if result >= 0 { return result == 0 ? pid : -1 }
            }
            result = cposix_fork_exec_job(&pid, job.executable, argv, envp, job.cwd, job.stdout, job.stderr, job.umask)
            return result == 0 ? pid : -1
        }
        return result == 0 ? .success(pid) : .failure(Errno(result))
    }

    /// Starts `executable` on a new pseudo-terminal (forkpty) in `cwd` with `umask`, in a
    /// session of its own. Returns the pid and the terminal's master side.
    public static func spawnOnTerminal(executable: String, argv: [String], environment: [String], cwd: String,
                                       umask: mode_t,
                                       around: (() -> pid_t) -> pid_t = { $0() }) throws(Errno) -> (pid: pid_t, master: Int32) {
        let argvC = argv.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            argvC.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var master: Int32 = -1
        var failure = Errno(0)
        let pid = around {
            let pid = cposix_forkpty_exec(executable, argvC, envp, cwd, umask, &master)
            if pid <= 0 { failure = Errno.current }
            return pid
        }
        guard pid > 0 else { throw failure }
        return (pid, master)
    }
}
