import Crypto
import FoundationEssentials
import LoopsyAPI
import LoopsyCore
import LoopsyConfig
import LoopsyPOSIX
import LoopsyStore
#if canImport(Glibc)
import Glibc
#endif

/// Path rules and limits for file transfer.
public final class TransferService: Sendable {
    public let policy: PathPolicy
    public let maxFileSize: Int
    /// Pull responses carry the whole-file SHA-256 in a header up to this size; larger files
    /// are verified through `/transfer/checksum` so the first byte is not delayed.
    public static let inlineChecksumLimit: Int64 = 64 * 1024 * 1024

    /// Digests already computed, by file stamp (inode, size and times): a pull's header and the
    /// checksum route (or a repeated pull) then hash a file once, not once per request.
    private let digests = PlainMutex<[FileStamp: String]>([:])
    private static let cachedDigests = 256

    /// `dataDir`: the node's data dir, which transfers never reach (nor its sessions').
    public init(config: LoopsyConfig.Transfer, dataDir: DataDir? = nil,
         environment: [String: String] = ProcessInfo.processInfo.environment) {
        policy = PathPolicy(config: config, dataDir: dataDir, environment: environment)
        maxFileSize = config.maxFileSize
    }

    /// Opens a regular file for reading under the path rules (resolved beneath its allowed root,
    /// checked on the opened descriptor). The open never blocks: a FIFO or a device opened
    /// without O_NONBLOCK would hold an HTTP worker until someone wrote to it, so the file is
    /// opened non-blocking and checked on the descriptor (fstat) before anything reads it.
    public func openForReading(_ path: String, access: TransferAccess) throws -> (fd: Int32, path: String, size: Int64) {
        let opened = try policy.open(path, flags: O_RDONLY | O_NONBLOCK | O_NOCTTY, access: access)
        let fd = opened.fd
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            let isDirectory = info.st_mode & S_IFMT == S_IFDIR
            close(fd)
            throw APIError.badRequest(isDirectory
                ? "'\(path)' is a directory: list it, or pull it with -r"
                : "'\(path)' is not a regular file (a pipe, socket or device); only regular files are transferred",
                code: .notAFile)
        }
        // Another name of the same file may be one the rules refuse (a hard link to a key made
        // inside an allowed directory): only the owner reads files with several names.
        if !access.owner && info.st_nlink > 1 {
            close(fd)
            throw APIError.forbidden("'\(path)' has \(info.st_nlink) hard links; only the node's owner may transfer "
                + "a file with other names", code: .hardLinkRefused)
        }
        // Regular files ignore O_NONBLOCK; clear it anyway so the reads see a plain descriptor.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return (fd, opened.real, Int64(info.st_size))
    }

    /// Most entries in one page of a directory listing: each is a `fstatat`.
    public static let listPage = 10_000

    /// Lists directories off the HTTP workers: reading a directory of a million names, and a
    /// `fstatat` for each entry shown, takes the disk's time, which no HTTP worker may wait.
    /// Two at a time, eight more waiting, then 503 with Retry-After.
    let listing = WorkPool(name: "loopsy-list", threads: 2, queueLimit: 8)

    /// `list` on the listing pool. A caller that stops waiting stops the listing.
    public func listLater(_ path: String, afterName: String?, access: TransferAccess) throws -> Answer<TransferListResponse> {
        let answer = Pending<TransferListResponse>()
        let queued = listing.submit { [self] in
            answer.complete(Result {
                try list(path, afterName: afterName, access: access, isCancelled: { answer.isCancelled })
            })
        }
        guard queued else {
            throw APIError(status: 503, code: .busyListing,
                           message: "the daemon is listing \(listing.load) directories already; retry in a few seconds",
                           headers: ["Retry-After": "2"])
        }
        return .later(answer)
    }

    /// The entries of directory `path` under the path rules, by name (byte-wise), those after
    /// `afterName`: at most `limit`. Entries the rules refuse this caller are not shown;
    /// symlinks are listed as such, never followed. Blocks on the disk: see `listLater`.
    public func list(_ path: String, afterName: String? = nil, limit: Int = TransferService.listPage,
                     access: TransferAccess, isCancelled: () -> Bool = { false }) throws -> TransferListResponse {
        // A caller gone while this waited in the pool's queue costs no more than this.
        if isCancelled() { throw APIError.serviceUnavailable("the client went away") }
        let opened = try policy.open(path, flags: O_RDONLY | O_DIRECTORY, access: access)
        defer { close(opened.fd) }
        // A directory readable but not searchable (mode 0644) lists names none of which can be
        // stat'ed: refused here, once, rather than skipped entry by entry, window after window.
        var itself = stat()
        guard fstatat(opened.fd, ".", &itself, 0) == 0 else { throw PathPolicy.openError(errno, asked: path, directory: true) }
        let directory = opened.real
        let limit = max(1, limit)
        var files: [FileEntry] = []
        func entryPath(_ name: String) -> String { directory == "/" ? "/" + name : directory + "/" + name }
        // The names come a window at a time, the smallest past `cursor` that the rules allow.
        // An entry gone since (a race with its removal) is skipped, so a window can show fewer
        // than it holds: then the next window starts past the last name of this one.
        var cursor = afterName
        while true {
            let (names, truncated) = try Self.smallestNames(
                in: opened.fd, after: cursor, count: limit + 1, asked: path, isCancelled: isCancelled,
                including: { [policy] name in
                    let path = entryPath(name)
                    return policy.refusal(path, asked: path, access: access) == nil
                })
            for name in names {
                if files.count >= limit { return TransferListResponse(files: files, more: true) }
                var info = stat()
                // Gone since, or one odd entry (a FUSE mount of another user, an I/O error on a
                // network file system): skipped, as the directory's other entries are not.
                guard fstatat(opened.fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                let type: String
                switch info.st_mode & S_IFMT {
                case S_IFREG: type = "file"
                case S_IFDIR: type = "directory"
                case S_IFLNK: type = "symlink"
                default: type = "other"
                }
                files.append(FileEntry(name: name, path: entryPath(name), type: type, size: Int64(info.st_size),
                                       modified: FileTimes.milliseconds(info.st_mtim),
                                       mode: "0" + String(info.st_mode & 0o7777, radix: 8)))
            }
            guard truncated, let last = names.last else { return TransferListResponse(files: files, more: false) }
            if files.count >= limit { return TransferListResponse(files: files, more: true) }
            if isCancelled() { throw APIError.serviceUnavailable("the client went away") }
            cursor = last
        }
    }

    /// The `count` smallest names (byte-wise) of the directory open as `fd` past `after` that
    /// `including` accepts, in order, holding at most twice `count` names however large the
    /// directory; `truncated`: it has more past them. `including` sees only names that could
    /// still be among the first (after the first window fills, few do).
    static func smallestNames(in fd: Int32, after: String?, count: Int, asked: String, isCancelled: () -> Bool,
                              including: (String) -> Bool = { _ in true }) throws -> (names: [String], truncated: Bool) {
        let precedes: (String, String) -> Bool = { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var kept: [String] = []
        // Once names have been dropped: the largest kept, past which none can be among the first.
        var bound: String?
        var seen = 0
        var cancelled = false
        func trim() {
            kept.sort(by: precedes)
            kept.removeSubrange(count...)
            bound = kept.last
        }
        do {
            try Directory.visit(fd: fd) { entry in
                seen += 1
                if seen % 4096 == 0 && isCancelled() {
                    cancelled = true
                    return false
                }
                if let after, !precedes(after, entry.name) { return true }
                if let bound, !precedes(entry.name, bound) { return true }
                guard including(entry.name) else { return true }
                kept.append(entry.name)
                if kept.count >= 2 * count { trim() }
                return true
            }
        } catch {
            throw PathPolicy.openError(error.code, asked: asked, directory: true)
        }
        if cancelled { throw APIError.serviceUnavailable("the client went away") }
        if kept.count > count { trim() } else { kept.sort(by: precedes) }
        return (kept, bound != nil)
    }

    /// Files up to this size are hashed on the request's own thread (well under a millisecond);
    /// larger ones on `hashing`, so no HTTP worker waits for a disk.
    static let inlineHashLimit: Int64 = 1 << 20

    /// Hashes larger files: two at a time, eight more waiting, then 503 with Retry-After.
    let hashing = WorkPool(name: "loopsy-hash", threads: 2, queueLimit: 8)

    /// Stores pushed files (fsync, rename into place): an fsync waits for the disk, which no
    /// HTTP worker may. Two at a time; the rest wait (a waiting one holds two descriptors and
    /// its suspended connection, so the connection limits bound them). Past `finishQueue`
    /// waiting, each further one gets a thread of its own rather than a refusal: the whole
    /// file has arrived by then, and a 503 would make its sender send it all again.
    let finishing = WorkPool(name: "loopsy-fsync", threads: 2, queueLimit: TransferService.finishQueue)
    static let finishQueue = 64

    /// A pushed file between `finish` and its answer.
    private final class Finish: Sendable {
        enum Stage { case queued, storing, done }
        let upload: Upload
        let answer = Pending<TransferPushResult>()
        let stage = PlainMutex(Stage.queued)
        init(_ upload: Upload) { self.upload = upload }
    }

    private struct Finishes {
        var open: [ObjectIdentifier: Finish] = [:]
        var closed = false
    }
    private let finishes = PlainMutex(Finishes())

    /// Checks a pushed body on the caller's thread (no disk: a malformed one takes no slot),
    /// then off it waits for the upload's writer, compares the SHA-256 and stores the file
    /// (fsync, rename); the answer comes when the file is in place.
    public func finish(_ upload: Upload) throws -> Answer<TransferPushResult> {
        try upload.verify()
        let job = Finish(upload)
        let admitted = finishes.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.open[ObjectIdentifier(job)] = job
            return true
        }
        guard admitted else {
            upload.cancel()
            throw APIError.serviceUnavailable("the daemon is shutting down; nothing was stored, send the file again when it is back")
        }
        let run: @Sendable () -> Void = { [self] in store(job) }
        if !finishing.submit(run) && !DedicatedThread.start("loopsy-fsync", stackBytes: 256 << 10, run) {
            finishes.withLock { _ = $0.open.removeValue(forKey: ObjectIdentifier(job)) }
            upload.cancel()
            throw APIError(status: 503, code: .busyWriting,
                           message: "the daemon cannot start a thread to store the file; nothing was stored, retry in a few seconds",
                           headers: ["Retry-After": "2"])
        }
        return .later(job.answer)
    }

    private func store(_ job: Finish) {
        let starts = job.stage.withLock { stage -> Bool in
            guard stage == .queued else { return false }
            stage = .storing
            return true
        }
        if starts { job.answer.complete(Result { try job.upload.store() }) }
        job.stage.withLock { $0 = .done }
        finishes.withLock { _ = $0.open.removeValue(forKey: ObjectIdentifier(job)) }
    }

    /// For a stopping daemon, while its connections still stand: takes no more pushed files,
    /// and waits up to `seconds` for those being stored. Past that, those not yet begun are
    /// removed and answered 503 (nothing stored), and only those being written are waited for
    /// (up to a minute): no client is told "retry" for a file that was kept, nor "stored" for
    /// one that was not, and no partial file is left behind.
    public func finishStores(waitingUpTo seconds: Double = 10) {
        finishes.withLock { $0.closed = true }
        if Clock.waitUntil(seconds, { self.finishes.withLock { $0.open.isEmpty } }) { return }
        let open = finishes.withLock { Array($0.open.values) }
        for job in open {
            let refused = job.stage.withLock { stage -> Bool in
                guard stage == .queued else { return false }
                stage = .done
                return true
            }
            guard refused else { continue }
            job.upload.cancel()
            job.answer.complete(.failure(APIError.serviceUnavailable(
                "the daemon stopped before the file was stored; nothing was stored, send it again when it is back")))
        }
        _ = Clock.waitUntil(60, { self.finishes.withLock { state in state.open.values.allSatisfy { $0.stage.withLock { $0 != .storing } } } })
    }

    /// For a stopping daemon, once its connections are closed: waits up to `seconds` for the
    /// uploads they ended to remove their partial files (their writers do, off the HTTP workers).
    public func finishDiscards(waitingUpTo seconds: Double = 10) {
        _ = Clock.waitUntil(seconds, { UploadWriter.cleanupsPending.load(ordering: .relaxed) == 0 })
    }

    /// Takes pushed files again after `finishStores` (a daemon started again in one process).
    public func reopenStores() { finishes.withLock { $0.closed = false } }

    /// The SHA-256 of the open file `fd`'s first `size` bytes (its size when opened: what a
    /// pull sends and a checksum reports, however the file grows meanwhile): now for small or
    /// cached files, else later from the hashing pool. `fd` stays the caller's, open until the
    /// answer is complete. A caller that stops waiting (`Pending.cancel`, or a cancelled check)
    /// stops the hashing too.
    public func digest(of fd: Int32, size: Int64) throws -> Answer<String> {
        if let cached = cachedDigest(fd: fd, size: size) { return .now(cached) }
        // On the HTTP worker: a file of at most 1 MiB, and no more of it than that even if it
        // is being appended to.
        if size <= Self.inlineHashLimit { return .now(try sha256(fd: fd, size: size)) }
        let answer = Pending<String>()
        let queued = hashing.submit { [self] in
            answer.complete(Result {
                do {
                    return try sha256(fd: fd, size: size, isCancelled: { answer.isCancelled })
                } catch is HashCancelled {
                    throw APIError.serviceUnavailable("the client went away")
                }
            })
        }
        guard queued else {
            throw APIError(status: 503, code: .busyHashing,
                           message: "the daemon is hashing \(hashing.load) large files already; retry in a few seconds",
                           headers: ["Retry-After": "2"])
        }
        return .later(answer)
    }

    /// SHA-256 of an open file's first `size` bytes, from the cache when the same file (same
    /// inode, size, modification and change times) was hashed before. A file no longer `size`
    /// bytes long is neither looked up nor kept: its digest is of part of it.
    func sha256(fd: Int32, size: Int64, isCancelled: () -> Bool = { false }) throws -> String {
        guard let identity = FileStamp(fd: fd), identity.size == size else {
            return try Self.sha256(fd: fd, upTo: size, isCancelled: isCancelled)
        }
        if let known = digests.withLock({ $0[identity] }) { return known }
        let digest = try Self.sha256(fd: fd, upTo: size, isCancelled: isCancelled)
        digests.withLock { cache in
            if cache.count >= Self.cachedDigests { cache.removeAll() }
            cache[identity] = digest
        }
        return digest
    }

    private func cachedDigest(fd: Int32, size: Int64) -> String? {
        guard let identity = FileStamp(fd: fd), identity.size == size else { return nil }
        return digests.withLock { $0[identity] }
    }

    /// SHA-256 of an open file's first `limit` bytes (fewer if it is shorter), read with pread
    /// so the file offset is untouched.
    static func sha256(fd: Int32, upTo limit: Int64, isCancelled: () -> Bool = { false }) throws -> String {
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: Int(max(1, min(limit, 1 << 20))))
        var offset: off_t = 0
        while Int64(offset) < limit {
            if isCancelled() { throw HashCancelled() }
            let wanted = Int(min(Int64(buffer.count), limit - Int64(offset)))
            let count = buffer.withUnsafeMutableBytes { raw in retryingInterrupts { pread(fd, raw.baseAddress, wanted, offset) } }
            guard count >= 0 else { throw TransferService.diskError("read", errno) }
            if count == 0 { break }
            hasher.update(data: buffer[0..<count])
            offset += off_t(count)
        }
        return Hex.encode(hasher.finalize())
    }

    /// A disk error as the client sees it: 507 when the disk is full, else 500 `io_error`.
    public static func diskError(_ operation: String, _ code: Int32) -> APIError {
        if code == ENOSPC || code == EDQUOT {
            return .insufficientStorage("the disk is full (\(operation)); nothing was stored")
        }
        if code == ENAMETOOLONG {
            return .badRequest("\(operation) failed: a name in the path is longer than the file system allows "
                + "(255 bytes); nothing was stored")
        }
        return APIError(status: 500, code: .ioError, message: "\(operation) failed: \(String(cString: strerror(code)))")
    }
}

/// Hashing stopped because the request that wanted it ended.
struct HashCancelled: Error {}
