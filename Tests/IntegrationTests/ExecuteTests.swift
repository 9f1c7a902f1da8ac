import Foundation
import LoopsyAPI
import LoopsyClient
import Synchronization
import Testing

/// Remote execution against a real loopsyd: results, streaming, policy, limits, cancellation.
@Suite struct ExecuteTests {
    /// A node whose execute rate limit is off (these tests run many commands).
    func node(_ edit: @escaping (String) -> String = { $0 }) throws -> TestNode {
        let node = try TestNode { edit($0.replacingOccurrences(of: "  execute: 30\n", with: "  execute: 0\n")) }
        try node.start()
        return node
    }

    func execute(_ node: TestNode, _ body: String) throws -> CurlHTTPClient.Response {
        try node.http("POST", "/api/v1/execute", body: body)
    }

    /// Running (a zombie is dead: it waits only for whoever adopted it to reap it).
    static func alive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    static func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return condition()
    }

    /// The list of finished jobs says when older ones were left out, and a larger limit shows them.
    @Test func aJobListSaysWhenOlderJobsWereLeftOut() throws {
        let node = try node()
        defer { node.cleanUp() }
        for _ in 0..<3 { #expect(try execute(node, #"{"command":"true"}"#).status == 200) }
        let two = try node.http("GET", "/api/v1/execute/jobs?all=1&limit=2").json(JobListResponse.self)
        #expect(two.jobs.count == 2 && two.more)
        let all = try node.http("GET", "/api/v1/execute/jobs?all=1&limit=3").json(JobListResponse.self)
        #expect(all.jobs.count == 3 && !all.more)
        #expect(try !node.http("GET", "/api/v1/execute/jobs").json(JobListResponse.self).more)
    }

    /// Found by schemathesis: query parameters outside the documented values are a 400, not ignored.
    @Test func jobListQueryParametersAreChecked() throws {
        let node = try node()
        defer { node.cleanUp() }
        #expect(try node.http("GET", "/api/v1/execute/jobs?all=1&limit=5").status == 200)
        for query in ["all=maybe", "limit=", "all=1&limit=0", "limit=x"] {
            let response = try node.http("GET", "/api/v1/execute/jobs?" + query)
            #expect(response.status == 400 && response.errorCode == "bad_query", "\(query)")
        }
    }

    /// An argument longer than the kernel takes (128 KiB) is the request's fault: 413 with what
    /// to do instead, not a 500.
    @Test func argumentsLongerThanTheKernelTakesAreA413() throws {
        let node = try node()
        defer { node.cleanUp() }
        let long = String(repeating: "a", count: 200_000)
        let refused = try execute(node, #"{"command":"echo","args":["\#(long)"]}"#)
        #expect(refused.status == 413, "\(String(decoding: refused.body, as: UTF8.self).prefix(200))")
        #expect(refused.errorCode == "payload_too_large")
        #expect(String(decoding: refused.body, as: UTF8.self).contains("stdin"))
    }

    @Test func runsProgramsAndReportsHowTheyEnded() throws {
        let node = try node()
        defer { node.cleanUp() }
        let ok = try node.client.execute(ExecuteRequest(command: "echo", args: ["hello", "world"]))
        #expect(ok.stdout == "hello world\n")
        #expect(ok.exitCode == 0)
        #expect(ok.signal == nil)
        let failed = try node.client.execute(ExecuteRequest(command: "sh", args: ["-c", "echo out; echo err >&2; exit 3"]))
        #expect(failed.stdout == "out\n")
        #expect(failed.stderr == "err\n")
        #expect(failed.exitCode == 3)
        let signalled = try node.client.execute(ExecuteRequest(command: "sh", args: ["-c", "kill -9 $$"]))
        #expect(signalled.exitCode == nil)
        #expect(signalled.signal == "SIGKILL")
        // argv semantics: no shell interprets the arguments.
        let literal = try node.client.execute(ExecuteRequest(command: "echo", args: ["$HOME", "a;b", "`x`"]))
        #expect(literal.stdout == "$HOME a;b `x`\n")
        let inDirectory = try node.client.execute(ExecuteRequest(command: "pwd", cwd: "/tmp"))
        #expect(inDirectory.stdout == "/tmp\n")
        let withEnv = try node.client.execute(ExecuteRequest(command: "sh", args: ["-c", "echo $GREETING"], env: ["GREETING": "hi"]))
        #expect(withEnv.stdout == "hi\n")
    }

    @Test func streamDeliversOutputWhileTheCommandRuns() throws {
        let node = try node()
        defer { node.cleanUp() }
        let started = Date()
        var firstOutput: TimeInterval?
        var events: [String] = []
        var ids: [String] = []
        var result: ExecuteResult?
        try node.client.executeStream(ExecuteRequest(command: "sh", args: ["-c", "echo first; sleep 1.5; echo second >&2"])) { event in
            events.append(event.event)
            ids.append(event.id ?? "")
            if event.event == "stdout" && firstOutput == nil { firstOutput = Date().timeIntervalSince(started) }
            if event.event == "exit" { result = try? JSONDecoder().decode(ExecuteResult.self, from: Data(event.data.utf8)) }
            return true
        }
        let total = Date().timeIntervalSince(started)
        #expect(events == ["start", "stdout", "stderr", "exit"])
        #expect(ids == ["1", "2", "3", "4"])
        #expect(try #require(firstOutput) < 1.0)
        #expect(total >= 1.5)
        #expect(result?.exitCode == 0)
    }

    @Test func denylistAppliesToBothRoutesAndThroughWrappers() throws {
        let node = try node()
        defer { node.cleanUp() }
        for body in [#"{"command":"rm","args":["-rf","/tmp/x"]}"#, #"{"command":"env","args":["A=1","rm","x"]}"#,
                     #"{"command":"sh","args":["-c","true && rm -rf /tmp/x"]}"#,
                     #"{"command":"find","args":["/tmp","-maxdepth","0","-exec","rm","{}",";"]}"#,
                     #"{"command":"xargs","args":["rm"]}"#, #"{"command":"nice","args":["-n","1","dd","if=/dev/zero"]}"#] {
            for route in ["/api/v1/execute", "/api/v1/execute/stream"] {
                let response = try node.http("POST", route, body: body)
                #expect(response.status == 403, "\(route) \(body)")
                #expect(response.errorCode == "command_denied")
            }
        }
    }

    @Test func allowlistRestrictsToListedPrograms() throws {
        let node = try node { $0.replacingOccurrences(of: "  # allowlist: [git, ls, cat]", with: "  allowlist: [echo, sh]") }
        defer { node.cleanUp() }
        #expect(try node.client.execute(ExecuteRequest(command: "echo", args: ["ok"])).stdout == "ok\n")
        let refused = try execute(node, #"{"command":"ls"}"#)
        #expect(refused.status == 403)
        #expect(refused.errorCode == "command_not_allowed")
        #expect(try execute(node, #"{"command":"sh","args":["-c","echo a; ls /"]}"#).status == 403)
    }

    /// The reproduced bypasses, through a real daemon on both routes.
    @Test func wrapperBypassesAreRefusedOnBothRoutes() throws {
        let strict = try node { $0.replacingOccurrences(of: "  # allowlist: [git, ls, cat]", with: "  allowlist: [env, echo]") }
        defer { strict.cleanUp() }
        let directory = strict.dataDir + "/links"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: directory + "/echo", withDestinationPath: "/usr/bin/id")
        for body in [#"{"command":"env","args":["-iSid"]}"#, #"{"command":"env","args":["--split-str=id"]}"#,
                     #"{"command":"env","args":["--un","echo","id"]}"#, #"{"command":"env","args":["-iS'sh -c id'"]}"#,
                     #"{"command":"./echo","cwd":"\#(directory)"}"#, #"{"command":"env","args":["--foo","echo"]}"#] {
            for route in ["/api/v1/execute", "/api/v1/execute/stream"] {
                let response = try strict.http("POST", route, body: body)
                #expect(response.status == 403, "\(route) \(body): \(response.text)")
                #expect(response.errorCode == "command_not_allowed" || response.errorCode == "command_denied")
            }
        }
        #expect(try strict.client.execute(ExecuteRequest(command: "/usr/bin/echo", args: ["hi"], cwd: directory)).stdout == "hi\n")
        #expect(try strict.client.execute(ExecuteRequest(command: "env", args: ["--unset=HOME", "echo", "ok"])).stdout == "ok\n")

        let open = try node()
        defer { open.cleanUp() }
        for argv in [["sh", "-c", "--", "rm x"], ["bash", "-c", "-e", "rm x"], ["env", "-iSrm x"], ["flock", "F", "-c", "rm x"],
                     ["nice", "--adj", "5", "rm", "x"], ["timeout", "--kill", "1", "5", "rm", "x"],
                     ["stdbuf", "--out", "L", "rm", "x"], ["script", "-qec", "rm x", "/dev/null"], ["unshare", "rm", "x"]] {
            let body = String(decoding: try JSONEncoder().encode(ExecuteRequest(command: argv[0], args: Array(argv.dropFirst()))),
                              as: UTF8.self)
            for route in ["/api/v1/execute", "/api/v1/execute/stream"] {
                let response = try open.http("POST", route, body: body)
                #expect(response.status == 403 && response.errorCode == "command_denied", "\(route) \(argv): \(response.text)")
            }
        }
        let unknown = try execute(open, #"{"command":"env","args":["--foo","echo"]}"#)
        #expect(unknown.text.contains("env: option '--foo' is not understood"), "\(unknown.text)")
        // What still runs.
        #expect(try open.client.execute(ExecuteRequest(command: "nice", args: ["-n", "5", "echo", "hi"])).stdout == "hi\n")
        #expect(try open.client.execute(ExecuteRequest(command: "sh", args: ["-c", "echo hi"])).stdout == "hi\n")
    }

    /// A command gets the minimal environment, the daemon variables execution.environment names,
    /// and the caller's own env — not the rest of the daemon's environment.
    @Test func commandsGetOnlyTheListedEnvironment() throws {
        let node = try TestNode {
            $0.replacingOccurrences(of: "  execute: 30\n", with: "  execute: 0\n")
                .replacingOccurrences(of: "  environment: []", with: "  environment: [LISTED_THING]")
        }
        defer { node.cleanUp() }
        try node.start(environment: ["SECRET_THING": "x", "LISTED_THING": "y"])
        let result = try node.client.execute(ExecuteRequest(command: "env", env: ["MINE": "1"]))
        let names = Set(result.stdout.split(separator: "\n").map { String($0.prefix { $0 != "=" }) })
        #expect(result.stdout.contains("LISTED_THING=y\n") && result.stdout.contains("MINE=1\n"), "\(result.stdout)")
        #expect(!names.contains("SECRET_THING"))
        let expected: Set<String> = ["HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "TMPDIR", "TERM", "PATH",
                                     "LISTED_THING", "MINE"]
        #expect(names.isSubset(of: expected), "\(names.subtracting(expected).sorted())")
        let shell = try execute(node, #"{"command":"flock","args":["/tmp/f","-c","echo hi"],"env":{"SHELL":"/tmp/x"}}"#)
        #expect(shell.status == 400 && shell.errorCode == "forbidden_env")
    }

    @Test func timeoutsStopTheJob() throws {
        let node = try node { $0.replacingOccurrences(of: "defaultTimeout: 300000", with: "defaultTimeout: 400") }
        defer { node.cleanUp() }
        let started = Date()
        let viaDefault = try node.client.execute(ExecuteRequest(command: "sleep", args: ["30"]))
        #expect(viaDefault.timedOut)
        #expect(viaDefault.signal == "SIGTERM")
        #expect(Date().timeIntervalSince(started) < 5)
        let asked = try node.client.execute(ExecuteRequest(command: "sleep", args: ["30"], timeout: 200))
        #expect(asked.timedOut)
        // A program that ignores SIGTERM is killed after the grace period.
        let stubborn = try node.client.execute(ExecuteRequest(command: "sh", args: ["-c", "trap '' TERM; sleep 30"], timeout: 200))
        #expect(stubborn.timedOut)
        #expect(stubborn.signal == "SIGKILL")
        #expect(stubborn.durationMs < 4000)
    }

    @Test func concurrencyLimitGives429OnBothRoutes() throws {
        let node = try node { $0.replacingOccurrences(of: "maxConcurrent: 10", with: "maxConcurrent: 2") }
        defer { node.cleanUp() }
        let group = DispatchGroup()
        for _ in 0..<2 {
            group.enter()
            DispatchQueue.global().async {
                _ = try? node.client.execute(ExecuteRequest(command: "sleep", args: ["2"]))
                group.leave()
            }
        }
        #expect(Self.waitUntil(3) { (try? node.client.status().jobs) == 2 })
        for route in ["/api/v1/execute", "/api/v1/execute/stream"] {
            let refused = try node.http("POST", route, body: #"{"command":"true"}"#)
            #expect(refused.status == 429)
            #expect(refused.errorCode == "too_many_jobs")
            #expect(refused.headers["retry-after"] != nil)
        }
        group.wait()
        #expect(try node.client.execute(ExecuteRequest(command: "true")).exitCode == 0)
    }

    /// A result its client has not read yet keeps the job's place under execution.maxConcurrent:
    /// the answers held for slow readers are bounded by that limit, not by how many jobs a
    /// caller can run one after another.
    @Test func anUnreadResultKeepsItsJobsPlace() throws {
        let node = try node {
            $0.replacingOccurrences(of: "maxConcurrent: 10", with: "maxConcurrent: 1")
                .replacingOccurrences(of: "maxOutputBytes: 10485760", with: "maxOutputBytes: 33554432")
        }
        defer { node.cleanUp() }
        // 24 MB of answer: more than the kernel buffers of a connection whose client reads nothing.
        let body = #"{"command":"sh","args":["-c","head -c 24000000 /dev/zero | tr '\\0' a"]}"#
        var fd = try HardeningTests.connection(node.port)
        defer { if fd >= 0 { close(fd) } }
        // A small receive buffer, so that however large the host's TCP buffers the answer waits.
        var small: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        let request = "POST /api/v1/execute HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(node.apiKey)\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        let bytes = Array(request.utf8)
        #expect(bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) } == bytes.count)
        // The job ends and its result is recorded; its answer waits for this client.
        #expect(try eventually(20) { try node.client.jobs(includeFinished: true).contains { $0.state == "finished" } })
        #expect(try node.client.status().jobs == 0)
        let refused = try execute(node, #"{"command":"true"}"#)
        #expect(refused.status == 429)
        #expect(refused.errorCode == "too_many_jobs")
        #expect(refused.text.contains("sending their results"))
        close(fd)
        fd = -1
        // The client went away: the place is free again.
        #expect(try eventually(10) { try execute(node, #"{"command":"true"}"#).status == 200 })
    }

    /// A caller other than the node's owner holds at most half of execution.maxConcurrent, and
    /// such callers together leave the last place to the owner, who is held to neither.
    @Test func callersOtherThanTheOwnerLeaveItAPlace() throws {
        let helper = String(repeating: "h", count: 40), second = String(repeating: "s", count: 40)
        let node = try node {
            replacingLine(replacingLine($0, "maxConcurrent: 10", "maxConcurrent: 4"),
                          "  allowedKeys: {}", "  allowedKeys: {helper: \(helper), second: \(second)}")
        }
        defer { node.cleanUp() }
        for name in ["helper", "second"] { #expect(try node.cli("peers", "grant", "key:\(name)", "exec").status == 0) }
        let group = DispatchGroup()
        func sleeper(_ key: String?) {
            group.enter()
            DispatchQueue.global().async {
                _ = try? node.http("POST", "/api/v1/execute", body: #"{"command":"sleep","args":["30"]}"#, key: key)
                group.leave()
            }
        }
        func run(_ key: String?) throws -> CurlHTTPClient.Response {
            try node.http("POST", "/api/v1/execute", body: #"{"command":"true"}"#, key: key)
        }
        sleeper(helper)
        sleeper(helper)
        #expect(try eventually(5) { try node.client.status().jobs == 2 })
        // Half of 4 for one caller.
        let overShare = try run(helper)
        #expect(overShare.status == 429 && overShare.errorCode == "too_many_jobs")
        #expect(overShare.text.contains("half of execution.maxConcurrent"), "\(overShare.text)")
        // Three of 4 for every such caller together: the last is the owner's.
        sleeper(second)
        #expect(try eventually(5) { try node.client.status().jobs == 3 })
        let ownersPlace = try run(second)
        #expect(ownersPlace.status == 429 && ownersPlace.text.contains("kept for this node's owner"), "\(ownersPlace.text)")
        #expect(try run(nil).status == 200)
        for job in try node.client.jobs(includeFinished: false) { _ = try? node.client.cancelJob(job.jobId) }
        group.wait()
        #expect(try eventually(5) { try run(helper).status == 200 })
        // The owner is held to neither: all 4 places, more than half and the last one too.
        let other = try self.node { replacingLine($0, "maxConcurrent: 10", "maxConcurrent: 4") }
        defer { other.cleanUp() }
        for _ in 0..<4 {
            group.enter()
            DispatchQueue.global().async {
                _ = try? other.http("POST", "/api/v1/execute", body: #"{"command":"sleep","args":["30"]}"#)
                group.leave()
            }
        }
        #expect(try eventually(5) { try other.client.status().jobs == 4 })
        for job in try other.client.jobs(includeFinished: false) { _ = try? other.client.cancelJob(job.jobId) }
        group.wait()
    }

    @Test func hugeOutputIsCappedAndMemoryStaysBounded() throws {
        let node = try node { $0.replacingOccurrences(of: "maxOutputBytes: 10485760", with: "maxOutputBytes: 1048576") }
        defer { node.cleanUp() }
        let pid = try #require(node.process?.processIdentifier)
        let before = Self.peakRSSKiB(pid)
        let result = try node.client.execute(ExecuteRequest(command: "sh", args: ["-c", "head -c 300000000 /dev/zero | tr '\\0' a"]))
        #expect(result.truncated)
        #expect(result.exitCode == 0)  // the program ran to the end; only its output was cut
        #expect(result.stdout.utf8.count == 1_048_576)
        #expect(result.stdout.allSatisfy { $0 == "a" })
        // The cap counts the answer's bytes: a NUL is six escaped (\u0000), so 1 MiB of answer
        // holds 174,762 of them, where counting raw bytes made the answer 6 MiB.
        let raw = try execute(node, #"{"command":"head","args":["-c","300000000","/dev/zero"]}"#)
        #expect(raw.status == 200)
        #expect(raw.body.count < 1_048_576 + 4096, "answer of \(raw.body.count) bytes")
        let zeros = try raw.json(ExecuteResult.self)
        #expect(zeros.truncated)
        #expect(zeros.stdout.unicodeScalars.count == 174_762)
        #expect(zeros.stdout.unicodeScalars.allSatisfy { $0.value == 0 })
        var streamedBytes = 0
        var streamedResult: ExecuteResult?
        try node.client.executeStream(ExecuteRequest(command: "head", args: ["-c", "300000000", "/dev/urandom"])) { event in
            if event.event == "stdout" { streamedBytes += event.data.utf8.count }
            if event.event == "exit" { streamedResult = try? JSONDecoder().decode(ExecuteResult.self, from: Data(event.data.utf8)) }
            return true
        }
        #expect(streamedResult?.truncated == true)
        #expect(streamedBytes < 3 * 1_048_576)  // base64 of at most 1 MiB, plus framing
        let growth = Self.peakRSSKiB(pid) - before
        #expect(growth < 64 * 1024, "daemon peak RSS grew by \(growth) KiB while commands printed 600 MB")
    }

    @Test func cancelKillsTheWholeProcessGroup() throws {
        let node = try node()
        defer { node.cleanUp() }
        var grandchild: Int32?
        var jobId: String?
        var result: ExecuteResult?
        try node.client.executeStream(ExecuteRequest(command: "sh", args: ["-c", "sleep 300 & echo $!; wait"])) { event in
            switch event.event {
            case "start":
                jobId = (try? JSONDecoder().decode(ExecuteStreamEvent.Start.self, from: Data(event.data.utf8)))?.jobId
            case "stdout":
                let output = try? JSONDecoder().decode(ExecuteStreamEvent.Output.self, from: Data(event.data.utf8))
                grandchild = output?.text.flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
                let listed = (try? node.client.jobs(includeFinished: false)) ?? []
                #expect(listed.first?.jobId == jobId)
                #expect(listed.first?.caller == "local")
                #expect(listed.first?.command == "sh")
                if let jobId { try? node.client.cancelJob(jobId) }
            case "exit":
                result = try? JSONDecoder().decode(ExecuteResult.self, from: Data(event.data.utf8))
            default: break
            }
            return true
        }
        #expect(result?.cancelled == true)
        #expect(result?.signal == "SIGTERM")
        let pid = try #require(grandchild)
        #expect(Self.waitUntil(3) { !Self.alive(pid) }, "the grandchild \(pid) survived the cancel")
        let finished = try node.client.jobs(includeFinished: true)
        #expect(finished.contains { $0.jobId == jobId && $0.state == "finished" && $0.cancelled == true })
        #expect(try node.http("DELETE", "/api/v1/execute/job_0000000000000000").status == 404)
    }

    @Test func clientDisconnectKillsTheJob() throws {
        let node = try node()
        defer { node.cleanUp() }
        var grandchild: Int32?
        try node.client.executeStream(ExecuteRequest(command: "sh", args: ["-c", "sleep 300 & echo $!; wait"])) { event in
            guard event.event == "stdout" else { return true }
            let output = try? JSONDecoder().decode(ExecuteStreamEvent.Output.self, from: Data(event.data.utf8))
            grandchild = output?.text.flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            return false  // hang up
        }
        let pid = try #require(grandchild)
        let hungUp = Date()
        #expect(Self.waitUntil(8) { !Self.alive(pid) }, "the job's process \(pid) outlived its client")
        // As the README says: noticed within a quarter of a second, SIGTERM at once.
        #expect(Date().timeIntervalSince(hungUp) < 1, "the job died \(Date().timeIntervalSince(hungUp)) s after its client left")
        #expect(Self.waitUntil(3) { (try? node.client.status().jobs) == 0 })
    }

    @Test func stoppingTheDaemonStopsItsJobs() throws {
        let node = try node()
        defer { node.cleanUp() }
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-pid-\(UUID().uuidString)").path
        DispatchQueue.global().async {
            _ = try? node.client.execute(ExecuteRequest(command: "sh", args: ["-c", "sleep 300 & echo $! > \(marker); wait"]))
        }
        #expect(Self.waitUntil(5) { FileManager.default.fileExists(atPath: marker) })
        let pid = try #require(Int32((try? String(contentsOfFile: marker, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""))
        try? FileManager.default.removeItem(atPath: marker)
        #expect(Self.alive(pid))
        #expect(node.stop() == 0)
        #expect(Self.waitUntil(3) { !Self.alive(pid) })
    }

    @Test func badInputIsA4xxNeverA500() throws {
        let node = try node()
        defer { node.cleanUp() }
        let cases: [(String, Int, String)] = [
            (#"{"args":["x"]}"#, 400, "bad_json"),
            (#"{"command":""}"#, 400, "bad_command"),
            (#"{"command":"no-such-program-here"}"#, 400, "command_not_found"),
            (#"{"command":"ls","cwd":"/no/such/dir"}"#, 400, "bad_cwd"),
            (#"{"command":"ls","cwd":"tmp"}"#, 400, "bad_cwd"),
            // stat(2) reads up to the NUL: this once ran in /tmp.
            (#"{"command":"ls","cwd":"/tmp\u0000/no/such/dir"}"#, 400, "bad_cwd"),
            (#"{"command":"ls","env":{"X":"a\u0000b"}}"#, 400, "bad_env"),
            (#"{"command":"ls","args":"-l"}"#, 400, "bad_json"),
            (#"{"command":"ls","timeout":-5}"#, 400, "bad_timeout"),
            (#"{"command":"ls","env":{"LD_PRELOAD":"/tmp/x.so"}}"#, 400, "forbidden_env"),
            (#"{"command":"ls","env":{"PATH":"/tmp"}}"#, 400, "forbidden_env"),
            (#"{"command":"/etc/passwd"}"#, 400, "command_not_found"),
        ]
        for (body, status, code) in cases {
            let response = try execute(node, body)
            #expect(response.status == status, "\(body)")
            #expect(response.errorCode == code, "\(body): \(response.text)")
        }
        #expect(try execute(node, #"{"command":"ls","env":{"LD_PRELOAD":"/tmp/x.so"}}"#).text.contains("LD_PRELOAD"))
        #expect(try execute(node, #"{"command":"ls","env":{"X":"a\u0000b"}}"#).text.contains("value of environment variable X"))
    }

    @Test func executeIsRateLimitedPerCaller() throws {
        let node = try TestNode {
            $0.replacingOccurrences(of: "  execute: 30\n", with: "  execute: 2\n")
                .replacingOccurrences(of: "  exemptLocalOwner: true", with: "  exemptLocalOwner: false")
        }
        defer { node.cleanUp() }
        try node.start()
        #expect(try execute(node, #"{"command":"true"}"#).status == 200)
        #expect(try node.http("POST", "/api/v1/execute/stream", body: #"{"command":"true"}"#).status == 200)
        let limited = try execute(node, #"{"command":"true"}"#)
        #expect(limited.status == 429)
        #expect(limited.errorCode == "rate_limited")
    }

    static func peakRSSKiB(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }
}

/// `loopsy exec` as a person uses it.
@Suite struct ExecCLITests {
    @Test func exitCodesAndStreamsPassThrough() throws {
        let node = try TestNode { $0.replacingOccurrences(of: "  execute: 30\n", with: "  execute: 0\n") }
        defer { node.cleanUp() }
        try node.start()
        try Data("\(node.port)\n".utf8).write(to: URL(fileURLWithPath: node.dataDir + "/daemon.port"))
        let ok = try node.cli("exec", "local", "sh", "-c", "echo to-out; echo to-err >&2; exit 5")
        #expect(ok.status == 5)
        #expect(ok.stdout == "to-out\n")
        #expect(ok.stderr == "to-err\n")
        let killed = try node.cli("exec", "local", "sh", "-c", "kill -TERM $$")
        #expect(killed.status == 143)
        let denied = try node.cli("exec", "local", "rm", "-rf", "/tmp/nothing-here")
        #expect(denied.status == 1)
        #expect(denied.stderr == "loopsy: 'rm' is in execution.denylist\n")
        let timedOut = try node.cli("exec", "--timeout", "0.3", "local", "sleep", "10")
        #expect(timedOut.status == 143)
        #expect(timedOut.stderr.contains("timed out"))
        let unknownPeer = try node.cli("exec", "nowhere", "ls")
        #expect(unknownPeer.status == 1)
        #expect(unknownPeer.stderr.contains("no known peer is named 'nowhere'"))
    }

    @Test func ctrlCCancelsTheRemoteJob() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        try Data("\(node.port)\n".utf8).write(to: URL(fileURLWithPath: node.dataDir + "/daemon.port"))
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-cc-\(UUID().uuidString)").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Binaries.path("loopsy"))
        process.arguments = ["exec", "local", "sh", "-c", "sleep 300 & echo $! > \(marker); wait"]
        process.environment = ProcessInfo.processInfo.environment.merging(node.environment) { $1 }
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        #expect(ExecuteTests.waitUntil(5) { FileManager.default.fileExists(atPath: marker) })
        Thread.sleep(forTimeInterval: 0.2)
        let pid = try #require(Int32((try? String(contentsOfFile: marker, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""))
        try? FileManager.default.removeItem(atPath: marker)
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        #expect(process.terminationStatus == 130)
        #expect(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).contains("cancelling"))
        #expect(ExecuteTests.waitUntil(3) { !ExecuteTests.alive(pid) })
    }

    /// The first Ctrl-C asks for the job to be cancelled; a second one leaves at once even while
    /// that cancel waits on a daemon that does not answer (it was asked on the queue the second
    /// Ctrl-C is handled on, and held it for the request's 30 s timeout). Thawed, the daemon
    /// ends the job: its client is gone.
    @Test func aSecondCtrlCLeavesWhileTheCancelWaitsForAFrozenDaemon() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        try Data("\(node.port)\n".utf8).write(to: URL(fileURLWithPath: node.dataDir + "/daemon.port"))
        let daemon = try #require(node.process?.processIdentifier)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Binaries.path("loopsy"))
        process.arguments = ["exec", "local", "sh", "-c", "echo started; exec sleep 300"]
        process.environment = ProcessInfo.processInfo.environment.merging(node.environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        // Both streams are read on threads of their own, so no step waits without a deadline.
        let output = Mutex(Data()), errors = Mutex(Data())
        let outReader = out.fileHandleForReading, errReader = err.fileHandleForReading
        DispatchQueue.global().async {
            while case let chunk = outReader.availableData, !chunk.isEmpty { output.withLock { $0.append(chunk) } }
        }
        DispatchQueue.global().async {
            while case let chunk = errReader.availableData, !chunk.isEmpty { errors.withLock { $0.append(chunk) } }
        }
        #expect(ExecuteTests.waitUntil(10) { output.withLock { $0 } == Data("started\n".utf8) })

        kill(daemon, SIGSTOP)
        defer { kill(daemon, SIGCONT) }
        kill(process.processIdentifier, SIGINT)
        #expect(ExecuteTests.waitUntil(5) {
            errors.withLock { String(decoding: $0, as: UTF8.self) }.contains("cancelling the remote job")
        })
        kill(process.processIdentifier, SIGINT)
        #expect(ExecuteTests.waitUntil(10) { !process.isRunning }, "the second Ctrl-C did not end loopsy exec")
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        #expect(process.terminationStatus == 130)

        kill(daemon, SIGCONT)
        #expect(ExecuteTests.waitUntil(15) { (try? node.client.jobs(includeFinished: false).isEmpty) == true })
    }
}
