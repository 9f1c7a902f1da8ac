import Foundation
import LoopsyAPI
import LoopsyClient
import Testing

/// A job's whole tree dies with it — descendants that called setsid() too — loopsyd adopts and
/// reaps what jobs leave behind, and jobs get the user's umask.
@Suite struct JobTreeTests {
    func node(umask: String? = nil, _ edit: @escaping (String) -> String = { $0 }) throws -> TestNode {
        let node = try TestNode { edit($0.replacingOccurrences(of: "  execute: 30\n", with: "  execute: 0\n")) }
        if let umask { node.launcher = ["/bin/sh", "-c", "umask \(umask); exec \"$0\" \"$@\""] }
        try node.start()
        return node
    }

    /// Pids whose command line is exactly `argv` (scanning /proc), zombies excluded.
    static func processes(_ argv: [String]) -> [Int32] {
        let wanted = argv.joined(separator: "\0") + "\0"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: data, as: UTF8.self) == wanted && ExecuteTests.alive(pid)
        }
    }

    /// loopsyd's children as /proc shows them, with their state letters.
    static func children(of pid: Int32) -> [(pid: Int32, state: String)] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.flatMap { task -> [(pid: Int32, state: String)] in
            let text = FileManager.default.contents(atPath: "/proc/\(pid)/task/\(task)/children")
                .map { String(decoding: $0, as: UTF8.self) } ?? ""
            return text.split(separator: " ").compactMap { Int32($0) }.map { child in
                let stat = FileManager.default.contents(atPath: "/proc/\(child)/stat").map { String(decoding: $0, as: UTF8.self) } ?? ""
                let state = stat.lastIndex(of: ")").map { String(stat[stat.index($0, offsetBy: 2)]) } ?? "?"
                return (child, state)
            }
        }
    }

    /// How often loopsyd's reaper thread has gone to sleep (its voluntary context switches):
    /// each look at the children ends in one.
    static func reaperSleeps(of pid: Int32) -> Int? {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        for task in tasks {
            let comm = FileManager.default.contents(atPath: "/proc/\(pid)/task/\(task)/comm").map { String(decoding: $0, as: UTF8.self) }
            guard comm == "loopsy-reaper\n",
                  let status = FileManager.default.contents(atPath: "/proc/\(pid)/task/\(task)/status") else { continue }
            let line = String(decoding: status, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix("voluntary_ctxt_switches:") }
            return line.flatMap { Int($0.split(separator: "\t").last ?? "") }
        }
        return nil
    }

    /// Whether, within `seconds`, the reaper slept through a whole `quiet` seconds.
    static func reaperGoesQuiet(_ pid: Int32, quiet: Double = 2.5, within seconds: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date().addingTimeInterval(quiet) <= deadline {
            let before = reaperSleeps(of: pid)
            Thread.sleep(forTimeInterval: quiet)
            if let before, reaperSleeps(of: pid) == before { return true }
        }
        return false
    }

    /// A unique sleep length, so parallel tests never see each other's processes.
    static func uniqueSeconds() -> String { String(Int.random(in: 100_000...999_999)) }

    /// Starts a job that sleeps a unique number of seconds and waits until it runs; returns
    /// that number, and another unique one for a leftover the test starts.
    static func runLongJob(on node: TestNode) -> (long: String, left: String) {
        let long = uniqueSeconds(), left = uniqueSeconds()
        DispatchQueue.global().async { _ = try? node.client.execute(ExecuteRequest(command: "sleep", args: [long])) }
        #expect(ExecuteTests.waitUntil(5) { !processes(["sleep", long]).isEmpty })
        return (long, left)
    }

    @Test func aSetsidGrandchildDiesWithTheTimeout() throws {
        let node = try node()
        defer { node.cleanUp() }
        let seconds = Self.uniqueSeconds()
        let started = Date()
        let finished = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: ExecuteResult?
        DispatchQueue.global().async {
            result = try? node.client.execute(ExecuteRequest(command: "sh", args: ["-c", "setsid sleep \(seconds) & sleep 1000"],
                                                             timeout: 1500))
            finished.signal()
        }
        #expect(ExecuteTests.waitUntil(1.4) { !Self.processes(["sleep", seconds]).isEmpty }, "the grandchild never ran")
        #expect(finished.wait(timeout: .now() + 10) == .success)
        #expect(result?.timedOut == true)
        #expect(ExecuteTests.waitUntil(5) { Self.processes(["sleep", seconds]).isEmpty },
                "setsid sleep \(seconds) survived the timeout: \(Self.processes(["sleep", seconds]))")
        print("setsid grandchild after timeout gone \(String(format: "%.2f", Date().timeIntervalSince(started))) s after the start")
    }

    @Test func aSetsidGrandchildThatIgnoresSIGTERMDiesWithTheCancel() throws {
        let node = try node()
        defer { node.cleanUp() }
        let seconds = Self.uniqueSeconds()
        let finished = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: ExecuteResult?
        DispatchQueue.global().async {
            result = try? node.client.execute(ExecuteRequest(
                command: "sh", args: ["-c", "setsid sh -c 'trap \"\" TERM; exec sleep \(seconds)' & sleep 1000"]))
            finished.signal()
        }
        #expect(ExecuteTests.waitUntil(5) { !Self.processes(["sleep", seconds]).isEmpty })
        let job = try #require(try node.client.jobs(includeFinished: false).first)
        try node.client.cancelJob(job.jobId)
        #expect(finished.wait(timeout: .now() + 10) == .success)
        #expect(result?.cancelled == true)
        #expect(ExecuteTests.waitUntil(5) { Self.processes(["sleep", seconds]).isEmpty },
                "setsid sleep \(seconds) survived the cancel")
    }

    @Test func whatAJobLeavesBehindIsKilledAndReaped() throws {
        let node = try node()
        defer { node.cleanUp() }
        let daemon = try #require(node.process?.processIdentifier)
        let seconds = Self.uniqueSeconds()
        // Double fork: the leftover is an orphan at once, and in a session of its own.
        let result = try node.client.execute(ExecuteRequest(
            command: "sh", args: ["-c", "(setsid sleep \(seconds) </dev/null >/dev/null 2>&1 &); "
                + "(sleep \(seconds)1 </dev/null >/dev/null 2>&1 &); echo done"]))
        #expect(result.exitCode == 0)
        #expect(ExecuteTests.waitUntil(5) {
            Self.processes(["sleep", seconds]).isEmpty && Self.processes(["sleep", seconds + "1"]).isEmpty
        }, "the job's leftovers outlived it")
        // Nothing of it stays as a child of loopsyd, not even a zombie.
        #expect(ExecuteTests.waitUntil(5) { Self.children(of: daemon).isEmpty }, "\(Self.children(of: daemon))")
        // Many short jobs with leftovers: no zombie accumulates.
        for _ in 0..<10 {
            _ = try node.client.execute(ExecuteRequest(command: "sh", args: ["-c", "(sleep 0.1 &); (setsid true &); true"]))
        }
        #expect(ExecuteTests.waitUntil(5) { Self.children(of: daemon).isEmpty }, "\(Self.children(of: daemon))")
    }

    /// With no child the reaper does not wake up at all (an idle daemon costs nothing); a job
    /// wakes it, what the job left behind still goes, and then it sleeps again.
    @Test func theReaperSleepsWhileTheDaemonHasNoChild() throws {
        let node = try node()
        defer { node.cleanUp() }
        let daemon = try #require(node.process?.processIdentifier)
        // The thread names itself once it runs: on a loaded machine, a moment after the daemon answers.
        #expect(ExecuteTests.waitUntil(5) { Self.reaperSleeps(of: daemon) != nil }, "no loopsy-reaper thread in loopsyd")
        #expect(Self.reaperGoesQuiet(daemon), "the reaper of an idle daemon kept waking up")
        let before = try #require(Self.reaperSleeps(of: daemon))
        let left = Self.uniqueSeconds()
        let result = try node.client.execute(ExecuteRequest(
            command: "sh", args: ["-c", "(setsid sleep \(left) </dev/null >/dev/null 2>&1 &); echo done"]))
        #expect(result.exitCode == 0)
        #expect(ExecuteTests.waitUntil(5) { Self.processes(["sleep", left]).isEmpty }, "the job's leftover outlived it")
        #expect(ExecuteTests.waitUntil(5) { Self.children(of: daemon).isEmpty }, "\(Self.children(of: daemon))")
        #expect((Self.reaperSleeps(of: daemon) ?? 0) > before, "the job did not wake the reaper")
        #expect(Self.reaperGoesQuiet(daemon), "the reaper kept waking up after the job and its leftover were gone")
    }

    /// A leftover the job's I/O loop saw in its tree (it looks every second) goes when the job
    /// ends, even while another job runs.
    @Test func leftoversSeenInAJobsTreeGoWithItWhileOtherJobsRun() throws {
        let node = try node()
        defer { node.cleanUp() }
        let (long, left) = Self.runLongJob(on: node)
        let result = try node.client.execute(ExecuteRequest(
            command: "sh", args: ["-c", "setsid sleep \(left) </dev/null >/dev/null 2>&1 & sleep 1.5; echo done"]))
        #expect(result.exitCode == 0)
        #expect(ExecuteTests.waitUntil(3) { Self.processes(["sleep", left]).isEmpty }, "the leftover outlived its job")
        #expect(!Self.processes(["sleep", long]).isEmpty, "the other job was touched")
    }

    /// With another job running, a setsid leftover cannot be told apart from that job's own: it
    /// lives until every job that may own it has ended, then goes; daemon shutdown takes it too.
    @Test func leftoversThatMayBelongToARunningJobGoWhenItEndsOrTheDaemonStops() throws {
        for ending in ["cancel", "stop"] {
            // On a loaded machine the job's I/O loop (it looks every second) can see the leftover
            // in the job's own tree before the subshell ends: it is then rightly charged to that
            // job and goes with it, and the case under test did not arise. Up to 3 tries.
            var arose = false
            for _ in 0..<3 where !arose { arose = try leftoverOfNoKnownJob(ending: ending) }
            #expect(arose, "\(ending): the leftover was charged to its own job in 3 tries out of 3")
        }
    }

    /// One try of the above; false when the leftover went with its own job (the case did not arise).
    private func leftoverOfNoKnownJob(ending: String) throws -> Bool {
        let node = try node()
        defer { node.cleanUp() }
        let (long, left) = Self.runLongJob(on: node)
        let result = try node.client.execute(ExecuteRequest(
            // The subshell waits until setsid has run: the orphan is then in no job's group or
            // session when loopsyd adopts it (caught before, it is charged to this job alone).
            command: "sh", args: ["-c", "(setsid sleep \(left) </dev/null >/dev/null 2>&1 & sleep 0.3); echo done"]))
        #expect(result.exitCode == 0)
        // Still there a second later: it may be the running job's (its job ended before its
        // I/O loop first looked at the tree).
        Thread.sleep(forTimeInterval: 1.2)
        if Self.processes(["sleep", left]).isEmpty { return false }
        if ending == "cancel" {
            let job = try #require(try node.client.jobs(includeFinished: false).first)
            try node.client.cancelJob(job.jobId)
        } else {
            #expect(node.stop() == 0)
        }
        #expect(ExecuteTests.waitUntil(6) { Self.processes(["sleep", left]).isEmpty && Self.processes(["sleep", long]).isEmpty },
                "\(ending): leftovers survived")
        return true
    }

    /// A daemon (started with umask 027) that runs the fake claude.
    func taskNode() throws -> (TestNode, String) {
        let node = try PeerTests.named("alpha") { text in
            // claude gets only the daemon variables aiTasks.environment names.
            replacingLine(replacingLine(text, "  maxDurationSeconds: 3600", "  maxDurationSeconds: 4"),
                          "  environment: [ANTHROPIC_API_KEY,", "  environment: [FAKE_CLAUDE_ARGV, ANTHROPIC_API_KEY,")
        }
        node.launcher = ["/bin/sh", "-c", "umask 027; exec \"$0\" \"$@\""]
        let argv = node.dataDir + "/argv.jsonl"
        try node.start(environment: ["PATH": TaskTests.fakeClaude + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? ""),
                                     "FAKE_CLAUDE_ARGV": argv])
        return (node, argv)
    }

    @Test func aTasksDetachedHelperDiesWithTheCancelAndTheTimeoutAndClaudeGetsTheUmask() throws {
        let (node, argvFile) = try taskNode()
        defer { node.cleanUp() }
        let daemon = try #require(node.process?.processIdentifier)
        for ending in ["cancel", "timeout", "exit"] {
            let seconds = Self.uniqueSeconds()
            let task = try node.client.startTask(AITaskRequest(prompt: "detach \(seconds) sleep \(ending == "exit" ? 0.5 : 60)"))
            #expect(ExecuteTests.waitUntil(5) { !Self.processes(["sleep", seconds]).isEmpty }, "\(ending): no helper")
            if ending == "cancel" { _ = try node.client.cancelTask(task.id) }
            let done = try TaskTests.finished(node.client, task.id, within: 15)
            #expect(done.isFinished, "\(ending)")
            #expect(ExecuteTests.waitUntil(5) { Self.processes(["sleep", seconds]).isEmpty },
                    "\(ending): the task's setsid helper sleep \(seconds) survived")
        }
        #expect(ExecuteTests.waitUntil(5) { Self.children(of: daemon).isEmpty }, "\(Self.children(of: daemon))")
        let line = try #require(try String(contentsOfFile: argvFile, encoding: .utf8).split(separator: "\n").first)
        #expect(line.contains(#""umask": "0027""#), "\(line.suffix(40))")
    }

    @Test(arguments: [("022", "0022"), ("027", "0027")])
    func jobsGetTheUmaskTheDaemonWasStartedWith(umask: String, printed: String) throws {
        let node = try node(umask: umask)
        defer { node.cleanUp() }
        let result = try node.client.execute(ExecuteRequest(command: "sh", args: ["-c", "umask"]))
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == printed)
    }
}
