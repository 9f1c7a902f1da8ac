#if canImport(Glibc)
import Glibc
#endif

/// Whole reads and writes on a descriptor: short writes continue, EINTR retries.
public enum FileIO {
    /// Writes every byte of `bytes` to `fd`.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(Errno) {
        var offset = 0
        while offset < bytes.count {
            let written = retryingInterrupts { write(fd, bytes.baseAddress! + offset, bytes.count - offset) }
            if written < 0 { throw Errno.current }
            if written == 0 { throw Errno(EIO) }  // nothing taken: it would not take more either
            offset += written
        }
    }

    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(Errno) {
        // withUnsafeBytes rethrows untyped errors: carry the typed one out by hand.
        var failure: Errno?
        bytes.withUnsafeBytes { raw in
            do throws(Errno) { try writeAll(fd, raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    public static func writeAll(_ fd: Int32, _ text: String) throws(Errno) {
        try writeAll(fd, Array(text.utf8))
    }

    /// The whole file at `path`, opened read-only. A failure names the call that failed
    /// ("open" or "read").
    public static func readAll(path: String) throws(SystemCallFailure) -> [UInt8] {
        let fd = retryingInterrupts { open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw SystemCallFailure("open") }
        defer { close(fd) }
        do {
            return try readAll(fd)
        } catch {
            throw SystemCallFailure("read", error)
        }
    }

    /// Reads until end of file, or until more than `limit` bytes arrived (then the first
    /// `limit + 1` bytes are returned, so a caller can tell "exactly limit" from "more").
    public static func readAll(_ fd: Int32, limit: Int = Int.max - 1) throws(Errno) -> [UInt8] {
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while output.count <= limit {
            let count = buffer.withUnsafeMutableBytes { raw in
                retryingInterrupts { read(fd, raw.baseAddress, raw.count) }
            }
            if count < 0 { throw Errno.current }
            if count == 0 { break }
            output += buffer[0..<min(count, limit + 1 - output.count)]
        }
        return output
    }
}
