import ArgumentParser
import Dispatch
import FoundationEssentials
import LoopsyAPI
import LoopsyClient
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "exec",
        abstract: "Run a command on a peer and stream its output.",
        discussion: """
            The command runs as a program with arguments (no shell; use `sh -c '...'` for one). \
            Output streams live: the remote stdout to stdout, stderr to stderr. Ctrl-C cancels the \
            remote job. loopsy exits with the remote exit code (128 + signal number if a signal \
            ended it). <peer> is a peer's name, nodeId (or a prefix of it) or address, as \
            `loopsy peers` lists them; `local` (or `self`) is this machine. The local daemon \
            relays the call with the peer's credential, so this command never sees a peer's key.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(name: .shortAndLong, help: "Seconds before the job is stopped (default: execution.defaultTimeout).")
    var timeout: Double?
    @Option(help: "Directory to run in (absolute; default: the daemon user's home).") var cwd: String?
    @Argument(help: "Where to run: a peer (name, nodeId or address), or local.") var peer: String
    @Argument(parsing: .captureForPassthrough, help: "The program and its arguments.") var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else { throw ValidationError("name the program to run after the peer") }
        // Checked here, where it is read: `Int(nan * 1000)` would stop the program.
        if let timeout, !(timeout > 0 && timeout * 1000 <= Double(WireRange.timeoutMillis.upperBound)) {
            throw ValidationError("--timeout must be a number of seconds more than 0 and at most "
                + "\(WireRange.timeoutMillis.upperBound / 1000) (30 days)")
        }
    }

    func run() throws {
        var argv = command
        if argv.first == "--" { argv.removeFirst() }
        let request = ExecuteRequest(command: argv[0], args: Array(argv.dropFirst()), cwd: cwd, env: nil,
                                     timeout: timeout.map { Int(($0 * 1000).rounded(.up)) })
        var exitCode: Int32 = 0
        try runReporting {
            let client = try global.client(peer: peer)
            let session = ExecSession(client: client)
            session.installInterruptHandler()
            try client.executeEvents(request) { event in session.handle(event) }
            exitCode = try session.exitCode()
        }
        if exitCode != 0 { throw ExitCode(exitCode) }
    }
}

/// Kept alive for the life of the command; set once on the main thread before streaming.
nonisolated(unsafe) private var interruptSource: (any DispatchSourceSignal)?

/// State of one streamed execution: output, the job id for Ctrl-C, and how it ended.
final class ExecSession: Sendable {
    private struct State {
        var jobId: String?
        var result: ExecuteResult?
        var interrupted = false
    }

    private let client: LoopsyClient
    private let state = PlainMutex(State())
    private let signalQueue = DispatchQueue(label: "loopsy.exec.signals")

    init(client: LoopsyClient) { self.client = client }

    /// Ctrl-C cancels the remote job; a second one leaves at once.
    func installInterruptHandler() {
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: signalQueue)
        source.setEventHandler { [self] in
            let (jobId, again) = state.withLock { state -> (String?, Bool) in
                defer { state.interrupted = true }
                return (state.jobId, state.interrupted)
            }
            // _exit: other threads are inside the HTTP client, which exit's handlers and
            // destructors would tear down under them; everything written went to the fds already.
            if again { _exit(130) }
            printError("loopsy: cancelling the remote job (Ctrl-C again to leave now)")
            // Not on this queue: a cancel that waits (a peer that does not answer) would hold the
            // second Ctrl-C's handler behind it for the request's whole timeout.
            if let jobId { DispatchQueue.global().async { [client] in try? client.cancelJob(jobId) } }
        }
        source.resume()
        interruptSource = source
    }

    func handle(_ event: ExecuteEvent) -> Bool {
        switch event {
        case .started(let start):
            let cancelNow = state.withLock { state -> Bool in
                state.jobId = start.jobId
                return state.interrupted
            }
            if cancelNow { try? client.cancelJob(start.jobId) }
        case .output(let stream, let bytes):
            // A closed stdout (`| head`) is not an error of ours: the job runs on until it ends.
            try? FileIO.writeAll(stream == .stdout ? 1 : 2, bytes)
        case .exited(let result):
            state.withLock { $0.result = result }
            return false
        }
        return true
    }

    func exitCode() throws -> Int32 {
        let (result, interrupted) = state.withLock { ($0.result, $0.interrupted) }
        guard let result else {
            throw CLIFailure(message: "the stream ended before the job did; see `loopsy logs`", code: CLIFailure.apiError)
        }
        if result.timedOut { printError("loopsy: the job timed out and was stopped") }
        if result.truncated { printError("loopsy: output was larger than execution.maxOutputBytes and was cut") }
        if interrupted { return 130 }
        if let code = result.exitCode { return Int32(truncatingIfNeeded: code) }
        return 128 + (result.signal.flatMap { Self.signalNumbers[$0] } ?? 0)
    }

    private static let signalNumbers: [String: Int32] = ["SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGABRT": 6,
                                                         "SIGKILL": 9, "SIGSEGV": 11, "SIGPIPE": 13, "SIGALRM": 14,
                                                         "SIGTERM": 15]
}
