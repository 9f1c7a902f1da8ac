#if canImport(Glibc)
import Glibc
#endif
import LoopsyAPI
import LoopsyPOSIX
import Synchronization

/// Line-oriented log to stderr: `2026-11-28T12:00:00.123Z info message key=value`.
/// Callers never pass secrets or bodies. What is bounded: each line (text from other hosts
/// ends up in messages) and, when stderr is a file, the file (see `LogFile`).
public final class Logger: Sendable {
    /// The lowest severity written; fixed for the logger's life.
    private let level: Int
    private let descriptor: Int32
    private let file: LogFile?

    /// Longest line written, in bytes; a longer message is cut.
    public static let maxLineBytes = 8192

    /// `maxFileBytes`: when `descriptor` writes to a regular file, the size at which that file is
    /// renamed `<name>.1` and a new one begun (nil: never).
    public init(level: LogLevel, maxFileBytes: Int? = nil, descriptor: Int32 = 2) {
        self.level = Self.index(level)
        self.descriptor = descriptor
        file = maxFileBytes.flatMap { LogFile(descriptor: descriptor, limit: $0) }
        var status = stat()
        if let maxFileBytes, file == nil, fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG {
            warn("the log file is not kept under logging.maxFileBytes (\(maxFileBytes)): its path cannot be "
                 + "found through /proc/self/fd (is /proc mounted?)")
        }
    }

    /// Rotates the log file if what others wrote there (libmicrohttpd, the runtime) took it
    /// past its limit; the logger's own lines are checked as they are written.
    public func checkFileSize() { file?.check() }

    private static func index(_ level: LogLevel) -> Int { level.severity }

    public func debug(_ message: @autoclosure () -> String) { log(.debug, message()) }
    public func info(_ message: @autoclosure () -> String) { log(.info, message()) }
    public func warn(_ message: @autoclosure () -> String) { log(.warn, message()) }
    public func error(_ message: @autoclosure () -> String) { log(.error, message()) }

    private func log(_ messageLevel: LogLevel, _ message: @autoclosure () -> String) {
        guard Self.index(messageLevel) >= level else { return }
        var text = message()
        // Cut before escaping too: escaping can make a message several times longer.
        if text.utf8.count > Self.maxLineBytes { text = text.cut(toUTF8Bytes: Self.maxLineBytes) }
        var line = "\(Self.timestamp()) \(messageLevel.rawValue) \(Self.escapingControls(text))"
        if line.utf8.count > Self.maxLineBytes - 1 { line = line.cut(toUTF8Bytes: Self.maxLineBytes - 1) }
        line += "\n"
        // One write(2) per line keeps lines whole when threads log at once.
        var bytes = Array(line.utf8)
        let written = bytes.withUnsafeMutableBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        if written > 0 { file?.wrote(written) }
    }

    /// `text` with line breaks and other control characters (from other hosts: a peer's name, an
    /// mDNS record) written as `\u{…}`, so no one can forge a line of the log or send escape
    /// sequences to the terminal that shows it. Tabs stay.
    static func escapingControls(_ text: String) -> String {
        func isControl(_ scalar: Unicode.Scalar) -> Bool {
            (scalar.value < 0x20 && scalar != "\t") || (0x7F...0x9F).contains(scalar.value)
                || scalar == "\u{2028}" || scalar == "\u{2029}"
        }
        // Most lines have none: one pass over the bytes (0xC2 leads U+0080-U+00BF, 0xE2 U+2028).
        guard text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == 0xC2 || $0 == 0xE2 }),
              text.unicodeScalars.contains(where: isControl) else { return text }
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count + 16)
        for scalar in text.unicodeScalars {
            if isControl(scalar) {
                escaped += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    static func timestamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int = 2) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(parts.tm_year + 1900)-\(pad(parts.tm_mon + 1))-\(pad(parts.tm_mday))T"
            + "\(pad(parts.tm_hour)):\(pad(parts.tm_min)):\(pad(parts.tm_sec))."
            + "\(pad(Int32(spec.tv_nsec / 1_000_000), 3))Z"
    }
}

/// The regular file a descriptor writes to, kept under a size: past `limit` it is renamed
/// `<path>.1` (replacing the one before) and a new file opened in its place on the same
/// descriptor (and on stdout too when that writes to the same file, as under `loopsy start`), so
/// the log and whatever else writes there (libmicrohttpd, the runtime) go on into the new one.
/// The size is counted from the logger's own writes and checked with fstat when the count
/// passes the limit, and by `check()` (the daemon's upkeep) for what others write there.
///
/// When the file at the path is no longer the one written (deleted, or moved aside by
/// logrotate), the path is opened again (created if need be) and the descriptor moved to it:
/// a deleted log is not written for ever where nobody sees it and its space is never freed.
/// When no new file can be had (no descriptors left, the directory not writable), the file is
/// emptied once it reaches twice `limit`. So at most about three times `limit` stays on disk.
final class LogFile: Sendable {
    private let descriptor: Int32
    /// Stdout, when it wrote to the same file at the start: moved along with `descriptor`.
    private let alsoStdout: Bool
    private let path: String
    private let limit: Int
    /// Bytes in the current file, as counted by the writes through the logger.
    private let size: Atomic<Int>
    /// The size at which the next rotation is tried: `limit`, or twice it after one that could
    /// not be done (each line would otherwise try again, under the lock).
    private let threshold: Atomic<Int>
    private let rotating = PlainMutex(())

    /// Nil unless `descriptor` writes to a regular file that is still at its path.
    init?(descriptor: Int32, limit: Int) {
        var status = stat()
        guard limit > 0, fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG,
              let path = Self.path(of: descriptor, matching: status) else { return nil }
        var output = stat()
        alsoStdout = descriptor != 1 && fstat(1, &output) == 0 && output.st_dev == status.st_dev
            && output.st_ino == status.st_ino
        self.descriptor = descriptor
        self.path = path
        self.limit = limit
        size = Atomic(Int(status.st_size))
        threshold = Atomic(limit)
    }

    func wrote(_ count: Int) {
        guard size.add(count, ordering: .relaxed).newValue > threshold.load(ordering: .relaxed) else { return }
        check()
    }

    /// Rotates the file if it is past its limit, whoever wrote it there.
    func check() {
        rotating.withLock { _ in
            var status = stat()
            guard fstat(descriptor, &status) == 0 else { return }
            let current = Int(status.st_size)
            size.store(current, ordering: .relaxed)
            guard current > limit else { return }  // another thread rotated meanwhile
            if rotate(status) {
                size.store(0, ordering: .relaxed)
                threshold.store(limit, ordering: .relaxed)
            } else if current >= 2 * limit {
                // The last resort: old lines go, the disk is not filled. (O_APPEND writes go
                // on at the new end.)
                _ = ftruncate(descriptor, 0)
                // A descriptor without O_APPEND (`loopsyd 2>file`) would write on at its offset.
                _ = lseek(descriptor, 0, SEEK_SET)
                size.store(0, ordering: .relaxed)
                threshold.store(limit, ordering: .relaxed)
            } else {
                threshold.store(2 * limit, ordering: .relaxed)
            }
        }
    }

    /// Moves `descriptor` (and stdout with it) to a new file at `path`; false if it could not.
    private func rotate(_ status: stat) -> Bool {
        let flags = O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC
        let fresh: Int32
        // Ours if the file at the path is the one written (through whatever links the path has
        // now: a data directory moved and linked back is still ours).
        var there = stat()
        if stat(path, &there) == 0 && there.st_dev == status.st_dev && there.st_ino == status.st_ino {
            // A `.new` left by a crash, or planted (a link to another file), is removed, and the
            // new one made where there was none.
            let next = path + ".new"
            unlink(next)
            fresh = open(next, flags | O_EXCL, 0o600)
            guard fresh >= 0 else { return false }
            guard rename(path, path + ".1") == 0 else {
                close(fresh)
                unlink(next)
                return false
            }
            guard rename(next, path) == 0 else {
                // The log goes back where it was.
                _ = rename(path + ".1", path)
                close(fresh)
                unlink(next)
                return false
            }
        } else {
            // Not ours any more: the file now at the path (a new one logrotate made), or a new
            // one. Only a file of our own with no other name: not another user's (a shared
            // directory), not a hard link to some other file of ours.
            fresh = open(path, flags, 0o600)
            guard fresh >= 0 else { return false }
            var opened = stat()
            guard fstat(fresh, &opened) == 0, opened.st_mode & S_IFMT == S_IFREG, opened.st_uid == geteuid(),
                  opened.st_nlink == 1, opened.st_dev != status.st_dev || opened.st_ino != status.st_ino else {
                close(fresh)
                return false
            }
        }
        defer { close(fresh) }
        guard dup2(fresh, descriptor) >= 0 else { return false }
        if alsoStdout { _ = dup2(fresh, 1) }
        return true
    }

    /// The path `descriptor` was opened at, if the file there is still the one it writes to.
    private static func path(of descriptor: Int32, matching status: stat) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/fd/\(descriptor)", &buffer, buffer.count - 1)
        guard length > 0 else { return nil }
        let path = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var there = stat()
        guard path.hasPrefix("/"), stat(path, &there) == 0, there.st_dev == status.st_dev,
              there.st_ino == status.st_ino else { return nil }
        return path
    }
}
