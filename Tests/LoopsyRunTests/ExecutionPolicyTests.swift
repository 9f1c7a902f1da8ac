import Foundation
import LoopsyAPI
import LoopsyConfig
import LoopsyPOSIX
import Testing
@testable import LoopsyRun

@Suite struct ShellWordsTests {
    @Test func findsEveryCommandInAScript() {
        let commands = ShellWords.commands(in: #"ls -l; FOO=1 rm -rf /x && echo "a;b" | 'w'c -l || (cd /; r\m y) & true"#)
        #expect(commands.map(\.first) == ["ls", "rm", "echo", "wc", "cd", "rm", "true"])
    }

    @Test func seesSubstitutionsAndKeywords() {
        let names = ShellWords.commands(in: "if true; then x=$(rm a); fi; echo `dd if=/dev/zero`; while :; do reboot; done")
            .compactMap(\.first)
        #expect(names.contains("rm"))
        #expect(names.contains("dd"))
        #expect(names.contains("reboot"))
        #expect(!names.contains("then"))
        #expect(ShellWords.commands(in: #"echo "$(shutdown now)""#).compactMap(\.first).contains("shutdown"))
    }

    @Test func marksWordsMadeAtRunTime() {
        let dynamic = String(ShellWords.dynamic)
        let commands = ShellWords.commands(in: #"echo "$HOME" '$HOME' *.o "*.o" ~/x a{b,c} \$y; $(date) x"#)
        #expect(commands == [["echo", "$HOME" + dynamic, "$HOME", "*.o" + dynamic, "*.o", "~/x" + dynamic, "a{b,c}" + dynamic, "$y"],
                             ["date"], [dynamic, "x"]])
    }

    @Test func redirectionsBracesAndKeywordsAreNotPrograms() {
        #expect(ShellWords.commands(in: ">/dev/null 2>&1 rm x; { ls; } 3<in cat <<<word") == [["rm", "x"], ["ls"], ["cat"]])
        #expect(ShellWords.commands(in: "for f in a b; do echo $f; done; case $x in a) true;; esac").compactMap(\.first)
            == ["echo", "true"])
        #expect(ShellWords.commands(in: "diff <(sort a) b").map(\.first) == ["diff", "sort", "b"])
        #expect(ShellWords.parse("PATH=/x ls; A=1").assignments == ["PATH=/x", "A=1"])
        #expect(ShellWords.commands(in: "r\\\nm x; \"a\\\nb\"") == [["rm", "x"], ["ab"]])  // \<newline> joins lines
    }

    @Test func commentsAndQuotedOperatorsAreNotCommands() {
        #expect(ShellWords.commands(in: "echo 'rm; dd' # rm -rf").map(\.first) == ["echo"])
    }

    /// Checked against bash itself: for each script, if bash runs the program `zapfile` (a
    /// stub that leaves a mark), the parser must list it as a command or give up on the script
    /// (a dynamic program, which the policy refuses). Quotes, escapes and comments inside a
    /// substitution once hid what followed them.
    @Test(arguments: [
        #"echo $(echo ")"; zapfile)"#, #"echo "$(echo ")"; zapfile)""#, #"echo $(echo \); zapfile)"#,
        #"echo $('echo)' ; zapfile)"#, "echo $(# )\nzapfile)", #"echo `echo \`zapfile\``"#,
        "cat <<EOF\n\"\nEOF\nzapfile", "cat <<EOF\n'\nEOF\nzapfile", "echo $(case x in x) zapfile;; esac)",
        "echo ')'; zapfile", #"x=$(echo "a)b"); zapfile"#, #"echo "$(echo "$(zapfile)")""#, "echo $(( 1 + 2 )); zapfile",
        "f() { zapfile; }; f", #"echo a\;zapfile"#, "echo $(echo `echo ')'`; zapfile)", #"echo "\"$(zapfile)""#,
        "echo $(cat <<EOF\n)\nEOF\nzapfile)", "echo 'a\"'; zapfile", #"echo "it's"; zapfile"#,
        "echo $(echo case; zapfile)", #"echo "$(echo '"')"; zapfile"#, #"echo $(echo \\); zapfile"#,
        "echo ${x:-)}; zapfile", "echo $(echo ${x:-)}); zapfile", "echo $(echo ${x:-\")\"}); zapfile",
        "echo $(case x in (x) zapfile;; esac)", "(echo ')'; zapfile)", "echo $( (zapfile) )",
        #"echo `echo \\`; zapfile"#, "a=`echo '`'`; zapfile", "echo $(echo esac; zapfile)",
        // From a second review: CRLF and combining marks (once read as Characters), $'…',
        // a quote in a here-document closed later, \" in backticks in double quotes, and quotes
        // in ${…} in double quotes.
        "echo a\r\nzapfile", "echo 'a'\u{301}; zapfile \\'", #"echo $'\'' ; zapfile ; echo \'"#,
        "cat <<EOF\necho '\nEOF\nzapfile \\'", #"echo "`echo \"'\"; zapfile; echo \"'\"`""#,
        #"echo "${x:-'"'}"; zapfile; echo \'"#, "cat <<'EOF'\n$(\nEOF\nzapfile", "echo $(( 1 << 2 )); zapfile",
        "# comment\r\nzapfile",
        // From a third review: backslash-newline, which the shell removes first, split `<<`, `$(`,
        // `$'`, `${` and `case`; in a comment it is kept.
        "cat <\\\n<EOF\necho '\nEOF\nzapfile \\'", "echo \"$\\\n(zapfile)\"", "echo $\\\n'\\'' ; zapfile ; echo \\'",
        "echo \"$\\\n{x:-'\"'}\"; zapfile; echo \\'", "echo $(ca\\\nse x in x) zapfile;; esac)", "# a \\\nzapfile",
        "echo x # a \\\nzapfile", "echo \"$(echo \"it's\")$\\\n(zapfile)\"", "echo ${x:- #}; zapfile",
    ])
    func whatBashRunsIsSeen(script: String) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-sh-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let stub = directory + "/zapfile", mark = directory + "/ran"
        // Written through a close-on-exec descriptor: the other tests fork meanwhile.
        let text = Array("#!/bin/sh\necho ran >> '\(mark)'\n".utf8)
        let descriptor = open(stub, O_WRONLY | O_CREAT | O_CLOEXEC, 0o755)
        #expect(descriptor >= 0 && write(descriptor, text, text.count) == text.count)
        close(descriptor)
        // A child another test forked may still hold it open for a moment: bash then says "Text
        // file busy" and runs nothing, so that is tried again.
        for _ in 0..<20 {
            let bash = Process()
            bash.executableURL = URL(fileURLWithPath: "/bin/bash")
            bash.arguments = ["-c", script]
            bash.environment = ["PATH": directory + ":/usr/bin:/bin"]
            bash.standardOutput = FileHandle.nullDevice
            let errors = Pipe()
            bash.standardError = errors
            try bash.run()
            let said = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            bash.waitUntilExit()
            if !said.contains("Text file busy") { break }
            unlink(mark)
            usleep(50_000)
        }
        let ran = FileManager.default.fileExists(atPath: mark)
        let commands = ShellWords.commands(in: script)
        let seen = commands.contains { $0.first == "zapfile" || $0.first?.contains(ShellWords.dynamic) == true }
        #expect(!ran || seen, "bash ran zapfile, the parser found \(commands)")
        // The oracle is live: bash runs zapfile in all but these two.
        #expect(ran == ![#"echo a\;zapfile"#, "a=`echo '`'`; zapfile"].contains(script), "bash ran it: \(ran)")
    }

    /// Substitutions nested past `maxNesting` stand for a command with a dynamic program (which
    /// the policy refuses); 30,000 of them, opened or closed, are read at once.
    @Test func deepSubstitutionsAreRefusedNotFollowed() {
        let dynamic = String(ShellWords.dynamic)
        let inside = ShellWords.maxNesting
        let nested = String(repeating: "echo $(", count: inside) + "rm x" + String(repeating: ")", count: inside)
        #expect(ShellWords.commands(in: nested).contains(["rm", "x"]))
        let deeper = String(repeating: "echo $(", count: inside + 1) + "rm x" + String(repeating: ")", count: inside + 1)
        #expect(!ShellWords.commands(in: deeper).contains(["rm", "x"]))
        #expect(ShellWords.commands(in: deeper).contains([ShellWords.unreadable]))
        for script in [String(repeating: "$(", count: 30_000) + String(repeating: ")", count: 30_000),
                       String(repeating: "$(", count: 30_000), String(repeating: "\"$(", count: 30_000)] {
            let commands = ShellWords.commands(in: "sh -c x; " + script)
            #expect(commands.first == ["sh", "-c", "x"] && commands.contains([ShellWords.unreadable]))
        }
    }
}

@Suite struct ExecutionPolicyTests {
    let policy: ExecutionPolicy = {
        var config = LoopsyConfig().execution
        config.maxTimeout = 10_000
        config.defaultTimeout = 5_000
        return ExecutionPolicy(config: config, environment: ["PATH": "/usr/bin:/bin", "HOME": "/root"])
    }()

    func denied(_ argv: [String]) -> String? {
        do {
            _ = try policy.approve(ExecuteRequest(command: argv[0], args: Array(argv.dropFirst())), home: "/tmp")
            return nil
        } catch let error as APIError {
            return error.code
        } catch {
            return "\(error)"
        }
    }

    @Test(arguments: [
        ["rm", "-rf", "/x"], ["/bin/rm", "x"], ["env", "rm", "x"], ["env", "-i", "A=1", "rm", "x"],
        ["env", "-S", "rm -rf /x"], ["nice", "-n", "5", "rm", "x"], ["nohup", "rm", "x"],
        ["timeout", "-s", "KILL", "5", "rm", "x"], ["stdbuf", "-o", "L", "rm", "x"], ["xargs", "-0", "rm"],
        ["find", ".", "-name", "*.o", "-exec", "rm", "{}", ";"], ["find", ".", "-execdir", "shred", "-u", "{}", "+"],
        ["sudo", "-u", "root", "rm", "x"], ["busybox", "rm", "x"], ["sh", "-c", "rm -rf /x"],
        ["bash", "-lc", "ls; reboot"], ["dash", "-ec", "echo $(dd if=/dev/zero of=/x)"], ["zsh", "-c", "mkfs /dev/x"],
        ["env", "sh", "-c", "nice rm x"], ["timeout", "1", "sh", "-c", "shutdown"],
    ])
    func denylistSeesThroughWrappers(argv: [String]) {
        let code = denied(argv)
        if argv.contains("shred") {
            #expect(code == nil)  // shred is not on the default list: only listed programs are refused
        } else {
            #expect(code == "command_denied", "\(argv)")
        }
    }

    /// A script nested past ShellWords.maxNesting cannot be read through: it is refused, at once.
    @Test func aScriptTooDeepToReadIsRefused() {
        let depth = ShellWords.maxNesting + 1
        let deep = String(repeating: "echo $(", count: depth) + "true" + String(repeating: ")", count: depth)
        #expect(denied(["sh", "-c", deep]) != nil)
        #expect(denied(["sh", "-c", String(repeating: "$(", count: 30_000)]) != nil)
        let fine = String(repeating: "echo $(", count: 3) + "true" + String(repeating: ")", count: 3)
        #expect(denied(["sh", "-c", fine]) == nil)
    }

    /// A script the parser gave up on is refused with what to do about it.
    @Test func aScriptThatCannotBeReadSaysWhy() {
        do {
            _ = try policy.approve(ExecuteRequest(command: "sh", args: ["-c", "cat <<EOF\nhello\nEOF"]), home: "/tmp")
            Issue.record("a here-document was let through")
        } catch let error as APIError {
            #expect(error.code == "command_denied" && error.message.contains("here-document"), "\(error.message)")
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func symlinkToADeniedProgramIsDenied() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-link-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createSymbolicLink(atPath: directory + "/harmless", withDestinationPath: "/bin/rm")
        #expect(denied([directory + "/harmless", "x"]) == "command_denied")
    }

    @Test func allowlistIsTheRealControl() {
        var config = LoopsyConfig().execution
        config.allowlist = ["echo", "sh", "git"]
        let strict = ExecutionPolicy(config: config, environment: ["PATH": "/usr/bin:/bin"])
        #expect((try? strict.approve(ExecuteRequest(command: "echo", args: ["hi"]), home: "/tmp")) != nil)
        #expect(throws: APIError.self) { try strict.approve(ExecuteRequest(command: "ls"), home: "/tmp") }
        #expect(throws: APIError.self) {
            try strict.approve(ExecuteRequest(command: "sh", args: ["-c", "echo hi; cat /etc/passwd"]), home: "/tmp")
        }
    }

    @Test(arguments: ["LD_PRELOAD", "LD_LIBRARY_PATH", "PATH", "BASH_ENV", "BASH_FUNC_ls%%", "IFS", "SHELL", "POSIXLY_CORRECT",
                      "GIT_SSH_COMMAND", "GIT_CONFIG_PARAMETERS", "PAGER"])
    func environmentCannotRedirectThePolicy(name: String) {
        #expect(throws: APIError.self) {
            try policy.approve(ExecuteRequest(command: "echo", env: [name: "/tmp/evil"]), home: "/tmp")
        }
    }

    @Test func timeoutsDefaultAndAreCapped() throws {
        #expect(try policy.approve(ExecuteRequest(command: "true"), home: "/tmp").timeoutMs == 5_000)
        #expect(try policy.approve(ExecuteRequest(command: "true", timeout: 50), home: "/tmp").timeoutMs == 50)
        #expect(try policy.approve(ExecuteRequest(command: "true", timeout: 99_999_999), home: "/tmp").timeoutMs == 10_000)
        #expect(denied(["true"]) == nil)
    }

    @Test func badInputIsA400() {
        #expect(denied(["no-such-program-xyz"]) == "command_not_found")
        #expect(throws: APIError.self) { try policy.approve(ExecuteRequest(command: "ls", cwd: "relative"), home: "/tmp") }
        #expect(throws: APIError.self) { try policy.approve(ExecuteRequest(command: "ls", cwd: "/nonexistent"), home: "/tmp") }
        #expect(throws: APIError.self) { try policy.approve(ExecuteRequest(command: ""), home: "/tmp") }
    }

    @Test func environmentIsTheMinimalSetPlusWhatConfigNames() throws {
        var config = LoopsyConfig().execution
        config.environment = ["EXTRA_ONE"]
        let daemon = ["PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8", "SECRET_THING": "x", "EXTRA_ONE": "1",
                      "ANTHROPIC_API_KEY": "k"]
        let policy = ExecutionPolicy(config: config, environment: daemon)
        let approved = try policy.approve(ExecuteRequest(command: "echo", env: ["MINE": "2"]), home: "/tmp")
        #expect(Set(approved.environment) == ["PATH=/usr/bin:/bin", "HOME=/root", "LANG=C.UTF-8", "EXTRA_ONE=1", "MINE=2"])
        // What Claude Code gets: the same minimal set plus aiTasks.environment, nothing else.
        let task = policy.environment(passing: ["ANTHROPIC_API_KEY", "NOT_SET"])
        #expect(task == ["PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8", "ANTHROPIC_API_KEY": "k"])
        // Children get the PATH searched here: no empty or relative entry (the cwd to execvp).
        let relative = ExecutionPolicy(config: LoopsyConfig().execution, environment: ["PATH": "bin::/usr/bin:/bin:."])
        #expect(try relative.approve(ExecuteRequest(command: "echo"), home: "/tmp").environment.contains("PATH=/usr/bin:/bin"))
        // SHELL decides what flock -c, script and sudo -s run: a caller may not set it.
        #expect(throws: APIError.self) { try policy.approve(ExecuteRequest(command: "echo", env: ["SHELL": "/tmp/x"]), home: "/tmp") }
    }

    @Test func cwdIsTheRealDirectory() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-cwd-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory + "/real", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createSymbolicLink(atPath: directory + "/link", withDestinationPath: directory + "/real")
        let real = try #require(realpath(directory + "/real", nil).map { pointer in
            defer { free(pointer) }
            return String(cString: pointer)
        })
        #expect(try policy.directory(directory + "/link") == real)
        #expect(throws: APIError.self) { try policy.directory("relative/dir") }
        #expect(throws: APIError.self) { try policy.directory("/etc/passwd") }
    }
}

/// The wrapper parser, as a table: what must be refused and what must still run.
@Suite struct WrapperParserTests {
    static let denylistPolicy: ExecutionPolicy = {
        var config = LoopsyConfig().execution
        config.maxTimeout = 10_000
        return ExecutionPolicy(config: config, environment: ["PATH": "/usr/bin:/bin", "HOME": "/root"])
    }()

    /// execution.allowlist: [env, echo].
    static let allowPolicy: ExecutionPolicy = {
        var config = LoopsyConfig().execution
        config.allowlist = ["env", "echo"]
        return ExecutionPolicy(config: config, environment: ["PATH": "/usr/bin:/bin", "HOME": "/root"])
    }()

    /// The refusal (status 403) for `argv`, or nil when it is approved.
    static func refusal(_ argv: [String], _ policy: ExecutionPolicy = denylistPolicy, cwd: String = "/tmp") -> APIError? {
        do {
            _ = try policy.approve(ExecuteRequest(command: argv[0], args: Array(argv.dropFirst()), cwd: cwd), home: "/tmp")
            return nil
        } catch let error as APIError {
            return error
        } catch {
            return APIError(status: 500, code: "unexpected", message: "\(error)")
        }
    }

    /// The bypasses reproduced against the old parser, with only env and echo allowed.
    @Test(arguments: [
        ["env", "-iSid"], ["env", "--split-str=id"], ["env", "--un", "echo", "id"], ["env", "-iSsh -c id"],
        ["env", "-iS'sh -c id'"],
    ])
    func allowlistBypassesAreRefused(argv: [String]) throws {
        let error = try #require(Self.refusal(argv, Self.allowPolicy), "\(argv) was approved")
        #expect(error.status == 403, "\(argv): \(error.message)")
    }

    /// The denylist bypasses reproduced against the old parser (default denylist, with rm).
    @Test(arguments: [
        ["sh", "-c", "--", "rm x"], ["bash", "-c", "-e", "rm x"], ["env", "-iSrm x"], ["flock", "/tmp/F", "-c", "rm x"],
        ["nice", "--adj", "5", "rm", "x"], ["timeout", "--kill", "1", "5", "rm", "x"], ["stdbuf", "--out", "L", "rm", "x"],
        ["script", "-qec", "rm x", "/dev/null"], ["unshare", "rm", "x"],
    ])
    func denylistBypassesAreRefused(argv: [String]) throws {
        let error = try #require(Self.refusal(argv), "\(argv) was approved")
        #expect(error.status == 403 && error.code == "command_denied", "\(argv): \(error.message)")
    }

    /// More ways around the lists (default denylist), each with the reason it must be refused for:
    /// unknown, ambiguous or misused options; abbreviations, clusters and `--opt=value`; nested
    /// wrappers; find and xargs; privilege wrappers; scripts whose program is only known when they run.
    static let otherWays: [([String], String)] = [
        (["env", "--foo", "echo"], "env: option '--foo' is not understood"),
        (["env", "-X", "echo"], "env: option '-X' is not understood"),
        (["env", "--i", "rm"], "env: option '--i' is ambiguous"),
        (["env", "--null=1", "echo"], "env: option '--null' takes no value"),
        (["timeout", "--bogus", "5", "echo"], "timeout: option '--bogus' is not understood"),
        (["sh", "-Z", "-c", "echo"], "dash: option '-Z' is not understood"),
        (["bash", "--bogus", "-c", "echo"], "bash: option '--bogus' is not understood"),
        (["busybox", "--frob", "rm"], "busybox: option '--frob' is not understood"),
        (["nsenter", "--u", "echo"], "nsenter: option '--u' is ambiguous"),
        (["env", "--unset=HOME", "rm", "x"], "'rm' is in execution.denylist"),
        (["env", "--spl=rm x"], "'rm' is in execution.denylist"),
        (["env", "-u", "HOME", "-C", "/tmp", "rm"], "'rm' is in execution.denylist"),
        (["env", "-S-i rm x"], "'rm' is in execution.denylist"),
        (["env", "-vS", "rm x"], "'rm' is in execution.denylist"),
        (["nice", "-5", "rm", "x"], "'rm' is in execution.denylist"),
        (["nice", "-n5", "rm", "x"], "'rm' is in execution.denylist"),
        (["nice", "--adjustment=5", "rm", "x"], "'rm' is in execution.denylist"),
        (["timeout", "-k1", "-sKILL", "5", "rm", "x"], "'rm' is in execution.denylist"),
        (["timeout", "--sig=KILL", "5", "rm"], "'rm' is in execution.denylist"),
        (["stdbuf", "-oL", "-eL", "rm", "x"], "'rm' is in execution.denylist"),
        (["setsid", "-fw", "rm", "x"], "'rm' is in execution.denylist"),
        (["ionice", "-c3", "rm", "x"], "'rm' is in execution.denylist"),
        (["chrt", "-f", "10", "rm", "x"], "'rm' is in execution.denylist"),
        (["chrt", "--other", "rm", "x"], "'rm' is in execution.denylist"),
        (["taskset", "0x1", "rm", "x"], "'rm' is in execution.denylist"),
        (["flock", "-w", "5", "/tmp/F", "rm", "x"], "'rm' is in execution.denylist"),
        (["flock", "-n", "/tmp/F", "--command", "rm x"], "'rm' is in execution.denylist"),
        (["script", "-q", "/dev/null", "--command=rm x"], "'rm' is in execution.denylist"),
        (["unshare", "-r", "--fork", "rm", "x"], "'rm' is in execution.denylist"),
        (["nohup", "nice", "timeout", "5", "env", "rm", "x"], "'rm' is in execution.denylist"),
        (["sh", "-c", "sh -c \"rm x\""], "'rm' is in execution.denylist"),
        (["env", "sh", "-c", "env -S'rm x'"], "'rm' is in execution.denylist"),
        (["timeout", "5", "bash", "-lc", "nice -n 1 rm x"], "'rm' is in execution.denylist"),
        (["find", ".", "-exec", "rm", "{}", ";"], "'rm' is in execution.denylist"),
        (["find", ".", "-name", "x", "-delete"], "'rm' is in execution.denylist"),
        (["find", ".", "-exec", "{}", ";"], "is only known when the command runs"),
        (["find", ".", "-exec", "sh", "-c", "{}", ";"], "dash: the script it runs is made when it runs (from input or expansions)"),
        (["xargs", "rm"], "'rm' is in execution.denylist"),
        (["xargs", "-0", "-n1", "rm"], "'rm' is in execution.denylist"),
        (["xargs", "env"], "env: the program it runs would come from xargs' input"),
        (["xargs", "-I{}", "sh", "-c", "{}"], "dash: the script it runs is made when it runs (from input or expansions)"),
        (["xargs", "sh", "-c"], "dash: its script would come from xargs' input"),
        (["xargs", "timeout", "5"], "timeout: the program it runs would come from xargs' input"),
        (["sudo", "-u", "x", "rm", "y"], "'rm' is in execution.denylist"),
        (["sudo", "-s", "rm", "y"], "'rm' is in execution.denylist"),
        (["sudo", "PATH=/tmp", "echo"], "sudo may not set PATH: it would change which program runs or what it loads"),
        (["su", "-c", "rm x"], "'rm' is in execution.denylist"),
        (["su", "root", "-s", "/bin/rm"], "'rm' is in execution.denylist"),
        (["runuser", "-u", "nobody", "--", "rm", "x"], "'rm' is in execution.denylist"),
        (["doas", "rm", "x"], "'rm' is in execution.denylist"),
        (["sg", "users", "-c", "rm x"], "'rm' is in execution.denylist"),
        (["watch", "-n", "1", "rm", "x"], "'rm' is in execution.denylist"),
        (["systemd-run", "--user", "rm", "x"], "'rm' is in execution.denylist"),
        (["systemd-run", "-p", "ExecStartPre=/bin/rm x", "echo"], "systemd-run: the property ExecStartPre runs or configures programs"),
        (["chroot", "/", "rm", "x"], "'rm' is in execution.denylist"),
        (["strace", "echo"], "strace: it runs other programs with options this daemon does not model"),
        (["sh", "-c", "x=rm; $x y"], "is only known when the command runs"),
        (["sh", "-c", "echo rm x | sh"], "dash: it reads its commands from its input"),
        (["sh", "-c", "PATH=/tmp/evil echo hi"], "dash: the script sets PATH, which changes which program runs or what it loads"),
        (["sh", "-c", "/bin/r? x"], "is only known when the command runs"),
        (["sh", "-c", ">/dev/null rm x"], "'rm' is in execution.denylist"),
        (["sh", "-c", "2>&1 rm x"], "'rm' is in execution.denylist"),
        (["sh", "-c", "time -p rm x"], "'rm' is in execution.denylist"),
        (["sh", "-c", "command rm x"], "'rm' is in execution.denylist"),
        (["sh", "-c", "exec -a name rm x"], "'rm' is in execution.denylist"),
        (["sh", "-c", "eval 'rm x'"], "'rm' is in execution.denylist"),
        (["sh", "-c", "trap 'rm x' EXIT"], "'rm' is in execution.denylist"),
        (["sh", "-c", "{ rm x; }"], "'rm' is in execution.denylist"),
        (["sh", "-c", "/bin/r{m,} x"], "is only known when the command runs"),
        (["sh", "-c", "$(echo rm) x"], "is only known when the command runs"),
        (["sh", "-c", "nice -n $N echo"], "nice: an argument is only known when the script runs"),
        (["sh", "-c", "timeout $T echo"], "timeout: an argument is only known when the script runs"),
        (["sh", "-c", "r\\\nm x"], "'rm' is in execution.denylist"),
        (["sh", "-c", "env -u $V echo"], "env: an argument is only known when the script runs"),
        (["sh", "-c", "nice $N"], "the program '$N…' is only known when the command runs"),
        (["sh", "-c", "timeout -k $K"], "timeout: an argument is only known when the script runs"),
        (["sh", "-c", "timeout 5 env $X"], "is only known when the command runs"),
        (["env", "PATH=/tmp/evil", "echo", "hi"], "env may not set PATH: it would change which program runs or what it loads"),
        (["env", "-S", "${X} y"], "env: its -S string expands variables or is made when it runs"),
        (["busybox", "rm", "x"], "'rm' is in execution.denylist"),
        (["builtin", "eval", "rm x"], "'rm' is in execution.denylist"),
    ]

    @Test(arguments: otherWays)
    func otherWaysAroundAreRefused(argv: [String], reason: String) throws {
        let error = try #require(Self.refusal(argv), "\(argv) was approved")
        #expect(error.status == 403 && error.code == "command_denied", "\(argv): \(error.code)")
        #expect(error.message.contains(reason), "\(argv): \(error.message)")
    }

    /// `sh FILE` runs a file whose commands are not known: refused once an allowlist is set.
    @Test func aScriptFileIsRefusedUnderAnAllowlist() throws {
        let error = try #require(Self.refusal(["sh", "/tmp/script.sh"], Self.strict(["dash"])))
        #expect(error.code == "command_denied" && error.message.contains("runs the script file '/tmp/script.sh'"))
        #expect(Self.refusal(["sh", "-c", "sh /tmp/script.sh"], Self.strict(["dash"])) != nil)  // nor from a script
        #expect(Self.refusal(["sh", "-c", "sh /tmp/script.sh"]) == nil)  // a denylist alone lets it run
    }

    static func strict(_ allowlist: [String]) -> ExecutionPolicy {
        var config = LoopsyConfig().execution
        config.allowlist = allowlist
        return ExecutionPolicy(config: config, environment: ["PATH": "/usr/bin:/bin", "HOME": "/root"])
    }

    @Test func refusalsNameTheProgramAndTheOption() throws {
        let unknown = try #require(Self.refusal(["env", "--foo", "echo"]))
        #expect(unknown.code == "command_denied")
        #expect(unknown.message == "env: option '--foo' is not understood, so the command it runs cannot be checked; refused")
        let short = try #require(Self.refusal(["timeout", "-Q", "5", "echo"]))
        #expect(short.message.contains("timeout: option '-Q' is not understood"))
        let viaShell = try #require(Self.refusal(["sh", "-c", "nice --frob echo"]))
        #expect(viaShell.message.contains("nice: option '--frob'"))
        // Denied through the unique prefix: the message names the program run.
        let denied = try #require(Self.refusal(["env", "--un", "echo", "rm", "x"]))
        #expect(denied.code == "command_denied" && denied.message.contains("'rm' is in execution.denylist"))
        let notAllowed = try #require(Self.refusal(["env", "--un", "echo", "id"], Self.allowPolicy))
        #expect(notAllowed.code == "command_not_allowed" && notAllowed.message.contains("'id'"))
    }

    /// Legitimate commands still run (default denylist).
    @Test(arguments: [
        ["env", "FOO=1", "echo", "hi"], ["nice", "-n", "5", "echo"], ["timeout", "5", "echo"], ["sh", "-c", "echo hi"],
        ["git", "status"], ["ls", "-la"], ["env", "-u", "HOME", "-i", "echo", "hi"], ["env", "--unset=HOME", "echo"],
        ["env", "-S", "echo 'a b' c"], ["nice", "--adjustment=3", "echo"], ["timeout", "--kill-after=1", "-s", "TERM", "5", "echo"],
        ["stdbuf", "-oL", "echo"], ["nohup", "echo"], ["setsid", "-w", "echo"], ["xargs", "echo"], ["xargs"],
        ["find", ".", "-name", "*.o", "-print"], ["find", ".", "-type", "f", "-exec", "echo", "{}", "+"],
        ["sh", "-c", "echo hi > /dev/null 2>&1; echo $HOME"], ["sh", "-ec", "for f in a b; do echo \"$f\"; done"],
        ["bash", "--norc", "-c", "if true; then echo yes; fi"], ["sh", "-c", "echo \"$(date)\" | wc -c"],
        ["sh", "-c", "trap '' TERM; sleep 1"], ["sh", "-c", "kill -0 $$"], ["sh"], ["flock", "/tmp/F", "-c", "echo hi"],
        ["timeout", "5", "sh", "-c", "echo hi"], ["env", "-C", "/tmp", "echo"], ["ionice", "-c", "3", "echo"],
        ["sh", "-c", "timeout 5 echo \"$HOME\" *.txt"], ["sh", "-c", "find . -name '*.log' -print"], ["sh", "-c", "sh f.sh"],
    ])
    func legitimateCommandsStillRun(argv: [String]) {
        let error = Self.refusal(argv)
        #expect(error == nil, "\(argv): \(error?.message ?? "")")
    }

    @Test func allowlistStillLetsListedProgramsRun() {
        for argv in [["env", "FOO=1", "echo", "hi"], ["echo", "hi"], ["/usr/bin/echo", "hi"], ["env", "-i", "echo"],
                     ["env", "-S", "echo hi"], ["env", "--", "echo"]] {
            let error = Self.refusal(argv, Self.allowPolicy)
            #expect(error == nil, "\(argv): \(error?.message ?? "")")
        }
        // The allowlist is on the real file: sh is dash here, so [sh] alone does not allow it.
        let shell = Self.strict(["dash", "echo"])
        #expect(Self.refusal(["sh", "-c", "echo hi"], shell) == nil)
        #expect(Self.refusal(["sh", "-c", "echo hi; id"], shell)?.code == "command_not_allowed")
        #expect(Self.refusal(["sh", "-c", "echo hi"], Self.strict(["/usr/bin/dash", "/usr/bin/echo"])) == nil)
    }

    /// `./echo` that is really id: the allowlist looks at the file, not the name.
    @Test func aSymlinkNamedLikeAnAllowedProgramIsRefused() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-echo-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createSymbolicLink(atPath: directory + "/echo", withDestinationPath: "/usr/bin/id")
        let policy = Self.strict(["echo"])
        let refused = try #require(Self.refusal(["./echo"], policy, cwd: directory))
        #expect(refused.status == 403 && refused.code == "command_not_allowed", "\(refused.message)")
        #expect(Self.refusal([directory + "/echo"], policy) != nil)
        #expect(Self.refusal(["env", "./echo"], Self.strict(["echo", "env"]), cwd: directory) != nil)
        #expect(Self.refusal(["/usr/bin/echo", "hi"], policy, cwd: directory) == nil)
        #expect(Self.refusal(["echo", "hi"], policy, cwd: directory) == nil)  // PATH search, not the cwd
    }

    /// After env -i (or sudo, su, …) PATH is not the daemon's: the program found there is checked too.
    @Test func aResetPathIsLookedInToo() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-path-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "#!/bin/sh\necho mine\n".write(toFile: directory + "/echo", atomically: true, encoding: .utf8)
        chmod(directory + "/echo", 0o755)
        let mine = try #require(realpath(directory + "/echo", nil).map { pointer in
            defer { free(pointer) }
            return String(cString: pointer)
        })
        var config = LoopsyConfig().execution
        config.allowlist = [mine, "env"]
        let policy = ExecutionPolicy(config: config, environment: ["PATH": directory + ":/usr/bin:/bin"])
        #expect(Self.refusal(["echo", "hi"], policy) == nil)
        #expect(Self.refusal(["env", "echo", "hi"], policy) == nil)
        for argv in [["env", "-i", "echo"], ["env", "-u", "PATH", "echo"], ["env", "-", "echo"], ["env", "-iS", "echo"]] {
            let refused = try #require(Self.refusal(argv, policy), "\(argv) was approved")
            #expect(refused.code == "command_not_allowed" && refused.message.contains("/usr/bin/echo"), "\(refused.message)")
        }
    }

    /// A link to a multi-call busybox runs the applet of its name: parsed, denied and allowed as that.
    @Test func busyboxAppletsGoByTheirName() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-bb-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "#!/bin/sh\n".write(toFile: directory + "/busybox", atomically: true, encoding: .utf8)
        chmod(directory + "/busybox", 0o755)
        for applet in ["sh", "rm", "id"] {
            try FileManager.default.createSymbolicLink(atPath: directory + "/" + applet, withDestinationPath: directory + "/busybox")
        }
        var config = LoopsyConfig().execution
        let denying = ExecutionPolicy(config: config, environment: ["PATH": directory])
        #expect(Self.refusal(["sh", "-c", "rm x"], denying)?.message.contains("'rm' is in execution.denylist") == true)
        #expect(Self.refusal(["sh", "-c", "echo x"], denying) == nil)
        config.allowlist = ["busybox", "sh"]
        let allowing = ExecutionPolicy(config: config, environment: ["PATH": directory])
        #expect(Self.refusal(["sh", "-c", "id"], allowing)?.message.contains("'id' (busybox's applet) is not in") == true)
        #expect(Self.refusal(["id"], allowing)?.code == "command_not_allowed")
    }

    /// "=", quotes and "/" followed by a combining mark are one Character to Swift and still
    /// "=", a quote and "/" to getenv, env, the shells and execve: every such check reads bytes.
    /// (Each of these ran what the policy refuses; checked against GNU env, dash and bash.)
    @Test func aCombiningMarkHidesNoSeparator() throws {
        let mark = "\u{301}"
        // env names: no "=" byte hides in one (getenv would split it there), nor a NUL.
        for name in ["GIT_SSH_COMMAND=" + mark, "PATH=" + mark, "", "A\0", "=x"] {
            let error = #expect(throws: APIError.self) {
                try Self.denylistPolicy.approve(ExecuteRequest(command: "echo", env: [name: "x"]), home: "/tmp")
            }
            #expect(error?.code == "bad_env", "\(name)")
        }
        let named = try Self.denylistPolicy.approve(ExecuteRequest(command: "echo", env: [
            "A1_b": "x", "my-var": "1", "spring.profiles.active": "p", "é": "y"]), home: "/tmp")
        #expect(Set(named.environment).isSuperset(of: ["A1_b=x", "my-var=1", "spring.profiles.active=p", "é=y"]))
        let forbidden = #expect(throws: APIError.self) {
            try Self.denylistPolicy.approve(ExecuteRequest(command: "echo", env: ["LD_PRELOAD": "/tmp/x.so"]), home: "/tmp")
        }
        #expect(forbidden?.code == "forbidden_env")
        // A word with an "=" byte is an assignment to env and sudo; to a shell when its name is ASCII.
        for argv in [["env", "X=" + mark, "rm", "-rf", "/x"], ["sudo", "X=" + mark, "rm", "x"],
                     ["sh", "-c", "X=\(mark) rm -rf /x"], ["env", "-S", "-u '\(mark) true '\(mark) rm -rf /x"],
                     ["env", "PATH=\(mark):/tmp/evil", "ls"], ["sh", "-c", "PATH=\(mark):/tmp ls"]] {
            #expect(Self.refusal(argv)?.code == "command_denied", "\(argv)")
        }
        // Words that are assignments to some shells or to sudo, and other ways a program hid.
        for argv in [["sh", "-c", "é=1 rm -rf /x"], ["sudo", "é=1", "rm", "x"], ["sudo", "A-B=1", "rm", "x"],
                     ["sudo", "X=1", "-u", "root", "rm", "x"], ["sudo", "X=1", "-s", "rm", "x"],
                     ["bash", "-c", "X+=1 rm -rf /x"], ["bash", "-c", "LD_PRELOAD+=/tmp/evil.so ls"],
                     ["bash", "+c", "rm -rf /x"], ["sh", "+c", "rm -rf /x"], ["sh", "-c", "echo 'rm -rf /x' | sh -s x"],
                     ["chrt", "-o", "+0", "rm", "-rf", "/x"], ["chrt", "-o", " 0", "rm", "x"], ["chrt", "-o", "--", "-0", "rm", "x"]] {
            #expect(Self.refusal(argv)?.code == "command_denied", "\(argv)")
        }
        #expect(Self.refusal(["chrt", "-o", "0", "echo", "hi"]) == nil)
        // U+037E is ";" to Swift's ==, not to find: the program after -exec is still checked.
        #expect(Self.refusal(["find", "/tmp", "-maxdepth", "0", "-exec", "\u{37E}", "x", ";"], Self.strict(["find"]))?.code
            == "command_not_allowed")
        // Not a name to a shell: a program, which an allowlist then refuses.
        #expect(Self.refusal(["sh", "-c", "é=x"], Self.strict(["dash"]))?.code == "command_not_allowed")
        #expect(ShellWords.isAssignment("A_1=x") && !ShellWords.isAssignment("é=x") && !ShellWords.isAssignment("=x"))
        #expect(ShellWords.assignedName("X=\(mark)y") == "X" && ShellWords.assignedName("X\(mark)") == nil)
        #expect(try Wrappers.envSplit("-u '\(mark) true '\(mark) rm") == ["-u", "\(mark) true \(mark)", "rm"])
        // A relative program whose "/" a mark follows is a relative path, not a name on PATH.
        let relative = try #require(Self.refusal(["sh", "-c", "cd /tmp && a/\(mark)b"]))
        #expect(relative.code == "command_denied" || relative.code == "command_not_found", "\(relative.message)")
        #expect(Self.refusal(["a/\(mark)rm"], cwd: "/tmp")?.code == "command_not_found")
    }

    /// Allowlist bypasses a review confirmed against the real programs (findutils 4.9, coreutils
    /// 9.1, util-linux 2.38, bash 5.2, dash): each ran a program the list does not name.
    @Test func wrappersReadAsTheRealProgramsDo() throws {
        let cases: [([String], [String])] = [
            // xargs run by xargs: the outer input is the inner one's options and command.
            (["xargs", "-d", "=", "-a", "/proc/self/environ", "xargs"], ["xargs", "echo"]),
            // find's `{} +` appends many names: `env -u {} +` runs the second.
            (["find", "/usr/bin/id", "/usr/bin/id", "-exec", "env", "-u", "{}", "+"], ["find", "env"]),
            // "+" ends -exec only after "{}".
            (["find", "/tmp", "-maxdepth", "0", "-exec", "flock", "+", "touch", "/tmp/x", ";"], ["find", "flock"]),
            (["find", "/tmp", "-maxdepth", "0", "-exec", "sh", "+", "-c", "touch /tmp/x", ";"], ["find", "dash"]),
            // bash takes long options after one dash.
            (["bash", "-posix", "-c", "touch /tmp/x"], ["bash"]),
            (["bash", "-rcfile", "echo", "-c", "true"], ["bash", "echo"]),
            // dash has no $'…'; ${x:-{} ends at its first }.
            (["sh", "-c", "echo $'\\' ; touch /tmp/x ; #'"], ["dash", "echo"]),
            (["sh", "-c", "echo ${x:-{}; touch /tmp/x; echo }"], ["dash", "echo"]),
            // A wrapper that runs nothing as written runs what xargs appends.
            (["xargs", "-a", "/etc/hostname", "ionice"], ["xargs", "ionice"]),
            (["xargs", "-a", "/etc/hostname", "env", "-u", "X"], ["xargs", "env"]),
            // xargs sets the variable it is told to: not a forbidden one.
            (["xargs", "--process-slot-var=BASH_ENV", "bash", "-c", "echo"], ["xargs", "bash", "echo"]),
            // Scripts misread (a second round): `for x do cmd`, `esac` as an argument in `$( )`,
            // multi-digit or non-ASCII fd numbers, `#` right after `)`.
            (["bash", "-c", "for x do touch /tmp/x; done", "sh", "1"], ["bash"]),
            (["sh", "-c", "echo \"$(case x in x) (echo esac) ; touch /tmp/x;; esac)\""], ["dash", "echo"]),
            (["sh", "-c", "timeout 10>/dev/null touch echo /tmp/x"], ["dash", "timeout", "echo"]),
            (["bash", "-c", "env -u \u{663}>/dev/null touch echo /tmp/x"], ["bash", "env", "echo"]),
            (["bash", "-c", "echo <(echo)#; touch /tmp/x"], ["bash", "echo"]),
            // Startup files: a login or interactive shell, script without -c.
            (["bash", "-l", "-c", "true"], ["bash", "true"]), (["bash", "-i", "-c", "true"], ["bash", "true"]),
            (["bash", "--login", "-c", "true"], ["bash", "true"]), (["script", "-q", "/dev/null"], ["script", "dash"]),
            // Wrappers not modelled are refused.
            (["setarch", "x86_64", "touch", "/tmp/x"], ["setarch"]), (["choom", "-n", "0", "--", "touch", "/tmp/x"], ["choom"]),
            // Code bash finds only when it runs (each ran `touch` in bash 5.2 with this allowlist).
            (["bash", "-c", "x='$(touch /tmp/x)'; echo \"${x@P}\""], ["bash", "echo"]),
            (["bash", "-c", "x='a[$(touch /tmp/x)]'; echo \"${!x}\""], ["bash", "echo"]),
            (["bash", "-c", "y='a[$(touch /tmp/x)]'; x=abc; echo ${x:y}"], ["bash", "echo"]),
            (["bash", "-c", "echo='a[$(touch /tmp/x)]'; echo $((echo))"], ["bash", "echo"]),
            (["bash", "-c", "echo $[echo]"], ["bash", "echo"]),
            (["bash", "-c", "printf -v 'a[$(touch /tmp/x)]' %s x"], ["bash", "printf"]),
            (["bash", "-c", "test -v 'a[$(touch /tmp/x)]'"], ["bash", "test"]),
            (["bash", "-a", "-c", "echo ${BASH_ENV:=/tmp/envf}; bash -c true"], ["bash", "echo", "true"]),
            (["bash", "-c", "printf -v PS4 %s x; echo"], ["bash", "printf", "echo"]),
        ]
        for (argv, allowed) in cases {
            #expect(Self.refusal(argv, Self.strict(allowed)) != nil, "\(argv) with \(allowed)")
        }
        #expect(Self.refusal(["bash", "+", "-c", "rm -rf /x"])?.code == "command_denied")
        // su and runuser run the account's shell (root's here), not $SHELL, unless told with -s.
        let rootShell = try #require(Account.loginShell(of: "root"))
        #expect(Account.loginShell(of: "0") == rootShell && Account.loginShell(of: "no-such-user-here") == nil)
        func sbin(_ allowlist: [String]) -> ExecutionPolicy {  // runuser is in /usr/sbin
            var config = LoopsyConfig().execution
            config.allowlist = allowlist
            return ExecutionPolicy(config: config, environment: ["PATH": "/usr/sbin:/usr/bin:/bin", "HOME": "/root"])
        }
        let withoutRootShell = sbin(["runuser", "dash", "echo"])
        if !rootShell.hasSuffix("/dash") && !rootShell.hasSuffix("/sh") {
            #expect(Self.refusal(["runuser", "root", "-c", "echo hi"], withoutRootShell)?.code == "command_not_allowed")
        }
        #expect(Self.refusal(["runuser", "-s", "/bin/sh", "root", "-c", "echo hi"], withoutRootShell) == nil)
        #expect(Self.refusal(["runuser", "-l", "root", "-c", "echo hi"], sbin(["runuser", "bash", "dash", "echo"]))?.message
            .contains("a login shell reads startup files") == true)
        // Without $SHELL, flock -c runs /bin/sh (dash here), whatever the daemon's SHELL is.
        var config = LoopsyConfig().execution
        config.allowlist = ["env", "flock", "bash", "echo"]
        let bashShell = ExecutionPolicy(config: config, environment: ["PATH": "/usr/bin:/bin", "HOME": "/root",
                                                                      "SHELL": "/bin/bash"])
        #expect(Self.refusal(["flock", "/tmp/l", "-c", "echo hi"], bashShell) == nil)
        for argv in [["env", "-u", "SHELL", "flock", "/tmp/l", "-c", "echo hi"], ["env", "-i", "flock", "/tmp/l", "-c", "echo hi"]] {
            #expect(Self.refusal(argv, bashShell)?.code == "command_not_allowed", "\(argv)")
        }
        // What those programs really do with ordinary requests still runs.
        for (argv, allowed) in [(["bash", "-c", "echo $'a\\tb'"], ["bash", "echo"]),
                                (["find", ".", "-maxdepth", "0", "-exec", "echo", "{}", "+"], ["find", "echo"]),
                                (["find", ".", "-maxdepth", "0", "-exec", "echo", "+", ";"], ["find", "echo"]),
                                (["bash", "-norc", "-c", "echo hi"], ["bash", "echo"]),
                                (["sh", "-c", "echo ${x:-a}"], ["dash", "echo"]),
                                (["bash", "-c", "for x in a b; do echo $x; done"], ["bash", "echo"]),
                                (["sh", "-c", "echo hi 2>/dev/null"], ["dash", "echo"]),
                                (["bash", "-c", "printf '%s\\n' a; echo ${x:-a} ${y:=b}"], ["bash", "echo", "printf"])] {
            let error = Self.refusal(argv, Self.strict(allowed))
            #expect(error == nil, "\(argv): \(error?.message ?? "")")
        }
    }

    @Test func envSplitsLikeEnv() throws {
        #expect(try Wrappers.envSplit(#"a 'b c' "d\te" f\_g #h"#) == ["a", "b c", "d\te", "f", "g"])
        #expect(throws: APIError.self) { try Wrappers.envSplit("${PROG} x") }
        #expect(throws: APIError.self) { try Wrappers.envSplit("'open") }
    }

    @Test func getoptParsesLikeGetoptLong() throws {
        var parser = Getopt("env", Wrappers.envTable, ["-iu", "A", "--chd=/x", "--", "-v", "cmd"])
        let options = try parser.all()
        #expect(options.map(\.key) == ["i", "u", "C"])
        #expect(options.map(\.value) == [nil, "A", "/x"])
        #expect(parser.operands == ["-v", "cmd"])
        // A permuting program finds options after operands.
        var permuting = Getopt("script", OptionTable("qc:", permute: true), ["file", "-qc", "cmd", "more"])
        #expect(try permuting.all().map(\.value) == [nil, "cmd"])
        #expect(permuting.operands == ["file", "more"])
    }
}
