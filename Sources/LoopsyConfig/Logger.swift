#if canImport(Glibc)
import Glibc
#endif

/// Line-oriented log to stderr: `2026-11-28T12:00:00.123Z info message key=value`.
/// Callers never pass secrets or bodies.
public final class Logger: Sendable {
    /// The lowest severity written; fixed for the logger's life.
    private let level: Int

    public init(level: LogLevel) { self.level = Self.index(level) }

    private static func index(_ level: LogLevel) -> Int { level.severity }

    public func debug(_ message: @autoclosure () -> String) { log(.debug, message()) }
    public func info(_ message: @autoclosure () -> String) { log(.info, message()) }
    public func warn(_ message: @autoclosure () -> String) { log(.warn, message()) }
    public func error(_ message: @autoclosure () -> String) { log(.error, message()) }

    private func log(_ messageLevel: LogLevel, _ message: @autoclosure () -> String) {
        guard Self.index(messageLevel) >= level else { return }
        let line = "\(Self.timestamp()) \(messageLevel.rawValue) \(message())\n"
        // One write(2) per line keeps lines whole when threads log at once.
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }

    static func timestamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int = 2) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(parts.tm_year + 1900)-\(pad(parts.tm_mon + 1))-\(pad(parts.tm_mday))T"
            + "\(pad(parts.tm_hour)):\(pad(parts.tm_min)):\(pad(parts.tm_sec))."
            + "\(pad(Int32(spec.tv_nsec / 1_000_000), 3))Z"
    }
}
