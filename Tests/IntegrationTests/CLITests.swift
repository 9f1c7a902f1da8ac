import Foundation
import LoopsyAPI
import Testing

/// The `loopsy` binary against real daemons: output, errors and exit codes.
@Suite struct CLITests {
    /// A stopped node whose port another node's daemon holds is reported as not running, with
    /// who holds the port, instead of as a refused key.
    @Test func aNodeWhosePortAnotherNodeHoldsIsNotRunning() throws {
        let running = try TestNode(), stopped = try TestNode()
        defer { running.cleanUp(); stopped.cleanUp() }
        try running.start()
        let config = stopped.dataDir + "/config.yaml"
        let text = try String(contentsOfFile: config, encoding: .utf8)
        try replacingLine(text, "  port: 19532", "  port: \(running.port)").write(toFile: config, atomically: true,
                                                                                   encoding: .utf8)
        for command in [["status"], ["context", "get", "k"]] {
            let result = try stopped.cli(command)
            #expect(result.status == 69, "\(command): \(result.stderr)")
            #expect(result.stderr.contains("loopsyd for \(stopped.dataDir) is not running; port \(running.port) is held by "
                + "another loopsy node (\(try running.nodeId))"), "\(result.stderr)")
        }
    }

    @Test func noDaemonGivesOneClearLineAndExit69() throws {
        let node = try TestNode { $0.replacingOccurrences(of: "  port: 19532", with: "  port: 1") }
        defer { node.cleanUp() }
        let result = try node.cli("status")
        #expect(result.status == 69)
        #expect(result.stderr == "loopsy: loopsyd is not running at http://127.0.0.1:1 — start it with `loopsy start`\n")
        #expect(try node.cli("context", "get", "x").status == 69)
    }

    /// libcurl is loaded by the first call that needs it (a transfer, another host), not at start,
    /// and requests and event streams to this machine's daemon need none (LoopbackHTTP): with it
    /// unreadable (a private mount of /dev/null over it), `--version`, `context get`, `exec` and
    /// `start` work, and a command that needs it says which package is missing.
    @Test func libcurlIsLoadedOnlyWhenACommandNeedsIt() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let library = URL(fileURLWithPath: "/usr/lib/x86_64-linux-gnu/libcurl-gnutls.so.4").resolvingSymlinksInPath().path
        let hidden = ["-m", "sh", "-c", "mount --bind /dev/null \"$0\" && exec \"$@\"", library, try Binaries.path("loopsy")]
        let version = try run("/usr/bin/unshare", hidden + ["--version"], environment: node.environment)
        #expect(version.status == 0 && !version.stdout.isEmpty, "\(version.stderr)")
        #expect(try node.cli("context", "set", "k", "v").status == 0)
        let get = try run("/usr/bin/unshare", hidden + ["context", "get", "k"], environment: node.environment)
        #expect(get.status == 0 && get.stdout == "v\n", "\(get.stderr)")
        let missing = try run("/usr/bin/unshare", hidden + ["context", "get", "nothing"], environment: node.environment)
        #expect(missing.status == 1 && missing.stderr == "loopsy: context key 'nothing' not found\n", "\(missing.stderr)")
        // exec's output streams from this machine's daemon without it too.
        let exec = try run("/usr/bin/unshare", hidden + ["exec", "local", "sh", "-c", "echo out; exit 3"], environment: node.environment)
        #expect(exec.status == 3 && exec.stdout == "out\n", "\(exec.stderr)")
        // A push goes through libcurl (a streamed upload with progress).
        let file = node.dataDir + "/push.txt"
        try "pushed\n".write(toFile: file, atomically: true, encoding: .utf8)
        let push = try run("/usr/bin/unshare", hidden + ["send", "local", file, node.dataDir + "/pushed.txt"],
                           environment: node.environment)
        #expect(push.status == 1)
        #expect(push.stderr.hasPrefix("loopsy: cannot load libcurl-gnutls.so.4 ("), "\(push.stderr)")
        #expect(push.stderr.hasSuffix("): install the libcurl3-gnutls package\n"), "\(push.stderr)")
        // `loopsy start` waits for the daemon's health without libcurl.
        let other = try TestNode()
        defer {
            _ = try? other.cli("stop")
            other.cleanUp()
        }
        let start = try run("/usr/bin/unshare", hidden + ["start", "--port", "0"], environment: other.environment)
        #expect(start.status == 0, "\(start.stderr)")
        #expect(try other.cli("status").status == 0)
    }

    @Test func contextCommandsWork() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let set = try node.cli("context", "set", "greeting", "hello world", "--ttl", "60")
        #expect(set.status == 0)
        #expect(set.stdout.contains("set greeting (revision 1, expires in 60 s)"))
        #expect(try node.cli("context", "get", "greeting").stdout == "hello world\n")
        let json = try node.cli("context", "get", "greeting", "--json")
        let entry = try JSONDecoder().decode(ContextEntry.self, from: Data(json.stdout.utf8))
        #expect(entry.ttl == 60)
        _ = try node.cli("context", "set", "other", "x")
        let listed = try node.cli("context", "list", "--prefix", "gre")
        #expect(listed.stdout.hasPrefix("greeting = hello world (expires in"))
        #expect(!listed.stdout.contains("other"))
        #expect(try node.cli("context", "delete", "greeting").stdout == "deleted greeting\n")
        let missing = try node.cli("context", "get", "greeting")
        #expect(missing.status == 1)
        #expect(missing.stderr == "loopsy: context key 'greeting' not found\n")
        // Keys of dots alone are keys like any other (their dots are percent-encoded in the path).
        #expect(try node.cli("context", "set", "..", "up").status == 0)
        #expect(try node.cli("context", "get", "..").stdout == "up\n")
        #expect(try node.cli("context", "get", ".").status == 1)
    }

    @Test func usageErrorsExit64() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        let noValue = try node.cli("context", "set", "only-key")
        #expect(noValue.status == 64)
        #expect(noValue.stderr.contains("Missing expected argument"))
        #expect(try node.cli("context", "set", "k", "v", "--ttl", "-5").status == 64)
        #expect(try node.cli("frobnicate").status == 64)
        let help = try node.cli("context", "--help")
        #expect(help.status == 0)
        #expect(help.stdout.contains("set"))
    }

    @Test func keyRotationTakesEffectWithoutRestart() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let oldKey = node.apiKey
        let rotated = try node.cli("key", "generate")
        #expect(rotated.status == 0)
        #expect(rotated.stdout.contains("the running daemon now accepts the new key"))
        let newKey = try node.cli("key", "show").stdout.trimming()
        #expect(newKey != oldKey)
        #expect(newKey.count == 64)
        #expect(try node.http("GET", "/api/v1/status", key: oldKey).status == 403)
        #expect(try node.http("GET", "/api/v1/status", key: newKey).status == 200)
    }

    /// The daemon notices an edited config.yaml by its stat(2) times. A modification time past
    /// 2262 once overflowed a nanosecond count there and stopped loopsyd at its next request;
    /// and an edit in place that puts the old modification time back (same size, same inode)
    /// is still noticed, by the change time.
    @Test func aConfigDatedPast2262StopsNothingAndAnEditBehindItsOldTimeStillCounts() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let path = node.dataDir + "/config.yaml"
        let year2300 = timespec(tv_sec: 10_413_792_000, tv_nsec: 0)
        var times = [year2300, year2300]
        try #require(utimensat(AT_FDCWD, path, &times, 0) == 0)
        Thread.sleep(forTimeInterval: 0.7)  // the daemon looks at the file at most every 0.5 s
        #expect(try node.http("GET", "/api/v1/status").status == 200)
        #expect(try node.http("GET", "/api/v1/health").status == 200)

        // A new key of the same length, written in place, then the old times put back.
        let oldKey = node.apiKey
        let newKey = String(repeating: "7", count: oldKey.count)
        let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: oldKey, with: newKey)
        let fd = open(path, O_WRONLY | O_TRUNC)
        try #require(fd >= 0)
        let bytes = Array(text.utf8)
        #expect(write(fd, bytes, bytes.count) == bytes.count)
        close(fd)
        try #require(utimensat(AT_FDCWD, path, &times, 0) == 0)
        Thread.sleep(forTimeInterval: 0.7)
        #expect(try node.http("GET", "/api/v1/status", key: oldKey).status == 403)
        #expect(try node.http("GET", "/api/v1/status", key: newKey).status == 200)
    }

    @Test func initKeepsTheKeyUnlessForced() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        let key = node.apiKey
        let again = try node.cli("init")
        #expect(again.status == 0)
        #expect(again.stdout.contains("config kept"))
        #expect(node.apiKey == key)
        #expect(try node.cli("init", "--force").status == 0)
        #expect(node.apiKey != key)
    }

    /// `loopsy start` sends loopsyd's output to logs/loopsyd.log, which stays under
    /// logging.maxFileBytes: past it the file becomes loopsyd.log.1 and a new one begins.
    @Test func theDaemonLogFileStaysUnderItsLimit() throws {
        let helperKey = String(repeating: "h", count: 40)
        let node = try TestNode {
            replacingLine(replacingLine($0, "  allowedKeys: {}", "  allowedKeys: {helper: \(helperKey)}"),
                          "  maxFileBytes: 10485760", "  maxFileBytes: 65536")
        }
        defer {
            _ = try? node.cli("stop")
            node.cleanUp()
        }
        #expect(try node.cli("start", "--port", "0").status == 0)
        node.port = try #require(Int(try String(contentsOfFile: node.dataDir + "/daemon.port", encoding: .utf8).trimming()))
        // Each change of a key's grants logs a line (about 70 bytes): 1500 pass 64 KiB once.
        for index in 0..<1500 {
            let change = index % 2 == 0 ? #"{"grant":["exec"]}"# : #"{"revoke":["exec"]}"#
            #expect(try node.http("POST", "/api/v1/grants/key:helper", body: change).status == 200)
        }
        let log = node.dataDir + "/logs/loopsyd.log"
        let size = try #require(try FileManager.default.attributesOfItem(atPath: log)[.size] as? Int)
        let previous = try #require(try FileManager.default.attributesOfItem(atPath: log + ".1")[.size] as? Int)
        #expect(size <= 65_536 && previous > 60_000 && previous <= 65_536 + 8192, "\(size) and \(previous) bytes")
        // Its stdout, which loopsy start pointed at the same file, moved with stderr.
        let pid = try #require(Int(try String(contentsOfFile: node.dataDir + "/daemon.pid", encoding: .utf8).trimming()))
        for descriptor in [1, 2] {
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(descriptor)")
            #expect(target == log, "fd \(descriptor) writes to \(target)")
        }
        // It goes on writing to the new file.
        #expect(try node.cli("stop").status == 0)
        #expect(try String(contentsOfFile: log, encoding: .utf8).contains("loopsyd stopped"))
    }

    @Test func startStopAndLogs() throws {
        let node = try TestNode()
        defer {
            _ = try? node.cli("stop")
            node.cleanUp()
        }
        let started = try node.cli("start", "--port", "0")
        #expect(started.status == 0, "\(started.stderr)")
        #expect(started.stdout.contains("is running"))
        let again = try node.cli("start")
        #expect(again.stdout.contains("already running"))
        _ = try node.cli("context", "set", "k", "v")
        // At once: `logs` shows every request up to the moment it is called.
        let logs = try node.cli("logs", "-n", "5")
        #expect(logs.status == 0)
        #expect(logs.stdout.contains("PUT /api/v1/context/k caller=local"))
        let status = try node.cli("status")
        #expect(status.stdout.contains("context:  1 entries"))
        let stopped = try node.cli("stop")
        #expect(stopped.stdout.contains("loopsyd stopped"))
        #expect(try node.cli("status").status == 69)
        #expect(try node.cli("stop").stdout == "loopsyd is not running\n")
    }
}
