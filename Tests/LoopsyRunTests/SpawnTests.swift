import Foundation
import LoopsyAPI
import LoopsyPOSIX
import Testing
@testable import LoopsyRun

/// Jobs start the same way through posix_spawn (from a thread with its own umask) and through
/// the fork fallback used where unshare is refused.
@Suite(.serialized) struct SpawnTests {
    /// Runs `script` with sh (or `argv` directly) and returns (stdout, exit status).
    static func run(_ script: String, argv: [String]? = nil, cwd: String = "/tmp", forking: Bool) throws -> (String, Int32) {
        let command = ApprovedCommand(executable: argv.map { "/usr/bin/" + $0[0] } ?? "/bin/sh",
                                      argv: argv ?? ["sh", "-c", script], cwd: cwd,
                                      environment: ["PATH=/usr/bin:/bin"], timeoutMs: 10_000)
        let process = try SpawnedProcess.spawn(command, forking: forking)
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(process.stdoutFD, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            output += buffer[0..<count]
        }
        var status: Int32 = 0
        while waitpid(process.pid, &status, 0) < 0 && errno == EINTR {}
        ChildProcesses.shared.release(process.pid)
        return (String(decoding: output, as: UTF8.self), (status >> 8) & 0xff)
    }

    @Test func bothWaysGiveTheSameChild() throws {
        UserUmask.record(0o027)
        defer { UserUmask.record(0o022) }
        // umask, own process group, stdin /dev/null, only 0-2 open, cwd.
        let script = #"umask; [ "$(cut -d' ' -f5 /proc/$$/stat)" = "$$" ] && echo own-group; "#
            + #"readlink /proc/$$/fd/0; ls /proc/$$/fd; pwd; exit 3"#
        let spawned = try Self.run(script, cwd: "/usr", forking: false)
        let forked = try Self.run(script, cwd: "/usr", forking: true)
        #expect(spawned.0 == forked.0)
        #expect(spawned.1 == 3 && forked.1 == 3)
        #expect(spawned.0 == "0027\nown-group\n/dev/null\n0\n1\n2\n/usr\n", "\(spawned.0)")
        // No standard signal blocked or ignored (the daemon blocks SIGTERM and ignores SIGPIPE);
        // glibc's own real-time signals 32 and 33 may differ.
        for forking in [false, true] {
            let status = try Self.run("", argv: ["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"], forking: forking).0
            let masks = status.split(separator: "\n").compactMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) }
            #expect(masks.count == 2 && masks.allSatisfy { $0 & 0x7fff_ffff == 0 }, "forking \(forking): \(status)")
        }
    }

    @Test func aProgramThatCannotRunIsReportedTheSameBothWays() throws {
        for forking in [false, true] {
            let command = ApprovedCommand(executable: "/nonexistent/program", argv: ["program"], cwd: "/tmp",
                                          environment: [], timeoutMs: 1000)
            #expect(throws: APIError.self) { _ = try SpawnedProcess.spawn(command, forking: forking) }
            let notExecutable = ApprovedCommand(executable: "/etc/passwd", argv: ["passwd"], cwd: "/tmp",
                                                environment: [], timeoutMs: 1000)
            do {
                _ = try SpawnedProcess.spawn(notExecutable, forking: forking)
                Issue.record("/etc/passwd ran")
            } catch let error as APIError {
                #expect(error.code == "command_not_executable", "forking \(forking)")
            }
        }
    }
}
