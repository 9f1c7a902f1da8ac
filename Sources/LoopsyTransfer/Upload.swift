import LoopsyAPI
import LoopsyPOSIX
import LoopsyStore
#if canImport(Glibc)
import Glibc
#endif

/// A pushed file on its way to disk: the multipart body's `file` part streams into a temporary
/// file next to its destination, hashed as it goes; `finish` verifies, fsyncs and renames it
/// into place. Anything that goes wrong, including the sender vanishing (the upload is
/// released or cancelled), removes the temporary file.
public final class Upload: Sendable {
    /// What the request said before its body: its headers and query.
    public struct Head: Sendable {
        public var contentType: String?
        public var contentLength: Int64?
        public var destPath: String?
        public var expectedSha256: String?
        public var overwrite: Bool

        public init(contentType: String?, contentLength: Int64?, destPath: String?, expectedSha256: String?,
                    overwrite: Bool) {
            self.contentType = contentType
            self.contentLength = contentLength
            self.destPath = destPath
            self.expectedSha256 = expectedSha256
            self.overwrite = overwrite
        }
    }

    private struct State {
        let parser: MultipartParser
        var field: String?
        var fieldValue: [UInt8] = []
        var destPath: String?
        var expectedSha256: String?
        var overwrite = false
        /// The real path the file gets.
        var target: String?
        /// The directory that holds the temporary file and the target, open: both names are
        /// used relative to it, so no rename of a parent can move them elsewhere.
        var directoryFD: Int32 = -1
        var targetName: String?
        var temporary: String?
        /// The directories this upload made on the way to the target, so that a failed upload
        /// removes them again (see `MadeDirectories`).
        var madeDirectories: MadeDirectories?
        var fd: Int32 = -1
        /// Hashes and writes the file's bytes off the HTTP worker, from the file part's start
        /// until `store` (or a discard) stops it.
        var writer: UploadWriter?
        var size: Int64 = 0
        var sawFile = false
        var failure: APIError?
    }

    private let state: PlainMutex<State>
    private let policy: PathPolicy
    private let access: TransferAccess
    private let maxFileSize: Int64
    private let started = Clock.monotonicSeconds()

    public init(_ head: Head, policy: PathPolicy, maxFileSize: Int, access: TransferAccess) throws {
        guard let boundary = head.contentType.flatMap(MultipartParser.boundary(fromContentType:)) else {
            throw APIError.unsupportedMediaType("send the upload as multipart/form-data with a destPath field and a file part")
        }
        // Known too large before a byte arrives (a little slack for the multipart framing).
        let slack: Int64 = 65_536
        let allowed = Int64(maxFileSize) > Int64.max - slack ? Int64.max : Int64(maxFileSize) + slack
        if let length = head.contentLength, length > allowed {
            throw APIError.payloadTooLarge("the upload is \(length) bytes; transfer.maxFileSize is \(maxFileSize)")
        }
        self.policy = policy
        self.access = access
        self.maxFileSize = Int64(maxFileSize)
        var initial = State(parser: MultipartParser(boundary: boundary))
        initial.destPath = head.destPath
        initial.expectedSha256 = head.expectedSha256?.lowercased()
        initial.overwrite = head.overwrite
        // A destination given in the query is checked before the body is read at all.
        if let destPath = initial.destPath {
            let target = try Self.checkDestination(destPath, overwrite: initial.overwrite, policy: policy, access: access)
            close(target.directoryFD)
        }
        state = PlainMutex(initial)
    }

    /// The open directory the file goes to (its deepest existing part) after the path rules,
    /// and the existing-file checks. The caller closes `directoryFD`.
    private static func checkDestination(_ destPath: String, overwrite: Bool, policy: PathPolicy,
                                         access: TransferAccess) throws -> PathPolicy.WriteTarget {
        let target = try policy.openForWriting(destPath, access: access)
        var info = stat()
        if target.missing.isEmpty && fstatat(target.directoryFD, target.name, &info, AT_SYMLINK_NOFOLLOW) == 0 {
            if info.st_mode & S_IFMT == S_IFDIR {
                close(target.directoryFD)
                throw APIError.conflict("'\(destPath)' is a directory; name the file to create", code: .isDirectory)
            }
            if !overwrite {
                close(target.directoryFD)
                throw APIError.conflict("'\(destPath)' exists; send overwrite=true to replace it", code: .exists)
            }
        }
        return target
    }

    deinit {
        state.withLock { Self.discard(&$0) }
    }

    /// The sender stopped before the end: the temporary file goes now, not at release.
    public func cancel() {
        state.withLock { Self.discard(&$0) }
    }

    /// Takes the next bytes of the body; an error (always an APIError) ends the upload and
    /// removes the temporary file.
    public func consume(_ bytes: UnsafeBufferPointer<UInt8>) throws {
        try state.withLock { state in
            do {
                // The parser is a class: feeding it holds no access to `state`.
                let parser = state.parser
                try parser.feed(bytes) { try handle($0, &state) }
            } catch let error as APIError {
                Self.discard(&state)
                state.failure = error
                throw error
            } catch let error as MultipartParser.Failure {
                Self.discard(&state)
                let apiError = APIError.badRequest(error.message, code: .badMultipart)
                state.failure = apiError
                throw apiError
            } catch {
                Self.discard(&state)
                throw APIError.badRequest("upload failed: \(error)", code: .badMultipart)
            }
        }
    }

    /// After `consume`: false when the upload takes more bytes now. Otherwise true, and `room`
    /// is called once it does (the disk caught up, or the upload stopped): the caller sends
    /// nothing more until then, and no thread needs to wait for it.
    public func whenRoom(_ room: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { $0.writer }?.whenRoom(room) ?? false
    }

    /// The checks that need no disk, once the body has arrived: the multipart body ended and it
    /// had a file (the SHA-256 is compared in `store`, once the writer has hashed the last
    /// bytes). A failure removes the file.
    public func verify() throws {
        try state.withLock { state in
            if let failure = state.failure { throw failure }
            guard state.parser.isComplete else {
                Self.discard(&state)
                throw APIError.badRequest("the upload ended before its closing multipart boundary", code: .badMultipart)
            }
            guard state.sawFile, state.target != nil, state.temporary != nil else {
                Self.discard(&state)
                throw APIError.badRequest("the upload has no 'file' part", code: .badMultipart)
            }
            state.writer?.end()
        }
    }

    /// After `verify`: waits for the writer, checks the SHA-256, makes the file durable (fsync)
    /// and puts it in place. It waits for the disk, so it runs off the HTTP workers (see
    /// `TransferService.finish`).
    public func store() throws -> TransferPushResult {
        try state.withLock { state in
            if let failure = state.failure { throw failure }
            let stopped = APIError.serviceUnavailable("the upload was stopped before it was stored; nothing was stored")
            guard let writer = state.writer, let target = state.target, let temporary = state.temporary else {
                Self.discard(&state)
                throw stopped
            }
            writer.end()  // `verify` ended it already; a second end changes nothing
            let outcome = writer.finish()
            state.writer = nil
            guard let digest = outcome.digest else {
                Self.discard(&state)
                throw outcome.error ?? stopped
            }
            if let expected = state.expectedSha256, expected != digest {
                Self.discard(&state)
                throw APIError(status: 422, code: .checksumMismatch,
                               message: "the received file's SHA-256 is \(digest), not \(expected); nothing was stored")
            }
            // The user's umask, as if the user had made the file (the daemon's own is 077);
            // set only now so the partial file stays private while it arrives.
            guard fchmod(state.fd, 0o666 & ~UserUmask.value) == 0, fsync(state.fd) == 0 else {
                let code = errno
                Self.discard(&state)
                throw TransferService.diskError("fsync", code)
            }
            close(state.fd)
            state.fd = -1
            // The directory may have been moved while the upload ran: it must still pass.
            let final: String
            do {
                final = try policy.recheck(directoryFD: state.directoryFD, name: state.targetName ?? "",
                                           asked: state.destPath ?? target, access: access)
            } catch {
                Self.discard(&state)
                throw error
            }
            // Without overwrite, never replace a file that appeared while the upload ran.
            if FileSystem.rename(in: state.directoryFD, from: temporary, to: state.targetName ?? "",
                                 noreplace: !state.overwrite) != 0 {
                let code = errno
                Self.discard(&state)
                if code == EEXIST {
                    throw APIError.conflict("'\(target)' exists; send overwrite=true to replace it", code: .exists)
                }
                if code == EISDIR {
                    throw APIError.conflict("'\(target)' is a directory; name the file to create", code: .isDirectory)
                }
                throw TransferService.diskError("rename", code)
            }
            state.temporary = nil
            fsync(state.directoryFD)
            close(state.directoryFD)
            state.directoryFD = -1
            state.madeDirectories?.close()
            state.madeDirectories = nil
            return TransferPushResult(path: final, size: state.size, sha256: digest,
                                      durationMs: (Clock.monotonicSeconds() - started) * 1000)
        }
    }

    private func handle(_ event: MultipartParser.Piece, _ state: inout State) throws {
        switch event {
        case .partStart(let name, _):
            state.field = name
            state.fieldValue = []
            if name == "file" {
                guard !state.sawFile else { throw APIError.badRequest("only one file part per upload", code: .badMultipart) }
                state.sawFile = true
                try open(&state)
            }
        case .data(let bytes):
            if state.field == "file" {
                state.size += Int64(bytes.count)
                guard state.size <= maxFileSize else {
                    throw APIError.payloadTooLarge("the file is larger than transfer.maxFileSize (\(maxFileSize) bytes); nothing was stored")
                }
                try state.writer?.submit(bytes)
            } else {
                guard state.fieldValue.count + bytes.count <= 4096 else {
                    throw APIError.badRequest("field '\(state.field ?? "")' is too long", code: .badMultipart)
                }
                state.fieldValue += bytes
            }
        case .partEnd:
            // The file is whole (a second file part is refused): what is queued goes to disk now.
            if state.field == "file" { state.writer?.end() }
            let value = String(decoding: state.fieldValue, as: UTF8.self)
            switch state.field {
            case "destPath": state.destPath = value
            case "sha256": state.expectedSha256 = value.lowercased().trimming()
            case "overwrite": state.overwrite = ["1", "true", "yes"].contains(value.lowercased().trimming())
            default: break
            }
            state.field = nil
        }
    }

    /// The destination is checked and the temporary file made when the file part begins.
    private func open(_ state: inout State) throws {
        guard let destPath = state.destPath, !destPath.isEmpty else {
            throw APIError.badRequest("send the destPath field before the file part (or ?destPath=)", code: .badMultipart)
        }
        let target = try Self.checkDestination(destPath, overwrite: state.overwrite, policy: policy, access: access)
        guard target.missing.count <= Self.maxNewDirectories else {
            close(target.directoryFD)
            throw APIError.badRequest("'\(destPath)' needs \(target.missing.count) new directories; one push makes at most "
                + "\(Self.maxNewDirectories)", code: .badRequest)
        }
        var directoryFD = target.directoryFD
        var made = target.missing.isEmpty ? nil : MadeDirectories(base: dup(directoryFD), names: target.missing)
        do {
            for (index, name) in target.missing.enumerated() {
                let parent = directoryFD
                directoryFD = -1  // makeDirectory closes it, whatever happens
                let (opened, created) = try Self.makeDirectory(name, in: parent)
                directoryFD = opened
                made?.created[index] = created
            }
        } catch {
            // Only makeDirectory throws, and it has closed the parent: nothing of ours is open.
            made?.removeAndClose()
            throw error
        }
        var random = SystemRandomNumberGenerator()
        let temporary = "." + Self.temporaryStem(target.name) + ".loopsy-\(String(random.next() as UInt32, radix: 16)).part"
        let fd = openat(directoryFD, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let code = errno
            close(directoryFD)
            made?.removeAndClose()
            throw TransferService.diskError("create", code)
        }
        state.madeDirectories = made
        state.target = target.path
        state.targetName = target.name
        state.directoryFD = directoryFD
        state.temporary = temporary
        state.fd = fd
        // No thread to be had: refused (the caller discards the file), as the daemon's pools do.
        guard let writer = UploadWriter.start(fd: fd) else {
            throw APIError(status: 503, code: .busyWriting,
                           message: "the daemon cannot start a thread to write the file; nothing was stored, retry in a few seconds",
                           headers: ["Retry-After": "2"])
        }
        state.writer = writer
    }

    /// Removes the temporary file. A writer still running does it on its own thread once it is
    /// out of the write it is in: the caller, often an HTTP worker, waits neither for that
    /// write nor for the unlink of a large file.
    private static func discard(_ state: inout State) {
        let (fd, directoryFD, temporary, made) = (state.fd, state.directoryFD, state.temporary, state.madeDirectories)
        state.fd = -1
        state.directoryFD = -1
        state.temporary = nil
        state.madeDirectories = nil
        let cleanup: @Sendable () -> Void = {
            if fd >= 0 { close(fd) }
            if let temporary, directoryFD >= 0 { unlinkat(directoryFD, temporary, 0) }
            if directoryFD >= 0 { close(directoryFD) }
            made?.removeAndClose()
        }
        if let writer = state.writer {
            state.writer = nil
            writer.abandon(then: cleanup)
        } else {
            cleanup()
        }
    }

    /// The part of the destination's name its temporary file starts with: all of it, or as
    /// much as leaves room for the ".", ".loopsy-<8 hex>.part" around it within NAME_MAX
    /// (255 bytes), cut between characters. A name near the limit once made the temporary
    /// name too long: a 500, and such files could never be pushed.
    static func temporaryStem(_ name: String) -> String {
        let room = 255 - 1 - ".loopsy-ffffffff.part".utf8.count
        let bytes = Array(name.utf8)
        guard bytes.count > room else { return name }
        let cut = Array(bytes[..<room])
        return String(decoding: cut[..<UTF8Boundary.lastComplete(cut)], as: UTF8.self)
    }

    /// Most directories one push creates on the way to its file: `destPath` may hold about
    /// 2,000 levels, and every one made is work to undo.
    static let maxNewDirectories = 32

    /// The directories an upload made below `base` (the deepest one that existed, kept open):
    /// `names` in order, `created` saying which of them it made (another could appear meanwhile).
    /// One descriptor per upload, whatever the depth.
    struct MadeDirectories: Sendable {
        let base: Int32
        let names: [String]
        var created: [Bool]

        init(base: Int32, names: [String]) {
            self.base = base
            self.names = names
            created = Array(repeating: false, count: names.count)
        }

        /// Removes those it made, innermost first, each reached from `base` without following
        /// a symlink; only empty ones go (AT_REMOVEDIR: one that got files meanwhile stays).
        /// Then closes `base`.
        func removeAndClose() {
            guard base >= 0 else { return }
            for index in names.indices.reversed() where created[index] {
                var parent = dup(base)
                for name in names[..<index] where parent >= 0 {
                    // O_PATH: a directory on the way that is not readable (a drop box) still leads on.
                    let next = openat(parent, name, FileSystem.pathOnly | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    Glibc.close(parent)
                    parent = next
                }
                guard parent >= 0 else { continue }
                unlinkat(parent, names[index], AT_REMOVEDIR)
                Glibc.close(parent)
            }
            Glibc.close(base)
        }

        /// Keeps them: closes `base`.
        func close() {
            if base >= 0 { Glibc.close(base) }
        }
    }

    /// Creates (if missing) and opens directory `name` inside `parent`, never following a
    /// symlink put there meanwhile; a new directory gets the user's umask. Closes `parent`.
    /// Says whether it created it.
    private static func makeDirectory(_ name: String, in parent: Int32) throws -> (fd: Int32, created: Bool) {
        defer { close(parent) }
        let created = mkdirat(parent, name, 0o700) == 0
        if !created && errno != EEXIST { throw TransferService.diskError("create directory", errno) }
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if created { unlinkat(parent, name, AT_REMOVEDIR) }  // ours, and nothing could enter it
            errno = code
            if errno == ELOOP || errno == ENOTDIR {
                throw APIError.forbidden("'\(name)' became a symbolic link or file while the upload was set up",
                                         code: .pathForbidden)
            }
            throw TransferService.diskError("open directory", errno)
        }
        if created { fchmod(fd, 0o777 & ~UserUmask.value) }
        return (fd, created)
    }
}
