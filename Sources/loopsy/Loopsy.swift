import ArgumentParser
import LoopsyAPI
import LoopsyClient
import LoopsyConfig
#if canImport(Glibc)
import Glibc
#endif

@main
struct Loopsy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loopsy",
        abstract: "Let AI coding agents on different machines work together.",
        discussion: """
            loopsy is a client of the local daemon, loopsyd. Exit codes: 0 ok, 1 the daemon refused \
            the request, 64 bad usage, 69 the daemon is not running.
            """,
        version: LoopsyVersion.current,
        subcommands: [Init.self, Start.self, Stop.self, Status.self, Peers.self, Pair.self, Connect.self, Exec.self, Send.self,
                      Pull.self, Context.self, Lock.self, Messages.self, Task.self, MCP.self, Session.self, Enable.self, Disable.self,
                      ServiceStatus.self, Doctor.self, Key.self, Logs.self, Dashboard.self, Approvals.self, Approve.self])
}

/// Options every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Node data directory (default: $LOOPSY_DATA_DIR or ~/.loopsy).")
    var dataDir: String?

    var resolvedDataDir: DataDir { DataDir.resolve(explicit: dataDir) }

    func client(timeoutSeconds: Int = 30) throws -> LoopsyClient {
        do {
            return try LoopsyClient.local(resolvedDataDir, timeoutSeconds: timeoutSeconds)
        } catch {
            throw CLIFailure.from(error)
        }
    }

    /// The local daemon's client, relaying to `peer` unless it is nil, "local" or "self".
    func client(peer: String?, timeoutSeconds: Int = 30) throws -> LoopsyClient {
        try client(timeoutSeconds: timeoutSeconds).targeting(peer)
    }
}

/// An error already phrased for the user, with the exit code the style guide assigns.
struct CLIFailure: Error, CustomStringConvertible {
    var message: String
    var code: Int32

    static let apiError: Int32 = 1
    static let usage: Int32 = 64
    static let unavailable: Int32 = 69

    var description: String { message }

    static func from(_ error: any Error) -> CLIFailure {
        switch error {
        case let failure as CLIFailure: return failure
        case ClientError.daemonUnreachable, ClientError.otherNode: return CLIFailure(message: "\(error)", code: unavailable)
        case ClientError.api(let apiError):
            // A daemon's message is one line: one with line breaks (a peer's, relayed) shows
            // them escaped, so it cannot print a line of its own ("sent … sha256 verified").
            var message = apiError.message.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\\n")
            if apiError.status == 429, let retry = apiError.headers["Retry-After"] { message += " (Retry-After: \(retry) s)" }
            return CLIFailure(message: message, code: Self.apiError)
        default: return CLIFailure(message: "\(error)", code: Self.apiError)
        }
    }
}

/// Runs a command body, printing failures as one line on stderr with the right exit code.
func runReporting(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        let failure = CLIFailure.from(error)
        // Messages may carry a peer's words (its error text, its name): shown, never obeyed.
        printError("loopsy: \(TerminalText.safe(failure.message))")
        throw ExitCode(failure.code)
    }
}

func printError(_ text: String, newline: Bool = true) {
    var bytes = Array((text + (newline ? "\n" : "")).utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}

/// stdout is a TTY: progress and colour are for people, not pipes.
var stdoutIsTerminal: Bool { isatty(1) == 1 }
