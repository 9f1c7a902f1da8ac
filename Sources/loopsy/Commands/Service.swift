import ArgumentParser
import LoopsyConfig
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// loopsyd as a systemd user service (Type=notify: loopsyd says READY=1 once it listens).
enum UserService {
    static let name = "loopsy.service"

    static var unitDirectory: String {
        if let config = getenv("XDG_CONFIG_HOME").map({ String(cString: $0) }), !config.isEmpty {
            return config + "/systemd/user"
        }
        return DataDir.homeDirectory() + "/.config/systemd/user"
    }

    static var unitPath: String { unitDirectory + "/" + name }

    /// A systemd command-line word: quoted, with `%` (specifiers) doubled.
    static func word(_ text: String) -> String {
        "\"" + text.replacingEvery("\\", with: "\\\\").replacingEvery("\"", with: "\\\"").replacingEvery("%", with: "%%") + "\""
    }

    static func unit(loopsyd: String, dataDir: DataDir, isDefault: Bool, path: String?) -> String {
        let command = word(loopsyd) + (isDefault ? "" : " --data-dir " + word(dataDir.root))
        // The user manager's PATH is short: keep the one `loopsy enable` ran with, so AI tasks
        // find `claude` where the user's shell does.
        let environment = path.map { "Environment=" + word("PATH=" + $0) + "\n" } ?? ""
        return """
        [Unit]
        Description=Loopsy daemon (loopsyd)
        After=network-online.target

        [Service]
        Type=notify
        ExecStart=\(command)
        \(environment)Restart=on-failure
        RestartSec=2

        [Install]
        WantedBy=default.target

        """
    }

    /// `systemctl --user` works here (a user manager is running and reachable).
    static func systemctlAvailable() -> Bool {
        guard let systemctl = Programs.onPath("systemctl") else { return false }
        return (try? ClaudeRegistration.run(systemctl, ["--user", "--quiet", "is-system-running"], quiet: true)) != nil
            && (try? ClaudeRegistration.run(systemctl, ["--user", "show-environment"], quiet: true)) == 0
    }

    static func lingerEnabled() -> Bool? {
        guard let loginctl = Programs.onPath("loginctl"),
              let user = getenv("USER").map({ String(cString: $0) }) else { return nil }
        return (try? ClaudeRegistration.capture(loginctl, ["show-user", user, "-p", "Linger", "--value"]))?
            .trimming() == "yes"
    }
}

struct Enable: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "enable",
        abstract: "Run loopsyd as a systemd user service (started at login, restarted on failure).")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try runReporting {
            let dataDir = global.resolvedDataDir
            guard SecureFile.exists(dataDir.configFile) else {
                throw CLIFailure(message: "no config at \(dataDir.configFile); run `loopsy init` first", code: CLIFailure.apiError)
            }
            let loopsyd = try DaemonProcess.executable()
            let isDefault = dataDir.root == DataDir.resolve(explicit: nil, environment: ["HOME": DataDir.homeDirectory()]).root
            try SecureFile.makeDirectory(UserService.unitDirectory, mode: 0o755)
            let path = getenv("PATH").map { String(cString: $0) }
            try SecureFile.write(UserService.unitPath, contents: UserService.unit(loopsyd: loopsyd, dataDir: dataDir,
                                                                                  isDefault: isDefault, path: path),
                                 mode: 0o644)
            print("wrote \(UserService.unitPath)")
            guard UserService.systemctlAvailable(), let systemctl = Programs.onPath("systemctl") else {
                // The unit stays written, but nothing was enabled: a script's `loopsy enable && …` must know.
                throw CLIFailure(message: "systemctl --user is not available here (no user session manager): start the "
                    + "unit from a login session with `systemctl --user enable --now \(UserService.name)`, or use "
                    + "`loopsy start`", code: CLIFailure.unavailable)
            }
            if dataDir.runningDaemonPid() != nil { try DaemonControl.stop(dataDir) }
            try ClaudeRegistration.run(systemctl, ["--user", "daemon-reload"], what: "systemctl --user daemon-reload")
            try ClaudeRegistration.run(systemctl, ["--user", "enable", "--now", UserService.name],
                                       what: "systemctl --user enable --now")
            print("loopsy.service enabled and started")
            if UserService.lingerEnabled() == false {
                print("note: it stops when you log out; to keep it running run `loginctl enable-linger $USER`")
            }
        }
    }
}

struct Disable: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "disable", abstract: "Stop and remove the systemd user service.")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try runReporting {
            if UserService.systemctlAvailable(), let systemctl = Programs.onPath("systemctl") {
                try ClaudeRegistration.run(systemctl, ["--user", "disable", "--now", UserService.name],
                                           what: "systemctl --user disable --now")
            }
            if SecureFile.exists(UserService.unitPath) {
                unlink(UserService.unitPath)
                print("removed \(UserService.unitPath)")
            } else {
                print("no user unit at \(UserService.unitPath)")
            }
        }
    }
}

struct ServiceStatus: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "service-status",
                                                    abstract: "Is loopsyd registered as a user service?")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try runReporting {
            guard SecureFile.exists(UserService.unitPath) else {
                print("not registered: `loopsy enable` installs \(UserService.unitPath)")
                throw ExitCode(1)
            }
            print("unit: \(UserService.unitPath)")
            if UserService.systemctlAvailable(), let systemctl = Programs.onPath("systemctl") {
                let active = (try? ClaudeRegistration.capture(systemctl, ["--user", "is-active", UserService.name]))?
                    .trimming() ?? "unknown"
                let enabled = (try? ClaudeRegistration.capture(systemctl, ["--user", "is-enabled", UserService.name]))?
                    .trimming() ?? "unknown"
                print("state: \(active), \(enabled)")
            } else {
                print("state: unknown (systemctl --user is not available here)")
            }
            if UserService.lingerEnabled() == false { print("linger: off (the service stops at logout)") }
        }
    }
}
