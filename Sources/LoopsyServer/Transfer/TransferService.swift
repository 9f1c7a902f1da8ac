import Crypto
import FoundationEssentials
import LoopsyAPI
import LoopsyConfig
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
