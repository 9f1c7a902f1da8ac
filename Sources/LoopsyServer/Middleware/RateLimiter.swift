import LoopsyAPI
import LoopsyPOSIX
import LoopsyStore
#if canImport(Glibc)
import Glibc
#endif

/// Token buckets per (caller, category): a burst of the per-minute limit, refilled evenly.
///
/// Callers with a credential are as many as the node has keys and peers. Callers without one
/// are counted by network (`networkKey`), and at most `maxAnonymous` of those are tracked:
/// from an IPv6 /64 a single host can use a new address for every connection, which made a
/// new bucket each (memory without bound, and no limit at all on it). While that many are
/// tracked, a new network shares one bucket with every other newcomer (`overflowKey`): limited
/// together, not locked out.
public final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updatedAt: Double
        var anonymous: Bool
    }

    private struct State {
        var buckets: [String: Bucket] = [:]
        var anonymous = 0
        var sweptAt = -Double.infinity

        mutating func remove(where idle: (Bucket) -> Bool) {
            buckets = buckets.filter { !idle($0.value) }
            anonymous = buckets.values.count { $0.anonymous }
        }
    }

    /// Networks without a credential tracked at once (about 200 bytes each).
    public static let maxAnonymous = 10_000
    /// A bucket left alone this long has refilled completely: forgetting it changes nothing.
    static let refilledAfter = 60.0

    private let perMinute: [RateCategory: Int]
    private let state = PlainMutex(State())

    /// The categories with a limit: asked on every request, where a dictionary lookup hashes.
    private let limited: [RateCategory]

    public init(perMinute: [RateCategory: Int]) {
        self.perMinute = perMinute
        limited = perMinute.filter { $0.value > 0 }.map(\.key)
    }

    /// Whether requests of `category` are limited at all (a limit of 0 is none).
    public func limits(_ category: RateCategory) -> Bool { limited.contains(category) }

    /// Where new networks without a credential are counted while `maxAnonymous` are tracked.
    static let overflowKey = "anonymous (overflow)"

    /// nil if allowed, else seconds until the next request would be. `anonymous`: the caller
    /// has no credential and `caller` is its `networkKey`.
    public func take(caller: String, category: RateCategory, anonymous: Bool = false,
                     now: Double = Clock.monotonicSeconds()) -> Int? {
        guard let limit = perMinute[category], limit > 0 else { return nil }
        let capacity = Double(limit)
        let refillPerSecond = capacity / 60
        return state.withLock { state in
            var key = category.rawValue + "\u{0}" + caller
            var bucket: Bucket
            if let known = state.buckets[key] {
                bucket = known
            } else {
                var tracked = anonymous
                if anonymous && state.anonymous >= Self.maxAnonymous {
                    // Full: forget the buckets that have refilled, at most once a second (each
                    // new caller would otherwise repeat the pass over them all).
                    if now - state.sweptAt >= 1 {
                        state.sweptAt = now
                        state.remove { now - $0.updatedAt >= Self.refilledAfter }
                    }
                    if state.anonymous >= Self.maxAnonymous {
                        key = category.rawValue + "\u{0}" + Self.overflowKey
                        tracked = false
                    }
                }
                bucket = state.buckets[key] ?? Bucket(tokens: capacity, updatedAt: now, anonymous: tracked)
                if tracked { state.anonymous += 1 }
            }
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updatedAt) * refillPerSecond)
            bucket.updatedAt = now
            defer { state.buckets[key] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return max(1, Int(((1 - bucket.tokens) / refillPerSecond).rounded(.up)))
        }
    }

    /// Forgets buckets that have refilled completely, so idle callers cost no memory.
    public func prune(now: Double = Clock.monotonicSeconds()) {
        state.withLock { state in state.remove { now - $0.updatedAt >= Self.refilledAfter * 2 } }
    }

    /// Buckets held now (for tests).
    var count: Int { state.withLock { $0.buckets.count } }

    /// What a caller without a credential at `address` is counted as: an IPv6 address by its
    /// /64 (one host has a whole /64 to take addresses from), any other by itself. Link-local
    /// addresses (fe80::/10) are each their own: every host on every link shares that prefix.
    public static func networkKey(_ address: String) -> String {
        var bytes = in6_addr()
        guard inet_pton(AF_INET6, address, &bytes) == 1 else { return address }
        let octets = withUnsafeBytes(of: bytes) { Array($0) }
        if octets[0] == 0xFE && octets[1] & 0xC0 == 0x80 { return address }
        // An IPv4-mapped address is an IPv4 client.
        return SocketAddress.network64(octets) ?? octets[12...].map { String($0) }.joined(separator: ".")
    }
}
