import Crypto
import FoundationEssentials
import LoopsyAPI
import LoopsyConfig
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Path rules and limits for file transfer.
public final class TransferService: Sendable {
    let policy: PathPolicy
    let maxFileSize: Int
    /// Pull responses carry the whole-file SHA-256 in a header up to this size; larger files
    /// are verified through `/transfer/checksum` so the first byte is not delayed.
    static let inlineChecksumLimit: Int64 = 64 * 1024 * 1024

    /// Digests already computed, by file identity: a pull's header and the checksum route (or a
    /// repeated pull) then hash a file once, not once per request.
    private struct FileIdentity: Hashable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modifiedNanoseconds: Int64
    }
    private let digests = Mutex<[FileIdentity: String]>([:])
    private static let cachedDigests = 256

    init(config: LoopsyConfig.Transfer, environment: [String: String] = ProcessInfo.processInfo.environment) {
        policy = PathPolicy(config: config, environment: environment)
        maxFileSize = config.maxFileSize
    }

    /// Opens a regular file for reading after the path rules.
    func openForReading(_ path: String) throws -> (fd: Int32, path: String, size: Int64) {
        let real = try policy.resolve(path, for: .read)
        let fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            throw errno == EACCES ? APIError.forbidden("'\(path)' is not readable by the daemon", code: "permission_denied")
                : APIError.notFound("file '\(path)'")
        }
        var info = stat()
        fstat(fd, &info)
        guard info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw APIError.badRequest("'\(path)' is not a regular file (a directory? list it, or pull it with -r)",
                                      code: "not_a_file")
        }
        return (fd, real, Int64(info.st_size))
    }

    /// SHA-256 of a whole open file, from the cache when the same file (same inode, size and
    /// modification time) was hashed before.
    func sha256(fd: Int32) throws -> String {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return try Self.sha256(fd: fd) }
        let identity = FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
                                    modifiedNanoseconds: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
        if let known = digests.withLock({ $0[identity] }) { return known }
        let digest = try Self.sha256(fd: fd)
        digests.withLock { cache in
            if cache.count >= Self.cachedDigests { cache.removeAll() }
            cache[identity] = digest
        }
        return digest
    }

    /// SHA-256 of a whole open file, read with pread so the file offset is untouched.
    static func sha256(fd: Int32) throws -> String {
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: off_t = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw UploadReceiver.diskError("read", errno) }
            if count == 0 { break }
            hasher.update(data: buffer[0..<count])
            offset += off_t(count)
        }
        return Hex.encode(hasher.finalize())
    }
}
