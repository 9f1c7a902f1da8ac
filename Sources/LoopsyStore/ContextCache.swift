import LoopsyAPI
import LoopsyPOSIX

/// Recently read context entries, kept current by writes, so hot keys are served without a
/// SQLite read transaction (whose file locks cost more than the rest of a GET).
///
/// Coherent because every write goes through this process's `ContextStore`: writers update the
/// cache after their transaction commits and bump `generation`; a reader that fetched from
/// SQLite inserts its result only if no write happened meanwhile, so a slow read can never put
/// an older value back. Bounded by what its entries hold in memory (`cost`); when full it
/// starts over.
///
/// An entry keeps its JSON too once a GET asked for it (`json`): encoding the entry was a
/// tenth of the instructions of a GET of a hot key.
final class ContextCache: Sendable {
    private struct Cached {
        var entry: ContextEntry
        /// The entry as `ContextEntry.write(to:)` writes it, once asked for.
        var json: [UInt8]?
        /// `cost(entry)`, plus the JSON's buffer once it is kept.
        var cost: Int
    }

    /// Keys as SQLite tells them apart: by their UTF-8 bytes (see BytewiseKey).
    private typealias Key = BytewiseKey

    private struct State {
        var entries: [Key: Cached] = [:]
        var bytes = 0
        var generation: UInt64 = 0
    }

    private let state = PlainMutex(State())
    private let maxBytes: Int

    init(maxBytes: Int = 32 * 1024 * 1024) { self.maxBytes = maxBytes }

    /// The live cached entry, or nil (absent or expired) with the generation to pass to `fill`.
    func lookup(_ key: String, now: Int64) -> (entry: ContextEntry?, generation: UInt64) {
        state.withLock { state in
            guard let cached = state.entries[Key(key)], cached.entry.isLive(at: now) else {
                return (nil, state.generation)
            }
            return (cached.entry, state.generation)
        }
    }

    /// The live cached entry's JSON when it is kept, else the entry as `lookup` gives it. With
    /// the JSON the entry is not copied: a copy retains each of its strings, whose reference
    /// counts every worker's reads of the key would then pass between them.
    func lookupJSON(_ key: String, now: Int64) -> (json: [UInt8]?, entry: ContextEntry?, generation: UInt64) {
        state.withLock { state in
            guard let cached = state.entries[Key(key)], cached.entry.isLive(at: now) else {
                return (nil, nil, state.generation)
            }
            if let json = cached.json { return (json, nil, state.generation) }
            return (nil, cached.entry, state.generation)
        }
    }

    /// Caches what a read found (with its JSON, when given), unless a write happened since
    /// `generation`.
    func fill(_ entry: ContextEntry, json: [UInt8]? = nil, generation: UInt64) {
        state.withLock { state in
            guard state.generation == generation else { return }
            Self.insert(entry, json: json, into: &state, maxBytes: maxBytes)
        }
    }

    /// After a committed write: the new entry (nil when deleted). It replaces a cached entry
    /// of the key, so a key being read stays cached; a key nobody has read is not cached by its
    /// write (its first read is). Caching every write filled the cache with keys written once
    /// and never read: 100,000 new keys grew the daemon by 32 MB, and cost every write an
    /// insert here.
    func written(_ key: String, _ entry: ContextEntry?) {
        state.withLock { state in
            state.generation &+= 1
            guard let old = state.entries.removeValue(forKey: Key(key)) else { return }
            state.bytes -= old.cost
            if let entry { Self.insert(entry, json: nil, into: &state, maxBytes: maxBytes) }
        }
    }

    /// After a bulk change (sweep): forget everything.
    func invalidateAll() {
        state.withLock { state in
            state.generation &+= 1
            state.entries.removeAll()
            state.bytes = 0
        }
    }

    private static func insert(_ entry: ContextEntry, json: [UInt8]?, into state: inout State, maxBytes: Int) {
        // The JSON's buffer, as allocated (JSONWriter reserves ahead), and its header.
        var json = json
        var cost = cost(entry) + (json.map { $0.capacity + 32 } ?? 0)
        if cost > maxBytes / 4 && json != nil {
            // Too large with its JSON: the entry alone, as `get` would keep it.
            json = nil
            cost = Self.cost(entry)
        }
        guard cost <= maxBytes / 4 else { return }
        if state.bytes + cost > maxBytes {
            state.entries.removeAll(keepingCapacity: true)
            state.bytes = 0
        }
        if let old = state.entries.updateValue(Cached(entry: entry, json: json, cost: cost), forKey: Key(entry.key)) {
            state.bytes -= old.cost
        }
        state.bytes += cost
    }

    /// What an entry holds in memory, near enough: its strings (the key twice, as the table's
    /// key and in the entry) and about 380 bytes of string and allocation headers, the entry's
    /// other fields and its share of the table. Measured: 115,000 new keys of 17 bytes with
    /// 29-byte values grew the daemon by 53 MB with the cache and not without it, about 460
    /// bytes each (the earlier model, key + value + 128, said 174, so the bound was 2.6x
    /// what it claimed).
    static func cost(_ entry: ContextEntry) -> Int {
        2 * entry.key.utf8.count + entry.value.utf8.count + entry.fromNodeId.utf8.count + 380
    }
}
