/// Numbers that come from outside (request bodies, peers' messages and answers) are checked
/// against these ranges where they are decoded: `SafeJSON.decode` calls `checkRanges()` on every
/// value whose type is `RangeChecked`, before any handler sees it. Each wire type states its
/// ranges once, next to its definition, so no arithmetic on a decoded number can overflow.
public protocol RangeChecked {
    /// Throws `OutOfRange` for the first field outside its range.
    func checkRanges() throws
}

/// A decoded number outside the range its field allows.
public struct OutOfRange: Error, CustomStringConvertible, Equatable {
    public var field: String
    public var message: String
    /// The API error code a server answers with (a 400).
    public var code: ErrorCode

    public var description: String { "field '\(field)' \(message)" }
}

public enum WireRange {
    /// Unix epoch milliseconds, from 1970 to the end of year 9999.
    public static let epochMillis: ClosedRange<Int64> = 0...253_402_300_799_999
    /// Seconds until something expires: up to ten years.
    public static let ttlSeconds: ClosedRange<Int> = 1...315_360_000
    /// Milliseconds a job may run: up to 30 days (execution.maxTimeout caps it further).
    public static let timeoutMillis: ClosedRange<Int> = 1...2_592_000_000
    public static let port: ClosedRange<Int> = 1...65535

    public static func check<Value: FixedWidthInteger>(_ value: Value?, _ range: ClosedRange<Value>, _ field: String,
                                                       code: ErrorCode = .outOfRange) throws {
        guard let value, !range.contains(value) else { return }
        throw OutOfRange(field: field, message: "must be from \(range.lowerBound) to \(range.upperBound), not \(value)",
                         code: code)
    }
}

extension ExecuteRequest: RangeChecked {
    public func checkRanges() throws {
        try WireRange.check(timeout, WireRange.timeoutMillis, "timeout", code: .badTimeout)
    }
}

extension ContextPutRequest: RangeChecked {
    public func checkRanges() throws {
        try WireRange.check(ttl, WireRange.ttlSeconds, "ttl", code: .badTtl)
        try WireRange.check(ifRevision, 0...Int64.max, "ifRevision", code: .badRevision)
    }
}

extension ContextBroadcastRequest: RangeChecked {
    public func checkRanges() throws { try WireRange.check(ttl, WireRange.ttlSeconds, "ttl", code: .badTtl) }
}

extension MessageSendRequest: RangeChecked {
    public func checkRanges() throws { try WireRange.check(ttl, WireRange.ttlSeconds, "ttl", code: .badTtl) }
}

extension BroadcastRequest: RangeChecked {
    public func checkRanges() throws { try WireRange.check(ttl, WireRange.ttlSeconds, "ttl", code: .badTtl) }
}

extension MessageDelivery: RangeChecked {
    public func checkRanges() throws {
        try WireRange.check(createdAt, WireRange.epochMillis, "createdAt")
        try WireRange.check(expiresAt, WireRange.epochMillis, "expiresAt")
    }
}

extension MessageReceipt: RangeChecked {
    public func checkRanges() throws { try WireRange.check(at, WireRange.epochMillis, "at") }
}

extension PeerAddRequest: RangeChecked {
    public func checkRanges() throws { try WireRange.check(port, WireRange.port, "port", code: .badPort) }
}

extension PairInitiateRequest: RangeChecked {
    public func checkRanges() throws { try WireRange.check(port, WireRange.port, "port", code: .badPort) }
}

extension PairStartResponse: RangeChecked {
    public func checkRanges() throws {
        try WireRange.check(port, WireRange.port, "port")
        try WireRange.check(expiresAt, WireRange.epochMillis, "expiresAt")
    }
}

extension IdentityResponse: RangeChecked {
    public func checkRanges() throws { try WireRange.check(port, WireRange.port, "port") }
}
