import Dispatch
import LoopsyAPI
import LoopsyCore
import LoopsyConfig
import LoopsyPOSIX
import LoopsyStore
import Synchronization

/// Collects audit entries from request threads and writes them in batches off the hot path.
///
/// A crash can lose the last flush interval (250 ms) of entries; the requests themselves are
/// unaffected.
///
/// What an outsider can make us store is bounded: every text field is cut to a fixed size (a row
/// is at most about 600 bytes, so `audit.maxEntries` bounds the table's bytes too), and requests
/// from callers without credentials are sampled: per flush, the first 50 are kept whole and the
/// rest become one summary row per address ("N more requests without credentials").
///
/// Successful reads (GET and HEAD answered below 400) are summarised too: per flush, one row
/// per caller, method, path, status and address, with `count` requests, the first one's time
/// and request id and their mean duration. At 40,000 reads a second that is a handful of rows
/// instead of 10,000 per flush; every write, error and refusal still has a row of its own.
public final class AuditLog: Sendable {
    /// Longest path kept, in bytes; longer ones end in "…".
    public static let maxPathBytes = 256
    static let maxCallerBytes = 128
    /// Refused anonymous requests kept whole per flush, all addresses together.
    static let anonymousRowsPerFlush = 50
    /// Addresses summarised separately per flush; the rest share one row.
    static let summarisedAddresses = 50

    private struct Pending {
        var entries: [AuditEntry] = []
        var anonymousKept = 0
        /// Refused anonymous requests beyond the sample, by address: count and the last one.
        var dropped: [String: (count: Int, last: AuditEntry)] = [:]
        /// Successful reads, summarised: the first entry (count and total duration growing)
        /// and its place in `entries`.
        var reads: [ReadKey: Int] = [:]
        /// The last read's key and place: a run of the same read (a poller, a benchmark) is
        /// counted after one comparison, without hashing its key.
        var lastRead: (key: ReadKey, index: Int)?
    }

    private struct ReadKey: Hashable {
        var caller: String
        var method: String
        var path: String
        var status: Int
        var remote: String
    }

    private let store: AuditStore
    private let logger: Logger
    private let pending = PlainMutex(Pending())
    /// Flushes every 250 ms while started (they write to SQLite: not on the shared pool).
    private let flusher = PlainMutex<PeriodicThread?>(nil)
    /// Held through a flush, from taking what is pending to writing it: batches are written in
    /// the order they were taken.
    private let flushing = PlainMutex(())

    public init(store: AuditStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    public func start() {
        let thread = PeriodicThread.start("loopsy-audit", every: .milliseconds(250), stackBytes: 512 << 10) {
            [weak self] in
            guard let self else { return false }
            self.flush()
            return true
        }
        // Started twice, the first thread stops: one flusher at a time.
        PeriodicThread.replace(in: flusher, with: thread)
    }

    public func record(_ entry: AuditEntry) {
        var entry = entry
        entry.path = entry.path.cut(toUTF8Bytes: Self.maxPathBytes)
        entry.caller = entry.caller.cut(toUTF8Bytes: Self.maxCallerBytes)
        entry.method = entry.method.cut(toUTF8Bytes: 16)
        entry.remote = entry.remote.cut(toUTF8Bytes: 64)
        // Anything without credentials is sampled (open routes answer 200 to anyone too).
        let refusedAnonymous = entry.caller.hasPrefix("anonymous@")
        let summarised = (entry.method == "GET" || entry.method == "HEAD") && entry.status < 400 && !refusedAnonymous
        pending.withLock { pending in
            if summarised {
                let key = ReadKey(caller: entry.caller, method: entry.method, path: entry.path, status: entry.status,
                                  remote: entry.remote)
                if let last = pending.lastRead, last.key == key {
                    pending.entries[last.index].count += 1
                    pending.entries[last.index].durationMs += entry.durationMs
                } else if let index = pending.reads[key] {
                    pending.lastRead = (key, index)
                    // durationMs holds the sum until the flush turns it into the mean.
                    pending.entries[index].count += 1
                    pending.entries[index].durationMs += entry.durationMs
                } else {
                    pending.reads[key] = pending.entries.count
                    pending.lastRead = (key, pending.entries.count)
                    pending.entries.append(entry)
                }
                return
            }
            guard refusedAnonymous else {
                pending.entries.append(entry)
                return
            }
            if pending.anonymousKept < Self.anonymousRowsPerFlush {
                pending.anonymousKept += 1
                pending.entries.append(entry)
                return
            }
            let key = pending.dropped[entry.remote] != nil || pending.dropped.count < Self.summarisedAddresses
                ? entry.remote : "other addresses"
            let count = (pending.dropped[key]?.count ?? 0) + 1
            pending.dropped[key] = (count, entry)
        }
    }

    /// Writes what is pending now (also called at shutdown).
    public func flush() {
        flushing.withLock { _ in flushPending() }
    }

    private func flushPending() {
        let (batch, dropped) = pending.withLock { pending -> ([AuditEntry], [String: (count: Int, last: AuditEntry)]) in
            defer { pending = Pending() }
            return (pending.entries, pending.dropped)
        }
        var rows = batch
        for index in rows.indices where rows[index].count > 1 {
            rows[index].durationMs /= Double(rows[index].count)
        }
        for (address, summary) in dropped.sorted(by: { $0.key < $1.key }) {
            var row = summary.last
            row.method = "*"
            row.path = "(\(summary.count) more requests without credentials, last: \(summary.last.method) "
                + summary.last.path.cut(toUTF8Bytes: 64) + ")"
            if address == "other addresses" {
                row.caller = "anonymous@(other addresses)"
                row.remote = "(several)"
            }
            rows.append(row)
        }
        guard !rows.isEmpty else { return }
        do {
            try store.append(rows)
        } catch {
            logger.error("audit: could not write all of \(rows.count) entries: \(error)")
        }
    }

    /// Writes what is pending, in order with the periodic flushes: a read of the audit log right
    /// after a request then shows it (`loopsy logs`).
    public func flushNow() { flush() }

    /// Stops the periodic flushes and writes what is pending.
    public func stop() {
        PeriodicThread.replace(in: flusher, with: nil)
        flush()
    }
}
