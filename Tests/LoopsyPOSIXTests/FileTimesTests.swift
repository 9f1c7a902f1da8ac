import Glibc
import LoopsyPOSIX
import Testing

@Suite struct FileTimesTests {
    /// Ordinary times convert exactly; the ends of what a file system can store (tmpfs keeps any
    /// 64-bit second count) are held at what milliseconds in an Int64 can say, without a trap.
    @Test func millisecondsOfOrdinaryAndExtremeTimes() {
        #expect(FileTimes.milliseconds(timespec(tv_sec: 1_796_285_300, tv_nsec: 981_999_999)) == 1_796_285_300_981)
        #expect(FileTimes.milliseconds(timespec(tv_sec: 0, tv_nsec: 0)) == 0)
        #expect(FileTimes.milliseconds(timespec(tv_sec: -1, tv_nsec: 500_000_000)) == -500)
        let limit = Int64.max / 1000 - 1
        let seconds = Int(limit)
        #expect(FileTimes.milliseconds(timespec(tv_sec: seconds, tv_nsec: 999_999_999)) == limit * 1000 + 999)
        for beyond in [seconds + 1, 9_300_000_000_000_000, Int.max] {
            #expect(FileTimes.milliseconds(timespec(tv_sec: beyond, tv_nsec: 999_999_999)) == limit * 1000 + 999)
        }
        for beyond in [-seconds - 1, -9_300_000_000_000_000, Int.min] {
            #expect(FileTimes.milliseconds(timespec(tv_sec: beyond, tv_nsec: 0)) == -limit * 1000)
        }
        // A nanosecond field out of its range (not from the kernel) cannot push the sum over.
        #expect(FileTimes.milliseconds(timespec(tv_sec: Int.max, tv_nsec: Int.max)) == limit * 1000 + 999)
    }
}
