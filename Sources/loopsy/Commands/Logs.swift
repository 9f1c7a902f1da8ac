import ArgumentParser
import LoopsyAPI
import LoopsyClient
#if canImport(Glibc)
import Glibc
#endif

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Show the audit log of requests to the daemon.",
        discussion: """
            Every write, error and refusal has a line of its own. Successful reads (GET, HEAD) are \
            summarised per 250 ms: one line per caller, path and status, marked ×N, with the first \
            request's time and id and their mean duration.
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(name: .shortAndLong, help: "Keep printing new entries.") var follow = false
    @Option(name: .short, help: "How many recent entries to show.") var n: Int = 50
    @Flag(help: "One JSON object per line.") var json = false

    func validate() throws {
        guard (1...1000).contains(n) else { throw ValidationError("-n must be from 1 to 1000") }
    }

    func run() throws {
        try runReporting {
            let client = try global.client()
            var last: Int64 = 0
            var entries = try client.audit(limit: n)
            while true {
                for entry in entries {
                    print(json ? try JSONLine.encode(entry) : Self.format(entry))
                    last = max(last, entry.id)
                }
                guard follow else { return }
                fflush(nil)
                usleep(500_000)
                entries = try client.audit(limit: 1000, after: last)
            }
        }
    }

    static func format(_ entry: AuditEntry) -> String {
        let seconds = entry.time / 1000
        var time = time_t(seconds)
        var parts = tm()
        localtime_r(&time, &parts)
        func pad(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let clock = "\(parts.tm_year + 1900)-\(pad(parts.tm_mon + 1))-\(pad(parts.tm_mday)) "
            + "\(pad(parts.tm_hour)):\(pad(parts.tm_min)):\(pad(parts.tm_sec))"
        let duration = String(Int((entry.durationMs * 10).rounded())) // tenths of ms
        // A summary of successful reads: how many, their mean duration, the first one's id.
        let times = entry.count > 1 ? " ×\(entry.count)" : ""
        return "\(clock) \(entry.status) \(entry.method) \(entry.path)\(times) caller=\(entry.caller) from=\(entry.remote) "
            + "\(duration.dropLast().isEmpty ? "0" : String(duration.dropLast())).\(duration.suffix(1))ms id=\(entry.requestId)"
    }
}
