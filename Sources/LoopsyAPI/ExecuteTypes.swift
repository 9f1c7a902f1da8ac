/// `POST /execute` and `/execute/stream`: a program and its arguments, never a shell line
/// (callers who want a shell run `sh -c`).
public struct ExecuteRequest: Codable, Sendable {
    public var command: String
    public var args: [String]?
    public var cwd: String?
    public var env: [String: String]?
    /// Milliseconds; absent means `execution.defaultTimeout`, and `execution.maxTimeout` caps it.
    public var timeout: Int?

    public init(command: String, args: [String]? = nil, cwd: String? = nil, env: [String: String]? = nil,
                timeout: Int? = nil) {
        self.command = command
        self.args = args
        self.cwd = cwd
        self.env = env
        self.timeout = timeout
    }
}

/// How a job ended. `exitCode` is null and `signal` set (e.g. "SIGKILL") when a signal ended it.
public struct ExecuteResult: Codable, Sendable, Equatable {
    public var jobId: String
    public var exitCode: Int?
    public var signal: String?
    public var stdout: String
    public var stderr: String
    public var durationMs: Double
    public var timedOut: Bool
    public var truncated: Bool
    public var cancelled: Bool

    public init(jobId: String, exitCode: Int?, signal: String?, stdout: String, stderr: String, durationMs: Double,
                timedOut: Bool, truncated: Bool, cancelled: Bool) {
        self.jobId = jobId
        self.exitCode = exitCode
        self.signal = signal
        self.stdout = stdout
        self.stderr = stderr
        self.durationMs = durationMs
        self.timedOut = timedOut
        self.truncated = truncated
        self.cancelled = cancelled
    }
}

/// A job as `GET /execute/jobs` lists it.
public struct JobInfo: Codable, Sendable, Equatable {
    public var jobId: String
    public var command: String
    public var args: [String]
    public var cwd: String
    public var pid: Int
    public var startedAt: Int64
    public var caller: String
    public var streamed: Bool
    public var state: JobState
    public var finishedAt: Int64?
    public var exitCode: Int?
    public var signal: String?
    public var durationMs: Double?
    public var timedOut: Bool?
    public var truncated: Bool?
    public var cancelled: Bool?

    public init(jobId: String, command: String, args: [String], cwd: String, pid: Int, startedAt: Int64,
                caller: String, streamed: Bool, state: JobState, finishedAt: Int64? = nil, exitCode: Int? = nil,
                signal: String? = nil, durationMs: Double? = nil, timedOut: Bool? = nil, truncated: Bool? = nil,
                cancelled: Bool? = nil) {
        self.jobId = jobId
        self.command = command
        self.args = args
        self.cwd = cwd
        self.pid = pid
        self.startedAt = startedAt
        self.caller = caller
        self.streamed = streamed
        self.state = state
        self.finishedAt = finishedAt
        self.exitCode = exitCode
        self.signal = signal
        self.durationMs = durationMs
        self.timedOut = timedOut
        self.truncated = truncated
        self.cancelled = cancelled
    }
}

/// Running jobs, then (with `all=1`) finished ones, newest first. `more`: older finished jobs
/// were left out (the `limit`, or about 4 MiB of commands and arguments).
public struct JobListResponse: Codable, Sendable {
    public var jobs: [JobInfo]
    public var more: Bool
    public init(jobs: [JobInfo], more: Bool = false) {
        self.jobs = jobs
        self.more = more
    }

    private enum CodingKeys: String, CodingKey { case jobs, more }

    /// A daemon from before `more` did not send it.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        jobs = try container.decode([JobInfo].self, forKey: .jobs)
        more = try container.decodeIfPresent(Bool.self, forKey: .more) ?? false
    }
}

public struct CancelResponse: Codable, Sendable {
    public var jobId: String
    public var cancelled: Bool
    public init(jobId: String, cancelled: Bool) {
        self.jobId = jobId
        self.cancelled = cancelled
    }
}

/// Which output of a program: its stdout or its stderr.
public enum OutputStreamName: String, Codable, Sendable, CaseIterable { case stdout, stderr }

/// Payloads of the `text/event-stream` of `/execute/stream`.
public enum ExecuteStreamEvent {
    /// The `event:` names, in the order they come: one start, output, one exit.
    public enum Name: String, Sendable, CaseIterable {
        case start, stdout, stderr, exit
    }

    /// `event: start`, `data: {"jobId","pid"}`.
    public struct Start: Codable, Sendable, Equatable {
        public var jobId: String
        public var pid: Int
        public init(jobId: String, pid: Int) {
            self.jobId = jobId
            self.pid = pid
        }
    }
    /// `event: stdout` / `event: stderr`: `text` when the bytes are UTF-8, else `base64`.
    public struct Output: Codable, Sendable {
        public var text: String?
        public var base64: String?
        public init(text: String?, base64: String?) {
            self.text = text
            self.base64 = base64
        }
    }
    // `event: exit` carries an ExecuteResult with empty stdout and stderr.
}
