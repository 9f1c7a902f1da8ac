import Crypto
import LoopsyAPI
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// The request body of a push, produced as curl sends it: the file part streamed from disk and
/// hashed on the way, then a `sha256` field holding the digest of what was sent (the daemon
/// takes fields in any order and checks the digest before it keeps the file). So the file is
/// read once, with no hashing pass before the upload; a digest is always 64 hex digits, so the
/// length is known up front and nothing is chunked.
final class PushBody {
    private enum Phase {
        case head(sent: Int)
        case file(sent: Int64)
        case tail(bytes: [UInt8], sent: Int)
        case done
    }

    let boundary: String
    /// Bytes of the file (as found when it was opened; that many are sent).
    let size: Int64
    private let path: String
    private let fd: Int32
    /// The file's modification time when opened: a file changed while it is sent is refused,
    /// not stored as a mix of old and new bytes.
    private let modified: timespec
    private let head: [UInt8]
    private var hasher = SHA256()
    private var phase: Phase = .head(sent: 0)
    /// The digest of the bytes sent, once the file part is done.
    private(set) var digest: String?
    /// Why reading stopped early (curl then reports an aborted transfer).
    private(set) var failure: String?

    init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ClientError.local("cannot read \(path): \(String(cString: strerror(errno)))") }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw ClientError.local("\(path) is not a regular file")
        }
        self.fd = fd
        self.path = path
        size = Int64(info.st_size)
        modified = info.st_mtim
        var random = SystemRandomNumberGenerator()
        boundary = "loopsy-" + (0..<2).map { _ in String(random.next() as UInt64, radix: 16) }.joined(separator: "-")
        head = Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"file\"\r\n"
            .utf8) + Array("Content-Type: application/octet-stream\r\n\r\n".utf8)
    }

    deinit { close(fd) }

    var contentType: String { "multipart/form-data; boundary=\(boundary)" }

    /// Bytes of the whole body.
    var length: Int64 { Int64(head.count) + size + Int64(tail(digest: String(repeating: "0", count: 64)).count) }

    private func tail(digest: String) -> [UInt8] {
        Array("\r\n--\(boundary)\r\nContent-Disposition: form-data; name=\"sha256\"\r\n\r\n\(digest)\r\n--\(boundary)--\r\n".utf8)
    }

    /// Starts the body over from its first byte (curl resends it on a new connection).
    func rewind() -> Bool {
        guard lseek(fd, 0, SEEK_SET) == 0 else { return false }
        hasher = SHA256()
        digest = nil
        phase = .head(sent: 0)
        return true
    }

    /// Fills `buffer` with the next bytes of the body: the count, 0 at the end, nil on failure.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard let base = buffer.baseAddress else { return 0 }
        var filled = 0
        while filled < buffer.count {
            switch phase {
            case .head(let sent):
                let count = min(head.count - sent, buffer.count - filled)
                head.withUnsafeBytes { (base + filled).copyMemory(from: $0.baseAddress! + sent, byteCount: count) }
                filled += count
                phase = sent + count == head.count ? .file(sent: 0) : .head(sent: sent + count)
            case .file(let sent):
                let wanted = Int(min(Int64(buffer.count - filled), size - sent))
                var count = 0
                if wanted > 0 {
                    count = retryingInterrupts { Glibc.read(fd, base + filled, wanted) }
                    guard count > 0 else {
                        failure = count == 0 ? "\(path) shrank while it was being sent"
                            : "cannot read \(path): \(String(cString: strerror(errno)))"
                        return nil
                    }
                    hasher.update(bufferPointer: UnsafeRawBufferPointer(start: base + filled, count: count))
                    filled += count
                }
                if sent + Int64(count) == size {
                    var info = stat()
                    guard fstat(fd, &info) == 0, Int64(info.st_size) == size,
                          info.st_mtim.tv_sec == modified.tv_sec, info.st_mtim.tv_nsec == modified.tv_nsec else {
                        failure = "\(path) changed while it was being sent; nothing was stored, send it again"
                        return nil
                    }
                    let digest = Hex.encode(hasher.finalize())
                    self.digest = digest
                    phase = .tail(bytes: tail(digest: digest), sent: 0)
                } else {
                    phase = .file(sent: sent + Int64(count))
                }
            case .tail(let bytes, let sent):
                let count = min(bytes.count - sent, buffer.count - filled)
                bytes.withUnsafeBytes { (base + filled).copyMemory(from: $0.baseAddress! + sent, byteCount: count) }
                filled += count
                phase = sent + count == bytes.count ? .done : .tail(bytes: bytes, sent: sent + count)
            case .done:
                return filled
            }
        }
        return filled
    }
}
