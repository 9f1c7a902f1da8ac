#if canImport(Glibc)
import Glibc
#endif

/// File times from stat(2) as the API shows them. They come from the file system, not from us:
/// tmpfs and btrfs keep any 64-bit count of seconds (`touch -d @9300000000000000` works there),
/// so no conversion of one may overflow.
public enum FileTimes {
    /// Most seconds either side of the epoch whose milliseconds an Int64 holds.
    static let secondsLimit = Int64.max / 1000 - 1

    /// `time` in milliseconds since the epoch; times beyond what that can say (about 292 million
    /// years either way) are held at its ends.
    public static func milliseconds(_ time: timespec) -> Int64 {
        let seconds = min(max(Int64(time.tv_sec), -secondsLimit), secondsLimit)
        // tv_nsec is 0..<1e9 from the kernel; clamped anyway, so the sum stays in range.
        return seconds * 1000 + min(max(Int64(time.tv_nsec), 0), 999_999_999) / 1_000_000
    }
}
