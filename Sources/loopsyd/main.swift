import FoundationEssentials
import LoopsyAPI
import LoopsyPOSIX
import LoopsyConfig
import LoopsyServer
#if canImport(Glibc)
import Glibc
#endif

// Block the stop signals before any thread exists so every thread inherits the mask and the
// signals wait for sigwait below instead of killing a worker mid-request.
var stopSignals = sigset_t()
sigemptyset(&stopSignals)
for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&stopSignals, signal) }
pthread_sigmask(SIG_BLOCK, &stopSignals, nil)
signal(SIGPIPE, SIG_IGN)
// The database, logs and TLS keys hold secrets and peers' data: none of it is for other users.
// The umask the daemon was started with stays the user's: pushed files and jobs get it.
UserUmask.record(umask(0o077))

let usage = """
    usage: loopsyd [--data-dir DIR] [--port N] [--host ADDR]
           loopsyd dashboard [--data-dir DIR] [--port N]
           loopsyd check-database [--data-dir DIR]

    The Loopsy daemon. Usually started by `loopsy start`.
      --data-dir DIR  node data (default: $LOOPSY_DATA_DIR or ~/.loopsy)
      --port N        listen port (default: server.port; 0 = any free port, printed on start)
      --host ADDR     listen address (default: server.host)
      --version       print the version
    dashboard: the dashboard for every local node on 127.0.0.1 (port 19540 by default) until
      SIGINT/SIGTERM; `loopsy dashboard` runs it.
    check-database: reads the database without writing and prints its integrity and schema
      version as JSON; `loopsy doctor` runs it.
    """

func fail(_ message: String, code: Int32 = 1) -> Never {
    var line = Array("loopsyd: \(message)\n".utf8)
    _ = line.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    exit(code)
}

enum Mode { case daemon, dashboard, checkDatabase }
var mode = Mode.daemon
var explicitDataDir: String?
var port: Int?
var host: String?
var arguments = CommandLine.arguments.dropFirst().makeIterator()
switch CommandLine.arguments.dropFirst().first {
case "dashboard": mode = .dashboard; _ = arguments.next()
case "check-database": mode = .checkDatabase; _ = arguments.next()
default: break
}
while let argument = arguments.next() {
    switch argument {
    case "--data-dir":
        guard let value = arguments.next() else { fail("--data-dir needs a directory", code: 64) }
        explicitDataDir = value
    case "--port" where mode != .checkDatabase:
        guard let value = arguments.next().flatMap(Int.init), (0...65535).contains(value) else {
            fail("--port needs a number from 0 to 65535", code: 64)
        }
        port = value
    case "--host" where mode == .daemon:
        guard let value = arguments.next() else { fail("--host needs an address", code: 64) }
        host = value
    case "--version": print("loopsyd \(LoopsyVersion.current)"); exit(0)
    case "--help", "-h": print(usage); exit(0)
    default: fail("unknown argument '\(argument)'\n\(usage)", code: 64)
    }
}

switch mode {
case .daemon: break
case .dashboard: serveDashboard(dataDir: DataDir.resolve(explicit: explicitDataDir), port: port ?? 19540, stopSignals: stopSignals)
case .checkDatabase: checkDatabase(DataDir.resolve(explicit: explicitDataDir))
}

let daemon: Daemon
do {
    daemon = try Daemon(options: DaemonOptions(dataDir: DataDir.resolve(explicit: explicitDataDir), port: port, host: host,
                                               environment: ProcessInfo.processInfo.environment))
    let boundPort = try daemon.start()
    print("loopsyd \(LoopsyVersion.current) listening on port \(boundPort) node \(daemon.node.identity.nodeId)")
    fflush(nil)  // stdout is a pipe when tests read the port from it
    SystemdNotify.send("READY=1\nSTATUS=listening on port \(boundPort)", environment: ProcessInfo.processInfo.environment)
    // What start-up freed (migrations, parsed config, the OpenAPI document's building) goes back
    // to the system, not kept in malloc's free lists for an idle daemon.
    ProcessControl.returnFreeMemory()
} catch {
    fail("\(error)")
}

while true {
    var received: Int32 = 0
    sigwait(&stopSignals, &received)
    if received == SIGHUP {
        daemon.node.logger.info("SIGHUP: auth keys reload by themselves; restart loopsyd for other settings")
        continue
    }
    daemon.node.logger.info("signal \(received): shutting down")
    SystemdNotify.send("STOPPING=1", environment: ProcessInfo.processInfo.environment)
    daemon.stop()
    exit(0)
}
