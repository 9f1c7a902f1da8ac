#if canImport(Glibc)
import Glibc
#endif

public enum Clock {
    /// Wall-clock time as Unix epoch milliseconds.
    public static func nowMillis() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }

    /// Monotonic seconds, for durations and rate limits.
    public static func monotonicSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// Whether `condition` held within `seconds`, looking every millisecond (for a stopping
    /// daemon waiting for work in flight to end).
    public static func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = monotonicSeconds() + seconds
        repeat {
            if condition() { return true }
            usleep(1000)
        } while monotonicSeconds() < deadline
        return false
    }
}
