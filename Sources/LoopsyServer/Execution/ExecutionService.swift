import FoundationEssentials
import LoopsyConfig
import LoopsyStore

/// Policy and runner for everything that runs programs on this node.
public final class ExecutionService: Sendable {
    let policy: ExecutionPolicy
    let runner: JobRunner
    let jobStore: JobStore

    init(config: LoopsyConfig.Execution, pool: DatabasePool, logger: Logger,
         environment: [String: String] = ProcessInfo.processInfo.environment) {
        policy = ExecutionPolicy(config: config, environment: environment)
        jobStore = JobStore(pool: pool)
        runner = JobRunner(store: jobStore, maxConcurrent: config.maxConcurrent, maxOutputBytes: config.maxOutputBytes,
                           logger: logger)
    }

    /// Finished jobs kept in SQLite (older ones also go after audit.retentionDays).
    static let keptJobs = 1000

    public var runningJobs: Int { runner.runningCount }

    /// Stops every job (daemon shutdown).
    public func shutdown() { runner.shutdown() }
}
