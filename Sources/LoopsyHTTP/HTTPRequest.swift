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
    public var headers: HTTPHeaders
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
    /// The query string is not percent-encoded UTF-8 (`query` is then empty). The handler
    /// refuses such a request, after it has decided whether the caller may make it at all.
    public var queryUndecodable: Bool

    public init(method: String, rawPath: String, query: [String: String] = [:],
                headers: HTTPHeaders = [:], body: [UInt8] = [], remoteAddress: String = "127.0.0.1",
                bodySink: (any HTTPBodySink)? = nil, secure: Bool = false, planNote: (any Sendable)? = nil,
                queryUndecodable: Bool = false) {
        self.queryUndecodable = queryUndecodable
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
    public var headers: HTTPHeaders
    public var query: [String: String]
    public var remoteAddress: String
    public var secure: Bool
    /// See HTTPRequest.queryUndecodable.
    public var queryUndecodable: Bool

    public init(method: String, rawPath: String, headers: HTTPHeaders, query: [String: String] = [:],
                remoteAddress: String = "127.0.0.1", secure: Bool = false, queryUndecodable: Bool = false) {
        self.queryUndecodable = queryUndecodable
        self.secure = secure
        self.method = method
        self.rawPath = rawPath
        self.headers = headers
        self.query = query
        self.remoteAddress = remoteAddress
    }
}

/// A request's header fields by lower-cased name, repeated fields joined with ", ". A request
/// carries a handful, and looking one up by comparing names costs far less than hashing every
/// name into a table (a third of a small GET's work went to that); past `indexedFrom` fields
/// (a client may send thousands of tiny ones) a table indexes them, so neither adding nor
/// looking up ever costs more than the table did.
public struct HTTPHeaders: Sendable, Sequence, ExpressibleByDictionaryLiteral {
    public typealias Element = (key: String, value: String)

    private var fields: [Element] = []
    /// Where each name is in `fields`, once there are `indexedFrom` of them.
    private var index: [String: Int]?
    static let indexedFrom = 16

    public init() {}

    public init(dictionaryLiteral elements: (String, String)...) {
        for (name, value) in elements { self[name] = value }
    }

    public init(_ dictionary: [String: String]) {
        for (name, value) in dictionary { self[name] = value }
    }

    public var count: Int { fields.count }
    public var isEmpty: Bool { fields.isEmpty }

    private func position(of name: String) -> Int? {
        if let index { return index[name] }
        // Lengths first: `==` of two different small strings takes the runtime's slow path (it
        // looks for canonically equivalent forms), and most names differ in length anyway.
        let length = name.utf8.count
        return fields.firstIndex { $0.key.utf8.count == length && $0.key == name }
    }

    /// The value under exactly this (lower-case) name; setting nil removes it.
    public subscript(name: String) -> String? {
        get { position(of: name).map { fields[$0].value } }
        set {
            if let at = position(of: name) {
                if let newValue {
                    fields[at].value = newValue
                } else {
                    fields.remove(at: at)
                    if index != nil { reindex() }
                }
            } else if let newValue {
                fields.append((name, newValue))
                if index != nil {
                    index?[name] = fields.count - 1
                } else if fields.count >= Self.indexedFrom {
                    reindex()
                }
            }
        }
    }

    /// Adds a field as it arrived: a repeated name gets the value appended after ", ".
    public mutating func add(_ name: String, _ value: String) {
        // A request has a few fields (curl sends 3-4, a browser 10-15): room for them at once.
        if fields.isEmpty { fields.reserveCapacity(8) }
        if let at = position(of: name) {
            fields[at].value += ", " + value
        } else if index == nil && fields.count + 1 < Self.indexedFrom {
            fields.append((name, value))
        } else {
            self[name] = value
        }
    }

    private mutating func reindex() {
        var table: [String: Int] = [:]
        table.reserveCapacity(fields.count)
        for (offset, field) in fields.enumerated() { table[field.key] = offset }
        index = table
    }

    public func makeIterator() -> IndexingIterator<[Element]> { fields.makeIterator() }
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
