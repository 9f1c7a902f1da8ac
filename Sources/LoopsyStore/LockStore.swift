import LoopsyAPI

public enum LockStoreError: Error, Equatable {
    /// Someone else holds it (its lease has not ended).
    case held(LockInfo)
    /// The token is not the current holder's (the lease ended, or it never held it).
    case notHeld(current: LockInfo?)
}

/// The `locks` table: leases with fencing tokens. An expired lease is a free lock for every
/// read and write at once; rows are removed when taken again or by `sweepExpired`.
public struct LockStore: Sendable {
    private let pool: DatabasePool

    public init(pool: DatabasePool) { self.pool = pool }

    private static let columns = "name, holder, token, acquired_at, expires_at"

    private static func info(_ row: Statement) -> LockInfo {
        LockInfo(name: row.text(0), holder: row.text(1), token: row.int64(2), acquiredAt: row.int64(3),
                 expiresAt: row.int64(4))
    }

    private static func live(_ db: Database, _ name: String, now: Int64) throws -> LockInfo? {
        try db.cached("SELECT \(columns) FROM locks WHERE name = ? AND expires_at > ?")
            .rows([.text(name), .integer(now)], info).first
    }

    /// Takes `name` for `ttlMillis` with a new fencing token, unless someone holds it.
    public func acquire(_ name: String, holder: String, owner: String, ttlMillis: Int64,
                        now: Int64 = Clock.nowMillis()) throws -> LockInfo {
        try pool.write { db in
            try db.transaction {
                if let current = try Self.live(db, name, now: now) { throw LockStoreError.held(current) }
                try db.cached("UPDATE lock_tokens SET last = last + 1 WHERE id = 1").run([])
                let token = try db.cached("SELECT last FROM lock_tokens WHERE id = 1").rows([]) { $0.int64(0) }[0]
                try db.cached("""
                    INSERT OR REPLACE INTO locks (name, holder, owner, token, acquired_at, expires_at)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """).run([.text(name), .text(holder), .text(owner), .integer(token), .integer(now),
                              .integer(now + ttlMillis)])
                return LockInfo(name: name, holder: holder, token: token, acquiredAt: now, expiresAt: now + ttlMillis)
            }
        }
    }

    /// Extends the lease of the holder whose token this is.
    /// `owner`: when given, the credential that took it must be this one (the node's owner
    /// passes nil: it may renew or release any lock).
    public func renew(_ name: String, token: Int64, ttlMillis: Int64, owner: String? = nil,
                      now: Int64 = Clock.nowMillis()) throws -> LockInfo {
        try pool.write { db in
            try db.transaction {
                guard var current = try Self.live(db, name, now: now), current.token == token,
                      try Self.ownedBy(db, name, owner) else {
                    throw LockStoreError.notHeld(current: try Self.live(db, name, now: now))
                }
                current.expiresAt = now + ttlMillis
                try db.cached("UPDATE locks SET expires_at = ? WHERE name = ?").run([.integer(current.expiresAt), .text(name)])
                return current
            }
        }
    }

    /// Frees the lock if `token` is its holder's.
    public func release(_ name: String, token: Int64, owner: String? = nil, now: Int64 = Clock.nowMillis()) throws {
        try pool.write { db in
            try db.transaction {
                guard let current = try Self.live(db, name, now: now), current.token == token,
                      try Self.ownedBy(db, name, owner) else {
                    throw LockStoreError.notHeld(current: try Self.live(db, name, now: now))
                }
                try db.cached("DELETE FROM locks WHERE name = ?").run([.text(name)])
            }
        }
    }

    /// Whether the lock was taken with the credential `owner` (always, for nil).
    private static func ownedBy(_ db: Database, _ name: String, _ owner: String?) throws -> Bool {
        guard let owner else { return true }
        return try db.cached("SELECT owner FROM locks WHERE name = ?").rows([.text(name)]) { $0.text(0) }.first == owner
    }

    public func get(_ name: String, now: Int64 = Clock.nowMillis()) throws -> LockInfo? {
        try pool.read { db in try Self.live(db, name, now: now) }
    }

    /// Live locks by name.
    public func list(now: Int64 = Clock.nowMillis(), limit: Int = 10_000) throws -> [LockInfo] {
        try pool.read { db in
            try db.cached("SELECT \(Self.columns) FROM locks WHERE expires_at > ? ORDER BY name LIMIT ?")
                .rows([.integer(now), .integer(Int64(limit))], Self.info)
        }
    }

    /// How many locks are held now (for the limit on how many may exist).
    public func count(now: Int64 = Clock.nowMillis()) throws -> Int {
        try pool.read { db in
            try db.cached("SELECT count(*) FROM locks WHERE expires_at > ?").rows([.integer(now)]) { $0.int(0) }.first ?? 0
        }
    }

    @discardableResult
    public func sweepExpired(now: Int64 = Clock.nowMillis()) throws -> Int {
        try pool.write { db in
            try db.cached("DELETE FROM locks WHERE expires_at <= ?").run([.integer(now)])
            return db.changes
        }
    }
}
