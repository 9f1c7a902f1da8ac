import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

public struct FileError: Error, CustomStringConvertible {
    public var path: String
    public var operation: String
    public var errno: Int32

    public var description: String {
        "\(operation) \(path): \(String(cString: strerror(errno)))"
    }
}

/// Writes files that may hold secrets: created with the given mode from the start (never
/// briefly world-readable), fsynced, and renamed into place so readers see old or new, whole.
public enum SecureFile {
    /// `durable: false` skips the fsync, for files that describe only the running process (the
    /// daemon's pid and port): a crash makes them stale anyway, and their readers check that.
    /// Readers still never see a half-written file (the rename is atomic).
    public static func write(_ path: String, contents: String, mode: mode_t = 0o600, durable: Bool = true) throws {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw FileError(path: temporary, operation: "create", errno: errno) }
        var ok = fchmod(fd, mode) == 0
        ok = ok && (try? FileIO.writeAll(fd, contents)) != nil
        ok = ok && (!durable || fsync(fd) == 0)
        let savedErrno = errno
        close(fd)
        guard ok else {
            unlink(temporary)
            throw FileError(path: path, operation: "write", errno: savedErrno)
        }
        guard rename(temporary, path) == 0 else {
            let renameErrno = errno
            unlink(temporary)
            throw FileError(path: path, operation: "rename into", errno: renameErrno)
        }
    }

    public static func read(_ path: String) throws -> String {
        do {
            return String(decoding: try FileIO.readAll(path: path), as: UTF8.self)
        } catch {
            throw FileError(path: path, operation: error.call, errno: error.errno.code)
        }
    }

    /// Creates `path` and missing parents with `mode` (0700: data dirs hold secrets).
    public static func makeDirectory(_ path: String, mode: mode_t = 0o700) throws {
        var current = ""
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, mode) != 0 && errno != EEXIST {
                throw FileError(path: current, operation: "create directory", errno: errno)
            }
        }
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Permission bits of `path`, or nil if it cannot be stat'ed.
    public static func mode(_ path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o7777
    }
}
