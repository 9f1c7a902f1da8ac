/// A path of the REST API with `{name}` segments (`{name+}`: the rest of the path). The route
/// table registers `pattern`; clients call the path with its values, each percent-encoded, and
/// an optional query. One spelling of every path for the daemon and its clients.
public struct APIPath: Sendable, Hashable, CustomStringConvertible {
    /// "/api/v1/context/{key}".
    public let pattern: String

    init(_ relative: String) { pattern = LoopsyVersion.apiBase + relative }

    public var description: String { pattern }

    /// The path with each `{…}` segment replaced, in order, by a value (percent-encoded, except
    /// for a `{…+}` segment, which is a path of its own), then `?query` when there is any.
    public func callAsFunction(_ values: String..., query: QueryItems = []) -> String {
        var path = ""
        var remaining = values[...]
        for segment in pattern.split(separator: "/", omittingEmptySubsequences: false).dropFirst() {
            path += "/"
            if segment.hasPrefix("{") {
                precondition(!remaining.isEmpty, "\(pattern) needs a value for \(segment)")
                let value = remaining.removeFirst()
                path += segment.hasSuffix("+}") ? value : PathEncoding.segment(value)
            } else {
                path += segment
            }
        }
        precondition(remaining.isEmpty, "\(pattern) got more values than it has segments")
        let encoded = query.encoded
        return encoded.isEmpty ? path : path + "?" + encoded
    }
}

/// A query string's items, in order; nil values are left out.
public struct QueryItems: Sendable, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    public var items: [(name: String, value: String?)]

    public init(_ items: [(name: String, value: String?)]) { self.items = items }
    public init(arrayLiteral elements: (String, String?)...) { items = elements.map { (name: $0.0, value: $0.1) } }
    public init(dictionaryLiteral elements: (String, (any CustomStringConvertible)?)...) {
        items = elements.map { (name: $0.0, value: $0.1.map { "\($0)" }) }
    }

    /// "a=1&b=x%20y" (names and values percent-encoded).
    public var encoded: String {
        items.compactMap { item in item.value.map { PathEncoding.segment(item.name) + "=" + PathEncoding.segment($0) } }
            .joined(separator: "&")
    }
}

/// Every path of the REST API (`LoopsyVersion.apiBase` + these).
public enum API {
    public static let aiTasks = APIPath("/ai-tasks")
    public static let aiTask = APIPath("/ai-tasks/{id}")
    public static let aiTaskApprove = APIPath("/ai-tasks/{id}/approve")
    public static let aiTaskEvents = APIPath("/ai-tasks/{id}/events")
    public static let aiTaskPermissions = APIPath("/ai-tasks/{id}/permissions")
    public static let aiTaskStream = APIPath("/ai-tasks/{id}/stream")
    public static let approvals = APIPath("/approvals")
    public static let approval = APIPath("/approvals/{id}")
    public static let approvalAnswer = APIPath("/approvals/{id}/answer")
    public static let audit = APIPath("/audit")
    public static let context = APIPath("/context")
    public static let contextBroadcast = APIPath("/context/broadcast")
    public static let contextEntry = APIPath("/context/{key}")
    public static let events = APIPath("/events")
    public static let execute = APIPath("/execute")
    public static let executeJobs = APIPath("/execute/jobs")
    public static let executeStream = APIPath("/execute/stream")
    public static let executeJob = APIPath("/execute/{jobId}")
    public static let grants = APIPath("/grants")
    public static let grant = APIPath("/grants/{who}")
    public static let health = APIPath("/health")
    public static let identity = APIPath("/identity")
    public static let locks = APIPath("/locks")
    public static let lock = APIPath("/locks/{name}")
    public static let lockRenew = APIPath("/locks/{name}/renew")
    public static let messages = APIPath("/messages")
    public static let messagesBroadcast = APIPath("/messages/broadcast")
    public static let messagesDeliver = APIPath("/messages/deliver")
    public static let inbox = APIPath("/messages/inbox")
    public static let inboxAck = APIPath("/messages/inbox/{id}/ack")
    public static let inboxRead = APIPath("/messages/inbox/{id}/read")
    public static let inboxSession = APIPath("/messages/inbox/{id}/session")
    public static let outbox = APIPath("/messages/outbox")
    public static let outboxMessage = APIPath("/messages/outbox/{id}")
    public static let messagesReceipt = APIPath("/messages/receipt")
    public static let openAPI = APIPath("/openapi.json")
    public static let pairAbort = APIPath("/pair/abort")
    public static let pairCancel = APIPath("/pair/cancel")
    public static let pairCommit = APIPath("/pair/commit")
    public static let pairConfirm = APIPath("/pair/confirm")
    public static let pairExchange = APIPath("/pair/exchange")
    public static let pairInitiate = APIPath("/pair/initiate")
    public static let pairReveal = APIPath("/pair/reveal")
    public static let pairStart = APIPath("/pair/start")
    public static let pairStatus = APIPath("/pair/status")
    public static let peers = APIPath("/peers")
    public static let peersHandshake = APIPath("/peers/handshake")
    public static let peer = APIPath("/peers/{nodeId}")
    public static let peerForward = APIPath("/peers/{peer}/{path+}")
    public static let status = APIPath("/status")
    public static let transferChecksum = APIPath("/transfer/checksum")
    public static let transferList = APIPath("/transfer/list")
    public static let transferPull = APIPath("/transfer/pull")
    public static let transferPush = APIPath("/transfer/push")
}

public enum PathEncoding {
    /// Percent-encodes everything but RFC 3986 unreserved characters, and the dots of a segment
    /// that is "." or "..": clients remove such segments with the one before (curl does), so a
    /// key or peer named ".." would name another path.
    public static func segment(_ text: String) -> String {
        if text == "." || text == ".." { return String(repeating: "%2E", count: text.utf8.count) }
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                 UInt8(ascii: "~"):
                result.append(Character(Unicode.Scalar(byte)))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                result += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return result
    }
}
