import ArgumentParser
import Crypto
import Dispatch
import LoopsyAPI
import LoopsyClient
#if canImport(Glibc)
import Glibc
#endif


struct Send: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Push a file (or with -r a directory) to a peer.",
        discussion: """
            Streams from disk with progress on a terminal; the daemon stores the file only if its \
            SHA-256 matches this side's. <dest> is an absolute path on the peer; ending it with / \
            puts the file inside that directory. -r sends every regular file below <src> (symlinks \
            are skipped and reported).
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(name: .shortAndLong, help: "Send a directory recursively.") var recursive = false
    @Flag(name: [.customShort("f"), .long], help: "Replace files that exist on the peer.") var overwrite = false
    @Argument(help: "Where to send: a peer (name, nodeId or address), or local.") var peer: String
    @Argument(help: "Local file or directory.") var source: String
    @Argument(help: "Absolute destination path on the peer.") var destination: String

    func run() throws {
        try runReporting {
            let client = try global.client(peer: peer)
            var info = stat()
            guard stat(source, &info) == 0 else {
                throw CLIFailure(message: "cannot read \(source): \(String(cString: strerror(errno)))", code: CLIFailure.apiError)
            }
            if info.st_mode & S_IFMT == S_IFDIR {
                guard recursive else {
                    throw CLIFailure(message: "\(source) is a directory; use -r to send it", code: CLIFailure.usage)
                }
                let base = destination.hasSuffix("/") ? destination + LocalFiles.basename(source) : destination
                var count = 0
                for relative in try LocalFiles.walk(source) {
                    try sendFile(client, source + "/" + relative, base + "/" + relative)
                    count += 1
                }
                print("sent \(count) files to \(peer):\(base)")
            } else {
                let target = destination.hasSuffix("/") ? destination + LocalFiles.basename(source) : destination
                try sendFile(client, source, target)
            }
        }
    }

    private func sendFile(_ client: LoopsyClient, _ local: String, _ remote: String) throws {
        let digest = try LocalFiles.sha256(of: local)
        let bar = ProgressBar(label: LocalFiles.basename(local))
        let result: TransferPushResult
        do {
            result = try client.push(localPath: local, remotePath: remote, sha256: digest, overwrite: overwrite) {
                bar.update(done: $0, total: $1)
            }
            bar.finish()
        } catch ClientError.api(let error) where error.code == "exists" {
            bar.finish()
            throw CLIFailure(message: "\(remote) exists on \(peer); use -f to replace it", code: CLIFailure.apiError)
        }
        guard result.sha256 == digest else {
            throw CLIFailure(message: "checksum mismatch for \(remote): sent \(digest), stored \(result.sha256)",
                             code: CLIFailure.apiError)
        }
        let rate = result.durationMs > 0 ? " at \(ProgressBar.size(Int64(Double(result.size) * 1000 / result.durationMs)))/s" : ""
        print("sent \(local) → \(peer):\(result.path) (\(ProgressBar.size(result.size))\(rate), sha256 verified)")
    }
}

struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pull a file (or with -r a directory) from a peer.",
        discussion: """
            Streams to <dest>.loopsy-part with progress on a terminal, verifies the SHA-256 end to \
            end, then renames it into place. An interrupted pull resumes from the partial file when \
            run again. If <dest> is a directory the file keeps its name inside it.
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(name: .shortAndLong, help: "Pull a directory recursively.") var recursive = false
    @Flag(name: [.customShort("f"), .long], help: "Replace local files that exist.") var overwrite = false
    @Argument(help: "Where to pull from: a peer (name, nodeId or address), or local.") var peer: String
    @Argument(help: "Absolute path on the peer.") var source: String
    @Argument(help: "Local destination.") var destination: String

    func run() throws {
        try runReporting {
            let client = try global.client(peer: peer)
            if recursive {
                let base = LocalFiles.isDirectory(destination) ? LocalFiles.join(destination, LocalFiles.basename(source)) : destination
                let count = try pullTree(client, source, base)
                print("pulled \(count) files from \(peer):\(source) to \(base)")
                return
            }
            let target = LocalFiles.isDirectory(destination) ? LocalFiles.join(destination, LocalFiles.basename(source)) : destination
            try pullFile(client, source, target)
        }
    }

    private func pullTree(_ client: LoopsyClient, _ remote: String, _ local: String) throws -> Int {
        try LocalFiles.makeDirectory(local)
        var count = 0
        for entry in try client.list(remotePath: remote) {
            // Only plain names become local paths: nothing the peer says can point outside `local`.
            guard !entry.name.contains("/"), entry.name != ".", entry.name != ".." else { continue }
            switch entry.type {
            case "directory": count += try pullTree(client, entry.path, local + "/" + entry.name)
            case "file":
                try pullFile(client, entry.path, local + "/" + entry.name)
                count += 1
            default: printError("loopsy: skipped \(entry.path) (\(entry.type))")
            }
        }
        return count
    }

    private func pullFile(_ client: LoopsyClient, _ remote: String, _ local: String) throws {
        if access(local, F_OK) == 0 && !overwrite {
            throw CLIFailure(message: "\(local) exists; use -f to replace it", code: CLIFailure.apiError)
        }
        let partial = local + ".loopsy-part"
        let offset = LocalFiles.size(partial) ?? 0
        var hasher = SHA256()
        if offset > 0 { try LocalFiles.hash(partial, into: &hasher) }
        let fd = open(partial, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CLIFailure(message: "cannot write \(partial): \(String(cString: strerror(errno)))", code: CLIFailure.apiError)
        }
        defer { close(fd) }
        // The peer hashes large files while it sends them (it names small files' digests in a
        // header): ask now, so verification does not wait for a second read of the file.
        let remoteDigest = ConcurrentChecksum(client: client, remotePath: remote)
        let bar = ProgressBar(label: LocalFiles.basename(remote), offset: offset)
        var writeError: Int32 = 0
        var status = 0
        var headers: [String: String] = [:]
        (status, headers) = try client.pull(remotePath: remote, offset: offset, progress: { bar.update(done: $0, total: $1) }) { bytes in
            hasher.update(data: bytes)
            writeError = LocalFiles.writeAll(fd, bytes)
            return writeError == 0
        }
        bar.finish()
        if writeError != 0 {
            throw CLIFailure(message: "writing \(partial) failed: \(String(cString: strerror(writeError))); run again to resume",
                             code: CLIFailure.apiError)
        }
        if offset > 0 && status != 206 {
            // The whole file came although we asked for the rest: the partial is useless now.
            unlink(partial)
            throw CLIFailure(message: "the peer did not resume the transfer; run the pull again", code: CLIFailure.apiError)
        }
        let digest = Hex.encode(hasher.finalize())
        let expected = try headers[TransferHeaders.sha256.lowercased()] ?? remoteDigest.value()
        guard digest == expected else {
            unlink(partial)
            throw CLIFailure(message: "checksum mismatch pulling \(remote): got \(digest), the peer has \(expected); "
                + "the partial file was removed, run the pull again", code: CLIFailure.apiError)
        }
        guard rename(partial, local) == 0 else {
            throw CLIFailure(message: "cannot move \(partial) to \(local): \(String(cString: strerror(errno)))",
                             code: CLIFailure.apiError)
        }
        let size = LocalFiles.size(local) ?? 0
        print("pulled \(peer):\(remote) → \(local) (\(ProgressBar.size(size))\(offset > 0 ? ", resumed at \(ProgressBar.size(offset))" : ""), sha256 verified)")
    }
}

/// A `/transfer/checksum` request running beside the download.
final class ConcurrentChecksum: @unchecked Sendable {
    private let group = DispatchGroup()
    private let client: LoopsyClient
    private let remotePath: String
    // Written once on the worker before `group.leave()`, read after `group.wait()`.
    private var result: Result<String, any Error> = .failure(CLIFailure(message: "no checksum", code: 1))

    init(client: LoopsyClient, remotePath: String) {
        self.client = client
        self.remotePath = remotePath
        group.enter()
        DispatchQueue.global().async { [self] in
            result = Result { try client.checksum(remotePath: remotePath).sha256 }
            group.leave()
        }
    }

    func value() throws -> String {
        group.wait()
        return try result.get()
    }
}

/// Local file helpers for send and pull.
enum LocalFiles {
    static func basename(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    static func size(_ path: String) -> Int64? {
        var info = stat()
        return stat(path, &info) == 0 ? Int64(info.st_size) : nil
    }

    static func makeDirectory(_ path: String) throws {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw CLIFailure(message: "cannot create \(current): \(String(cString: strerror(errno)))", code: CLIFailure.apiError)
            }
        }
    }

    /// Regular files below `root`, as paths relative to it; symlinks are reported and skipped.
    static func walk(_ root: String, prefix: String = "") throws -> [String] {
        guard let directory = opendir(prefix.isEmpty ? root : root + "/" + prefix) else {
            throw CLIFailure(message: "cannot read \(root)/\(prefix): \(String(cString: strerror(errno)))", code: CLIFailure.apiError)
        }
        defer { closedir(directory) }
        var files: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            let relative = prefix.isEmpty ? name : prefix + "/" + name
            var info = stat()
            guard lstat(root + "/" + relative, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFREG: files.append(relative)
            case S_IFDIR: files += try walk(root, prefix: relative)
            default: printError("loopsy: skipped \(root)/\(relative) (not a regular file)")
            }
        }
        return files.sorted()
    }

    static func sha256(of path: String) throws -> String {
        var hasher = SHA256()
        try hash(path, into: &hasher)
        return Hex.encode(hasher.finalize())
    }

    static func hash(_ path: String, into hasher: inout SHA256) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CLIFailure(message: "cannot read \(path): \(String(cString: strerror(errno)))", code: CLIFailure.apiError)
        }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else {
                throw CLIFailure(message: "cannot read \(path): \(String(cString: strerror(errno)))", code: CLIFailure.apiError)
            }
            if count == 0 { return }
            hasher.update(data: buffer[0..<count])
        }
    }

    /// 0 on success, else errno.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32 {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return errno }
            offset += written
        }
        return 0
    }
}
