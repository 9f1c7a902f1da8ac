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

/// What tells a changed or replaced file cheaply: device, inode, size and both times, as
/// stat(2) gives them (nothing computed from them). The change time counts: the modification
/// time alone can be put back (`cp -p`, `touch -r`, tar, rsync -t) on a file rewritten in place.
public struct FileStamp: Hashable, Sendable {
    var device: UInt64
    var inode: UInt64
    public private(set) var size: Int64
    var modifiedSeconds: Int64
    var modifiedNanoseconds: Int64
    var changedSeconds: Int64
    var changedNanoseconds: Int64

    public init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modifiedSeconds = Int64(info.st_mtim.tv_sec)
        modifiedNanoseconds = Int64(info.st_mtim.tv_nsec)
        changedSeconds = Int64(info.st_ctim.tv_sec)
        changedNanoseconds = Int64(info.st_ctim.tv_nsec)
    }

    /// The stamp of the file at `path` (symbolic links followed), nil if it cannot be stat'ed.
    public init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        self.init(info)
    }

    /// The stamp of the open file `fd`, nil if it cannot be stat'ed.
    public init?(fd: Int32) {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        self.init(info)
    }

    /// Whether both stamps are of one file (device and inode), whatever changed in it since.
    public func isSameFile(as other: FileStamp) -> Bool { device == other.device && inode == other.inode }
}
