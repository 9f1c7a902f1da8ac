import LoopsyAPI
import LoopsyPOSIX
import LoopsyStore

/// Token buckets per (caller, category): a burst of the per-minute limit, refilled evenly.
public final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updatedAt: Double
    }

    private let perMinute: [RateCategory: Int]
    private let buckets = PlainMutex<[String: Bucket]>([:])

    public init(perMinute: [RateCategory: Int]) { self.perMinute = perMinute }

    /// nil if allowed, else seconds until the next request would be.
    public func take(caller: String, category: RateCategory, now: Double = Clock.monotonicSeconds()) -> Int? {
        guard let limit = perMinute[category], limit > 0 else { return nil }
        let capacity = Double(limit)
        let refillPerSecond = capacity / 60
        return buckets.withLock { buckets in
            let key = category.rawValue + "\u{0}" + caller
            var bucket = buckets[key] ?? Bucket(tokens: capacity, updatedAt: now)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updatedAt) * refillPerSecond)
            bucket.updatedAt = now
            defer { buckets[key] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return max(1, Int(((1 - bucket.tokens) / refillPerSecond).rounded(.up)))
        }
    }

    /// Forgets buckets that have refilled completely, so idle callers cost no memory.
    public func prune(now: Double = Clock.monotonicSeconds()) {
        buckets.withLock { buckets in
            buckets = buckets.filter { now - $0.value.updatedAt < 120 }
        }
    }
}
