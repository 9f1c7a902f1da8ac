import Foundation
import LoopsyAPI
import Testing

/// Sessions, the systemd user unit and `loopsy doctor`, each against its own temporary HOME.
@Suite(.serialized) struct FleetTests {
    final class Home {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-home-\(UUID().uuidString)").path
        var environment: [String: String] {
            var environment = ProcessInfo.processInfo.environment
            environment["HOME"] = path
            environment.removeValue(forKey: "LOOPSY_DATA_DIR")
            environment.removeValue(forKey: "XDG_CONFIG_HOME")
            return environment
        }

        init() throws {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }

        func loopsy(_ arguments: String..., extra: [String: String] = [:]) throws -> CommandResult {
            try run(try Binaries.path("loopsy"), arguments, environment: environment.merging(extra) { $1 })
        }

        func cleanUp() {
            _ = try? loopsy("session", "stop-all")
            _ = try? loopsy("stop")
            // The main node's and every session's daemon log.
            let logs = (FileManager.default.enumerator(atPath: path)?.allObjects as? [String] ?? [])
                .filter { $0.hasSuffix("logs/loopsyd.log") }
            for log in logs {
                checkNoMalformedRequests((try? String(contentsOfFile: path + "/" + log, encoding: .utf8)) ?? "",
                                         daemon: path + "/" + log)
            }
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    static func initialised() throws -> Home {
        let home = try Home()
        #expect(try home.loopsy("init", "--no-mcp").status == 0)
        let config = home.path + "/.loopsy/config.yaml"
        let text = try String(contentsOfFile: config, encoding: .utf8)
        try replacingLine(text, "  enabled: true            # mDNS", "  enabled: false            # mDNS")
            .write(toFile: config, atomically: true, encoding: .utf8)
        chmod(config, 0o600)
        return home
    }

    @Test func sessionsAreSeparateNodesIntroducedToEachOther() throws {
        let home = try Self.initialised()
        defer { home.cleanUp() }
        #expect(try home.loopsy("start", "--port", "0").status == 0)
        let mainPid = try String(contentsOfFile: home.path + "/.loopsy/daemon.pid", encoding: .utf8)
        let fleet = try home.loopsy("session", "start-fleet", "-c", "2")
        #expect(fleet.status == 0, "\(fleet.stderr)")
        #expect(fleet.stdout.contains("introduced to worker-1"))

        let listed = try JSONDecoder().decode(SessionListing.self, from: Data(try home.loopsy("session", "list", "--json").stdout.utf8))
        #expect(listed.sessions.map(\.name) == ["worker-1", "worker-2"])
        #expect(listed.sessions.allSatisfy { $0.running && $0.port >= 19533 && $0.dataDir.hasSuffix("/sessions/\($0.name)") })
        #expect(Set(listed.sessions.map(\.port)).count == 2)
        // Each has its own pid file; the main one is untouched.
        #expect(try String(contentsOfFile: home.path + "/.loopsy/daemon.pid", encoding: .utf8) == mainPid)
        for session in listed.sessions {
            #expect(FileManager.default.fileExists(atPath: session.dataDir + "/daemon.pid"))
        }

        // Introduced as peers: the main node sees both, and one worker runs a command on the other.
        let hostname = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? ""
        let peers = try home.loopsy("peers")
        #expect(peers.stdout.contains("-worker-1") && peers.stdout.contains("-worker-2"))
        let worker1 = ["LOOPSY_DATA_DIR": listed.sessions[0].dataDir]
        let peerName = try #require(peers.stdout.split(separator: "\n").first { $0.contains("-worker-2") }?
            .split(separator: " ").first.map(String.init))
        #expect(!hostname.isEmpty)
        let exec = try home.loopsy("exec", peerName, "sh", "-c", "echo $LOOPSY_DATA_DIR; echo ran", extra: worker1)
        #expect(exec.status == 0 && exec.stdout.hasSuffix("ran\n"), "\(exec.stderr)")
        // The session's own name is enough, from the main node and from another session.
        for extra in [[:], worker1] {
            let bySession = try home.loopsy("exec", "worker-2", "echo", "by session name", extra: extra)
            #expect(bySession.status == 0 && bySession.stdout == "by session name\n", "\(bySession.stderr)")
        }

        // Names cannot escape the sessions directory.
        for bad in ["../../evil", "a/b", "-x", "UPPER", ""] {
            let refused = try home.loopsy("session", "start", bad)
            #expect(refused.status == 64, "\(bad)")
        }
        #expect(!FileManager.default.fileExists(atPath: home.path + "/evil"))

        // Removing one stops it, forgets it on the main node, and deletes only its directory.
        #expect(try home.loopsy("session", "remove", "worker-1").status == 0)
        #expect(!FileManager.default.fileExists(atPath: listed.sessions[0].dataDir))
        #expect(FileManager.default.fileExists(atPath: listed.sessions[1].dataDir))
        #expect(!(try home.loopsy("peers").stdout.contains("-worker-1")))
        #expect(try home.loopsy("session", "status", "worker-2").stdout.contains("session worker-2"))
        let stopped = try home.loopsy("session", "stop-all")
        #expect(stopped.stdout.contains("session worker-2 stopped"))
    }

    @Test func theUserUnitPassesSystemdAnalyzeAndComesAndGoes() throws {
        let home = try Self.initialised()
        defer { home.cleanUp() }
        #expect(try home.loopsy("service-status").status == 1)
        // No user manager here: the unit is written, nothing is enabled, and the exit code says so.
        let enabled = try home.loopsy("enable")
        #expect(enabled.status == 69, "\(enabled.stderr)")
        #expect(enabled.stdout.contains("wrote ") && enabled.stderr.contains("systemctl --user is not available here"))
        let unit = home.path + "/.config/systemd/user/loopsy.service"
        let text = try String(contentsOfFile: unit, encoding: .utf8)
        let loopsyd = try Binaries.path("loopsyd")
        #expect(text.contains("Type=notify") && text.contains("Restart=on-failure")
                && text.contains("ExecStart=\"\(loopsyd)\"") && text.contains("Environment=\"PATH="))
        // Any warning fails: systemd-analyze prints nothing for a clean unit.
        let verified = try run("/usr/bin/systemd-analyze", ["verify", unit])
        #expect(verified.status == 0 && verified.stdout.isEmpty && verified.stderr.isEmpty, "\(verified.stderr)")
        #expect(try home.loopsy("service-status").status == 0)
        #expect(try home.loopsy("disable").status == 0)
        #expect(!FileManager.default.fileExists(atPath: unit))
    }

    @Test func doctorFindsWhatIsWrongAndSaysHowToFixIt() throws {
        let home = try Self.initialised()
        defer { home.cleanUp() }
        #expect(try home.loopsy("start", "--port", "0").status == 0)
        var report = try JSONDecoder().decode(DoctorOutput.self, from: Data(try home.loopsy("doctor", "--json").stdout.utf8))
        #expect(report.ok, "\(report.findings)")
        #expect(report.findings.contains { $0.check == "database" && $0.status == "ok" })

        let config = home.path + "/.loopsy/config.yaml"
        chmod(config, 0o644)
        #expect(try home.loopsy("stop").status == 0)
        let doctor = try home.loopsy("doctor", "--json")
        #expect(doctor.status == 1)
        report = try JSONDecoder().decode(DoctorOutput.self, from: Data(doctor.stdout.utf8))
        #expect(!report.ok)
        let failed = Dictionary(report.findings.filter { $0.status == "fail" }.map { ($0.check, $0.fix ?? "") }) { a, _ in a }
        #expect(failed["config private"] == "chmod 600 \(config)")
        #expect(failed["daemon"] == "loopsy start")
        // A certificate for another key is found out.
        chmod(config, 0o600)
        let other = try Self.initialised()
        defer { other.cleanUp() }
        try FileManager.default.removeItem(atPath: home.path + "/.loopsy/tls/cert.pem")
        try FileManager.default.copyItem(atPath: other.path + "/.loopsy/tls/cert.pem", toPath: home.path + "/.loopsy/tls/cert.pem")
        let text = try home.loopsy("doctor")
        #expect(text.status == 1)
        #expect(text.stdout.contains("FAIL tls: tls/cert.pem is not for this node's identity key"))
        #expect(text.stdout.contains("fix: loopsy init"))
        // A damaged database is reported by loopsyd's reader, which the CLI runs (it links no SQLite).
        let database = home.path + "/.loopsy/loopsy.db"
        for leftover in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database + leftover) }
        let handle = try #require(FileHandle(forWritingAtPath: database))
        try handle.write(contentsOf: Data(repeating: 0x5A, count: 100))
        try handle.close()
        report = try JSONDecoder().decode(DoctorOutput.self, from: Data(try home.loopsy("doctor", "--json").stdout.utf8))
        let finding = try #require(report.findings.first { $0.check == "database" })
        #expect(finding.status == "fail" && finding.message.contains("not a database"), "\(finding)")
    }
}

struct SessionListing: Decodable {
    struct Entry: Decodable {
        var name: String
        var dataDir: String
        var port: Int
        var running: Bool
    }
    var sessions: [Entry]
}

struct DoctorOutput: Decodable {
    struct Finding: Decodable {
        var status: String
        var check: String
        var message: String
        var fix: String?
    }
    var ok: Bool
    var findings: [Finding]
}
