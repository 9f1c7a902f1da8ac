import ArgumentParser
import Dispatch
import LoopsyAPI
import LoopsyClient
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif


struct Send: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "send",
        abstract: "Push a file (or with -r a directory) to a peer.",
        discussion: """
            Streams from disk with progress on a terminal; the daemon stores the file only if its \
            SHA-256 matches this side's. <dest> is an absolute path on the peer; ending it with / \
            puts the file inside that directory. -r sends every regular file below <src> (symlinks \
            are skipped and reported).
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(name: .shortAndLong, help: "Send a directory recursively (files the peer refuses, such as a .git, are listed and skipped; the exit status is then 1).") var recursive = false
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
                var refused = 0
                for relative in try LocalFiles.walk(source, skipped: { printError("loopsy: skipped \($0) (not a regular file)") }) {
                    do {
                        try sendFile(client, source + "/" + relative, base + "/" + relative)
                        count += 1
                    } catch ClientError.api(let error) where error.is(.pathForbidden) {
                        // A peer keeps some names from other callers (a repository's .git, a
                        // project's .claude): the rest of the tree still goes.
                        printError("loopsy: skipped \(relative) (\(peer) refuses it: \(TerminalText.safe(error.message)))")
                        refused += 1
                    }
                }
                print("sent \(count) files to \(peer):\(base)")
                if refused > 0 {
                    throw CLIFailure(message: "\(refused) file(s) were refused by \(peer) (listed above); the owner there "
                        + "can allow them with transfer.allowedDotfiles", code: CLIFailure.apiError)
                }
            } else {
                let target = destination.hasSuffix("/") ? destination + LocalFiles.basename(source) : destination
                try sendFile(client, source, target)
            }
        }
    }

    private func sendFile(_ client: LoopsyClient, _ local: String, _ remote: String) throws {
        let bar = ProgressBar(label: LocalFiles.basename(local))
        let result: TransferPushResult
        do {
            result = try FileTransfers(client: client).push(local, to: remote, overwrite: overwrite) {
                bar.update(done: $0, total: $1)
            }
            bar.finish()
        } catch ClientError.api(let error) where error.is(.exists) {
            bar.finish()
            throw CLIFailure(message: "\(remote) exists on \(peer); use -f to replace it", code: CLIFailure.apiError)
        } catch {
            bar.finish()
            throw error
        }
        let rate = result.durationMs > 0 ? " at \(ProgressBar.size(Int64(saturating: Double(result.size) * 1000 / result.durationMs)))/s" : ""
        print("sent \(local) → \(peer):\(result.path) (\(ProgressBar.size(result.size))\(rate), sha256 verified)")
    }
}

struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pull",
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
            // Judged on bytes, as the kernel reads them: `contains("/")` missed the "/" of
            // "../\u{301}x", one Character with its combining mark (see KernelPath).
            guard !entry.name.isEmpty, !KernelPath.hasSlash(entry.name), !KernelPath.isDots(entry.name),
                  !entry.name.utf8.contains(0) else {
                printError("loopsy: skipped \(entry.path) (the peer listed it as '\(entry.name)', not a plain file name)")
                continue
            }
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
        let partial = LocalFiles.size(local + ".loopsy-part") ?? 0
        let bar = ProgressBar(label: LocalFiles.basename(remote), offset: partial)
        defer { bar.finish() }  // also clears the bar when the pull fails
        let pulled = try FileTransfers(client: client).pull(remote, to: local, overwrite: overwrite) {
            bar.update(done: $0, total: $1)
        }
        let resumed = pulled.resumedAt > 0 ? ", resumed at \(ProgressBar.size(pulled.resumedAt))" : ""
        print("pulled \(peer):\(remote) → \(local) (\(ProgressBar.size(pulled.size))\(resumed), sha256 verified)")
    }
}
