import Dispatch
import LoopsyAPI
import LoopsyConfig
import LoopsyPOSIX
import LoopsyStore
#if canImport(Glibc)
import Glibc
#endif

/// Receives a job's output as it happens. Called from the job's I/O thread only.
public protocol JobSink: Sendable {
    /// False when the consumer is gone: the job is then cancelled.
    func output(_ stream: OutputStreamName, _ bytes: [UInt8]) -> Bool
    /// Called every few seconds of silence; false when the consumer is gone.
    func heartbeat() -> Bool
    /// Checked several times a second without sending anything: true once the consumer left.
    func clientGone() -> Bool
    func finished(_ result: ExecuteResult)
    /// Runs `action` once, when the result has reached the consumer or the consumer is gone.
    /// Until then the job keeps its place under `execution.maxConcurrent`: an answer a slow
    /// client has not read yet is memory the daemon holds, as much as a running job's output.
    func whenDelivered(_ action: @escaping @Sendable () -> Void)
}

/// Runs approved commands in their own process groups, enforcing the concurrency limit,
/// timeouts, output caps, and cancellation (which kills the whole group).
final class JobRunner: Sendable {
    private let store: JobStore
    private let shares: PlaceShares
    private let maxOutputBytes: Int
    private let logger: Logger
    /// Jobs running, and the places under `maxConcurrent`: a job holds its place from before it
    /// is spawned until its result has been sent (a result a slow client has not read yet is
    /// memory the daemon holds, as much as a running job's output).
    private struct Slots {
        var running: [String: RunningJob] = [:]
        var places: [String: (caller: String, owner: Bool)] = [:]
    }
    private let slots = PlainMutex(Slots())
    private let finishedGroup = DispatchGroup()
    /// Seconds between SIGTERM and SIGKILL.
    static let killGrace = 2.0

    init(store: JobStore, maxConcurrent: Int, maxOutputBytes: Int, logger: Logger) {
        self.store = store
        shares = PlaceShares(limit: maxConcurrent, setting: "execution.maxConcurrent",
                             holders: "jobs running or sending their results")
        self.maxOutputBytes = maxOutputBytes
        self.logger = logger
    }

    var runningCount: Int { slots.withLock { $0.running.count } }

    func running() -> [JobInfo] {
        slots.withLock { $0.running.values.map(\.info) }.sorted { $0.startedAt < $1.startedAt }
    }

    /// Spawns the command and returns at once; output and the result go to `sink`.
    /// `onStart` runs before any output reaches the sink. A caller that is not the owner gets a
    /// place as `PlaceShares` says.
    func start(_ command: ApprovedCommand, caller: String, owner: Bool, streamed: Bool, sink: any JobSink,
               onStart: (JobInfo) -> Void = { _ in }) throws -> JobInfo {
        let id = JobID.make()
        // Reserve the slot before spawning so concurrent requests cannot overshoot the limit.
        let refusal = slots.withLock { slots -> PlaceShares.Refusal? in
            let places = slots.places.values
            if let refusal = shares.refusal(owner: owner, total: places.count,
                                            byCaller: places.count { $0.caller == caller },
                                            byOthers: places.count { !$0.owner }) {
                return refusal
            }
            slots.places[id] = (caller, owner)
            slots.running[id] = RunningJob.placeholder(id: id, caller: caller)
            return nil
        }
        if let refusal {
            throw APIError(status: 429, code: .tooManyJobs, message: shares.message(refusal),
                           headers: ["Retry-After": "1"])
        }
        let process: SpawnedProcess
        do {
            process = try SpawnedProcess.spawn(command)
        } catch {
            slots.withLock { slots in
                slots.running[id] = nil
                slots.places[id] = nil
            }
            throw error
        }
        let info = JobInfo(jobId: id, command: command.argv[0], args: Array(command.argv.dropFirst()), cwd: command.cwd,
                           pid: Int(process.pid), startedAt: Clock.nowMillis(), caller: caller, streamed: streamed,
                           state: .running)
        let job = RunningJob(info: info, process: process)
        slots.withLock { $0.running[id] = job }
        onStart(info)
        finishedGroup.enter()
        let thread = JobIOLoop(job: job, process: process, timeoutMs: command.timeoutMs, maxOutputBytes: maxOutputBytes,
                               sink: sink)
        // A thread of its own for the job's life (at most execution.maxConcurrent of them): a
        // blocking loop on the shared dispatch pool would delay every other wake-up in the daemon.
        let work: @Sendable () -> Void = { [self] in
            let result = thread.run()
            _ = slots.withLock { $0.running.removeValue(forKey: id) }
            do {
                try store.record(info, result: result)
            } catch {
                logger.error("job \(id): could not record result: \(error)")
            }
            sink.finished(result)
            sink.whenDelivered { [self] in _ = slots.withLock { $0.places.removeValue(forKey: id) } }
            finishedGroup.leave()
        }
        if !DedicatedThread.start("loopsy-job", work) { DispatchQueue.global().async(execute: work) }
        return info
    }

    /// Asks a running job to stop (SIGTERM to its group, SIGKILL after the grace period).
    func cancel(_ id: String) -> Bool {
        guard let job = slots.withLock({ $0.running[id] }), job.process != nil else { return false }
        job.requestCancel()
        return true
    }

    /// Daemon shutdown: stop every job and wait (bounded) for them to be reaped.
    func shutdown() {
        for job in slots.withLock({ Array($0.running.values) }) { job.requestCancel() }
        _ = finishedGroup.wait(timeout: .now() + Self.killGrace + 2)
    }
}

/// A job while it runs: its listing and the handle to cancel it.
final class RunningJob: Sendable {
    let info: JobInfo
    let process: SpawnedProcess?

    init(info: JobInfo, process: SpawnedProcess?) {
        self.info = info
        self.process = process
    }

    static func placeholder(id: String, caller: String) -> RunningJob {
        RunningJob(info: JobInfo(jobId: id, command: "", args: [], cwd: "", pid: 0, startedAt: Clock.nowMillis(),
                                 caller: caller, streamed: false, state: .starting), process: nil)
    }

    func requestCancel() { process?.signalCancel() }
}

enum JobID {
    static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        let value: UInt64 = generator.next()
        let hex = String(value, radix: 16)
        return "job_" + String(repeating: "0", count: 16 - hex.count) + hex
    }
}

extension JobSink {
    func clientGone() -> Bool { false }
    public func whenDelivered(_ action: @escaping @Sendable () -> Void) { action() }
}
