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
    /// Seconds a daemon has been up, or milliseconds something took: up to a thousand years.
    public static let uptimeSeconds: ClosedRange<Double> = 0...31_557_600_000
    public static let durationMillis: ClosedRange<Double> = 0...31_557_600_000_000
    /// Dollars a task cost (Claude Code's `total_cost_usd`; `maxBudgetUsd` stops a task at 10,000).
    public static let costUsd: ClosedRange<Double> = 0...1_000_000_000

    public static func check<Value: FixedWidthInteger>(_ value: Value?, _ range: ClosedRange<Value>, _ field: String,
                                                       code: ErrorCode = .outOfRange) throws {
        guard let value, !range.contains(value) else { return }
        throw OutOfRange(field: field, message: "must be from \(range.lowerBound) to \(range.upperBound), not \(value)",
                         code: code)
    }

    /// The same for a fractional number: NaN is in no range (infinities, from exponents past
    /// Double's, are outside every one of these), so nothing decoded can trap `Int(value)` later.
    public static func check(_ value: Double?, _ range: ClosedRange<Double>, _ field: String,
                             code: ErrorCode = .outOfRange) throws {
        guard let value, !range.contains(value) else { return }
        throw OutOfRange(field: field, message: "must be from \(range.lowerBound) to \(range.upperBound), not \(value)",
                         code: code)
    }

    /// Checks each of `values` (the items of a list answer), naming the first bad one's place.
    static func checkEach<Item: RangeChecked>(_ values: [Item], _ field: String) throws {
        for (index, value) in values.enumerated() {
            do {
                try value.checkRanges()
            } catch var error as OutOfRange {
                error.field = "\(field)[\(index)].\(error.field)"
                throw error
            }
        }
    }
}

// Answers: what the CLI and loopsy-mcp compute with (a lock's seconds left, a rate, a cost in
// cents, uptime in whole seconds) is checked where it is decoded, as requests are. A peer's
// answer reaches them through the relay unchanged, and `Int(1e300)` or `Int64.min - now`
// would stop the program.

extension HealthResponse: RangeChecked {
    public func checkRanges() throws { try WireRange.check(uptime, WireRange.uptimeSeconds, "uptime") }
}

extension StatusResponse: RangeChecked {
    public func checkRanges() throws { try WireRange.check(uptime, WireRange.uptimeSeconds, "uptime") }
}

extension ExecuteResult: RangeChecked {
    public func checkRanges() throws { try WireRange.check(durationMs, WireRange.durationMillis, "durationMs") }
}

extension JobInfo: RangeChecked {
    public func checkRanges() throws {
        try WireRange.check(startedAt, WireRange.epochMillis, "startedAt")
        try WireRange.check(finishedAt, WireRange.epochMillis, "finishedAt")
        try WireRange.check(durationMs, WireRange.durationMillis, "durationMs")
    }
}

extension JobListResponse: RangeChecked {
    public func checkRanges() throws { try WireRange.checkEach(jobs, "jobs") }
}

extension AuditEntry: RangeChecked {
    public func checkRanges() throws {
        try WireRange.check(time, WireRange.epochMillis, "time")
        try WireRange.check(durationMs, WireRange.durationMillis, "durationMs")
        try WireRange.check(count, 1...Int.max, "count")
    }
}

extension AuditListResponse: RangeChecked {
    public func checkRanges() throws { try WireRange.checkEach(entries, "entries") }
}

extension TransferPushResult: RangeChecked {
    public func checkRanges() throws {
        try WireRange.check(size, 0...Int64.max, "size")
        try WireRange.check(durationMs, WireRange.durationMillis, "durationMs")
    }
}

extension AITaskInfo: RangeChecked {
    public func checkRanges() throws {
        try WireRange.check(createdAt, WireRange.epochMillis, "createdAt")
        try WireRange.check(startedAt, WireRange.epochMillis, "startedAt")
        try WireRange.check(finishedAt, WireRange.epochMillis, "finishedAt")
        try WireRange.check(costUsd, WireRange.costUsd, "costUsd")
    }
}

extension AITaskListResponse: RangeChecked {
    public func checkRanges() throws { try WireRange.checkEach(tasks, "tasks") }
}

extension LockInfo: RangeChecked {
    public func checkRanges() throws {
        try WireRange.check(acquiredAt, WireRange.epochMillis, "acquiredAt")
        try WireRange.check(expiresAt, WireRange.epochMillis, "expiresAt")
    }
}

extension LockListResponse: RangeChecked {
    public func checkRanges() throws { try WireRange.checkEach(locks, "locks") }
}

extension ContextEntry: RangeChecked {
    public func checkRanges() throws {
        try WireRange.check(createdAt, WireRange.epochMillis, "createdAt")
        try WireRange.check(updatedAt, WireRange.epochMillis, "updatedAt")
        try WireRange.check(expiresAt, WireRange.epochMillis, "expiresAt")
    }
}

extension ContextListResponse: RangeChecked {
    public func checkRanges() throws { try WireRange.checkEach(entries, "entries") }
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

extension LockHeldBody: RangeChecked {
    public func checkRanges() throws { try current.checkRanges() }
}

extension RevisionMismatchBody: RangeChecked {
    public func checkRanges() throws { try current?.checkRanges() }
}
