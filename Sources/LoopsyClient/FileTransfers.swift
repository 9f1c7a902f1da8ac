import Crypto
import Dispatch
import LoopsyAPI
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// Whole-file push and pull with end-to-end SHA-256 verification, shared by the CLI and
/// loopsy-mcp. A pull streams into `<dest>.loopsy-part` and resumes from it when run again.
public struct FileTransfers: Sendable {
    public let client: LoopsyClient

    public init(client: LoopsyClient) { self.client = client }

    /// Sends `local` to `remote`; the daemon keeps it only if the digest matches.
    public func push(_ local: String, to remote: String, overwrite: Bool,
                     progress: CurlHTTPClient.Progress? = nil) throws -> TransferPushResult {
        let (result, digest) = try client.push(localPath: local, remotePath: remote, overwrite: overwrite,
                                               progress: progress)
        guard result.sha256 == digest else {
            throw ClientError.local("checksum mismatch for \(remote): sent \(digest), stored \(result.sha256)")
        }
        return result
    }

    public struct Pulled: Sendable {
        public var size: Int64
        public var resumedAt: Int64
    }

    /// Fetches `remote` into `local`, verifying the digest before the file is moved into place.
    public func pull(_ remote: String, to local: String, overwrite: Bool,
                     progress: ((Int64, Int64) -> Void)? = nil) throws -> Pulled {
        if access(local, F_OK) == 0 && !overwrite {
            throw ClientError.local("\(local) exists; use -f to replace it")
        }
        let partial = local + ".loopsy-part"
        let offset = LocalFiles.size(partial) ?? 0
        var resumed = SHA256()
        if offset > 0 { try LocalFiles.hash(partial, into: &resumed) }
        let fd = open(partial, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ClientError.local("cannot write \(partial): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        // Hashing beside receiving and writing: done in turn on one thread, the three took a
        // core and the pull ran at one core's speed.
        let hasher = BackgroundSHA256(resumed)
        defer { _ = hasher.finalize() }
        // The peer hashes large files while it sends them (it names small files' digests in a
        // header): ask now, so verification does not wait for a second read of the file.
        let remoteDigest = ConcurrentChecksum(client: client, remotePath: remote)
        var writeError: Int32 = 0
        let (status, headers) = try client.pull(remotePath: remote, offset: offset, progress: progress) { bytes in
            hasher.update(bytes)
            writeError = LocalFiles.writeAll(fd, bytes)
            return writeError == 0
        }
        if writeError != 0 {
            throw ClientError.local("writing \(partial) failed: \(String(cString: strerror(writeError))); run again to resume")
        }
        if offset > 0 && status != 206 {
            // The whole file came although we asked for the rest: the partial is useless now.
            unlink(partial)
            throw ClientError.local("the peer did not resume the transfer; run the pull again")
        }
        let digest = hasher.finalize()
        let expected = try headers[TransferHeaders.sha256.lowercased()] ?? remoteDigest.value()
        guard digest == expected else {
            unlink(partial)
            throw ClientError.local("checksum mismatch pulling \(remote): got \(digest), the peer has \(expected); "
                + "the partial file was removed, run the pull again")
        }
        guard rename(partial, local) == 0 else {
            throw ClientError.local("cannot move \(partial) to \(local): \(String(cString: strerror(errno)))")
        }
        return Pulled(size: LocalFiles.size(local) ?? 0, resumedAt: offset)
    }
}

/// SHA-256 on a thread of its own, fed pieces as they arrive. At most `maxPieces` wait (the
/// caller waits beyond that), so a slow hash bounds the memory, not the download. With no
/// thread to be had it hashes on the caller's thread.
final class BackgroundSHA256: @unchecked Sendable {
    static let maxPieces = 64
    private let slots = DispatchSemaphore(value: maxPieces)
    private let ready = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    /// Pieces to hash; nil ends them.
    private let queue = PlainMutex<[[UInt8]?]>([])
    // Written on the hashing thread before `done.signal()`, read after `done.wait()`.
    private var digest = ""
    // The caller's thread only.
    private var finished = false
    private var inline: SHA256?

    init(_ start: SHA256) {
        // A thread of our own, not a DispatchQueue.global() worker: it blocks while it waits for
        // pieces, and loopsy-mcp's pull already holds a global worker (see DedicatedThread).
        let started = DedicatedThread.start("loopsy-hash", stackBytes: 512 << 10) { [self] in
            var hasher = start
            while true {
                ready.wait()
                guard let piece = queue.withLock({ $0.removeFirst() }) else { break }
                hasher.update(data: piece)
                slots.signal()
            }
            digest = Hex.encode(hasher.finalize())
            done.signal()
        }
        if !started { inline = start }
    }

    /// Queues `piece` (no copy), waiting while `maxPieces` are queued.
    func update(_ piece: [UInt8]) {
        if inline != nil {
            inline?.update(data: piece)
            return
        }
        slots.wait()
        queue.withLock { $0.append(piece) }
        ready.signal()
    }

    /// The digest of every piece queued: waits for the hashing to finish. Called once more,
    /// it gives the same digest.
    func finalize() -> String {
        if !finished {
            finished = true
            if let inline {
                digest = Hex.encode(inline.finalize())
            } else {
                queue.withLock { $0.append(nil) }
                ready.signal()
                done.wait()
            }
        }
        return digest
    }
}

/// A `/transfer/checksum` request running beside the download, on a thread of its own (it
/// blocks for as long as the download runs); with no thread to be had, made when asked for.
final class ConcurrentChecksum: @unchecked Sendable {
    private let client: LoopsyClient
    private let remotePath: String
    private let done = DispatchSemaphore(value: 0)
    private var started = false
    // Written once on the thread before `done.signal()`, read after `done.wait()`.
    private var result: Result<String, any Error> = .failure(ClientError.local("no checksum"))

    init(client: LoopsyClient, remotePath: String) {
        self.client = client
        self.remotePath = remotePath
        started = DedicatedThread.start("loopsy-checksum") { [self] in
            result = Result { try client.checksum(remotePath: remotePath).sha256 }
            done.signal()
        }
    }

    func value() throws -> String {
        guard started else { return try client.checksum(remotePath: remotePath).sha256 }
        done.wait()
        done.signal()  // a later call does not wait
        return try result.get()
    }
}

/// Local file helpers for transfers.
public enum LocalFiles {
    public static func basename(_ path: String) -> String {
        KernelPath.names(path).last.map(String.init) ?? path
    }

    public static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    public static func size(_ path: String) -> Int64? {
        var info = stat()
        return stat(path, &info) == 0 ? Int64(info.st_size) : nil
    }

    public static func makeDirectory(_ path: String) throws {
        var current = KernelPath.isAbsolute(path) ? "" : "."
        for component in KernelPath.names(path) {
            current += "/" + component
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw ClientError.local("cannot create \(current): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Regular files below `root`, as paths relative to it; `skipped` hears of everything else.
    public static func walk(_ root: String, prefix: String = "", skipped: (String) -> Void) throws -> [String] {
        let entries: [Directory.Entry]
        do {
            entries = try Directory.entries(prefix.isEmpty ? root : root + "/" + prefix)
        } catch {
            throw ClientError.local("cannot read \(root)/\(prefix): \(error)")
        }
        var files: [String] = []
        for name in entries.map(\.name) {
            let relative = prefix.isEmpty ? name : prefix + "/" + name
            var info = stat()
            guard lstat(root + "/" + relative, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFREG: files.append(relative)
            case S_IFDIR: files += try walk(root, prefix: relative, skipped: skipped)
            default: skipped(root + "/" + relative)
            }
        }
        return files.sorted()
    }

    public static func sha256(of path: String) throws -> String {
        var hasher = SHA256()
        try hash(path, into: &hasher)
        return Hex.encode(hasher.finalize())
    }

    static func hash(_ path: String, into hasher: inout SHA256) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ClientError.local("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = retryingInterrupts { read(fd, &buffer, buffer.count) }
            guard count >= 0 else { throw ClientError.local("cannot read \(path): \(String(cString: strerror(errno)))") }
            if count == 0 { return }
            hasher.update(data: buffer[0..<count])
        }
    }

    /// 0 on success, else errno.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32 {
        do {
            try FileIO.writeAll(fd, bytes)
            return 0
        } catch {
            return error.code
        }
    }
}
