import ArgumentParser
import LoopsyAPI
import LoopsyClient
import LoopsyConfig
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

struct Dashboard: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dashboard",
        abstract: "Serve the web dashboard for every local node, or print a login link to the daemon's own.",
        discussion: """
            Without --daemon, serves the dashboard on 127.0.0.1 (port 19540 by default) until Ctrl-C. It drives \
            the main node and every `loopsy session`, each with its own key, which never reaches the browser. \
            It prints a one-time login link (valid for 5 minutes); the API key (`loopsy key show`) logs in too. \
            With --daemon, it prints a one-time link to the dashboard loopsyd itself serves under /dashboard.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(name: .shortAndLong, help: "Port on 127.0.0.1 (0 = any free port).") var port: Int = 19540
    @Flag(help: "Print a one-time login link to the running daemon's own dashboard and exit.") var daemon = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be from 0 to 65535") }
    }

    func run() throws {
        try runReporting {
            if daemon {
                try printDaemonLink()
            } else {
                try serve()
            }
        }
    }

    private func printDaemonLink() throws {
        let client = try global.client(timeoutSeconds: 10)
        do {
            let link = try client.call("POST", "/dashboard/api/link", as: DashboardLinkResponse.self)
            print("Open within \(link.expiresIn / 60) minutes (works once):")
            print("  \(client.baseURL)\(link.path)")
        } catch {
            throw CLIFailure.from(error)
        }
    }

    /// The gateway is loopsyd's (`loopsyd dashboard`): it reuses the daemon's HTTP server,
    /// relay and session code, which this CLI does not link.
    private func serve() throws -> Never {
        guard (try? ConfigFile.load(global.resolvedDataDir)) != nil else {
            throw CLIFailure(message: "no config at \(global.resolvedDataDir.configFile); run `loopsy init` first",
                             code: CLIFailure.apiError)
        }
        let path = try DaemonProcess.executable()
        do {
            try Subprocess(path, ["dashboard", "--data-dir", global.resolvedDataDir.root, "--port", String(port)])
                .replacingThisProcess()
        } catch {
            throw CLIFailure(message: "cannot run \(path): \(error)", code: CLIFailure.unavailable)
        }
    }
}
