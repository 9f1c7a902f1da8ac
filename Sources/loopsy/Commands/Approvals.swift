import ArgumentParser
import LoopsyAPI
import LoopsyClient

/// `loopsy approvals`: permission prompts of Claude Code sessions waiting for a person, those of
/// this machine and those peers forwarded here.
struct Approvals: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "approvals",
        abstract: "Permission prompts waiting for an answer: this machine's sessions', and those peers sent here.",
        discussion: """
            A Claude Code session with loopsy-mcp as its channel relays its permission prompts to \
            loopsyd; they are forwarded to the peers in channels.approvers. Answer with \
            `loopsy approve <id>` (or --deny) here or on an approver; the first answer wins, and \
            the terminal's own dialog stays live.
            """)
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Also show answered and expired ones of this machine.") var all = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try runReporting {
            let client = try global.client()
            let own = try client.approvals(state: all ? nil : "pending")
            let forwarded = try Self.forwardedHere(client)
            if json {
                print(try JSONLine.encode(ApprovalListResponse(approvals: own), pretty: true))
                return
            }
            if own.isEmpty && forwarded.isEmpty {
                print("no permission prompts wait for an answer")
                return
            }
            for approval in own {
                print("\(approval.id)  \(approval.state)  \(TerminalText.safe(approval.toolName)): "
                    + TerminalText.safe(approval.description))
                if !approval.inputPreview.isEmpty { print("    \(TerminalText.safe(String(approval.inputPreview.prefix(300))))") }
                if approval.state == .pending {
                    print("    answer: loopsy approve \(approval.id)  (or --deny)")
                } else if let by = approval.answeredBy {
                    print("    answered by \(by)")
                }
            }
            for message in forwarded {
                // A peer's words: printed so they cannot rewrite what is on the screen.
                print("\(TerminalText.safe(message.id))  from \(TerminalText.safe(message.fromName)) (\(message.from.prefix(12)))")
                print("    " + TerminalText.safe(message.body).split(separator: "\n").joined(separator: "\n    "))
            }
        }
    }

    /// Unacked approval messages in the inbox: prompts a peer forwarded to this machine.
    static func forwardedHere(_ client: LoopsyClient) throws -> [InboxMessage] {
        var found: [InboxMessage] = []
        try client.walkInbox(maxPages: 100) { page in found += page.filter { $0.type == .approval && $0.state != "acked" } }
        return found
    }
}

struct Approve: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "approve",
        abstract: "Allow (or --deny) a Claude Code permission prompt, of this machine or forwarded by a peer.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The approval id (apr_…), as `loopsy approvals` shows it.") var id: String
    @Flag(help: "Deny instead of allow.") var deny = false
    @Option(help: "The peer (nodeId) whose prompt this is, when the id is not unique.") var from: String?

    func run() throws {
        try runReporting {
            let client = try global.client(timeoutSeconds: 30)
            // Peers choose their message ids: an id may name several prompts, and then the
            // person says which (the answer must go where the prompt they read came from).
            let forwardedAll = try Approvals.forwardedHere(client).filter { $0.id == id && (from == nil || $0.from == from) }
            let local = from == nil ? (try? client.approval(id)) : nil
            guard forwardedAll.count + (local == nil ? 0 : 1) <= 1 else {
                let sources = forwardedAll.map { "\(TerminalText.safe($0.fromName)) (\($0.from))" } + (local == nil ? [] : ["this machine"])
                throw CLIFailure(message: "\(id) names \(sources.count) prompts: \(sources.joined(separator: ", ")); "
                    + "say which with --from <nodeId>", code: CLIFailure.apiError)
            }
            let forwarded = forwardedAll.first
            let answered: ApprovalInfo
            if let forwarded {
                // A peer's prompt: answered there, through this node's daemon and its credential.
                answered = try client.answerApproval(id, allow: !deny, peer: forwarded.from)
                _ = try? client.markMessage(id, acked: true, note: deny ? "denied" : "allowed", from: forwarded.from)
                print("\(deny ? "denied" : "allowed") on \(TerminalText.safe(forwarded.fromName)): "
                    + "\(TerminalText.safe(answered.toolName)) (\(TerminalText.safe(answered.description)))")
            } else {
                answered = try client.answerApproval(id, allow: !deny)
                print("\(deny ? "denied" : "allowed"): \(TerminalText.safe(answered.toolName)) (\(TerminalText.safe(answered.description)))")
            }
        }
    }
}
