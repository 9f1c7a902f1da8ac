import ArgumentParser
import LoopsyAPI
import LoopsyClient
import LoopsyConfig
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start",
        abstract: "Start loopsyd in the background and wait until it is healthy.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "Listen on this port instead of server.port (0 = any free port).") var port: Int?
    @Option(help: "Seconds to wait for the daemon to become healthy.") var wait: Int = 15

    func run() throws {
        try runReporting {
            let dataDir = global.resolvedDataDir
            if let pid = dataDir.runningDaemonPid() {
                let client = try LoopsyClient.local(dataDir, timeoutSeconds: 5)
                print("loopsyd is already running (pid \(pid)) at \(client.baseURL)")
                return
            }
            let started = try DaemonControl.start(dataDir, port: port, wait: wait)
            print("loopsyd \(started.health.version) is running (pid \(started.pid)) at \(started.client.baseURL), "
                + "node \(started.health.nodeId)")
            print("log: \(dataDir.daemonLogFile)")
        }
    }
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop the running loopsyd.")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try runReporting {
            guard let pid = try DaemonControl.stop(global.resolvedDataDir) else {
                print("loopsyd is not running")
                return
            }
            print("loopsyd stopped (pid \(pid))")
        }
    }
}

/// Starting and stopping the daemon of a data dir (the main node's or a session's).
enum DaemonControl {
    struct Started {
        var pid: pid_t
        var client: LoopsyClient
        var health: HealthResponse
    }

    static func start(_ dataDir: DataDir, port: Int? = nil, wait: Int = 15) throws -> Started {
        guard SecureFile.exists(dataDir.configFile) else {
            throw CLIFailure(message: "no config at \(dataDir.configFile); run `loopsy init` first", code: CLIFailure.apiError)
        }
        try SecureFile.makeDirectory(dataDir.logsDirectory)
        var arguments = ["--data-dir", dataDir.root]
        if let port { arguments += ["--port", String(port)] }
        let pid = try DaemonProcess.spawnDetached(arguments: arguments, logFile: dataDir.daemonLogFile)
        let deadline = Double(time(nil)) + Double(wait)
        // The health check below is a plain request to 127.0.0.1: no libcurl to load (LoopbackHTTP).
        // The daemon answers in 10-30 ms: look every 3 ms for the first half second (a look is
        // a stat of the port file, then one request), then every 50 ms.
        var looks = 0
        while Double(time(nil)) < deadline {
            usleep(looks < 150 ? 3_000 : 50_000)
            looks += 1
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                throw CLIFailure(message: "loopsyd exited during start-up:\n"
                    + DaemonProcess.tail(dataDir.daemonLogFile, lines: 5)
                    + "\n(full log: \(dataDir.daemonLogFile))", code: CLIFailure.apiError)
            }
            guard SecureFile.exists(dataDir.portFile), let client = try? LoopsyClient.local(dataDir, timeoutSeconds: 2),
                  let health = try? client.health() else { continue }
            return Started(pid: pid, client: client, health: health)
        }
        throw CLIFailure(message: "loopsyd did not become healthy within \(wait) s; see \(dataDir.daemonLogFile)",
                         code: CLIFailure.unavailable)
    }

    /// SIGTERM, then SIGKILL after 10 s. Returns the pid it stopped, nil if none ran.
    @discardableResult
    static func stop(_ dataDir: DataDir) throws -> pid_t? {
        guard let pid = dataDir.runningDaemonPid() else { return nil }
        kill(pid, SIGTERM)
        // An idle daemon is gone in a few ms: look every 5 ms for the first second, then every 100 ms.
        var waited = 0
        while waited < 10_000_000 {
            // An exited daemon can stay a zombie for seconds where its adopter reaps late.
            if !DataDir.isDaemon(pid) { return pid }
            let step = waited < 1_000_000 ? 5_000 : 100_000
            usleep(useconds_t(step))
            waited += step
        }
        kill(pid, SIGKILL)
        throw CLIFailure(message: "loopsyd (pid \(pid)) did not stop within 10 s and was killed; "
            + "see \(dataDir.daemonLogFile)", code: CLIFailure.apiError)
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show the daemon's status: peers, jobs, context.")

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try runReporting {
            let client = try global.client()
            let status = try client.status()
            if json {
                print(try JSONLine.encode(status, pretty: true))
                return
            }
            let identity = try client.identity()
            print("""
                loopsyd \(status.version) running (pid \(status.pid)) at \(client.baseURL)
                node:     \(status.nodeId) (\(status.hostname))
                key:      \(identity.fingerprint) (\(identity.tls ? "peers use HTTPS and pin this" : "tls off: peers use plain HTTP"))
                uptime:   \(Int(status.uptime)) s
                data:     \(status.dataDir)
                peers:    \(status.peers) (\(status.peersOnline) online)
                jobs:     \(status.jobs)
                context:  \(status.context) entries
                """)
            let peers = try client.peers()
            if !peers.isEmpty { print("\n" + PeerTable.render(peers)) }
        }
    }
}

/// Starting loopsyd as a detached background process.
enum DaemonProcess {
    /// The loopsyd next to this loopsy binary, else the first on PATH.
    static func executable() throws -> String {
        guard let path = Programs.companion("loopsyd") else {
            throw CLIFailure(message: "loopsyd was not found next to loopsy or on PATH; reinstall loopsy",
                             code: CLIFailure.unavailable)
        }
        return path
    }

    /// Spawns loopsyd in its own session, stdin from /dev/null and output appended to `logFile`.
    static func spawnDetached(arguments: [String], logFile: String) throws -> pid_t {
        let path = try executable()
        var daemon = Subprocess(path, arguments)
        daemon.stdin = .null
        daemon.stdout = .append(logFile)
        daemon.stderrToStdout = true
        // Any other descriptor we inherited (a caller's pipe, say) must not live on in the
        // daemon: whoever reads that pipe would wait for EOF for as long as loopsyd runs.
        daemon.closeOtherDescriptors = true
        daemon.newSession = true
        do {
            return try daemon.spawn().pid
        } catch {
            throw CLIFailure(message: "could not start \(path): \(error)", code: CLIFailure.unavailable)
        }
    }

    static func tail(_ file: String, lines: Int) -> String {
        guard let text = try? SecureFile.read(file) else { return "(no log)" }
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }
}
