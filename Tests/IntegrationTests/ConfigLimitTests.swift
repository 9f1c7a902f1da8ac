import Foundation
import LoopsyClient
import LoopsyAPI
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
