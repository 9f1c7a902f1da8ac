import FoundationEssentials
import LoopsyAPI
import LoopsyConfig
import LoopsyStore

/// Policy and runner for everything that runs programs on this node.
public final class ExecutionService: Sendable {
    let policy: ExecutionPolicy
    let runner: JobRunner
    let jobStore: JobStore

    public init(config: LoopsyConfig.Execution, pool: DatabasePool, logger: Logger,
         environment: [String: String] = ProcessInfo.processInfo.environment) {
        policy = ExecutionPolicy(config: config, environment: environment)
        jobStore = JobStore(pool: pool)
        runner = JobRunner(store: jobStore, maxConcurrent: config.maxConcurrent, maxOutputBytes: config.maxOutputBytes,
                           logger: logger)
    }

    /// Finished jobs kept in SQLite (older ones also go after audit.retentionDays).
    static let keptJobs = 1000

    /// `request` as this node's policy allows it to run (or the refusal, an APIError).
    public func approve(_ request: ExecuteRequest) throws -> ApprovedCommand {
        try policy.approve(request, home: DataDir.homeDirectory())
    }

    /// Starts the command for `caller` and returns at once; output and the result go to `sink`.
    /// `onStart` runs before any output reaches the sink. A caller that is not the node's owner
    /// (`owner` false) gets a place under `execution.maxConcurrent` as `PlaceShares` says.
    public func start(_ command: ApprovedCommand, caller: String, owner: Bool, streamed: Bool, sink: any JobSink,
                      onStart: (JobInfo) -> Void = { _ in }) throws -> JobInfo {
        try runner.start(command, caller: caller, owner: owner, streamed: streamed, sink: sink, onStart: onStart)
    }

    /// Asks a running job to stop; false when no such job runs.
    public func cancel(_ jobId: String) -> Bool { runner.cancel(jobId) }

    public func running() -> [JobInfo] { runner.running() }

    /// Finished jobs, newest first (only `caller`'s when given), at most `limit` and, past the
    /// first, about `maxBytes` of commands and arguments.
    public func recent(limit: Int, caller: String? = nil, maxBytes: Int = .max) throws -> (jobs: [JobInfo], more: Bool) {
        let page = try jobStore.recent(limit: limit, caller: caller, maxBytes: maxBytes)
        return (page.rows, page.more)
    }

    /// Forgets finished jobs older than `cutoff` (Unix ms), keeping the newest ones.
    public func prune(olderThan cutoff: Int64) throws { try jobStore.prune(olderThan: cutoff, keep: Self.keptJobs) }

    public var runningJobs: Int { runner.runningCount }

    /// Stops every job (daemon shutdown).
    public func shutdown() { runner.shutdown() }
}
