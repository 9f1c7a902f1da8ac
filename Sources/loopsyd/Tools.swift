import FoundationEssentials
import LoopsyAPI
import LoopsyConfig
import LoopsyHTTP
import LoopsyPOSIX
import LoopsyServer
import LoopsyStore
#if canImport(Glibc)
import Glibc
#endif

/// `loopsyd dashboard`: the standalone dashboard for every local node (`loopsy dashboard`
/// execs this), until SIGINT or SIGTERM (blocked by main.swift before any thread started).
func serveDashboard(dataDir: DataDir, port: Int, stopSignals: sigset_t) -> Never {
    guard let config = try? ConfigFile.load(dataDir).config else {
        fail("no config at \(dataDir.configFile); run `loopsy init` first")
    }
    let gateway = DashboardGateway(main: dataDir, loginsPerMinute: max(config.rateLimits.pairing, 1),
                                   logger: Logger(level: .warn))
    guard port == 0 || Port.isFree(host: "127.0.0.1", port: UInt16(port)) else {
        fail("port \(port) on 127.0.0.1 is in use (another `loopsy dashboard`?); pick another with -p", code: 69)
    }
    // Only browsers come here, with every cookie they hold for 127.0.0.1: libmicrohttpd's own
    // 32 KiB a connection, not the daemon's 16 KiB (made for the CLI's small requests).
    let server = HTTPServer(handler: gateway, options: HTTPServerOptions(host: "127.0.0.1", port: UInt16(port), threads: 2,
                                                                        connectionMemory: 32 << 10))
    do {
        try server.start()
    } catch {
        fail("cannot listen on 127.0.0.1:\(port): \(error)", code: 69)
    }
    let sessions = SessionDirectory(main: dataDir).names()
    print("Loopsy dashboard for \(sessions.count + 1) local node(s): " + (["main"] + sessions).joined(separator: ", "))
    print("Open within 5 minutes (works once; afterwards log in with `loopsy key show`):")
    let link: String
    do {
        link = try gateway.makeLink()
    } catch {
        fail((error as? APIError)?.message ?? "\(error)", code: 78)
    }
    print("  http://127.0.0.1:\(server.port)/dashboard/#login=\(link)")
    print("Ctrl-C stops it.")
    fflush(nil)
    var signals = stopSignals
    var received: Int32 = 0
    sigwait(&signals, &received)
    server.stop()
    print("dashboard stopped")
    exit(0)
}

/// `loopsyd check-database`: one JSON line, a `DatabaseCheck` (exit 0) or an error body (exit 1).
func checkDatabase(_ dataDir: DataDir) -> Never {
    let encoder = JSONEncoder()
    do {
        let check = try Database.check(path: dataDir.databaseFile)
        print(String(decoding: try encoder.encode(check), as: UTF8.self))
        exit(0)
    } catch {
        let body = ErrorBody(APIError(status: 500, code: .databaseUnreadable, message: "\(error)"))
        print((try? encoder.encode(body)).map { String(decoding: $0, as: UTF8.self) } ?? "")
        exit(1)
    }
}
