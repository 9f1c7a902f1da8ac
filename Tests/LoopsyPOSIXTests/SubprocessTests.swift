import LoopsyPOSIX
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The one way the clients start programs, against real programs.
@Suite struct SubprocessTests {
    @Test func capturesOutputAndDecodesHowItEnded() throws {
        var shell = Subprocess("/bin/sh", ["-c", "printf 'a\\nb'; echo err >&2; exit 3"])
        shell.stdout = .capture
        shell.stderr = .discard
        let (status, output) = try shell.run()
        #expect(status == .exited(3) && status.code == 3)
        #expect(output == Array("a\nb".utf8))

        // Even from a caller that ignores SIGTERM and blocks SIGPIPE, the child gets defaults.
        let previous = signal(SIGTERM, SIG_IGN)
        defer { signal(SIGTERM, previous) }
        var pipeOnly = sigset_t(), old = sigset_t()
        sigemptyset(&pipeOnly)
        sigaddset(&pipeOnly, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeOnly, &old)
        defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
        let killed = try Subprocess("/bin/sh", ["-c", "kill -TERM $$"]).run().status
        #expect(killed == .signaled(SIGTERM) && killed.code == 128 + SIGTERM)
        let piped = try Subprocess("/bin/sh", ["-c", "kill -PIPE $$"]).run().status
        #expect(piped == .signaled(SIGPIPE))
    }

    @Test func outputPastTheLimitIsReadAndDropped() throws {
        var yes = Subprocess("/bin/sh", ["-c", "head -c 300000 /dev/zero"])
        yes.stdout = .capture
        let (status, output) = try yes.run(outputLimit: 1000)
        #expect(status == .exited(0) && output.count == 1000)
    }

    @Test func appendsToAFileInANewSessionWithOnlyTheStandardDescriptors() throws {
        let directory = "/tmp/loopsy-subprocess-\(getpid())"
        mkdir(directory, 0o700)
        defer { _ = try? Subprocess("/bin/rm", ["-rf", directory]).run() }
        let log = directory + "/log"
        // A descriptor of ours without close-on-exec: the child must not get it.
        let leaked = open("/dev/null", O_RDONLY)
        defer { close(leaked) }
        var child = Subprocess("/bin/sh", ["-c", "echo sid=$(ps -o sid= -p $$ | tr -d ' ') pid=$$; ls /proc/$$/fd; echo oops >&2"])
        child.stdin = .null
        child.stdout = .append(log)
        child.stderrToStdout = true
        child.newSession = true
        child.closeOtherDescriptors = true
        #expect(try child.run().status == .exited(0))
        let text = String(decoding: try FileIO.readAll(open(log, O_RDONLY)), as: UTF8.self)
        let words = text.split(whereSeparator: { $0 == "\n" || $0 == " " })
        let sid = words.first { $0.hasPrefix("sid=") }?.dropFirst(4)
        let pid = words.first { $0.hasPrefix("pid=") }?.dropFirst(4)
        #expect(sid != nil && sid == pid, "the child leads a session of its own: \(text)")
        #expect(!words.contains(Substring(String(leaked))) || leaked <= 3, "fd \(leaked) leaked: \(text)")
        #expect(text.contains("oops"))
        #expect(SecureMode.of(log) == 0o600)
    }

    @Test func aMissingProgramIsAnErrnoAndPathSearchFindsPrograms() throws {
        #expect(throws: Errno(ENOENT)) { try Subprocess("/nonexistent/program").spawn() }
        var env = Subprocess("true")
        env.searchPath = true
        #expect(try env.run().status == .exited(0))
    }
}

/// Listing, whole reads and writes, and the port probe.
@Suite struct FilesAndPortsTests {
    @Test func listsWithoutDotEntriesAndReadsWhatWasWritten() throws {
        let directory = "/tmp/loopsy-directory-\(getpid())"
        mkdir(directory, 0o700)
        defer { _ = try? Subprocess("/bin/rm", ["-rf", directory]).run() }
        mkdir(directory + "/sub", 0o700)
        let fd = open(directory + "/file", O_WRONLY | O_CREAT, 0o600)
        try FileIO.writeAll(fd, Array(repeating: 0x41, count: 200_000))
        close(fd)
        let entries = try Directory.entries(directory).sorted { $0.name < $1.name }
        #expect(entries.map(\.name) == ["file", "sub"])
        #expect(entries[0].isRegularFile && entries[1].isDirectory)
        let reader = open(directory + "/file", O_RDONLY)
        defer { close(reader) }
        #expect(try FileIO.readAll(reader).count == 200_000)
        let opened = open(directory, O_RDONLY | O_DIRECTORY)
        defer { close(opened) }
        #expect(try Directory.entries(fd: opened).count == 2)
        #expect(throws: Errno.noEntry) { try Directory.entries(directory + "/missing") }
    }

    @Test func aListeningPortIsNotFree() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        let address = try #require(SocketAddress(host: "127.0.0.1", port: 0))
        #expect(address.withSockaddr { bind(fd, $0, address.length) } == 0)
        #expect(listen(fd, 1) == 0)
        var bound = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = try #require(SocketAddress.port(of: bound))
        #expect(!Port.isFree(host: "127.0.0.1", port: port))
        #expect(!Port.isFree(host: "0.0.0.0", port: port))
        #expect(!Port.isFree(host: "not an address", port: 1))
        #expect(SocketAddress(host: "[::1]", port: 1)?.isIPv6 == true)
    }
}

enum SecureMode {
    static func of(_ path: String) -> mode_t? {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o777 : nil
    }
}
