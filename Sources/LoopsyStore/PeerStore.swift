import FoundationEssentials
import LoopsyAPI
import LoopsyPOSIX

/// A peer row with what the API never shows: the credential we call it with and its public key.
public struct PeerRecord: Sendable, Equatable {
    public var info: PeerInfo
    public var publicKey: String?
    public var apiKey: String?
    /// Explicit grants (nil: peers.defaultGrants) and transfer roots.
    public var grants: Set<Capability>?
    public var transferPaths: [String]?

    public var nodeId: String { info.nodeId }

    public init(info: PeerInfo, publicKey: String?, apiKey: String?, grants: Set<Capability>? = nil,
                transferPaths: [String]? = nil) {
        self.info = info
        self.publicKey = publicKey
        self.apiKey = apiKey
        self.grants = grants
        self.transferPaths = transferPaths
    }
}

/// What a probe, a handshake or an mDNS announcement tells about a peer.
public struct PeerSighting: Sendable {
    public var nodeId: String
    public var name: String
    public var address: String
    public var port: Int
    public var platform: String
    public var version: String
    public var capabilities: [String]
    public var publicKey: String?
    public var fingerprint: String?
    public var tls: Bool
    public var source: PeerSource

    public init(nodeId: String, name: String, address: String, port: Int, platform: String, version: String,
                capabilities: [String], publicKey: String?, fingerprint: String?, tls: Bool, source: PeerSource) {
        self.nodeId = nodeId
        self.name = name
        self.address = address
        self.port = port
        self.platform = platform
        self.version = version
        self.capabilities = capabilities
        self.publicKey = publicKey
        self.fingerprint = fingerprint
        self.tls = tls
        self.source = source
    }
}

/// The `peers` table. Credentials we accept are stored as SHA-256 hashes and looked up through
/// an in-memory index that every change refreshes, so a removed peer's key stops working at once.
public final class PeerStore: Sendable {
    private let pool: DatabasePool
    /// accept_key_hash -> the peer and its grants, and a generation that every change bumps (so
    /// a load that raced with a change is not kept).
    private let acceptIndex = PlainMutex<(generation: Int, map: [String: AcceptedPeer]?)>((0, nil))

    public init(pool: DatabasePool) { self.pool = pool }

    private static let columns = """
        node_id, name, address, addresses, port, platform, version, capabilities, fingerprint, tls, status, last_seen,
        last_checked, failures, last_error, source, api_key, accept_key_hash, created_at, updated_at, public_key,
        grants, transfer_paths
        """

    private static func record(_ row: Statement) -> PeerRecord {
        func strings(_ column: Int32) -> [String] {
            (try? SafeJSON.decode([String].self, from: Data(row.text(column).utf8))) ?? []
        }
        func optionalText(_ column: Int32) -> String? { row.isNull(column) ? nil : row.text(column) }
        let info = PeerInfo(
            nodeId: row.text(0), name: row.text(1), address: row.text(2), addresses: strings(3), port: row.int(4),
            platform: row.text(5), version: row.text(6), capabilities: strings(7), fingerprint: optionalText(8),
            tls: row.int(9) == 1, status: PeerStatus(rawValue: row.text(10)), lastSeen: row.optionalInt64(11),
            lastChecked: row.optionalInt64(12), failures: row.int(13), lastError: optionalText(14), source: PeerSource(rawValue: row.text(15)),
            hasCredential: !row.isNull(16), acceptsCredential: !row.isNull(17), createdAt: row.int64(18),
            updatedAt: row.int64(19))
        return PeerRecord(info: info, publicKey: optionalText(20), apiKey: optionalText(16),
                          grants: optionalText(21).map(Grants.decode), transferPaths: paths(optionalText(22)))
    }

    /// A stored JSON list; one that does not decode is empty (for transfer roots: nothing, never
    /// "no narrowing").
    static func paths(_ text: String?) -> [String]? {
        text.map { (try? SafeJSON.decode([String].self, from: Data($0.utf8))) ?? [] }
    }

    private static func json(_ strings: [String]) -> String {
        (try? JSONEncoder().encode(strings)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }

    public func all() throws -> [PeerRecord] {
        try pool.read { db in
            try db.cached("SELECT \(Self.columns) FROM peers ORDER BY name, node_id").rows([], Self.record)
        }
    }

    public func get(_ nodeId: String) throws -> PeerRecord? {
        try pool.read { db in
            try db.cached("SELECT \(Self.columns) FROM peers WHERE node_id = ?").rows([.text(nodeId)], Self.record).first
        }
    }

    public func count() throws -> (all: Int, online: Int) {
        try pool.read { db in
            try db.cached("SELECT count(*), coalesce(sum(status = 'online'), 0) FROM peers").rows([]) {
                ($0.int(0), $0.int(1))
            }.first ?? (0, 0)
        }
    }

    /// Like `upsert`, but only for a peer that is still known (a check that finishes after the
    /// peer was removed must not bring it back).
    @discardableResult
    public func update(_ sighting: PeerSighting, now: Int64 = Clock.nowMillis()) throws -> PeerRecord? {
        try upsert(sighting, insert: false, now: now)
    }

    /// Records what was learned about a peer. A known peer keeps its credentials and source
    /// (a paired peer seen over mDNS stays paired); its address moves only when `moveAddress`.
    /// Names come from other machines: no control characters (they would reach terminals), at
    /// most 64 characters.
    public static func displayName(_ name: String) -> String {
        // Format characters too (U+202E and the other bidi overrides, zero-width ones): a name
        // "x\u{202E}gnp.exe" read as "xexe.png" wherever it was shown.
        let clean = String(String.UnicodeScalarView(name.unicodeScalars.filter {
            !UnsafeText.isControl($0) && !UnsafeText.disguises($0)
        }).prefix(64))
        return clean.isEmpty ? "unnamed" : clean
    }

    @discardableResult
    public func upsert(_ sighting: PeerSighting, moveAddress: Bool = true, now: Int64 = Clock.nowMillis()) throws
        -> PeerRecord {
        // With insert allowed there is always a row to return.
        guard let record = try upsert(sighting, moveAddress: moveAddress, insert: true, now: now) else {
            throw DatabaseError(resultCode: 0, message: "peer \(sighting.nodeId) vanished during upsert")
        }
        return record
    }

    private func upsert(_ sighting: PeerSighting, moveAddress: Bool = true, insert: Bool, now: Int64) throws
        -> PeerRecord? {
        var sighting = sighting
        sighting.name = Self.displayName(sighting.name)
        return try pool.write { db -> PeerRecord? in
            try db.transaction {
                let existing = try db.cached("SELECT \(Self.columns) FROM peers WHERE node_id = ?")
                    .rows([.text(sighting.nodeId)], Self.record).first
                if var record = existing {
                    var info = record.info
                    info.name = sighting.name
                    if moveAddress {
                        info.address = sighting.address
                        info.port = sighting.port
                        // A pinned peer is never downgraded to plain HTTP.
                        info.tls = sighting.tls || info.fingerprint != nil
                    }
                    if !info.addresses.contains(sighting.address) {
                        info.addresses = Array((info.addresses + [sighting.address]).suffix(8))
                    }
                    if !sighting.platform.isEmpty { info.platform = sighting.platform }
                    if !sighting.version.isEmpty { info.version = sighting.version }
                    if !sighting.capabilities.isEmpty { info.capabilities = sighting.capabilities }
                    // A pin is never replaced by a sighting: only removal and re-adding (or pairing) can.
                    if info.fingerprint == nil { info.fingerprint = sighting.fingerprint }
                    if record.publicKey == nil { record.publicKey = sighting.publicKey }
                    if info.source == .mdns && sighting.source != .mdns { info.source = sighting.source }
                    info.updatedAt = now
                    try db.cached("""
                        UPDATE peers SET name = ?, address = ?, addresses = ?, port = ?, platform = ?, version = ?,
                            capabilities = ?, fingerprint = ?, tls = ?, source = ?, public_key = ?, updated_at = ?
                        WHERE node_id = ?
                        """).run([.text(info.name), .text(info.address), .text(Self.json(info.addresses)),
                                  .integer(Int64(info.port)), .text(info.platform), .text(info.version),
                                  .text(Self.json(info.capabilities)), info.fingerprint.map { .text($0) },
                                  .integer(info.tls ? 1 : 0), .text(info.source.rawValue), record.publicKey.map { .text($0) },
                                  .integer(now), .text(info.nodeId)])
                    record.info = info
                    return record
                }
                guard insert else { return nil }
                try db.cached("""
                    INSERT INTO peers (node_id, name, address, addresses, port, platform, version, capabilities,
                        fingerprint, tls, source, public_key, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """).run([.text(sighting.nodeId), .text(sighting.name), .text(sighting.address),
                              .text(Self.json([sighting.address])), .integer(Int64(sighting.port)),
                              .text(sighting.platform), .text(sighting.version), .text(Self.json(sighting.capabilities)),
                              sighting.fingerprint.map { .text($0) }, .integer(sighting.tls ? 1 : 0),
                              .text(sighting.source.rawValue), sighting.publicKey.map { .text($0) }, .integer(now), .integer(now)])
                return try db.cached("SELECT \(Self.columns) FROM peers WHERE node_id = ?")
                    .rows([.text(sighting.nodeId)], Self.record)[0]
            }
        }
    }

    /// The key we present when calling the peer (nil forgets it).
    public func setOutgoingCredential(_ nodeId: String, apiKey: String?) throws {
        try pool.write { db in
            try db.cached("UPDATE peers SET api_key = ?, updated_at = ? WHERE node_id = ?")
                .run([apiKey.map { .text($0) }, .integer(Clock.nowMillis()), .text(nodeId)])
        }
    }

    /// The key the peer presents when calling us, stored as its hash (nil revokes it).
    public func setAcceptedCredential(_ nodeId: String, keyHash: String?) throws {
        try pool.write { db in
            try db.cached("UPDATE peers SET accept_key_hash = ?, updated_at = ? WHERE node_id = ?")
                .run([keyHash.map { .text($0) }, .integer(Clock.nowMillis()), .text(nodeId)])
        }
        invalidate()
    }

    /// How the peer was learned (pairing makes it "paired" whatever it was before).
    public func setSource(_ nodeId: String, _ source: PeerSource) throws {
        try pool.write { db in
            try db.cached("UPDATE peers SET source = ?, updated_at = ? WHERE node_id = ?")
                .run([.text(source.rawValue), .integer(Clock.nowMillis()), .text(nodeId)])
        }
    }

    /// Upgrades a peer to TLS with a pin (only when it has none yet, or by pairing).
    public func setPin(_ nodeId: String, fingerprint: String, replace: Bool = false) throws {
        try pool.write { db in
            try db.cached("""
                UPDATE peers SET fingerprint = ?, tls = 1, updated_at = ?
                WHERE node_id = ? AND (fingerprint IS NULL OR ?)
                """).run([.text(fingerprint), .integer(Clock.nowMillis()), .text(nodeId), .integer(replace ? 1 : 0)])
        }
    }

    /// Deletes the peer and with it the credential it could call us with.
    @discardableResult
    public func remove(_ nodeId: String) throws -> Bool {
        let removed = try pool.write { db in
            try db.cached("DELETE FROM peers WHERE node_id = ?").run([.text(nodeId)])
            return db.changes > 0
        }
        invalidate()
        return removed
    }

    /// Peers known only from mDNS adverts (no credential either way): how many in all, and how
    /// many at `address`.
    public func unpairedCount(address: String) throws -> (all: Int, atAddress: Int) {
        try pool.read { db in
            try db.cached("""
                SELECT count(*), coalesce(sum(address = ?), 0) FROM peers
                WHERE source = 'mdns' AND api_key IS NULL AND accept_key_hash IS NULL
                """).rows([.text(address)]) { ($0.int(0), $0.int(1)) }.first ?? (0, 0)
        }
    }

    /// Forgets peers known only from mDNS that were neither advertised nor answered a health
    /// check since `cutoff`. Returns how many.
    @discardableResult
    public func forgetUnseenUnpaired(before cutoff: Int64) throws -> Int {
        let removed = try pool.write { db in
            try db.cached("""
                DELETE FROM peers WHERE source = 'mdns' AND api_key IS NULL AND accept_key_hash IS NULL
                    AND updated_at < ?1 AND coalesce(last_seen, 0) < ?1
                """).run([.integer(cutoff)])
            return db.changes
        }
        if removed > 0 { invalidate() }
        return removed
    }

    /// A health check's outcome. Returns the peer's status before and after.
    @discardableResult
    public func recordCheck(_ nodeId: String, ok: Bool, error: String?, offlineAfter: Int,
                            now: Int64 = Clock.nowMillis()) throws -> (before: PeerStatus, after: PeerStatus)? {
        try pool.write { db in
            try db.transaction {
                guard let row = try db.cached("SELECT status, failures FROM peers WHERE node_id = ?")
                    .rows([.text(nodeId)], { ($0.text(0), $0.int(1)) }).first else { return nil }
                let failures = ok ? 0 : row.1 + 1
                let status = ok ? PeerStatus.online : (failures >= offlineAfter ? .offline : PeerStatus(rawValue: row.0))
                try db.cached("""
                    UPDATE peers SET status = ?, failures = ?, last_checked = ?, last_error = ?,
                        last_seen = CASE WHEN ? THEN ? ELSE last_seen END
                    WHERE node_id = ?
                    """).run([.text(status.rawValue), .integer(Int64(failures)), .integer(now), error.map { .text($0) },
                              .integer(ok ? 1 : 0), .integer(now), .text(nodeId)])
                return (PeerStatus(rawValue: row.0), status)
            }
        }
    }

    /// The peer whose accepted credential hashes to `keyHash`.
    public func nodeId(forKeyHash keyHash: String) throws -> String? {
        try acceptedPeer(forKeyHash: keyHash)?.nodeId
    }

    /// The peer whose accepted credential hashes to `keyHash`, with its grants as stored.
    public func acceptedPeer(forKeyHash keyHash: String) throws -> AcceptedPeer? {
        let (generation, cached) = acceptIndex.withLock { $0 }
        if let cached { return cached[keyHash] }
        let rows = try pool.read { db in
            try db.cached("""
                SELECT accept_key_hash, node_id, grants, transfer_paths FROM peers WHERE accept_key_hash IS NOT NULL
                """).rows([]) { row in
                    (row.text(0), AcceptedPeer(nodeId: row.text(1), grants: row.isNull(2) ? nil : Grants.decode(row.text(2)),
                                               transferPaths: Self.paths(row.isNull(3) ? nil : row.text(3))))
                }
        }
        let map = Dictionary(rows, uniquingKeysWith: { first, _ in first })
        acceptIndex.withLock { index in
            if index.generation == generation { index.map = map }
        }
        return map[keyHash]
    }

    /// Sets what the peer may do here: explicit grants (nil: back to peers.defaultGrants) and
    /// its transfer roots. Takes effect on its next request.
    public func setGrants(_ nodeId: String, grants: Set<Capability>?, transferPaths: [String]?) throws {
        try pool.write { db in
            try db.cached("UPDATE peers SET grants = ?, transfer_paths = ?, updated_at = ? WHERE node_id = ?")
                .run([grants.map { .text(Grants.encode($0)) }, transferPaths.map { .text(Self.json($0)) },
                      .integer(Clock.nowMillis()), .text(nodeId)])
        }
        invalidate()
    }

    private func invalidate() {
        acceptIndex.withLock { $0 = ($0.generation + 1, nil) }
    }
}


/// A peer that holds a credential for calling us, as the authenticator needs it.
public struct AcceptedPeer: Sendable, Equatable {
    public var nodeId: String
    /// nil: peers.defaultGrants.
    public var grants: Set<Capability>?
    public var transferPaths: [String]?
}

/// How grants are stored: comma-separated capability names (unknown names are skipped, so a
/// newer database read by an older build grants less, never more).
public enum Grants {
    public static func encode(_ grants: Set<Capability>) -> String {
        grants.sorted().map(\.rawValue).joined(separator: ",")
    }

    public static func decode(_ text: String) -> Set<Capability> {
        Set(text.split(separator: ",").compactMap { Capability(rawValue: String($0)) })
    }
}
