import Foundation
import LoopsyAPI
import LoopsyConfig
@testable import LoopsyHTTP
import LoopsyStore
import Testing
@testable import LoopsyServer

/// The dispatcher driven in-process, without sockets, on a real temporary database.
@Suite struct DispatcherTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-disp-\(UUID().uuidString)").path
    let key = Secrets.apiKey()
    let dispatcher: Dispatcher

    init() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var config = LoopsyConfig()
        config.auth.apiKey = key
        config.auth.allowedKeys = ["helper": String(repeating: "h", count: 40)]
        config.context.maxValueBytes = 16
        config.rateLimits.context = 0
        let pool = try DatabasePool(path: directory + "/t.db", migrations: try Migration.load(
            from: try Migration.locateDirectory(environment: [:], executablePath: nil)))
        let logger = Logger(level: .error)
        let node = NodeServices(config: config, dataDir: DataDir(root: directory), identity: .generate(), pool: pool,
                                logger: logger)
        dispatcher = Dispatcher(routes: Routes.table(config: config), node: node,
                                authenticator: node.authenticator,
                                rateLimiter: RateLimiter(perMinute: [:]), auditLog: nil)
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: directory) }

    func send(_ method: String, _ path: String, body: String? = nil, auth: String? = "default",
              headers: [String: String] = [:], planNote: (any Sendable)? = nil) -> (Int, ErrorBody?, HTTPResponse) {
        var allHeaders = headers
        if let auth { allHeaders["authorization"] = "Bearer " + (auth == "default" ? key : auth) }
        if body != nil && allHeaders["content-type"] == nil { allHeaders["content-type"] = "application/json" }
        // MHD hands the query over separately from the path; do the same here.
        let parts = path.split(separator: "?", maxSplits: 1)
        var query: [String: String] = [:]
        for pair in parts.dropFirst().first?.split(separator: "&") ?? [] {
            let field = pair.split(separator: "=", maxSplits: 1)
            query[String(field[0])] = field.count > 1 ? String(field[1]) : ""
        }
        var response = dispatcher.handle(HTTPRequest(method: method, rawPath: String(parts[0]), query: query,
                                                     headers: HTTPHeaders(allHeaders), body: Array((body ?? "").utf8),
                                                     planNote: planNote))
        // An answer that comes later (a write waits for its group commit), as MHD would wait.
        if let deferred = response.deferred {
            for _ in 0..<3000 where deferred.completedResponse == nil { usleep(10_000) }
            response = deferred.completedResponse ?? .error(status: 599, message: "no answer within 30 s")
        }
        return (response.status, try? JSONDecoder().decode(ErrorBody.self, from: Data(response.body)), response)
    }

    @Test func authFailuresAre401Then403WithJSONBodies() {
        defer { cleanUp() }
        let missing = send("GET", "/api/v1/status", auth: nil)
        #expect(missing.0 == 401)
        #expect(missing.1?.error.code == "unauthorized")
        let wrong = send("GET", "/api/v1/status", auth: "nope")
        #expect(wrong.0 == 403)
        #expect(wrong.1?.error.code == "invalid_credentials")
        #expect(send("GET", "/api/v1/status").0 == 200)
        #expect(send("GET", "/api/v1/status", auth: String(repeating: "h", count: 40)).0 == 200)
        #expect(send("GET", "/api/v1/health", auth: nil).0 == 200)
        // The scheme's name in any case; nothing else in its place.
        for scheme in ["bearer ", "BEARER ", "bEaReR "] {
            #expect(send("GET", "/api/v1/status", auth: nil, headers: ["authorization": scheme + key]).0 == 200)
        }
        for scheme in ["Bearer\t", "Bearer\0", "Bearer:", "Basic  ", "Bearér ", "B\u{212A}arer "] {
            let refused = send("GET", "/api/v1/status", auth: nil, headers: ["authorization": scheme + key])
            #expect(refused.0 == 401 && refused.1?.error.message.contains("must be 'Bearer") == true, "\(scheme)")
        }
        // Spaces, tabs and line breaks around the key are not part of it; inside it they are.
        for padded in ["Bearer   " + key + " \t", "bearer \t" + key + "\r\n"] {
            #expect(send("GET", "/api/v1/status", auth: nil, headers: ["authorization": padded]).0 == 200)
        }
        #expect(send("GET", "/api/v1/status", auth: nil,
                     headers: ["authorization": "Bearer " + key.prefix(20) + " " + key.dropFirst(20)]).0 == 403)
        #expect(send("GET", "/api/v1/status", auth: nil, headers: ["authorization": "Bearer    "]).0 == 403)
        #expect(Authenticator.bearerToken("Bearer  a b\t") == "a b")
        #expect(Authenticator.bearerToken("Bearer") == nil)
        #expect(Authenticator.bearerToken("Bearer ") == "")
        // Unknown paths do not reveal themselves without credentials.
        #expect(send("GET", "/api/v1/nothing", auth: nil).0 == 401)
        #expect(send("GET", "/api/v1/nothing").0 == 404)
    }

    @Test func badInputGetsClearErrors() {
        defer { cleanUp() }
        #expect(send("PUT", "/api/v1/context/k", body: "{").1?.error.code == "bad_json")
        let missing = send("PUT", "/api/v1/context/k", body: "{}")
        #expect(missing.0 == 400)
        #expect(missing.1?.error.message == "missing field 'value'")
        #expect(send("PUT", "/api/v1/context/k", body: #"{"value":1}"#).1?.error.message == "field 'value' must be a string")
        #expect(send("PUT", "/api/v1/context/k", body: #"{"value":"x","ttl":0}"#).1?.error.code == "bad_ttl")
        #expect(send("PUT", "/api/v1/context/k", body: #"{"value":"x"}"#, headers: ["content-type": "text/plain"]).0 == 415)
        #expect(send("PUT", "/api/v1/context/k", body: #"{"value":"0123456789abcdefg"}"#).0 == 413)
        #expect(send("PUT", "/api/v1/context/" + String(repeating: "k", count: 513), body: #"{"value":"x"}"#).1?.error.code == "bad_key")
        #expect(send("PUT", "/api/v1/context/a%0Ab", body: #"{"value":"x"}"#).1?.error.code == "bad_key")
        #expect(send("GET", "/api/v1/context/%zz").1?.error.code == "bad_path")
        #expect(send("GET", "/api/v1/audit?limit=0").1?.error.code == "bad_query")
        let wrongMethod = send("PATCH", "/api/v1/status")
        #expect(wrongMethod.0 == 405)
        #expect(wrongMethod.2.header("Allow") == "GET")
    }

    @Test func writesRecordWhoWroteThem() throws {
        defer { cleanUp() }
        let local = send("PUT", "/api/v1/context/k", body: #"{"value":"x"}"#)
        #expect(local.0 == 200)
        let helper = send("PUT", "/api/v1/context/k", body: #"{"value":"y"}"#, auth: String(repeating: "h", count: 40))
        let entry = try JSONDecoder().decode(ContextEntry.self, from: Data(helper.2.body))
        #expect(entry.fromNodeId == "key:helper")
        #expect(entry.revision == 2)
    }

    @Test func everyResponseCarriesARequestId() {
        defer { cleanUp() }
        #expect(send("GET", "/api/v1/health").2.header("X-Request-Id")?.count == 16)
        #expect(send("GET", "/api/v1/x", auth: nil).2.header("X-Request-Id")?.count == 16)
    }

    /// A context PUT is authenticated from its head in `plan` (its body may pass 64 KiB). When
    /// the body follows quickly that stands, and the request is not authenticated again; when
    /// it took longer than `Routed.authenticationStandsFor`, it is, so a key revoked while the
    /// body trickled in is refused then. (The request's credentials here are not valid, as
    /// those of a key revoked meanwhile.)
    @Test func theHeadsAuthenticationStandsOnlyForABodyThatCameQuickly() throws {
        defer { cleanUp() }
        var config = LoopsyConfig()
        config.auth.apiKey = key
        #expect(config.context.maxValueBytes > 64 * 1024)
        let pool = try DatabasePool(path: directory + "/large.db", migrations: try Migration.load(
            from: try Migration.locateDirectory(environment: [:], executablePath: nil)))
        let node = NodeServices(config: config, dataDir: DataDir(root: directory), identity: .generate(), pool: pool,
                                logger: Logger(level: .error))
        let dispatcher = Dispatcher(routes: Routes.table(config: config), node: node, authenticator: node.authenticator,
                                    rateLimiter: RateLimiter(perMinute: [:]), auditLog: nil)
        func put(_ value: String, auth: String, note: Routed) -> HTTPResponse {
            let body = Array(#"{"value":"\#(value)"}"#.utf8)
            let headers: HTTPHeaders = ["authorization": "Bearer " + auth, "content-type": "application/json",
                                        "content-length": "\(body.count)"]
            var response = dispatcher.handle(HTTPRequest(method: "PUT", rawPath: "/api/v1/context/k", headers: headers,
                                                         body: body, planNote: note))
            if let deferred = response.deferred {
                for _ in 0..<3000 where deferred.completedResponse == nil { usleep(10_000) }
                response = deferred.completedResponse ?? .error(status: 599, message: "no answer within 30 s")
            }
            return response
        }
        let head = HTTPRequestHead(method: "PUT", rawPath: "/api/v1/context/k",
                                   headers: ["authorization": "Bearer " + key, "content-length": "13",
                                             "content-type": "application/json"])
        guard case .bufferNoting(_, let note) = dispatcher.plan(for: head), let routed = note as? Routed else {
            Issue.record("a context PUT was not planned with its route")
            return
        }
        #expect(routed.caller?.isOwner == true)
        let revoked = String(repeating: "r", count: 40)
        #expect(put("x", auth: revoked, note: routed).status == 200)
        let slow = Routed(route: routed.route, parameters: routed.parameters, caller: routed.caller,
                          authenticatedAt: routed.authenticatedAt - Routed.authenticationStandsFor - 1)
        let late = put("y", auth: revoked, note: slow)
        #expect(late.status == 403)
        #expect(try node.contextStore.get(key: "k")?.value == "x")
    }
}

extension Authenticator {
    /// The credential `bearerRange` finds in a header, as text.
    static func bearerToken(_ authorization: String) -> String? {
        var header = authorization
        return header.withUTF8 { bytes in
            bearerRange(bytes).map { String(decoding: UnsafeBufferPointer(rebasing: bytes[$0]), as: UTF8.self) }
        }
    }
}
