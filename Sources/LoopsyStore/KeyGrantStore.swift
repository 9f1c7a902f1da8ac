import FoundationEssentials
import LoopsyAPI
import LoopsyPOSIX

/// Grants of the extra keys (`auth.allowedKeys` entries), by name. A key never given grants
/// holds peers.defaultGrants. Read on every request a key makes, so kept in memory and refreshed
/// by every change.
public final class KeyGrantStore: Sendable {
    public struct Entry: Sendable, Equatable {
        public var grants: Set<Capability>
        public var transferPaths: [String]?
    }

    private let pool: DatabasePool
    private let cache = PlainMutex<(generation: Int, map: [String: Entry]?)>((0, nil))

    public init(pool: DatabasePool) { self.pool = pool }

    /// Explicit grants of every key that has them.
    public func all() throws -> [String: Entry] {
        let (generation, cached) = cache.withLock { $0 }
        if let cached { return cached }
        let rows = try pool.read { db in
            try db.cached("SELECT name, grants, transfer_paths FROM key_grants").rows([]) { row in
                (row.text(0), Entry(grants: Grants.decode(row.text(1)),
                                    transferPaths: PeerStore.paths(row.isNull(2) ? nil : row.text(2))))
            }
        }
        let map = Dictionary(rows, uniquingKeysWith: { first, _ in first })
        cache.withLock { if $0.generation == generation { $0.map = map } }
        return map
    }

    public func get(_ name: String) throws -> Entry? { try all()[name] }

    /// Sets a key's grants; nil goes back to peers.defaultGrants.
    public func set(_ name: String, grants: Set<Capability>?, transferPaths: [String]?) throws {
        try pool.write { db in
            if let grants {
                let paths: DatabaseValue? = transferPaths.map {
                    .text((try? JSONEncoder().encode($0)).map { String(decoding: $0, as: UTF8.self) } ?? "[]")
                }
                try db.cached("""
                    INSERT INTO key_grants (name, grants, transfer_paths, updated_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT (name) DO UPDATE SET grants = excluded.grants, transfer_paths = excluded.transfer_paths,
                        updated_at = excluded.updated_at
                    """).run([.text(name), .text(Grants.encode(grants)), paths, .integer(Clock.nowMillis())])
            } else {
                try db.cached("DELETE FROM key_grants WHERE name = ?").run([.text(name)])
            }
        }
        cache.withLock { $0 = ($0.generation + 1, nil) }
    }
}
