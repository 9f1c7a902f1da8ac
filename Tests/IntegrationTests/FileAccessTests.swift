import Foundation
import LoopsyAPI
import LoopsyClient
import Synchronization
import Testing

/// Transfers decide on what they open, not on names: symlink swaps, hard links, data dirs,
/// dotfiles, and the modes of pushed files.
@Suite struct FileAccessTests {
    /// An `auth.allowedKeys` key: a caller that is not the node's owner.
    static let helperKey = String(repeating: "f", count: 40)

    /// root/home allowed (and the daemon's HOME), root/home/secret denied, root/outside neither.
    final class Box {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-fa-\(UUID().uuidString)").path
        var home: String { root + "/home" }
        let node: TestNode

        init(allowed: String? = nil, denied: String? = nil, extra: String = "", umask: String? = nil) throws {
            let root = self.root
            for directory in ["home/secret", "outside"] {
                try FileManager.default.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true)
            }
            node = try TestNode {
                replacingLine(replacingLine(replacingLine(replacingLine($0,
                    #"allowedPaths: ["~"]"#, #"allowedPaths: [\#(allowed ?? "\"\(root)/home\"")]"#),
                    #"deniedPaths: ["~/.ssh", "~/.gnupg", "~/.loopsy"]"#, #"deniedPaths: [\#(denied ?? "\"\(root)/home/secret\"")]"#),
                    "allowedKeys: {}", "allowedKeys: {helper: \(FileAccessTests.helperKey)}"),
                    "  transfer: 10\n", "  transfer: 0\n")
                    .replacingOccurrences(of: "allowedDotfiles: []", with: "allowedDotfiles: [\(extra)]")
                    // The helper key may transfer (extra keys hold peers.defaultGrants).
                    .replacingOccurrences(of: "defaultGrants: [context:read, context:write, messages]",
                                          with: "defaultGrants: [context:read, context:write, messages, transfer]")
            }
            if let umask { node.launcher = ["/bin/sh", "-c", "umask \(umask); exec \"$0\" \"$@\""] }
            try node.start(environment: ["HOME": root + "/home"])
        }

        func cleanUp() {
            node.cleanUp()
            try? FileManager.default.removeItem(atPath: root)
        }

        func pull(_ remote: String, key: String) throws -> CurlHTTPClient.Response {
            try CurlHTTPClient(timeoutSeconds: 30).send(
                method: "POST", url: node.baseURL + "/api/v1/transfer/pull",
                headers: ["Authorization": "Bearer \(key)", "Content-Type": "application/json"],
                body: Array(#"{"sourcePath":"\#(remote)"}"#.utf8))
        }

        func push(_ bytes: String, to remote: String, key: String) throws -> CurlHTTPClient.Response {
            try TransferTests.multipartPush(url: node.baseURL + "/api/v1/transfer/push", key: key,
                                            fields: [("destPath", remote), ("overwrite", "false")], file: Array(bytes.utf8))
        }
    }

    /// A racer flips root/home/flip between a real directory and a symlink (to a directory
    /// outside the allowed paths, or to the denied one inside them) while a non-owner pulls
    /// root/home/flip/f as fast as it can: the secret never comes back.
    @Test func symlinkSwapDuringPullsNeverLeaks() throws {
        let box = try Box()
        defer { box.cleanUp() }
        let fm = FileManager.default
        try fm.createDirectory(atPath: box.home + "/flip", withIntermediateDirectories: true)
        try "innocent".write(toFile: box.home + "/flip/f", atomically: true, encoding: .utf8)
        try fm.createDirectory(atPath: box.root + "/outside/dir", withIntermediateDirectories: true)
        try "SECRET-outside".write(toFile: box.root + "/outside/dir/f", atomically: true, encoding: .utf8)
        try "SECRET-denied".write(toFile: box.home + "/secret/f", atomically: true, encoding: .utf8)

        let stop = Atomic<Bool>(false)
        let flips = Atomic<Int>(0)
        let flip = box.home + "/flip"
        // Two symlinks to swap in: absolute out of the root, and relative into the denied
        // directory beside it. renameat2(RENAME_EXCHANGE) swaps atomically, so flip always exists.
        try fm.createSymbolicLink(atPath: box.home + "/.evil0", withDestinationPath: box.root + "/outside/dir")
        try fm.createSymbolicLink(atPath: box.home + "/.evil1", withDestinationPath: "secret")
        typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        let exchange = try #require(dlsym(dlopen(nil, RTLD_NOW), "renameat2").map { unsafeBitCast($0, to: RenameAt2.self) })
        let home = box.home
        let racer = Thread {
            var index = 0
            while !stop.load(ordering: .relaxed) {
                let evil = home + "/.evil\(index % 2)"
                _ = exchange(AT_FDCWD, flip, AT_FDCWD, evil, 2)  // flip is now the symlink
                _ = exchange(AT_FDCWD, flip, AT_FDCWD, evil, 2)  // and the directory again
                index += 1
                flips.store(index, ordering: .relaxed)
            }
        }
        racer.start()
        var statuses: [Int: Int] = [:]
        var leaks = 0, innocent = 0, tries = 0
        let started = Date()
        while tries < 3000 && Date().timeIntervalSince(started) < 20 {
            let response = try box.pull(flip + "/f", key: Self.helperKey)
            tries += 1
            statuses[response.status, default: 0] += 1
            if response.text.contains("SECRET") { leaks += 1 }
            if response.status == 200 && response.text == "innocent" { innocent += 1 }
        }
        stop.store(true, ordering: .relaxed)
        while !racer.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        let seconds = Date().timeIntervalSince(started)
        print("symlink race: \(tries) pulls in \(String(format: "%.1f", seconds)) s, \(flips.load(ordering: .relaxed)) flips, "
              + "\(leaks) leaks, statuses \(statuses.sorted { $0.key < $1.key })")
        #expect(leaks == 0)
        #expect(innocent > 0, "the real directory was never served: the race was not exercised")
        #expect((statuses[403] ?? 0) + (statuses[404] ?? 0) > 0, "the symlink was never met: the race was not exercised")
        #expect(Set(statuses.keys).isSubset(of: [200, 403, 404]), "\(statuses)")
    }

    @Test func hardLinkToADeniedFileIsRefusedToNonOwners() throws {
        let box = try Box()
        defer { box.cleanUp() }
        try "private key".write(toFile: box.home + "/secret/key", atomically: true, encoding: .utf8)
        #expect(link(box.home + "/secret/key", box.home + "/innocent-name") == 0)
        let refused = try box.pull(box.home + "/innocent-name", key: Self.helperKey)
        #expect(refused.status == 403)
        #expect(refused.errorCode == "hard_link_refused")
        #expect(!refused.text.contains("private key"))
        // The denied name itself stays denied to everyone.
        #expect(try box.pull(box.home + "/secret/key", key: box.node.apiKey).errorCode == "path_forbidden")
        // A file with one name is served to the same caller.
        try "plain".write(toFile: box.home + "/plain", atomically: true, encoding: .utf8)
        #expect(try box.pull(box.home + "/plain", key: Self.helperKey).text == "plain")
    }

    @Test func theDataDirIsAlwaysDeniedEvenWithEverythingAllowed() throws {
        let box = try Box(allowed: "\"/\"", denied: "")
        defer { box.cleanUp() }
        let dataDir = box.node.dataDir
        for key in [box.node.apiKey, Self.helperKey] {
            for name in ["config.yaml", "identity.pem", "loopsy.db"] {
                let response = try box.pull(dataDir + "/" + name, key: key)
                #expect(response.status == 403, "\(name): \(response.text)")
                #expect(response.errorCode == "path_forbidden")
                #expect(!response.text.contains("apiKey"))
            }
            // Through a symlink that stays inside "/" too: the opened file's real path decides.
            try? FileManager.default.createSymbolicLink(atPath: box.root + "/dd", withDestinationPath: dataDir)
            #expect(try box.pull(box.root + "/dd/config.yaml", key: key).status == 403)
            #expect(try box.node.http("POST", "/api/v1/transfer/list", body: #"{"path":"\#(dataDir)"}"#, key: key).status == 403)
            #expect(try box.push("x", to: dataDir + "/config.yaml.new", key: key).status == 403)
        }
        #expect(!FileManager.default.fileExists(atPath: dataDir + "/config.yaml.new"))
        // Elsewhere "/" is allowed.
        try "ok".write(toFile: box.root + "/outside/ok", atomically: true, encoding: .utf8)
        #expect(try box.pull(box.root + "/outside/ok", key: box.node.apiKey).text == "ok")
    }

    @Test func codeRunningDotfilesAreTheOwnersOnly() throws {
        let box = try Box()
        defer { box.cleanUp() }
        let pushed = try box.push("echo pwned", to: box.home + "/.bashrc", key: Self.helperKey)
        #expect(pushed.status == 403)
        #expect(pushed.errorCode == "path_forbidden")
        #expect(!FileManager.default.fileExists(atPath: box.home + "/.bashrc"))
        #expect(try box.push("x", to: box.home + "/.config/systemd/user/evil.service", key: Self.helperKey).status == 403)
        #expect(try box.push("x", to: box.home + "/.ssh/authorized_keys", key: Self.helperKey).status == 403)
        #expect(!FileManager.default.fileExists(atPath: box.home + "/.config"))
        // The owner may.
        #expect(try box.push("alias ll='ls -l'", to: box.home + "/.bashrc", key: box.node.apiKey).status == 200)
        #expect(try String(contentsOfFile: box.home + "/.bashrc", encoding: .utf8) == "alias ll='ls -l'")
        // Nor read, nor listed, for the non-owner.
        #expect(try box.pull(box.home + "/.bashrc", key: Self.helperKey).status == 403)
        let listed = try box.node.http("POST", "/api/v1/transfer/list", body: #"{"path":"\#(box.home)"}"#, key: Self.helperKey)
        #expect(listed.status == 200)
        #expect(!listed.text.contains(".bashrc"))
        #expect(try box.node.http("POST", "/api/v1/transfer/list", body: #"{"path":"\#(box.home)"}"#).text.contains(".bashrc"))
        // Other dotfiles are ordinary files.
        #expect(try box.push("x", to: box.home + "/.notes", key: Self.helperKey).status == 200)
    }

    /// The directory an upload goes to is moved into a denied one while the bytes arrive: the
    /// upload is refused at the end and leaves nothing there.
    @Test func aDirectoryMovedIntoADeniedPathDuringAnUploadGetsNothing() throws {
        let box = try Box()
        defer { box.cleanUp() }
        try FileManager.default.createDirectory(atPath: box.home + "/in", withIntermediateDirectories: true)
        let local = box.root + "/slow.bin"
        try Data(repeating: 7, count: 400_000).write(to: URL(fileURLWithPath: local))
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        curl.arguments = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--limit-rate", "200k",
                          "-H", "Authorization: Bearer \(box.node.apiKey)", "-F", "destPath=\(box.home)/in/f",
                          "-F", "file=@\(local)", box.node.baseURL + "/api/v1/transfer/push"]
        let out = Pipe()
        curl.standardOutput = out
        try curl.run()
        #expect(eventually(5) {
            ((try? FileManager.default.contentsOfDirectory(atPath: box.home + "/in")) ?? []).contains { $0.hasSuffix(".part") }
        })
        #expect(rename(box.home + "/in", box.home + "/secret/in") == 0)
        curl.waitUntilExit()
        let status = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(status == "403")
        #expect(try FileManager.default.contentsOfDirectory(atPath: box.home + "/secret/in") == [])
    }

    /// (Only meaningful when the tests run as a user other than root, whom permissions do not stop.)
    @Test func aWriteOnlyDirectoryStillTakesPushes() throws {
        let box = try Box()
        defer { box.cleanUp() }
        try FileManager.default.createDirectory(atPath: box.home + "/dropbox", withIntermediateDirectories: true)
        chmod(box.home + "/dropbox", 0o300)
        defer { chmod(box.home + "/dropbox", 0o700) }
        let pushed = try box.push("dropped", to: box.home + "/dropbox/f", key: box.node.apiKey)
        #expect(pushed.status == 200, "\(pushed.text)")
        chmod(box.home + "/dropbox", 0o700)
        #expect(try String(contentsOfFile: box.home + "/dropbox/f", encoding: .utf8) == "dropped")
    }

    @Test func allowedDotfilesLetNonOwnersUseTheListedOnes() throws {
        let box = try Box(extra: "\"~/.bashrc\"")
        defer { box.cleanUp() }
        #expect(try box.push("x", to: box.home + "/.bashrc", key: Self.helperKey).status == 200)
        #expect(try box.push("x", to: box.home + "/.profile", key: Self.helperKey).status == 403)
    }

    @Test(arguments: [("022", "644", "755"), ("027", "640", "750")])
    func pushedFilesGetTheUmaskTheDaemonWasStartedWith(umask: String, file: String, directory: String) throws {
        let box = try Box(umask: umask)
        defer { box.cleanUp() }
        #expect(try box.push("hello", to: box.home + "/new/dir/f.txt", key: box.node.apiKey).status == 200)
        func mode(_ path: String) throws -> String {
            let permissions = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int ?? -1
            return String(permissions, radix: 8)
        }
        #expect(try mode(box.home + "/new/dir/f.txt") == file)
        #expect(try mode(box.home + "/new") == directory)
        #expect(try mode(box.home + "/new/dir") == directory)
        // The daemon's own files stay private.
        if FileManager.default.fileExists(atPath: box.node.dataDir + "/logs/loopsyd.log") {
            #expect(try mode(box.node.dataDir + "/logs/loopsyd.log") == "600")
        }
    }
}
