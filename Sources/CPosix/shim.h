// POSIX process control that Swift's Glibc module hides (GNU extensions, macros).
// Declared here without _GNU_SOURCE, which would make these headers disagree with the ones
// other modules import. Only LoopsyPOSIX imports this module; everything else goes through it.
#ifndef CPOSIX_SHIM_H
#define CPOSIX_SHIM_H
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <pthread.h>
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

// glibc 2.34+ and 2.29+; declared in spawn.h only under _GNU_SOURCE.
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
extern int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path);

/// Closes every descriptor >= `from` in the child, so no daemon socket, database or pipe of
/// another job leaks into a command.
static inline int cposix_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

/// Starts the child in `path`.
static inline int cposix_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

static inline short cposix_spawn_flags_for_job(void) {
    return POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
}

extern int pipe2(int fds[2], int flags);
extern int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);

/// rename(2), refusing to replace an existing target when `noreplace` (RENAME_NOREPLACE).
static inline int cposix_rename(const char *from, const char *to, int noreplace) {
    return renameat2(AT_FDCWD, from, AT_FDCWD, to, noreplace ? 1u : 0u);
}  // unistd.h declares it only under _GNU_SOURCE

/// A pipe whose ends close on exec (the child gets them through dup2 only).
static inline int cposix_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

/// A non-blocking, close-on-exec eventfd used to wake a job's I/O loop.
static inline int cposix_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

/// A descriptor that polls readable when the process exits (Linux 5.3+); -1 if unsupported.
/// syscall(2) is variadic, hence the wrapper.
static inline int cposix_pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    return -1;
#endif
}

struct winsize;
struct termios;
extern int forkpty(int *amaster, char *name, const struct termios *termp, const struct winsize *winp);
extern void closefrom(int lowfd);

/// Runs `path` with `argv`/`envp` in `cwd` on a new pseudo-terminal: the child is a session
/// leader (its own process group, so a kill of -pid reaches everything it starts) with the
/// terminal as stdin/stdout/stderr, default signal handling and mask, and no other descriptor.
/// Returns the child's pid and the terminal's master side in `master`, or -1 (errno set).
/// Only async-signal-safe calls happen between fork and exec.
static inline pid_t cposix_forkpty_exec(const char *path, char *const argv[], char *const envp[], const char *cwd,
                                        mode_t mask, int *master) {
    pid_t pid = forkpty(master, 0, 0, 0);
    if (pid != 0) return pid;
    umask(mask);  // the user's, not the daemon's 077
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, 0);
    for (int signal = 1; signal < 32; signal++) {
        if (signal != SIGKILL && signal != SIGSTOP) { struct sigaction dfl = {0}; dfl.sa_handler = SIG_DFL; sigaction(signal, &dfl, 0); }
    }
    closefrom(3);
    if (cwd && chdir(cwd) != 0) _exit(126);
    execve(path, argv, envp);
    _exit(127);
}

static inline int cposix_wifexited(int status) { return WIFEXITED(status); }
static inline int cposix_wexitstatus(int status) { return WEXITSTATUS(status); }
static inline int cposix_wifsignaled(int status) { return WIFSIGNALED(status); }
static inline int cposix_wtermsig(int status) { return WTERMSIG(status); }

// MARK: Files resolved beneath a directory (openat2) and renamed inside one

/// struct open_how of openat2(2) (linux/openat2.h, not included to keep the headers plain).
struct cposix_open_how { uint64_t flags; uint64_t mode; uint64_t resolve; };
#define CPOSIX_RESOLVE_NO_MAGICLINKS 0x02
#define CPOSIX_RESOLVE_NO_SYMLINKS 0x04
#define CPOSIX_RESOLVE_BENEATH 0x08

/// openat2(2) (Linux 5.6+, syscall 437 on every architecture): `resolve` is a mask of the
/// CPOSIX_RESOLVE_ flags. -1 with errno ENOSYS on older kernels (EINVAL if a flag is unknown).
static inline int cposix_openat2(int dirfd, const char *path, int flags, mode_t mode, unsigned long long resolve) {
    struct cposix_open_how how = { (uint64_t)(unsigned)flags, (uint64_t)mode, (uint64_t)resolve };
    if (flags & O_CREAT) how.mode = mode; else how.mode = 0;
    return (int)syscall(437, dirfd, path, &how, sizeof how);
}

/// O_PATH: a descriptor naming a file without opening it for I/O (only under _GNU_SOURCE).
static inline int cposix_o_path(void) {
#ifdef O_PATH
    return O_PATH;
#else
    return 010000000;
#endif
}

extern int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags);

/// The first `needle` in `haystack` (glibc's memmem: for needles up to 256 bytes it skips
/// through the haystack by a table of byte pairs, so a long needle in bytes that rarely hold
/// its pieces is found at a fraction of a byte-by-byte pass). Declared in string.h only under
/// _GNU_SOURCE.
extern void *memmem(const void *haystack, size_t haystack_length, const void *needle, size_t needle_length);

/// Starts write-out of a file's dirty pages in [offset, offset + length) without waiting for
/// it (SYNC_FILE_RANGE_WRITE): the disk works while more data arrives, and the final fsync
/// has only the tail left. Declared in fcntl.h only under _GNU_SOURCE.
static inline int cposix_start_writeback(int fd, off_t offset, off_t length) {
    return sync_file_range(fd, offset, length, 2u);
}

/// renameat2 within one directory, refusing to replace an existing name when `noreplace`.
static inline int cposix_renameat(int dirfd, const char *from, const char *to, int noreplace) {
    return renameat2(dirfd, from, dirfd, to, noreplace ? 1u : 0u);
}

// MARK: Process trees

/// loopsyd adopts the orphans of its jobs (PR_SET_CHILD_SUBREAPER) instead of init.
static inline int cposix_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }

extern int unshare(int flags);
#ifndef CLONE_FS
#define CLONE_FS 0x00000200
#endif

struct cposix_spawn_request {
    pid_t *pid;
    const char *path;
    const posix_spawn_file_actions_t *actions;
    const posix_spawnattr_t *attributes;
    char *const *argv;
    char *const *envp;
    mode_t mask;
    int result;
};

static inline void *cposix_spawn_thread(void *argument) {
    struct cposix_spawn_request *request = (struct cposix_spawn_request *)argument;
    // This thread's own cwd and umask (CLONE_FS unshared): the child inherits the umask set
    // here, and no other thread of the daemon sees it.
    if (unshare(CLONE_FS) != 0) { request->result = -1; return 0; }
    umask(request->mask);
    request->result = posix_spawn(request->pid, request->path, request->actions, request->attributes,
                                  request->argv, request->envp);
    return 0;
}

/// posix_spawn with the child's umask set to `mask`. posix_spawn has no umask attribute and
/// the umask is per process, so the spawn runs on a short-lived thread that unshares its
/// filesystem context (CLONE_FS: cwd, root, umask) from the daemon's, sets the umask there and
/// spawns; the daemon's own umask never changes. Returns posix_spawn's result (an errno), or -1
/// when unshare is not allowed (seccomp profiles of some containers): then use
/// cposix_fork_exec_job.
static inline int cposix_spawn_with_umask(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                                          const posix_spawnattr_t *attributes, char *const argv[], char *const envp[],
                                          mode_t mask) {
    struct cposix_spawn_request request = { pid, path, actions, attributes, argv, envp, mask, 0 };
    pthread_t thread;
    int created = pthread_create(&thread, 0, cposix_spawn_thread, &request);
    if (created != 0) return created;
    pthread_join(thread, 0);
    return request.result;
}

/// What cposix_spawn_with_umask does for a job, without posix_spawn, for systems where unshare
/// is refused: fork, then in the child only async-signal-safe calls — own process group, every
/// signal default and unblocked, the umask, /dev/null on stdin, `out`/`err` on stdout/stderr,
/// every other descriptor closed at exec, `cwd` — and execve. An exec failure comes back through
/// a close-on-exec pipe as posix_spawn reports it: the errno is returned (the child reaped), and
/// on success *pid is set and 0 returned.
static inline int cposix_fork_exec_job(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                                       const char *cwd, int out, int err, mode_t mask) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return errno;
    pid_t child = fork();
    if (child < 0) {
        int code = errno;
        close(report[0]);
        close(report[1]);
        return code;
    }
    if (child == 0) {
        setpgid(0, 0);
        struct sigaction dfl;
        for (unsigned i = 0; i < sizeof dfl; i++) ((char *)&dfl)[i] = 0;
        dfl.sa_handler = SIG_DFL;
        for (int signal = 1; signal < 65; signal++) {
            if (signal != SIGKILL && signal != SIGSTOP) sigaction(signal, &dfl, 0);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, 0);
        umask(mask);
        int code = 0;
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || (null != 0 && (dup2(null, 0) < 0 || close(null) != 0))) goto failed;
        if (dup2(out, 1) < 0 || dup2(err, 2) < 0) goto failed;
        // close_range(3, ~0, CLOSE_RANGE_CLOEXEC): everything else closes at exec (the report
        // pipe too, which is how the parent learns that exec happened).
        if (syscall(436, 3u, ~0u, 1u << 2) != 0) {
            for (int fd = 3; fd < 65536; fd++) if (fd != report[1]) fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        if (cwd && chdir(cwd) != 0) goto failed;
        execve(path, argv, envp);
    failed:
        code = errno;
        while (write(report[1], &code, sizeof code) < 0 && errno == EINTR) {}
        _exit(127);
    }
    close(report[1]);
    int code = 0;
    ssize_t count;
    do { count = read(report[0], &code, sizeof code); } while (count < 0 && errno == EINTR);
    close(report[0]);
    if (count == (ssize_t)sizeof code) {
        while (waitpid(child, 0, 0) < 0 && errno == EINTR) {}
        return code;
    }
    *pid = child;
    return 0;
}

/// Names the calling thread (15 bytes show in top, ps -L and gdb); prctl is variadic in C.
static inline void cposix_set_thread_name(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }

/// glibc's POSIX_SPAWN_SETSID (2.26+), which spawn.h declares only under _GNU_SOURCE.
static inline short cposix_spawn_setsid_flag(void) { return 0x80; }

#endif
