import LoopsyAPI
import LoopsyClient
import LoopsyHTTP
import LoopsyPOSIX
import Testing

/// How LoopsyClient turns what a daemon answers (a real libmicrohttpd server here) into the
/// errors both the CLI and the MCP server show.
@Suite struct ClientErrorTests {
    /// Answers each path with a canned response and remembers the last path asked for.
    final class Canned: HTTPHandler, Sendable {
        let lastPath = PlainMutex("")
        func plan(for head: HTTPRequestHead) -> BodyPlan { .buffer(limit: 4096) }
        func payloadTooLarge(for head: HTTPRequestHead, limit: Int) -> HTTPResponse { HTTPResponse(status: 413) }
        func handle(_ request: HTTPRequest) -> HTTPResponse {
            lastPath.withLock { $0 = request.rawPath }
            let json = [(name: "Content-Type", value: "application/json")]
            switch request.rawPath {
            case "/api/v1/health":
                return HTTPResponse(status: 200, headers: json, body: Array(#"{"status":"ok","version":"t","nodeId":"n1","uptime":1}"#.utf8))
            case "/api/v1/context/missing":
                return HTTPResponse(status: 404, headers: json,
                                    body: Array(#"{"error":{"code":"not_found","message":"context key 'missing'"}}"#.utf8))
            case "/api/v1/status":
                return HTTPResponse(status: 429, headers: json + [("Retry-After", "7")],
                                    body: Array(#"{"error":{"code":"rate_limited","message":"slow down"}}"#.utf8))
            default:
                return HTTPResponse(status: 500, body: Array("<html>oops</html>".utf8))
            }
        }
    }

    private func server() throws -> (HTTPServer, Canned, LoopsyClient) {
        let handler = Canned()
        let server = HTTPServer(handler: handler, options: HTTPServerOptions(host: "127.0.0.1", port: 0))
        try server.start()
        return (server, handler, LoopsyClient(baseURL: "http://127.0.0.1:\(server.port)", apiKey: "k", timeoutSeconds: 5))
    }

    @Test func anErrorBodyBecomesTheAPIErrorWithItsStatusCodeAndRetryAfter() throws {
        let (server, _, client) = try server()
        defer { server.stop() }
        #expect(try client.health().nodeId == "n1")
        do {
            _ = try client.contextGet("missing")
            Issue.record("a 404 did not throw")
        } catch ClientError.api(let error) {
            #expect(error.status == 404 && error.code == "not_found" && error.message == "context key 'missing'")
        }
        do {
            _ = try client.status()
            Issue.record("a 429 did not throw")
        } catch ClientError.api(let error) {
            #expect(error.status == 429 && error.headers["Retry-After"] == "7")
        }
    }

    @Test func anAnswerThatIsNoErrorBodyIsABadResponse() throws {
        let (server, _, client) = try server()
        defer { server.stop() }
        do {
            _ = try client.identity()
            Issue.record("a 500 did not throw")
        } catch ClientError.badResponse(let message) {
            #expect(message.contains("HTTP 500"))
        }
    }

    @Test func nothingListeningIsDaemonUnreachable() throws {
        let (server, _, _) = try server()
        let port = server.port
        server.stop()
        do {
            _ = try LoopsyClient(baseURL: "http://127.0.0.1:\(port)", apiKey: "k", timeoutSeconds: 5).health()
            Issue.record("a closed port did not throw")
        } catch ClientError.daemonUnreachable(let address) {
            #expect(address == "http://127.0.0.1:\(port)")
        }
    }

    /// A client through a peer sends every API path under the local daemon's forwarding prefix.
    @Test func throughAPeerEveryPathGoesUnderTheForwardingPrefix() throws {
        let (server, handler, client) = try server()
        defer { server.stop() }
        _ = try? client.throughPeer("my laptop").contextGet("a/b")
        #expect(handler.lastPath.withLock { $0 } == "/api/v1/peers/my%20laptop/context/a%2Fb")
    }

    /// `--peer` and the MCP tools' `peer`: nil, "local" and "self" stay here; a name goes
    /// through the local daemon's forwarding route.
    @Test func targetingSendsLocalAndSelfHereAndANameThroughThePeer() throws {
        let (server, handler, client) = try server()
        defer { server.stop() }
        for here in [nil, "local", "self"] as [String?] {
            _ = try? client.targeting(here).contextGet("k")
            #expect(handler.lastPath.withLock { $0 } == "/api/v1/context/k", "\(here ?? "nil")")
        }
        _ = try? client.targeting("bravo").contextGet("k")
        #expect(handler.lastPath.withLock { $0 } == "/api/v1/peers/bravo/context/k")
    }
}

