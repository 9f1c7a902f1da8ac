import ArgumentParser
import LoopsyAPI
import LoopsyClient
import LoopsyConfig
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// Several independent nodes on one machine, one per agent: each a daemon with its own data dir
/// (`<main data dir>/sessions/<name>/`), port (19533 and up), identity and pid file, introduced
/// to the main node and to each other as peers. `LOOPSY_DATA_DIR=<that dir>` points the CLI and
/// loopsy-mcp at one.
struct Session: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "session",
        abstract: "Run extra nodes on this machine (one per agent) and manage them.",
        subcommands: [Start.self, StartFleet.self, Stop.self, StopAll.self, List.self, Status.self, Remove.self])

    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "start", abstract: "Create (if needed) and start a session.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Session name: lowercase letters, digits and dashes.") var name: String

        func run() throws {
            try runReporting { try Sessions(main: global.resolvedDataDir).start(name) }
        }
    }

    struct StartFleet: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "start-fleet",
                                                        abstract: "Start sessions worker-1 … worker-N.")
        @OptionGroup var global: GlobalOptions
        @Option(name: .shortAndLong, help: "How many workers.") var count: Int

        func validate() throws {
            guard (1...64).contains(count) else { throw ValidationError("-c must be from 1 to 64") }
        }

        func run() throws {
            try runReporting {
                let sessions = Sessions(main: global.resolvedDataDir)
                for index in 1...count { try sessions.start("worker-\(index)") }
            }
        }
    }

    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop a session's daemon (its data stays).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Session name.") var name: String

        func run() throws {
            try runReporting {
                let dataDir = try Sessions(main: global.resolvedDataDir).existing(name)
                print(try DaemonControl.stop(dataDir).map { "session \(name) stopped (pid \($0))" }
                      ?? "session \(name) is not running")
            }
        }
    }

    struct StopAll: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "stop-all", abstract: "Stop every session.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try runReporting {
                let sessions = Sessions(main: global.resolvedDataDir)
                for name in sessions.names() {
                    if let pid = try DaemonControl.stop(try sessions.existing(name)) {
                        print("session \(name) stopped (pid \(pid))")
                    }
                }
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List sessions.")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            try runReporting {
                let sessions = Sessions(main: global.resolvedDataDir)
                let rows = sessions.names().map { sessions.describe($0) }
                if json { return print(try JSONLine.encode(SessionList(sessions: rows), pretty: true)) }
                guard !rows.isEmpty else { return print("no sessions; start one with `loopsy session start <name>`") }
                for row in rows {
                    print("\(row.name)\t\(row.running ? "running (pid \(row.pid ?? 0))" : "stopped")\tport \(row.port)"
                        + "\t\(row.dataDir)")
                }
            }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "A session's daemon status.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Session name.") var name: String

        func run() throws {
            try runReporting {
                let dataDir = try Sessions(main: global.resolvedDataDir).existing(name)
                let status = try LoopsyClient.local(dataDir, timeoutSeconds: 5).status()
                print("session \(name): loopsyd \(status.version), node \(status.nodeId) (\(status.hostname)), "
                    + "port \(status.port), \(status.peers) peers, \(status.jobs) jobs, data \(dataDir.root)")
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove",
            abstract: "Stop a session, forget it as a peer, and delete its data dir.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Session name.") var name: String

        func run() throws {
            try runReporting { try Sessions(main: global.resolvedDataDir).remove(name) }
        }
    }
}

struct SessionList: Codable, Sendable {
    var sessions: [SessionDirectory.Entry]
}

struct Sessions {
    let main: DataDir
    var root: String { main.root + "/sessions" }

    /// Names become directory names: nothing that could climb out or hide (the original let
    /// `../..` through and then ran `rm -rf` on it).
    static func validate(_ name: String) throws {
        guard SessionDirectory.isValid(name) else {
            throw CLIFailure(message: "session names are 1–32 lowercase letters, digits and dashes, not starting with "
                + "a dash ('\(name)' is not)", code: CLIFailure.usage)
        }
    }

    func dataDir(_ name: String) throws -> DataDir {
        try Self.validate(name)
        return DataDir(root: root + "/" + name)
    }

    func existing(_ name: String) throws -> DataDir {
        let dataDir = try dataDir(name)
        guard SecureFile.exists(dataDir.configFile) else {
            throw CLIFailure(message: "no session '\(name)'; `loopsy session list` shows them", code: CLIFailure.apiError)
        }
        return dataDir
    }

    func names() -> [String] { SessionDirectory(main: main).names() }

    func describe(_ name: String) -> SessionDirectory.Entry { SessionDirectory(main: main).entry(name) }

    func start(_ name: String) throws {
        let dataDir = try dataDir(name)
        if !SecureFile.exists(dataDir.configFile) { try create(name, dataDir) }
        if let pid = dataDir.runningDaemonPid() {
            print("session \(name) is already running (pid \(pid))")
            return
        }
        let started = try DaemonControl.start(dataDir)
        print("session \(name) running (pid \(started.pid)) at \(started.client.baseURL), node \(started.health.nodeId)")
        introduce(name, dataDir, started.client)
    }

    /// A data dir like `loopsy init` makes, on the next free port from 19533, loopback only,
    /// without mDNS (sessions are introduced to each other directly).
    private func create(_ name: String, _ dataDir: DataDir) throws {
        try SecureFile.makeDirectory(root)
        try SecureFile.makeDirectory(dataDir.root)
        try SecureFile.makeDirectory(dataDir.logsDirectory)
        let identity = NodeIdentity.generate()
        try identity.save(to: dataDir.identityKeyFile)
        _ = try TLSFiles.ensure(dataDir, identity: identity)
        let taken = Set(names().compactMap { other in
            (try? ConfigFile.load(DataDir(root: root + "/" + other)).config.server.port)
        })
        guard let port = (19533...19999).first(where: { !taken.contains($0) && Port.isFree(host: "0.0.0.0", port: UInt16($0)) }) else {
            throw CLIFailure(message: "no free port from 19533 to 19999 for a new session", code: CLIFailure.apiError)
        }
        let text = ConfigFile.template(apiKey: Secrets.apiKey(), port: port, hostname: Programs.hostname() + "-" + name,
                                       host: "127.0.0.1", discovery: false)
        try SecureFile.write(dataDir.configFile, contents: text)
        print("created session \(name) in \(dataDir.root) (port \(port))")
    }

    /// The new session adds the main node and every other running session as peers; over
    /// loopback the handshake gives each side a key of its own for the other.
    private func introduce(_ name: String, _ dataDir: DataDir, _ client: LoopsyClient) {
        var others: [(String, DataDir)] = [("main", main)]
        others += names().filter { $0 != name }.map { ($0, DataDir(root: root + "/" + $0)) }
        for (otherName, other) in others where other.runningDaemonPid() != nil {
            guard let config = try? ConfigFile.load(other).config else { continue }
            let port = LoopsyClient.localPort(other, config: config)
            do {
                // One person's nodes on one machine: each may do everything on the other.
                let (peer, _) = try client.addPeer(PeerAddRequest(address: "127.0.0.1", port: port,
                                                                  apiKey: config.auth.apiKey, allowInsecure: true,
                                                                  grants: Capability.allCases))
                let newNode = try client.status().nodeId
                _ = try LoopsyClient.local(other, timeoutSeconds: 5)
                    .changeGrants(newNode, GrantChangeRequest(grant: Capability.allCases))
                print("  introduced to \(otherName) (\(peer.name)); each may do everything on the other")
            } catch {
                printError("loopsy: could not introduce session \(name) to \(otherName): \(CLIFailure.from(error).message)")
            }
        }
    }

    func remove(_ name: String) throws {
        let dataDir = try existing(name)
        let identity = try? NodeIdentity.load(from: dataDir.identityKeyFile)
        try DaemonControl.stop(dataDir)
        // Forget it on the main node and the other sessions that run (their keys for it go too).
        if let nodeId = identity?.nodeId {
            for other in [main] + names().filter({ $0 != name }).map({ DataDir(root: root + "/" + $0) })
            where other.runningDaemonPid() != nil {
                try? LoopsyClient.local(other, timeoutSeconds: 5).removePeer(nodeId)
            }
        }
        // The path is <root>/sessions/<validated name>: nothing outside it can be hit.
        try removeTree(dataDir.root)
        print("session \(name) removed")
    }

    private func removeTree(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if info.st_mode & S_IFMT == S_IFDIR {
            for name in Directory.names(path) { try removeTree(path + "/" + name) }
            guard rmdir(path) == 0 else {
                throw CLIFailure(message: "cannot remove \(path): \(String(cString: strerror(errno)))", code: CLIFailure.apiError)
            }
        } else if unlink(path) != 0 {
            throw CLIFailure(message: "cannot remove \(path): \(String(cString: strerror(errno)))", code: CLIFailure.apiError)
        }
    }
}
