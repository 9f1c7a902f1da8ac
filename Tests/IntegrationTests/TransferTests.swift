import Crypto
import Foundation
import LoopsyAPI
import LoopsyClient
import Testing

/// File transfer against a real loopsyd confined to a temporary tree.
@Suite struct TransferTests {
    /// root/home is allowed, root/home/secret denied; root/home2 and root/outside are neither.
    final class Sandbox {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-tr-\(UUID().uuidString)").path
        var home: String { root + "/home" }
        let node: TestNode

        init(maxFileSize: Int = 1_073_741_824) throws {
            let root = self.root
            for directory in ["home/secret", "home2", "outside"] {
                try FileManager.default.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true)
            }
            node = try TestNode {
                $0.replacingOccurrences(of: #"allowedPaths: ["~"]"#, with: #"allowedPaths: ["\#(root)/home"]"#)
                    .replacingOccurrences(of: #"deniedPaths: ["~/.ssh", "~/.gnupg", "~/.loopsy"]"#,
                                          with: #"deniedPaths: ["\#(root)/home/secret"]"#)
                    .replacingOccurrences(of: "maxFileSize: 1073741824", with: "maxFileSize: \(maxFileSize)")
                    .replacingOccurrences(of: "  transfer: 10\n", with: "  transfer: 0\n")
            }
            try node.start()
            try Data("\(node.port)\n".utf8).write(to: URL(fileURLWithPath: node.dataDir + "/daemon.port"))
        }

        func cleanUp() {
            node.cleanUp()
            try? FileManager.default.removeItem(atPath: root)
        }

        func write(_ name: String, _ bytes: [UInt8]) throws -> String {
            let path = root + "/" + name
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }

        /// Everything under root/home, to show that refused requests wrote nothing.
        func homeContents() -> [String] {
            (FileManager.default.enumerator(atPath: home)?.allObjects as? [String] ?? []).sorted()
        }

        func push(_ local: String, to remote: String, sha256: String? = nil, overwrite: Bool = false) throws
            -> CurlHTTPClient.Response {
            try TransferTests.multipartPush(
                url: node.baseURL + "/api/v1/transfer/push", key: node.apiKey,
                fields: [("destPath", remote), ("overwrite", String(overwrite))] + (sha256.map { [("sha256", $0)] } ?? []),
                file: try Array(Data(contentsOf: URL(fileURLWithPath: local))))
        }

        func pull(_ remote: String, range: String? = nil) throws -> CurlHTTPClient.Response {
            var headers = ["Authorization": "Bearer \(node.apiKey)", "Content-Type": "application/json"]
            if let range { headers["Range"] = range }
            return try CurlHTTPClient(timeoutSeconds: 120).send(
                method: "POST", url: node.baseURL + "/api/v1/transfer/pull", headers: headers,
                body: Array(#"{"sourcePath":"\#(remote)"}"#.utf8))
        }
    }

    static func sha256(_ bytes: [UInt8]) -> String { Hex.encode(SHA256.hash(data: bytes)) }

    /// A push as any HTTP client may send it: text fields first (destPath, sha256, …), then
    /// the file part, built in memory (loopsy itself sends the file first and its digest after).
    static func multipartPush(url: String, key: String, fields: [(String, String)], file: [UInt8],
                              fieldsAfter: [(String, String)] = []) throws -> CurlHTTPClient.Response {
        let boundary = "test-\(UUID().uuidString)"
        var body: [UInt8] = []
        for (name, value) in fields {
            body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8)
        }
        body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n".utf8)
        body += Array("Content-Type: application/octet-stream\r\n\r\n".utf8) + file
        for (name, value) in fieldsAfter {
            body += Array("\r\n--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)".utf8)
        }
        body += Array("\r\n--\(boundary)--\r\n".utf8)
        return try CurlHTTPClient(timeoutSeconds: 60).send(
            method: "POST", url: url,
            headers: ["Authorization": "Bearer \(key)", "Content-Type": "multipart/form-data; boundary=\(boundary)"],
            body: body)
    }

    static func random(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    @Test func smallEmptyAndLargeFilesRoundTripVerified() throws {
        let box = try Sandbox()
        defer { box.cleanUp() }
        let client = box.node.client
        for (name, bytes) in [("empty", [UInt8]()), ("one", [0x2A]), ("large", Self.random(3_000_000))] {
            let local = try box.write(name, bytes)
            let (result, sent) = try client.push(localPath: local, remotePath: box.home + "/in/\(name)", overwrite: false)
            #expect(sent == Self.sha256(bytes))
            #expect(result.size == Int64(bytes.count))
            #expect(result.sha256 == Self.sha256(bytes))
            let pulled = try box.pull(box.home + "/in/\(name)")
            #expect(pulled.status == 200)
            #expect(pulled.body == bytes)
            #expect(pulled.headers["x-loopsy-sha256"] == Self.sha256(bytes))
            #expect(try client.checksum(remotePath: box.home + "/in/\(name)").sha256 == Self.sha256(bytes))
        }
        #expect(box.homeContents() == ["in", "in/empty", "in/large", "in/one", "secret"])
    }

    /// loopsy sends the digest after the file (it hashes while sending): a wrong one there is
    /// caught the same way, and a right one stores the file.
    @Test func aDigestAfterTheFileIsCheckedBeforeTheFileIsKept() throws {
        let box = try Sandbox()
        defer { box.cleanUp() }
        let bytes = Self.random(200_000)
        let url = box.node.baseURL + "/api/v1/transfer/push?destPath=" + PathEncoding.segment(box.home + "/after.bin")
        let wrong = try Self.multipartPush(url: url, key: box.node.apiKey, fields: [], file: bytes,
                                           fieldsAfter: [("sha256", String(repeating: "0", count: 64))])
        #expect(wrong.status == 422)
        #expect(wrong.errorCode == "checksum_mismatch")
        #expect(box.homeContents() == ["secret"])
        let right = try Self.multipartPush(url: url, key: box.node.apiKey, fields: [], file: bytes,
                                           fieldsAfter: [("sha256", Self.sha256(bytes))])
        #expect(right.status == 200)
        #expect(FileManager.default.contents(atPath: box.home + "/after.bin") == Data(bytes))
    }

    /// A disk that fills while a push is written (by the upload's writer thread): 507, no
    /// partial file, and the next push that fits is stored.
    @Test func aDiskFullDuringAPushIs507AndLeavesNothing() throws {
        let sandbox = try Sandbox()
        defer { sandbox.cleanUp() }
        let full = sandbox.home + "/full"
        try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        let mounted = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", full])
        try #require(mounted.status == 0, "mounting a small tmpfs needs root: \(mounted.stderr)")
        defer { _ = try? run("/bin/umount", [full]) }
        let big = try sandbox.write("big.bin", (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let refused = try sandbox.push(big, to: full + "/big.bin")
        #expect(refused.status == 507, "\(refused.text)")
        #expect(refused.errorCode == "insufficient_storage")
        // The partial file goes on the upload's writer thread once it is out of its write (the
        // HTTP worker does not wait for that): gone within moments of the answer, on a loaded
        // machine not always before it.
        #expect(try eventually(5) { try FileManager.default.contentsOfDirectory(atPath: full).isEmpty })
        let small = try sandbox.write("small.bin", Array(repeating: 7, count: 100_000))
        #expect(try sandbox.push(small, to: full + "/small.bin").status == 200)
        #expect(try Array(Data(contentsOf: URL(fileURLWithPath: full + "/small.bin"))) == Array(repeating: 7, count: 100_000))
    }

    /// A sender that hangs up halfway: its upload's writer stops and the partial file goes.
    @Test func aPushWhoseSenderHangsUpLeavesNothing() throws {
        let sandbox = try Sandbox()
        defer { sandbox.cleanUp() }
        let local = try sandbox.write("slow.bin", Array(repeating: 9, count: 4 << 20))
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        curl.arguments = ["-s", "-o", "/dev/null", "--limit-rate", "1M", "-H", "Authorization: Bearer \(sandbox.node.apiKey)",
                          "-F", "destPath=\(sandbox.home)/slow.bin", "-F", "file=@\(local)",
                          sandbox.node.baseURL + "/api/v1/transfer/push"]
        try curl.run()
        #expect(eventually(5) { sandbox.homeContents().contains { $0.hasSuffix(".part") } })
        kill(curl.processIdentifier, SIGKILL)
        curl.waitUntilExit()
        _ = eventually(5) { sandbox.homeContents() == ["secret"] }
        #expect(sandbox.homeContents() == ["secret"])
        #expect(try sandbox.node.client.health().status == "ok")
    }

    @Test func checksumMismatchStoresNothing() throws {
        let box = try Sandbox()
        defer { box.cleanUp() }
        let local = try box.write("file", Self.random(100_000))
        let response = try box.push(local, to: box.home + "/x.bin", sha256: String(repeating: "0", count: 64))
        #expect(response.status == 422)
        #expect(response.errorCode == "checksum_mismatch")
        #expect(box.homeContents() == ["secret"])
    }

    /// The temporary file's name is built from the target's: names up to the file system's
    /// 255 bytes once failed with a 500 as the temporary name grew past it. A longer name is
    /// the caller's error: a 400.
    @Test func namesUpTo255BytesArePushedAndLongerOnesAreA400() throws {
        let box = try Sandbox()
        defer { box.cleanUp() }
        let local = try box.write("file", Self.random(1000))
        for name in [String(repeating: "n", count: 255), String(repeating: "é", count: 127) + "x",
                     String(repeating: "m", count: 236)] {
            let pushed = try box.push(local, to: box.home + "/" + name)
            #expect(pushed.status == 200, "\(name.utf8.count) bytes: \(String(decoding: pushed.body, as: UTF8.self))")
            #expect(FileManager.default.fileExists(atPath: box.home + "/" + name))
        }
        let tooLong = try box.push(local, to: box.home + "/" + String(repeating: "l", count: 256))
        #expect(tooLong.status == 400, "\(String(decoding: tooLong.body, as: UTF8.self))")
        #expect(!box.homeContents().contains { $0.hasSuffix(".part") || $0.hasPrefix("l") })
    }

    /// A push creates the directories its path lacks; one that fails takes them away again
    /// (only those it made, and only while they are empty).
    @Test func aFailedPushLeavesNoDirectoryItMade() throws {
        let box = try Sandbox()
        defer { box.cleanUp() }
        let local = try box.write("file", Self.random(100_000))
        let wrong = String(repeating: "0", count: 64)
        #expect(try box.push(local, to: box.home + "/new/deeper/x.bin", sha256: wrong).status == 422)
        #expect(box.homeContents() == ["secret"])
        try FileManager.default.createDirectory(atPath: box.home + "/kept", withIntermediateDirectories: false)
        #expect(try box.push(local, to: box.home + "/kept/made/x.bin", sha256: wrong).status == 422)
        #expect(box.homeContents() == ["kept", "secret"])
        // And one that succeeds keeps them.
        #expect(try box.push(local, to: box.home + "/kept/made/x.bin").status == 200)
        #expect(box.homeContents() == ["kept", "kept/made", "kept/made/x.bin", "secret"])
        // Failures hold no descriptor: a directory name the file system refuses, a checksum
        // mismatch five levels down (a descriptor leaked, and one was closed twice, per push).
        let pid = try #require(box.node.process?.processIdentifier)
        // Descriptors of the daemon open on this test's tree (sockets and the database vary).
        func descriptors() -> Int {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
            return entries.filter {
                ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) ?? "").hasPrefix(box.root)
            }.count
        }
        let before = descriptors()
        for round in 0..<5 {
            let tooLong = try box.push(local, to: box.home + "/d\(round)/" + String(repeating: "n", count: 300) + "/x.bin")
            #expect(tooLong.status == 400, "\(tooLong.status)")
            #expect(try box.push(local, to: box.home + "/e\(round)/a/b/c/d/x.bin", sha256: wrong).status == 422)
        }
        #expect(box.homeContents() == ["kept", "kept/made", "kept/made/x.bin", "secret"])
        #expect(eventually(3) { descriptors() <= before }, "\(before) descriptors on the tree before, \(descriptors()) after")
        // One push makes at most 32 directories.
        let deep = (0..<33).map { "l\($0)" }.joined(separator: "/")
        let tooDeep = try box.push(local, to: box.home + "/" + deep + "/x.bin")
        #expect(tooDeep.status == 400 && String(decoding: tooDeep.body, as: UTF8.self).contains("at most 32"))
        #expect(try box.push(local, to: box.home + "/" + (0..<32).map { "m\($0)" }.joined(separator: "/") + "/x.bin").status == 200)
    }

    /// A "/" followed by a combining mark is one Character to Swift and a separator to the
    /// kernel: a push to `secret/\u{301}x` was outside the denied `secret` by Characters and
    /// was written there, and `home/../\u{301}x` had no `..` and was written beside home.
    @Test func aSlashHiddenBehindACombiningMarkIsStillASlash() throws {
        let box = try Sandbox()
        defer { box.cleanUp() }
        let local = try box.write("payload", Array("run me".utf8))
        for remote in [box.home + "/secret/\u{301}x", box.home + "/../\u{301}x", box.home + "/secret/\u{301}d/x"] {
            let pushed = try box.push(local, to: remote)
            #expect(pushed.status == 403, "\(remote): \(pushed.status) \(String(decoding: pushed.body, as: UTF8.self))")
        }
        #expect(box.homeContents() == ["secret"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: box.root).sorted() == ["home", "home2", "outside", "payload"])
        // Allowed places take such names as the one name they are.
        #expect(try box.push(local, to: box.home + "/\u{301}ok").status == 200)
        // (Foundation's enumerator itself loses its way on that name: asked by its path.)
        #expect(String(decoding: try Data(contentsOf: URL(fileURLWithPath: box.home + "/\u{301}ok")), as: UTF8.self) == "run me")
    }

    /// Through a symlink inside the allowed tree (dot -> .), a denied directory has a second
    /// name. Whether something existed there once showed in the answer to a list (400 for a
    /// file, 404 for nothing) while a pull said 403: every route now says 403 either way.
    @Test func aDeniedPlaceReachedByAnotherNameRevealsNothingOfWhatIsThere() throws {
        let box = try Sandbox()
        defer { box.cleanUp() }
        try FileManager.default.createSymbolicLink(atPath: box.home + "/dot", withDestinationPath: ".")
        try Data("private".utf8).write(to: URL(fileURLWithPath: box.home + "/secret/d.txt"))
        for name in ["d.txt", "nope", "nope/deeper", ""] {
            let path = box.home + "/dot/secret" + (name.isEmpty ? "" : "/" + name)
            let listed = try box.node.http("POST", "/api/v1/transfer/list", body: #"{"path":"\#(path)"}"#)
            #expect(listed.status == 403 && listed.errorCode == "path_forbidden", "list \(name): \(listed.status)")
            let checked = try box.node.http("POST", "/api/v1/transfer/checksum", body: #"{"path":"\#(path)"}"#)
            #expect(checked.status == 403, "checksum \(name): \(checked.status)")
            #expect(try box.pull(path).status == 403, "pull \(name)")
        }
        // A symlink as the last name, to a file there or to nothing: 403 both ways.
        try FileManager.default.createSymbolicLink(atPath: box.home + "/l1", withDestinationPath: "secret/d.txt")
        try FileManager.default.createSymbolicLink(atPath: box.home + "/l2", withDestinationPath: "secret/nokey")
        try FileManager.default.createSymbolicLink(atPath: box.home + "/l3", withDestinationPath: box.home + "/secret/nokey")
        // Chains of links, and links through a linked directory, to a file and to nothing.
        try FileManager.default.createSymbolicLink(atPath: box.home + "/c1", withDestinationPath: "l1")
        try FileManager.default.createSymbolicLink(atPath: box.home + "/c2", withDestinationPath: "l2")
        try FileManager.default.createSymbolicLink(atPath: box.home + "/sdir", withDestinationPath: "secret")
        try FileManager.default.createSymbolicLink(atPath: box.home + "/v1", withDestinationPath: "sdir/d.txt")
        try FileManager.default.createSymbolicLink(atPath: box.home + "/v2", withDestinationPath: "sdir/nokey")
        for link in ["l1", "l2", "l3", "c1", "c2", "v1", "v2", "sdir/nokey", "dot/sdir/nokey"] {
            let listed = try box.node.http("POST", "/api/v1/transfer/list", body: #"{"path":"\#(box.home)/\#(link)"}"#)
            #expect(listed.status == 403, "list \(link): \(listed.status)")
            let checked = try box.node.http("POST", "/api/v1/transfer/checksum", body: #"{"path":"\#(box.home)/\#(link)"}"#)
            #expect(checked.status == 403, "checksum \(link): \(checked.status)")
            #expect(try box.pull(box.home + "/" + link).status == 403, "pull \(link)")
        }
        // Where the rules allow, a missing file is still a 404.
        #expect(try box.node.http("POST", "/api/v1/transfer/list", body: #"{"path":"\#(box.home)/dot/nope"}"#).status == 404)
        #expect(try box.pull(box.home + "/dot/nope").status == 404)
    }

    @Test func everyEscapeIsRefusedAndWritesNothing() throws {
        let box = try Sandbox()
        defer { box.cleanUp() }
        try FileManager.default.createSymbolicLink(atPath: box.home + "/link", withDestinationPath: box.root + "/outside")
        try "outside".write(toFile: box.root + "/outside/target.txt", atomically: true, encoding: .utf8)
        let local = try box.write("payload", Array("payload".utf8))
        let before = box.homeContents()
        let attempts: [(String, Int)] = [
            (box.home + "/../outside/x", 403),        // ..
            (box.home + "/link/x", 403),              // symlink out
            (box.root + "/home2/x", 403),             // prefix-of-name sibling
            (box.home + "/secret/x", 403),            // denied subdirectory
            (box.home + "/secret", 403),              // the denied directory itself
            ("home/x", 400),                          // relative
            ("/etc/evil", 403),
        ]
        for (destination, status) in attempts {
            let response = try box.push(local, to: destination)
            #expect(response.status == status, "push \(destination): \(response.text)")
        }
        for (source, status) in [("/etc/passwd", 403), (box.home + "/link/target.txt", 403),
                                 (box.home + "/../outside/target.txt", 403), ("etc/passwd", 400)] {
            let response = try box.pull(source)
            #expect(response.status == status, "pull \(source): \(response.text)")
            #expect(!response.text.contains("root:"))
        }
        #expect(try box.node.http("POST", "/api/v1/transfer/list", body: #"{"path":"\#(box.home)/link"}"#).status == 403)
        #expect(box.homeContents() == before)
        #expect(!FileManager.default.fileExists(atPath: box.root + "/outside/x"))
        #expect(!FileManager.default.fileExists(atPath: box.root + "/home2/x"))
    }

    @Test func overLimitIs413AndLeavesNothing() throws {
        let box = try Sandbox(maxFileSize: 1000)
        defer { box.cleanUp() }
        let local = try box.write("big", Self.random(5000))
        let response = try box.push(local, to: box.home + "/big")
        #expect(response.status == 413)
        #expect(response.text.contains("transfer.maxFileSize"))
        let huge = try box.write("huge", Self.random(200_000))
        #expect(try box.push(huge, to: box.home + "/huge").status == 413)  // refused from Content-Length
        #expect(box.homeContents() == ["secret"])
        let fits = try box.write("fits", Self.random(1000))
        #expect(try box.push(fits, to: box.home + "/fits").status == 200)
    }

    @Test func existingFilesNeedOverwrite() throws {
        let box = try Sandbox()
        defer { box.cleanUp() }
        let first = try box.write("first", Array("first".utf8))
        let second = try box.write("second", Array("second".utf8))
        #expect(try box.push(first, to: box.home + "/f").status == 200)
        let conflict = try box.push(second, to: box.home + "/f")
        #expect(conflict.status == 409)
        #expect(conflict.errorCode == "exists")
        #expect(try String(contentsOfFile: box.home + "/f", encoding: .utf8) == "first")
        let firstDigest = try box.node.client.checksum(remotePath: box.home + "/f").sha256
        #expect(firstDigest == Self.sha256(Array("first".utf8)))
        #expect(try box.push(second, to: box.home + "/f", overwrite: true).status == 200)
        #expect(try String(contentsOfFile: box.home + "/f", encoding: .utf8) == "second")
        // Digests are cached per file identity: a replaced file is hashed anew.
        #expect(try box.node.client.checksum(remotePath: box.home + "/f").sha256 == Self.sha256(Array("second".utf8)))
        #expect(try box.pull(box.home + "/f").headers["x-loopsy-sha256"] == Self.sha256(Array("second".utf8)))
        #expect(box.homeContents() == ["f", "secret"])
    }

    /// `cp -p`, `touch -r`, tar and rsync -t put a file's old modification time back: a file
    /// rewritten in place (same inode, same size) must still be hashed anew, or every pull of it
    /// fails verification against the stale digest, and the checksum route lies.
    @Test func aFileRewrittenWithItsOldModificationTimeIsHashedAnew() throws {
        let box = try Sandbox()
        defer { box.cleanUp() }
        let path = box.home + "/same-size"
        try Data("first version".utf8).write(to: URL(fileURLWithPath: path))
        var before = stat()
        #expect(stat(path, &before) == 0)
        #expect(try box.node.client.checksum(remotePath: path).sha256 == Self.sha256(Array("first version".utf8)))
        // Rewritten in place (O_TRUNC keeps the inode), then its modification time put back.
        let fd = open(path, O_WRONLY | O_TRUNC)
        #expect(fd >= 0)
        let second = Array("other version".utf8)
        #expect(write(fd, second, second.count) == second.count)
        close(fd)
        var times = [before.st_atim, before.st_mtim]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        var after = stat()
        #expect(stat(path, &after) == 0)
        #expect(after.st_ino == before.st_ino && after.st_size == before.st_size)
        #expect(after.st_mtim.tv_sec == before.st_mtim.tv_sec && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec)
        #expect(try box.node.client.checksum(remotePath: path).sha256 == Self.sha256(second))
        let pulled = try box.pull(path)
        #expect(pulled.headers["x-loopsy-sha256"] == Self.sha256(second))
    }

    /// tmpfs keeps any 64-bit second count as a file's time. Listing such a file once overflowed
    /// a millisecond count and stopped loopsyd; it is shown at the ends of the range instead.
    @Test func listingFilesDatedBeyondAnyCalendarNeitherStopsTheDaemonNorFails() throws {
        let directory = "/dev/shm/loopsy-tr-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (name, seconds) in [("future", 9_300_000_000_000_000), ("past", -9_300_000_000_000_000), ("now", 1_796_285_300)] {
            try Data(name.utf8).write(to: URL(fileURLWithPath: directory + "/" + name))
            var times = [timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0)]
            try #require(utimensat(AT_FDCWD, directory + "/" + name, &times, 0) == 0, "tmpfs takes any time")
        }
        let node = try TestNode {
            $0.replacingOccurrences(of: #"allowedPaths: ["~"]"#, with: #"allowedPaths: ["\#(directory)"]"#)
        }
        defer { node.cleanUp() }
        try node.start()
        let listed = try node.http("POST", "/api/v1/transfer/list", body: #"{"path":"\#(directory)"}"#)
        #expect(listed.status == 200)
        let files = try JSONDecoder().decode(TransferListResponse.self, from: Data(listed.body)).files
        let limit = Int64.max / 1000 - 1
        #expect(files.map(\.name) == ["future", "now", "past"])
        #expect(files.map(\.modified) == [limit * 1000, 1_796_285_300_000, -limit * 1000])
        #expect(try node.http("GET", "/api/v1/health").status == 200)
    }

    @Test func rangesResumeAndBadRangesAre416() throws {
        let box = try Sandbox()
        defer { box.cleanUp() }
        let bytes = Self.random(10_000)
        try Data(bytes).write(to: URL(fileURLWithPath: box.home + "/r.bin"))
        let tail = try box.pull(box.home + "/r.bin", range: "bytes=9000-")
        #expect(tail.status == 206)
        #expect(tail.body == Array(bytes[9000...]))
        #expect(tail.headers["content-range"] == "bytes 9000-9999/10000")
        #expect(tail.headers["x-loopsy-sha256"] == Self.sha256(bytes))  // of the whole file, for verification
        #expect(try box.pull(box.home + "/r.bin", range: "bytes=10-19").body == Array(bytes[10..<20]))
        let beyond = try box.pull(box.home + "/r.bin", range: "bytes=20000-")
        #expect(beyond.status == 416)
        #expect(beyond.headers["content-range"] == "bytes */10000")
    }

    /// libmicrohttpd 0.9.75 sends file answers with sendfile and, when the file has become
    /// shorter than the length it announced, waits for a socket that stays writable: the client
    /// hung until the 30 s idle timeout. The daemon reads the file as it sends now, so a short
    /// read ends the connection at once, and the client sees a body cut short.
    @Test func aFileCutShortWhileItIsPulledEndsThePullAtOnce() throws {
        let box = try Sandbox()
        defer { box.cleanUp() }
        let path = box.home + "/shrinking.bin"
        try Data(repeating: 0x5a, count: 64 << 20).write(to: URL(fileURLWithPath: path))
        let headerFile = box.root + "/auth"
        try Data("Authorization: Bearer \(box.node.apiKey)\n".utf8).write(to: URL(fileURLWithPath: headerFile))
        let received = box.root + "/received.bin"
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        curl.arguments = ["-sS", "-o", received, "--limit-rate", "4M", "-H", "@" + headerFile,
                          "-H", "Content-Type: application/json", "-d", #"{"sourcePath":"\#(path)"}"#,
                          box.node.baseURL + "/api/v1/transfer/pull"]
        try curl.run()
        let started = eventually(20) {
            ((try? FileManager.default.attributesOfItem(atPath: received)[.size] as? Int) ?? 0) > 1 << 20
        }
        #expect(started)
        #expect(truncate(path, 1 << 20) == 0)
        // Well inside the 30 s idle timeout: only a connection ended by the daemon gets there.
        let ended = eventually(10) { !curl.isRunning }
        if !ended { kill(curl.processIdentifier, SIGKILL) }
        curl.waitUntilExit()
        #expect(ended)
        #expect(curl.terminationStatus == 18)  // CURLE_PARTIAL_FILE: fewer bytes than announced
        let size = (try FileManager.default.attributesOfItem(atPath: received)[.size] as? Int) ?? 0
        #expect(size < 64 << 20)
        // The daemon goes on serving, and the file as it is now pulls whole.
        let now = try box.pull(path)
        #expect(now.status == 200)
        #expect(now.body.count == 1 << 20)
        #expect(now.headers["x-loopsy-sha256"] == Self.sha256(now.body))
    }

    @Test func listShowsEntriesButNotDeniedOnes() throws {
        let box = try Sandbox()
        defer { box.cleanUp() }
        try "x".write(toFile: box.home + "/a.txt", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: box.home + "/dir", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: box.home + "/ln", withDestinationPath: "/etc/passwd")
        let files = try box.node.client.list(remotePath: box.home)
        #expect(files.map(\.name) == ["a.txt", "dir", "ln"])
        #expect(files.map(\.type) == ["file", "directory", "symlink"])
        #expect(files[0].size == 1)
        #expect(files[0].path == box.home + "/a.txt")
        #expect(files[0].mode.hasPrefix("0"))
        #expect(try box.node.http("POST", "/api/v1/transfer/list", body: #"{"path":"\#(box.home)/a.txt"}"#).errorCode == "not_a_directory")
    }

    /// A directory of more than 10,000 entries is listed a page at a time, by name byte-wise,
    /// and the client (and so `loopsy pull -r`) follows the pages to every entry once.
    @Test func aLargeDirectoryIsListedInPagesThatTheClientFollows() throws {
        let box = try Sandbox()
        defer { box.cleanUp() }
        let directory = box.home + "/many"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let names = (0..<10_005).map { String(format: "f%05d", $0) } + ["e\u{301}", "\u{e9}", "Z"]
        for name in names { #expect(FileManager.default.createFile(atPath: directory + "/" + name, contents: nil)) }
        let bytewise = names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let first = try box.node.http("POST", "/api/v1/transfer/list", body: #"{"path":"\#(directory)"}"#)
            .json(TransferListResponse.self)
        #expect(first.files.count == 10_000 && first.more)
        #expect(first.files.map(\.name) == Array(bytewise.prefix(10_000)))
        #expect(first.nextAfterName == bytewise[9_999])
        let body = try String(decoding: JSONEncoder().encode(TransferListRequest(path: directory, afterName: first.nextAfterName)),
                              as: UTF8.self)
        let second = try box.node.http("POST", "/api/v1/transfer/list", body: body).json(TransferListResponse.self)
        #expect(second.files.map(\.name) == Array(bytewise.dropFirst(10_000)) && !second.more && second.nextAfterName == nil)
        let all = try box.node.client.list(remotePath: directory)
        #expect(all.count == names.count)
        #expect(all.map(\.name).elementsEqual(bytewise) { $0.utf8.elementsEqual($1.utf8) })
    }

    @Test func daemonMemoryStaysFlatWhileMovingHundredsOfMegabytes() throws {
        let box = try Sandbox()
        defer { box.cleanUp() }
        let pid = try #require(box.node.process?.processIdentifier)
        let size = 300 * 1024 * 1024
        let local = box.root + "/big.bin"
        #expect(FileManager.default.createFile(atPath: local, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: local))
        let chunk = Data(Self.random(1 << 20))
        for _ in 0..<(size >> 20) { handle.write(chunk) }
        try handle.close()
        let before = ExecuteTests.peakRSSKiB(pid)
        let (result, sent) = try box.node.client.push(localPath: local, remotePath: box.home + "/big.bin", overwrite: false)
        #expect(sent == (try Self.fileSHA256(local)))
        #expect(result.size == Int64(size))
        var received = 0
        var hasher = SHA256()
        _ = try box.node.client.pull(remotePath: box.home + "/big.bin", offset: 0) { bytes in
            received += bytes.count
            hasher.update(data: bytes)
            return true
        }
        #expect(received == size)
        #expect(Hex.encode(hasher.finalize()) == result.sha256)
        let growth = ExecuteTests.peakRSSKiB(pid) - before
        #expect(growth < 64 * 1024, "daemon peak RSS grew by \(growth) KiB moving 2 x 300 MiB")
    }

    static func fileSHA256(_ path: String) throws -> String {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var hasher = SHA256()
        while let data = try handle.read(upToCount: 1 << 20), !data.isEmpty { hasher.update(data: data) }
        return Hex.encode(hasher.finalize())
    }
}

/// `loopsy send` / `loopsy pull` as a person uses them.
@Suite struct TransferCLITests {
    @Test func sendPullDirectoriesAndResume() throws {
        let box = try TransferTests.Sandbox()
        defer { box.cleanUp() }
        let tree = box.root + "/tree"
        try FileManager.default.createDirectory(atPath: tree + "/a/b", withIntermediateDirectories: true)
        try "one".write(toFile: tree + "/one.txt", atomically: true, encoding: .utf8)
        try "two".write(toFile: tree + "/a/b/two.txt", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: tree + "/escape", withDestinationPath: "/etc/passwd")
        let sent = try box.node.cli("send", "-r", "local", tree, box.home + "/tree")
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(sent.stdout.contains("sent 2 files"))
        #expect(sent.stderr.contains("skipped"))
        #expect(try String(contentsOfFile: box.home + "/tree/a/b/two.txt", encoding: .utf8) == "two")
        #expect(!FileManager.default.fileExists(atPath: box.home + "/tree/escape"))

        // A hostile remote tree: a symlink pointing out is listed but never followed.
        try FileManager.default.createSymbolicLink(atPath: box.home + "/tree/out", withDestinationPath: box.root + "/outside")
        let back = box.root + "/back"
        let pulled = try box.node.cli("pull", "-r", "local", box.home + "/tree", back)
        #expect(pulled.status == 0, "\(pulled.stderr)")
        #expect(try String(contentsOfFile: back + "/a/b/two.txt", encoding: .utf8) == "two")
        #expect(try String(contentsOfFile: back + "/one.txt", encoding: .utf8) == "one")
        #expect(!FileManager.default.fileExists(atPath: back + "/out"))

        // Resume: a partial download is continued, then verified.
        let bytes = TransferTests.random(200_000)
        try Data(bytes).write(to: URL(fileURLWithPath: box.home + "/data.bin"))
        try Data(bytes[..<50_000]).write(to: URL(fileURLWithPath: box.root + "/data.bin.loopsy-part"))
        let resumed = try box.node.cli("pull", "local", box.home + "/data.bin", box.root + "/data.bin")
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("resumed"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: box.root + "/data.bin")) == Data(bytes))
        #expect(!FileManager.default.fileExists(atPath: box.root + "/data.bin.loopsy-part"))

        // A corrupt partial is caught by the checksum and removed.
        try Data(repeating: 0, count: 1000).write(to: URL(fileURLWithPath: box.root + "/bad.bin.loopsy-part"))
        let corrupt = try box.node.cli("pull", "local", box.home + "/data.bin", box.root + "/bad.bin")
        #expect(corrupt.status == 1)
        #expect(corrupt.stderr.contains("checksum mismatch"))
        #expect(!FileManager.default.fileExists(atPath: box.root + "/bad.bin"))
        #expect(!FileManager.default.fileExists(atPath: box.root + "/bad.bin.loopsy-part"))
    }

    @Test func refusalsAreClearWithExitCodes() throws {
        let box = try TransferTests.Sandbox()
        defer { box.cleanUp() }
        let local = try box.write("f.txt", Array("hello".utf8))
        #expect(try box.node.cli("send", "local", local, box.home + "/").status == 0)
        let again = try box.node.cli("send", "local", local, box.home + "/f.txt")
        #expect(again.status == 1)
        #expect(again.stderr == "loopsy: \(box.home)/f.txt exists on local; use -f to replace it\n")
        #expect(try box.node.cli("send", "-f", "local", local, box.home + "/f.txt").status == 0)
        let outside = try box.node.cli("pull", "local", "/etc/passwd", box.root + "/p")
        #expect(outside.status == 1)
        #expect(outside.stderr.contains("outside transfer.allowedPaths"))
        let directory = try box.node.cli("send", "local", box.root + "/outside", box.home + "/x")
        #expect(directory.status == 64)
        #expect(directory.stderr.contains("use -r"))
    }
}
