import Dispatch
import LoopsyAPI
import LoopsyConfig
import LoopsyStore
import Synchronization

/// Collects audit entries from request threads and writes them in batches off the hot path.
///
/// A crash can lose the last flush interval (250 ms) of entries; the requests themselves are
/// unaffected.
public final class AuditLog: Sendable {
    private let store: AuditStore
    private let logger: Logger
    private let pending = Mutex<[AuditEntry]>([])
    private let queue = DispatchQueue(label: "loopsy.audit")
    private let running = Atomic<Bool>(false)

    public init(store: AuditStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    public func start() {
        running.store(true, ordering: .relaxed)
        scheduleFlush()
    }

    private func scheduleFlush() {
        queue.asyncAfter(deadline: .now() + 0.25) { [weak self] in
            guard let self, self.running.load(ordering: .relaxed) else { return }
            self.flush()
            self.scheduleFlush()
        }
    }

    public func record(_ entry: AuditEntry) {
        pending.withLock { $0.append(entry) }
    }

    /// Writes what is pending now (also called at shutdown).
    public func flush() {
        let batch = pending.withLock { entries -> [AuditEntry] in
            defer { entries.removeAll(keepingCapacity: true) }
            return entries
        }
        do {
            try store.append(batch)
        } catch {
            logger.error("audit: could not write \(batch.count) entries: \(error)")
        }
    }

    public func stop() {
        running.store(false, ordering: .relaxed)
        queue.sync { flush() }
    }
}
