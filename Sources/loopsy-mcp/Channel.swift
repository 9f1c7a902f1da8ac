import Foundation
import LoopsyAPI
import LoopsyClient
import MCP

// loopsy-mcp as a Claude Code channel: messages that reach this node are pushed into the running
// session (notifications/claude/channel), and the session's permission prompts are relayed to
// loopsyd, where a person answers them here or on an approver peer
// (notifications/claude/channel/permission_request → notifications/claude/channel/permission).

/// An event pushed into the session: Claude shows it to the model as a <channel source="loopsy" …> block.
struct ChannelEvent: MCP.Notification {
    static let name = "notifications/claude/channel"
    struct Parameters: Hashable, Codable, Sendable {
        var content: String
        /// Flat string → string, identifier-style keys (they become the block's attributes).
        var meta: [String: String]
    }
}

/// Claude Code asks the channel to relay a permission prompt.
struct PermissionRequest: MCP.Notification {
    static let name = "notifications/claude/channel/permission_request"
    struct Parameters: Hashable, Codable, Sendable {
        var request_id: String
        var tool_name: String?
        var description: String?
        var input_preview: String?
    }
}

/// The verdict, sent back to Claude Code.
struct PermissionVerdict: MCP.Notification {
    static let name = "notifications/claude/channel/permission"
    struct Parameters: Hashable, Codable, Sendable {
        var request_id: String
        var behavior: String
    }
}

/// What the server declares on top of its MCP capabilities (the SDK's Capabilities type has no
/// `experimental` field, so StdioLineTransport adds it to the initialize result).
enum ChannelCapabilities {
    static let names = ["claude/channel", "claude/channel/permission"]

    /// The initialize result with `capabilities.experimental` added; other messages unchanged.
    static func declare(in data: Data) -> Data {
        guard data.count < 1 << 20,
              var object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              var result = object["result"] as? [String: Any], result["protocolVersion"] != nil,
              var capabilities = result["capabilities"] as? [String: Any] else { return data }
        var experimental = capabilities["experimental"] as? [String: Any] ?? [:]
        for name in names { experimental[name] = [String: Any]() }
        capabilities["experimental"] = experimental
        result["capabilities"] = capabilities
        object["result"] = result
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? data
    }
}

/// Holds one long-poll on the local daemon's inbox for the session's lifetime and turns every new
/// message into a channel event. The cursor is the inbox's seq, which survives daemon restarts:
/// after one, polling resumes from the same cursor, so nothing is lost or shown twice.
final class ChannelPump: Sendable {
    let tools: LoopsyTools
    /// Only messages of this thread (LOOPSY_CHANNEL_THREAD), or all.
    let thread: String?

    init(tools: LoopsyTools, thread: String?) {
        self.tools = tools
        self.thread = thread
    }

    func run(server: Server) async {
        var cursor: Int64?
        var backoff: UInt64 = 100_000_000
        while !Task.isCancelled {
            do {
                let client = try tools.client(timeoutSeconds: 40)
                if cursor == nil { cursor = try await blocking { _ in try Self.tail(client) } }
                let after = cursor ?? 0
                let page = try await blocking { _ in try client.inbox(unreadOnly: false, after: after, limit: 100, wait: 25) }
                // Prompts forwarded from other machines are for a person (`loopsy approvals`), never
                // pushed into a session, which could otherwise answer them itself.
                for message in page.messages where (thread == nil || message.thread == thread) && message.type != .approval {
                    try await server.notify(Message<ChannelEvent>(method: ChannelEvent.name,
                                                                  params: Self.event(for: message)))
                    // Delivered to a session (its read state is the tools' business).
                    _ = try? await blocking { _ in try client.markSessionDelivered(message.id, from: message.from) }
                }
                cursor = max(after, page.cursor)
                backoff = 100_000_000
            } catch is CancellationError {
                return
            } catch {
                // The daemon is restarting or stopped: try again, never faster than 10 times a second.
                try? await Task.sleep(nanoseconds: backoff)
                backoff = min(backoff * 2, 2_000_000_000)
            }
        }
    }

    /// The newest seq now: the session sees messages that arrive from here on (asked for alone:
    /// reading the whole inbox to find it cost a session start hundreds of MB when a peer had
    /// filled it).
    static func tail(_ client: LoopsyClient) throws -> Int64 {
        do {
            return try client.inbox(unreadOnly: false, limit: 0).cursor
        } catch ClientError.api(let error) where error.is(.badQuery) {
            // A daemon from before limit=0 (binaries replaced, daemon not restarted).
            return try client.walkInbox()
        }
    }

    static func event(for message: InboxMessage) -> ChannelEvent.Parameters {
        // `user` is what Claude Code's terminal shows as the sender; never a `source` key (Claude
        // sets that attribute itself).
        var meta = ["user": plain(message.fromName), "from_node": message.from, "message_id": plain(message.id),
                    "type": message.type.rawValue]
        if let thread = message.thread { meta["thread"] = plain(thread) }
        if let replyTo = message.replyTo { meta["reply_to"] = plain(replyTo) }
        return ChannelEvent.Parameters(content: displayable(message.body), meta: meta)
    }

    /// A sender's text as a session may show it: lines, tabs and the zero-width joiners of emoji
    /// kept, but no terminal control (ESC sequences that clear or retitle the user's terminal, C1
    /// controls) and no other format character (bidi overrides and isolates, tag characters a
    /// person cannot see but the model reads), which could make it read as something else.
    /// Claude Code itself neutralises a closing channel tag inside the content and escapes the
    /// attributes.
    static func displayable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.filter { scalar in
            if scalar == "\n" || scalar == "\t" || UnsafeText.isJoiner(scalar) { return true }
            return !UnsafeText.isControl(scalar) && !UnsafeText.disguises(scalar)
        }))
    }

    /// A peer-chosen name or id without control or format characters (bidi overrides, zero-width
    /// characters, line separators), which could disguise who is speaking.
    static func plain(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.filter {
            !UnsafeText.isControl($0) && !UnsafeText.disguises($0)
        }))
    }
}

/// Relays one permission prompt: records it in loopsyd, waits for a person's answer (here, in the
/// dashboard or on an approver peer), and hands the verdict to Claude Code. An expired prompt gets
/// no verdict: the terminal's own dialog, live all along, decides.
enum PermissionRelay {
    static func relay(_ params: PermissionRequest.Parameters, server: Server, tools: LoopsyTools) async {
        let request = ApprovalCreateRequest(
            requestId: String(params.request_id.prefix(128)), toolName: String((params.tool_name ?? "a tool").prefix(256)),
            description: String((params.description ?? "").unicodeScalars.prefix(8192)),
            inputPreview: String((params.input_preview ?? "").unicodeScalars.prefix(16384)))
        var approval: ApprovalInfo?
        for attempt in 0..<20 where approval == nil {
            do {
                let client = try tools.client()
                approval = try await blocking { _ in try client.createApproval(request) }
            } catch {
                if attempt == 19 { log("permission prompt \(params.request_id) not relayed: \(describe(error))") }
                try? await Task.sleep(nanoseconds: 250_000_000)
            }
        }
        guard var current = approval else { return }
        while current.state == .pending && !Task.isCancelled {
            do {
                let client = try tools.client(timeoutSeconds: 40)
                let id = current.id
                current = try await blocking { _ in try client.approval(id, wait: 25) }
            } catch {
                if Int64(Date().timeIntervalSince1970 * 1000) > current.expiresAt { return }
                try? await Task.sleep(nanoseconds: 500_000_000)
            }
        }
        guard current.state == .allowed || current.state == .denied else { return }
        try? await server.notify(Message<PermissionVerdict>(
            method: PermissionVerdict.name,
            params: .init(request_id: params.request_id, behavior: current.state == .allowed ? "allow" : "deny")))
    }
}
