/// A request as the server hands it to a handler: head fields plus the whole (bounded) body.
///
/// `rawPath` is exactly what the client sent before `?`, still percent-encoded: routing splits it
/// into segments first and decodes each segment on its own, so `%2F` can never create a path
/// separator and an encoded path can never reach a route the plain one would not.
public struct HTTPRequest: Sendable {
    public var method: String
    public var rawPath: String
    /// Query parameters, percent-decoded; a bare `?flag` maps to "".
    public var query: [String: String]
    /// Header names lower-cased; repeated headers joined with ", ".
    public var headers: [String: String]
    public var body: [UInt8]
    /// The peer's IP address as text ("127.0.0.1", "::1").
    public var remoteAddress: String
    /// The sink that consumed the body, when the handler chose to stream it (then `body` is empty).
    public var bodySink: (any HTTPBodySink)?
    /// Whether it arrived over TLS.
    public var secure: Bool
    /// What the handler's plan for this request found out from its head (`BodyPlan.buffer`'s
    /// note), so `handle` need not work it out again.
    public var planNote: (any Sendable)?

    public init(method: String, rawPath: String, query: [String: String] = [:],
                headers: [String: String] = [:], body: [UInt8] = [], remoteAddress: String = "127.0.0.1",
                bodySink: (any HTTPBodySink)? = nil, secure: Bool = false, planNote: (any Sendable)? = nil) {
        self.secure = secure
        self.planNote = planNote
        self.method = method
        self.rawPath = rawPath
        self.query = query
        self.headers = headers
        self.body = body
        self.remoteAddress = remoteAddress
        self.bodySink = bodySink
    }

    /// Header names are ASCII and compared without case (A–Z only, as they are stored).
    public func header(_ name: String) -> String? { headers[name.asciiLowercased()] }
}

/// The part of a request known before its body arrives: enough to refuse it, or to decide
/// where its body goes, before reading a byte of it.
public struct HTTPRequestHead: Sendable {
    public var method: String
    public var rawPath: String
    public var headers: [String: String]
    public var query: [String: String]
    public var remoteAddress: String
    public var secure: Bool

    public init(method: String, rawPath: String, headers: [String: String], query: [String: String] = [:],
                remoteAddress: String = "127.0.0.1", secure: Bool = false) {
        self.secure = secure
        self.method = method
        self.rawPath = rawPath
        self.headers = headers
        self.query = query
        self.remoteAddress = remoteAddress
    }
}

/// What a body sink did with the bytes it was given.
public enum BodyIntake: Sendable {
    /// Taken; more may come.
    case taken
    /// The upload stops, and this response is sent at once.
    case refused(HTTPResponse)
    /// Taken, but the sink's consumer is behind: no more bytes until `gate` opens. The
    /// connection waits suspended; no worker thread waits with it.
    case held(BodyGate)
}

/// Takes a request body chunk by chunk (uploads straight to disk).
public protocol HTTPBodySink: AnyObject, Sendable {
    /// Consumes the next bytes (up to MHD's read buffer at a time). It must not wait: a
    /// consumer that is behind answers `.held`.
    func consume(_ bytes: UnsafeBufferPointer<UInt8>) -> BodyIntake
    /// The request ended before it was answered (client gone, timeout): stop and clean up.
    func cancel()
}

extension HTTPBodySink {
    public func cancel() {}
}

/// What the server does with a request's body, decided from its head.
public enum BodyPlan: Sendable {
    /// Collect up to `limit` bytes in memory (larger → the handler's 413).
    case buffer(limit: Int)
    /// The same, and `note` reaches `handle` as `request.planNote` (the route the head matched).
    case bufferNoting(limit: Int, note: any Sendable)
    /// Hand the bytes to the sink as they arrive.
    case stream(any HTTPBodySink)
    /// Answer now, without reading the body.
    case respond(HTTPResponse)
}

public enum PercentDecoding {
    /// Decodes `%XX` escapes; returns nil for malformed escapes or bytes that are not UTF-8.
    /// `plusIsSpace` applies form encoding rules (query strings).
    public static func decode(_ text: Substring, plusIsSpace: Bool = false) -> String? {
        // Byte-wise: Substring.contains(Character) would walk grapheme clusters.
        if !text.utf8.contains(UInt8(ascii: "%")) && !(plusIsSpace && text.utf8.contains(UInt8(ascii: "+"))) {
            return String(text)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    return nil
                }
                bytes.append(high << 4 | low)
            case UInt8(ascii: "+") where plusIsSpace:
                bytes.append(UInt8(ascii: " "))
            default:
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
