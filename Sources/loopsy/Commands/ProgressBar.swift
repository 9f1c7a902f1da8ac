import LoopsyAPI
#if canImport(Glibc)
import Glibc
#endif

/// One line of progress on stderr: bytes, percent, rate and ETA. Silent when stderr is not a
/// terminal, so scripts and pipes see only results.
final class ProgressBar {
    private let label: String
    private let enabled = isatty(2) == 1
    private let started = ProgressBar.now()
    private var lastDraw = 0.0
    private var offset: Int64

    /// `offset`: bytes already done before this transfer (a resumed download).
    init(label: String, offset: Int64 = 0) {
        self.label = label
        self.offset = offset
    }

    func update(done: Int64, total: Int64) {
        guard enabled else { return }
        let now = Self.now()
        guard now - lastDraw >= 0.1 || (total > 0 && done >= total) else { return }
        lastDraw = now
        let elapsed = max(now - started, 0.001)
        let rate = Double(done) / elapsed
        // `total` is the peer's Content-Length (a resumed pull adds what is here): added without a trap.
        let shown = done.addingReportingOverflow(offset).overflow ? Int64.max : done + offset
        var line = "\r\(label)  \(Self.size(shown))"
        if total > 0 {
            let whole = total.addingReportingOverflow(offset).overflow ? Int64.max : total + offset
            line += " / \(Self.size(whole))  \(Int64(saturating: Double(shown) * 100 / Double(max(whole, 1))))%"
            if rate > 0 { line += "  ETA \(Self.duration(Double(total - done) / rate))" }
        }
        line += "  \(Self.size(Int64(saturating: rate)))/s\u{1B}[K"
        printError(line, newline: false)
    }

    func finish() {
        if enabled { printError("\r\u{1B}[K", newline: false) }
    }

    static func size(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes), unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : "\(Double(Int(value * 10)) / 10) \(units[unit])"
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int64(saturating: seconds.rounded(.up))
        return total >= 3600 ? "\(total / 3600)h\(total % 3600 / 60)m" : "\(total / 60):\(total % 60 < 10 ? "0" : "")\(total % 60)"
    }

    private static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}
