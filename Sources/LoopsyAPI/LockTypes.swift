/// `POST /locks/{name}`: take a lock for `ttl` seconds (a lease), as `holder` (a name for
/// people: which agent, which machine).
public struct LockAcquireRequest: Codable, Sendable {
    public var holder: String
    public var ttl: Int
    public init(holder: String, ttl: Int) {
        self.holder = holder
        self.ttl = ttl
    }
}

/// `POST /locks/{name}/renew` and `DELETE /locks/{name}`: the holder proves itself with its
/// fencing token.
public struct LockRenewRequest: Codable, Sendable {
    public var token: Int64
    public var ttl: Int
    public init(token: Int64, ttl: Int) {
        self.token = token
        self.ttl = ttl
    }
}

/// A held lock. `token` (the fencing token) grows with every acquisition on this node: a
/// resource that remembers the largest token it saw can refuse a holder whose lease ended.
public struct LockInfo: Codable, Sendable, Equatable {
    public var name: String
    public var holder: String
    public var token: Int64
    public var acquiredAt: Int64
    public var expiresAt: Int64
    public init(name: String, holder: String, token: Int64, acquiredAt: Int64, expiresAt: Int64) {
        self.name = name
        self.holder = holder
        self.token = token
        self.acquiredAt = acquiredAt
        self.expiresAt = expiresAt
    }
}

public struct LockReleased: Codable, Sendable {
    public var released: Bool
    public init(released: Bool) { self.released = released }
}

public struct LockListResponse: Codable, Sendable {
    public var locks: [LockInfo]
    public init(locks: [LockInfo]) { self.locks = locks }
}

/// The body of a 409 `lock_held`: the error and who holds the lock until when.
public struct LockHeldBody: Codable, Sendable {
    public var error: ErrorBody.Detail
    public var current: LockInfo
    public init(message: String, current: LockInfo) {
        error = ErrorBody.Detail(code: .lockHeld, message: message)
        self.current = current
    }
}

public enum LockLimits {
    /// Longest lease: a day (a holder renews; a crashed one frees the lock when it ends).
    public static let ttlSeconds: ClosedRange<Int> = 1...86_400
    public static let maxNameBytes = 512
    public static let maxHolderBytes = 128
}

extension LockAcquireRequest: RangeChecked {
    public func checkRanges() throws { try WireRange.check(ttl, LockLimits.ttlSeconds, "ttl", code: .badTtl) }
}

extension LockRenewRequest: RangeChecked {
    public func checkRanges() throws {
        try WireRange.check(ttl, LockLimits.ttlSeconds, "ttl", code: .badTtl)
        try WireRange.check(token, 1...Int64.max, "token", code: .badToken)
    }
}
