import ArgumentParser
import LoopsyAPI
import LoopsyClient
import LoopsyConfig
import LoopsyHTTP
import LoopsyServer
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

    private func serve() throws {
        let dataDir = global.resolvedDataDir
        guard let config = try? ConfigFile.load(dataDir).config else {
            throw CLIFailure(message: "no config at \(dataDir.configFile); run `loopsy init` first",
                             code: CLIFailure.apiError)
        }
        // Ctrl-C and SIGTERM wait for sigwait below; every thread inherits the mask.
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        for signal in [SIGINT, SIGTERM] { sigaddset(&stopSignals, signal) }
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)
        signal(SIGPIPE, SIG_IGN)

        let logger = Logger(level: .warn)
        let gateway = DashboardGateway(main: dataDir, loginsPerMinute: max(config.rateLimits.pairing, 1), logger: logger)
        guard port == 0 || HTTPServer.portIsFree(host: "127.0.0.1", port: UInt16(port)) else {
            throw CLIFailure(message: "port \(port) on 127.0.0.1 is in use (another `loopsy dashboard`?); pick "
                + "another with -p", code: CLIFailure.unavailable)
        }
        let server = HTTPServer(handler: gateway, options: HTTPServerOptions(host: "127.0.0.1", port: UInt16(port),
                                                                            threads: 2))
        do {
            try server.start()
        } catch {
            throw CLIFailure(message: "cannot listen on 127.0.0.1:\(port): \(error)", code: CLIFailure.unavailable)
        }
        let sessions = SessionDirectory(main: dataDir).names()
        print("Loopsy dashboard for \(sessions.count + 1) local node(s): " + (["main"] + sessions).joined(separator: ", "))
        print("Open within 5 minutes (works once; afterwards log in with `loopsy key show`):")
        print("  http://127.0.0.1:\(server.port)/dashboard/#login=\(gateway.makeLink())")
        print("Ctrl-C stops it.")
        fflush(nil)
        var received: Int32 = 0
        sigwait(&stopSignals, &received)
        server.stop()
        print("dashboard stopped")
    }
}
