import Foundation
import LoopsyClient
import LoopsyAPI
import LoopsyStore
import Testing

/// Limits the config names that no other test sets: each is set low in config.yaml and met
/// through the API, as a user meets it.
@Suite struct ConfigLimitTests {
    @Test func pendingApprovalsAndTheirLifetimeFollowTheChannelsSection() throws {
        let node = try TestNode {
            replacingLine(replacingLine($0, "  maxPendingApprovals: 100", "  maxPendingApprovals: 2"),
                          "  approvalTimeoutSeconds: 300", "  approvalTimeoutSeconds: 77")
        }
        defer { node.cleanUp() }
        try node.start()
        func prompt(_ id: String) throws -> CurlHTTPClient.Response {
            try node.http("POST", "/api/v1/approvals", body: """
                {"requestId":"\(id)","toolName":"Bash","description":"list files","inputPreview":"ls"}
                """)
        }
        let first = try prompt("aaaaa")
        #expect(first.status == 201, "\(first.text)")
        let info = try first.json(ApprovalInfo.self)
        #expect(info.expiresAt - info.createdAt == 77_000)
        #expect(try prompt("bbbbb").status == 201)
        let third = try prompt("ccccc")
        #expect(third.status == 429 && third.text.contains("channels.maxPendingApprovals"), "\(third.text)")
        // Answering one makes room.
        #expect(try node.http("POST", "/api/v1/approvals/\(info.id)/answer", body: #"{"behavior":"deny"}"#).status == 200)
        #expect(try prompt("ccccc").status == 201)
    }

    /// audit.retentionDays (audit rows and finished jobs) and aiTasks.retentionDays (finished
    /// tasks with their events): the daemon's upkeep forgets what is older and keeps the rest.
    /// Rows a day or more old cannot be made by waiting: they are written into the database while
    /// the daemon is stopped, dated in the past, and the daemon started again finds them.
    @Test func retentionDaysForgetWhatIsOlder() throws {
        let node = try TestNode {
            replacingLine(replacingLine($0, "  retentionDays: 30", "  retentionDays: 2"), "  retentionDays: 7", "  retentionDays: 3")
        }
        defer { node.cleanUp() }
        try node.start()
        node.stop()
        let now = Int64(Date().timeIntervalSince1970 * 1000), day: Int64 = 86_400_000
        let ages: [(name: String, age: Int64)] = [("d1", day * 3 / 2), ("d2", day * 5 / 2), ("d3", day * 7 / 2)]
        do {
            let database = try Database(path: node.dataDir + "/loopsy.db")
            for (name, age) in ages {
                let time = now - age
                try database.execute("""
                    INSERT INTO audit (time, request_id, caller, method, path, status, duration_ms, remote)
                        VALUES (\(time), 'r-\(name)', 'local', 'GET', '/old/\(name)', 200, 1, '127.0.0.1');
                    INSERT INTO jobs (id, caller, command, args, cwd, pid, streamed, started_at, finished_at, exit_code,
                                      timed_out, truncated, cancelled, duration_ms)
                        VALUES ('job_old_\(name)', 'local', 'true', '[]', '/', 1, 0, \(time), \(time), 0, 0, 0, 0, 1);
                    INSERT INTO ai_tasks (id, caller, prompt, cwd, state, created_at, finished_at, exit_code, last_seq)
                        VALUES ('task_old_\(name)', 'local', 'old \(name)', '/', 'completed', \(time), \(time), 0, 1);
                    INSERT INTO ai_task_events (task_id, seq, time, type, data)
                        VALUES ('task_old_\(name)', 1, \(time), 'text', '{"text":"old"}');
                    """)
            }
        }
        try node.start()
        // The upkeep runs every 10 seconds.
        #expect(try eventually(25) { try !node.client.audit(limit: 1000).contains { $0.path == "/old/d2" } })
        let paths = try node.client.audit(limit: 1000).map(\.path)
        #expect(paths.contains("/old/d1") && !paths.contains("/old/d3"), "audit: \(paths.filter { $0.hasPrefix("/old/") })")
        let jobs = try node.client.jobs(includeFinished: true).map(\.jobId)
        #expect(jobs.contains("job_old_d1") && !jobs.contains("job_old_d2") && !jobs.contains("job_old_d3"), "jobs: \(jobs)")
        let tasks = try node.client.tasks(limit: 100).map(\.id)
        #expect(tasks.contains("task_old_d1") && tasks.contains("task_old_d2") && !tasks.contains("task_old_d3"),
                "tasks: \(tasks)")
        node.stop()
        let database = try Database(path: node.dataDir + "/loopsy.db")
        let events = try database.prepare("SELECT task_id FROM ai_task_events ORDER BY task_id").rows { $0.text(0) }
        #expect(events == ["task_old_d1", "task_old_d2"], "a forgotten task's events go with it")
    }

    @Test func messagesLiveForTheDefaultTtlUnlessTheySayOtherwise() throws {
        let node = try TestNode { replacingLine($0, "  defaultTtl: 86400", "  defaultTtl: 7") }
        defer { node.cleanUp() }
        try node.start()
        let sent = try node.http("POST", "/api/v1/messages", body: #"{"to":"local","body":"short-lived"}"#)
        #expect(sent.status < 300, "\(sent.text)")
        let message = try #require(try sent.json(OutboxListResponse.self).messages.first)
        #expect(message.expiresAt - message.createdAt == 7_000)
        let chosen = try node.http("POST", "/api/v1/messages", body: #"{"to":"local","body":"longer","ttl":60}"#)
        let longer = try #require(try chosen.json(OutboxListResponse.self).messages.first)
        #expect(longer.expiresAt - longer.createdAt == 60_000)
    }

    @Test func transferRequestsAreRateLimitedPerCaller() throws {
        let node = try TestNode {
            replacingLine(replacingLine($0, "  transfer: 10\n", "  transfer: 2\n"), "  exemptLocalOwner: true",
                          "  exemptLocalOwner: false")
        }
        defer { node.cleanUp() }
        try node.start()
        let list = { try node.http("POST", "/api/v1/transfer/list", body: #"{"path":"\#(node.dataDir)/logs"}"#) }
        let statuses = try (0..<3).map { _ in try list().status }
        #expect(statuses.prefix(2).allSatisfy { $0 != 429 } && statuses[2] == 429, "\(statuses)")
        let limited = try list()
        #expect(limited.text.contains("rateLimits.transfer") && limited.headers["retry-after"] != nil, "\(limited.text)")
        // Other areas have their own budgets.
        #expect(try node.http("GET", "/api/v1/context").status == 200)
    }
}
