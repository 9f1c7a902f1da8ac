import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The umask loopsyd was started with, before it set its own 077. What the daemon writes for
/// itself (database, logs, keys) stays private; what it makes for the user — pushed files and
/// directories, the processes of jobs and AI tasks — gets the user's umask, as if the user had
/// made it.
public enum UserUmask {
    private static let stored = Atomic<UInt32>(0o022)

    /// The user's umask (0o022 until `record` is called).
    public static var value: mode_t { mode_t(stored.load(ordering: .relaxed)) }

    /// Records `mask` as the user's umask (main.swift: `UserUmask.record(umask(0o077))`).
    public static func record(_ mask: mode_t) { stored.store(UInt32(mask & 0o777), ordering: .relaxed) }
}
