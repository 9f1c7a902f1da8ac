import Foundation
import LoopsyAPI
import LoopsyClient
import Testing

/// The dashboard's server side against a real loopsyd: what needs no key (its files), what a
/// session cookie opens, and everything shaped to slip past that.
@Suite struct DashboardTests {
    /// Logs in with the node key; returns the cookie pair ("name=value") and the CSRF token.
    static func login(_ node: TestNode, body: String? = nil) throws -> (cookie: String, csrf: String) {
        let response = try node.http("POST", "/dashboard/api/login", body: body ?? "{\"apiKey\":\"\(node.apiKey)\"}",
                                     key: "")
        guard response.status == 200, let setCookie = response.headers["set-cookie"] else {
            throw HarnessError("login failed: \(response.status) \(response.text)")
        }
        let session = try response.json(DashboardSessionResponse.self)
        return (String(setCookie.split(separator: ";")[0]), session.csrfToken)
    }

    @Test func filesNeedNoKeyAndForbidFramingAndForeignScripts() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let redirect = try node.http("GET", "/dashboard", key: "")
        #expect(redirect.status == 308 && redirect.headers["location"] == "/dashboard/")
        for (path, type) in [("/dashboard/", "text/html"), ("/dashboard/app.js", "text/javascript"),
                             ("/dashboard/app.css", "text/css"), ("/dashboard/icon.svg", "image/svg+xml")] {
            let response = try node.http("GET", path, key: "")
            #expect(response.status == 200, "\(path)")
            #expect(response.headers["content-type"]?.hasPrefix(type) == true, "\(path)")
            #expect(response.headers["content-security-policy"]?.contains("script-src 'self'") == true)
            #expect(response.headers["content-security-policy"]?.contains("frame-ancestors 'none'") == true)
            #expect(response.headers["x-frame-options"] == "DENY")
        }
        // No inline script anywhere: the policy above would block it.
        let page = try node.http("GET", "/dashboard/", key: "").text
        #expect(page.contains("<script src=\"app.js\" defer></script>"))
        #expect(!page.contains("<script>"))
        #expect(!page.contains("http://") && !page.contains("https://"), "no CDN or other origin")
    }

    @Test func encodedAndOddDashboardPathsServeNothingWithoutAuth() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let marker = node.dataDir + "/pwned"
        let execute = "{\"command\":\"touch\",\"args\":[\"\(marker)\"]}"
        for path in ["/dashboard/%61pp.js", "/dashboard/../api/v1/status", "/dashboard/%2e%2e/api/v1/status",
                     "/dashboard/%2E%2E%2Fapi%2Fv1%2Fstatus", "//dashboard/app.js", "/dashboard//app.js",
                     "/dashboard/app.js/", "/Dashboard/", "/dashboard/api/%73ession", "/dashboard/api/session/",
                     "/dashboard/api/session%00", "/dashboard/app.js%3f", "/dashboard/./app.js",
                     "/dashboard/api/../../api/v1/status"] {
            let replies = try RawHTTP.exchange(port: node.port, requests: [
                "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"])
            #expect(replies.first?.hasPrefix("HTTP/1.1 401") == true, "\(path): \(replies.first?.prefix(40) ?? "none")")
        }
        for path in ["/dashboard/%2e%2e/api/v1/execute", "/dashboard/../api/v1/execute", "/dashboard/api/../../api/v1/execute",
                     "/dashboard/api/login/../../../api/v1/execute", "/dashboard%2f..%2fapi%2fv1%2fexecute"] {
            let request = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(execute.utf8.count)\r\n\r\n\(execute)"
            let replies = try RawHTTP.exchange(port: node.port, requests: [request])
            #expect(replies.first?.hasPrefix("HTTP/1.1 401") == true, "\(path): \(replies.first?.prefix(40) ?? "none")")
        }
        // With a session cookie the same paths are still not routes (404/400), and nothing ran.
        let (cookie, csrf) = try Self.login(node)
        let odd = try node.http("POST", "/dashboard/%2e%2e/api/v1/execute", body: execute, key: "",
                                headers: ["Cookie": cookie, "X-CSRF-Token": csrf])
        #expect(odd.status == 404)
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test func theCookieIsStrictAndHttpOnlyAndChangesNeedTheCSRFToken() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        #expect(try node.http("POST", "/dashboard/api/login", body: "{\"apiKey\":\"\(String(repeating: "0", count: 64))\"}",
                              key: "").errorCode == "invalid_credentials")
        let response = try node.http("POST", "/dashboard/api/login", body: "{\"apiKey\":\"\(node.apiKey)\"}", key: "")
        let setCookie = try #require(response.headers["set-cookie"])
        #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict") && setCookie.contains("Path=/"))
        #expect(!setCookie.contains(node.apiKey), "the cookie is a session token, not the key")
        let cookie = String(setCookie.split(separator: ";")[0])
        let csrf = try response.json(DashboardSessionResponse.self).csrfToken

        // The cookie alone opens nothing, reads included: browsers send it to every port of the
        // host, so another local server could have collected it. The token is what counts.
        #expect(try node.http("GET", "/api/v1/status", key: "", headers: ["Cookie": cookie]).errorCode == "csrf_failed")
        #expect(try node.http("GET", "/dashboard/api/session", key: "", headers: ["Cookie": cookie])
            .errorCode == "csrf_failed")
        #expect(try node.http("GET", "/api/v1/status", key: "", headers: ["Cookie": cookie, "X-CSRF-Token": csrf])
            .status == 200)
        let session = try node.http("GET", "/dashboard/api/session", key: "",
                                    headers: ["Cookie": cookie, "X-CSRF-Token": csrf])
        #expect(try session.json(DashboardSessionResponse.self).nodes.first?.base == "/api/v1")
        #expect(try node.http("GET", "/dashboard/api/session", key: "").status == 401)
        // Every answer forbids being run as a page or framed; only the dashboard's files differ.
        #expect(session.headers["content-security-policy"]?.contains("sandbox") == true)

        // Changing needs the token, the same origin, and a same-origin fetch.
        let put = "{\"value\":\"from the dashboard\"}"
        #expect(try node.http("PUT", "/api/v1/context/k", body: put, key: "", headers: ["Cookie": cookie])
            .errorCode == "csrf_failed")
        #expect(try node.http("PUT", "/api/v1/context/k", body: put, key: "",
                              headers: ["Cookie": cookie, "X-CSRF-Token": String(repeating: "a", count: 64)])
            .errorCode == "csrf_failed")
        #expect(try node.http("PUT", "/api/v1/context/k", body: put, key: "",
                              headers: ["Cookie": cookie, "X-CSRF-Token": csrf, "Origin": "http://evil.example"])
            .errorCode == "origin_forbidden")
        #expect(try node.http("PUT", "/api/v1/context/k", body: put, key: "",
                              headers: ["Cookie": cookie, "X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"])
            .errorCode == "cross_site")
        #expect(try node.http("GET", "/api/v1/status", key: "",
                              headers: ["Cookie": cookie, "X-CSRF-Token": csrf, "Sec-Fetch-Site": "same-site"])
            .errorCode == "cross_site")
        #expect(try node.http("GET", "/api/v1/context/k").status == 404, "nothing was written so far")
        let written = try node.http("PUT", "/api/v1/context/k", body: put, key: "",
                                    headers: ["Cookie": cookie, "X-CSRF-Token": csrf, "Origin": node.baseURL,
                                              "Sec-Fetch-Site": "same-origin"])
        #expect(written.status == 200)
        #expect(try node.client.contextGet("k").value == "from the dashboard")
        // The audit log says the dashboard did it.
        #expect(try eventually(5) {
            try node.client.audit(limit: 50).contains { $0.caller == "local (dashboard)" && $0.method == "PUT" }
        })

        // Logging out ends the session for good.
        let out = try node.http("POST", "/dashboard/api/logout", key: "", headers: ["Cookie": cookie, "X-CSRF-Token": csrf])
        #expect(out.status == 200 && out.headers["set-cookie"]?.contains("Max-Age=0") == true)
        #expect(try node.http("GET", "/api/v1/status", key: "", headers: ["Cookie": cookie, "X-CSRF-Token": csrf])
            .status == 401)
    }

    @Test func aNewKeyEndsEverySession() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let (cookie, csrf) = try Self.login(node)
        let headers = ["Cookie": cookie, "X-CSRF-Token": csrf]
        #expect(try node.http("GET", "/api/v1/status", key: "", headers: headers).status == 200)
        // Login links minted with the old key (by whoever had it: rotating is what one does
        // about a leaked key) die with it too, unused or not.
        let links = try (0..<2).map { _ in
            let minted = try node.http("POST", "/dashboard/api/link", key: node.apiKey)
            #expect(minted.status == 201)
            return try #require(minted.text.split(separator: "#login=").last?.split(separator: "\"").first.map(String.init))
        }
        let rotated = try node.cli("key", "generate")
        #expect(rotated.status == 0, "\(rotated.stderr)")
        // The daemon notices the new key within half a second; the old key's session is over.
        #expect(eventually(5) { (try? node.http("GET", "/api/v1/status", key: "", headers: headers).status) == 401 })
        for link in links {
            let redeemed = try node.http("POST", "/dashboard/api/login", body: "{\"token\":\"\(link)\"}", key: "")
            #expect(redeemed.errorCode == "link_expired", "\(redeemed.status) \(redeemed.text)")
        }
        _ = try Self.login(node)  // the new key logs in
        // A link minted with the new key works.
        let minted = try node.http("POST", "/dashboard/api/link", key: node.apiKey)
        let fresh = try #require(minted.text.split(separator: "#login=").last?.split(separator: "\"").first.map(String.init))
        _ = try Self.login(node, body: "{\"token\":\"\(fresh)\"}")
    }

    /// What a session opened goes on only while the session does: a long-poll answered after
    /// the logout gets a 401 instead of the change, and a job's output stream opened by a
    /// session is cut within about a second of a new key.
    @Test func openAnswersEndWithTheSessionThatOpenedThem() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        var (cookie, csrf) = try Self.login(node)
        var session = ["Cookie": cookie, "X-CSRF-Token": csrf, "Sec-Fetch-Site": "same-origin"]
        let poll = try EventStream(port: node.port, path: "/api/v1/context?prefix=sec&wait=30", headers: session)
        Thread.sleep(forTimeInterval: 0.5)
        let out = try node.http("POST", "/dashboard/api/logout", key: "", headers: ["Cookie": cookie, "X-CSRF-Token": csrf])
        #expect(out.status == 200)
        #expect(try node.http("PUT", "/api/v1/context/secret1", body: #"{"value":"written after the logout"}"#).status == 200)
        #expect(poll.waitFor("ended while it waited", seconds: 10))
        #expect(poll.text.hasPrefix("HTTP/1.1 401"), "\(poll.text)")
        #expect(!poll.text.contains("written after the logout"))

        (cookie, csrf) = try Self.login(node)
        session = ["Cookie": cookie, "X-CSRF-Token": csrf, "Content-Type": "application/json"]
        let job = try EventStream(port: node.port, path: "/api/v1/execute/stream", method: "POST", headers: session,
                                  body: #"{"command":"sh","args":["-c","echo started; sleep 1; echo tick; sleep 1; echo tock; sleep 30"]}"#)
        #expect(job.waitFor("started", seconds: 10))
        let rotated = try node.cli("key", "generate")
        #expect(rotated.status == 0, "\(rotated.stderr)")
        let ended = Date()
        #expect(job.waitForEnd(seconds: 10))
        #expect(Date().timeIntervalSince(ended) < 5, "the stream went on \(Date().timeIntervalSince(ended)) s")
        #expect(!job.text.contains("event: exit"))
        // The owner's own key (the new one) still streams.
        let owner = try EventStream(port: node.port, path: "/api/v1/execute/stream", method: "POST",
                                    headers: ["Authorization": "Bearer \(node.apiKey)", "Content-Type": "application/json"],
                                    body: #"{"command":"echo","args":["still served"]}"#)
        #expect(owner.waitFor("still served", seconds: 10))
        #expect(owner.waitForEnd(seconds: 10))
    }

    @Test func onlyTheNodeKeyLogsInAndLinksWorkOnce() throws {
        let helper = String(repeating: "h", count: 40)
        let node = try TestNode { $0.replacingOccurrences(of: "allowedKeys: {}", with: "allowedKeys: {helper: \(helper)}") }
        defer { node.cleanUp() }
        try node.start()
        #expect(try node.http("POST", "/dashboard/api/login", body: "{\"apiKey\":\"\(helper)\"}", key: "")
            .errorCode == "invalid_credentials")
        #expect(try node.http("POST", "/dashboard/api/login", body: "{}", key: "").status == 400)
        #expect(try node.http("POST", "/dashboard/api/login", body: "apiKey=\(node.apiKey)", key: "",
                              headers: ["Content-Type": "application/x-www-form-urlencoded"]).status == 415)

        // `loopsy dashboard --daemon` prints a link whose token works once.
        let printed = try node.cli("dashboard", "--daemon")
        #expect(printed.status == 0, "\(printed.stderr)")
        let token = try #require(printed.stdout.split(separator: "#login=").last.map { $0.trimming() })
        #expect(printed.stdout.contains("\(node.baseURL)/dashboard/#login="))
        _ = try Self.login(node, body: "{\"token\":\"\(token)\"}")
        #expect(try node.http("POST", "/dashboard/api/login", body: "{\"token\":\"\(token)\"}", key: "")
            .errorCode == "link_expired")
        // Links are for the owner's key only, not for a helper key or a dashboard session.
        #expect(try node.http("POST", "/dashboard/api/link", key: helper).status == 403)
        let (cookie, csrf) = try Self.login(node)
        #expect(try node.http("POST", "/dashboard/api/link", key: "", headers: ["Cookie": cookie, "X-CSRF-Token": csrf])
            .status == 403)
    }

    @Test func loginAttemptsCountAgainstThePairingRateLimit() throws {
        let node = try TestNode { replacingLine($0, "  pairing: 10 ", "  pairing: 3 ") }
        defer { node.cleanUp() }
        try node.start()
        let wrong = "{\"apiKey\":\"\(String(repeating: "1", count: 64))\"}"
        for _ in 0..<3 { #expect(try node.http("POST", "/dashboard/api/login", body: wrong, key: "").status == 403) }
        let limited = try node.http("POST", "/dashboard/api/login", body: "{\"apiKey\":\"\(node.apiKey)\"}", key: "")
        #expect(limited.status == 429 && limited.headers["retry-after"] != nil)
    }

    @Test func theEventStreamNamesWhatChangedAndIsForTheOwnerOnly() throws {
        let helper = String(repeating: "h", count: 40)
        let node = try TestNode { $0.replacingOccurrences(of: "allowedKeys: {}", with: "allowedKeys: {helper: \(helper)}") }
        defer { node.cleanUp() }
        try node.start()
        #expect(try node.http("GET", "/api/v1/events", key: helper).status == 403)

        let received = EventLog()
        let done = DispatchSemaphore(value: 0)
        let url = node.baseURL + "/api/v1/events"
        let key = node.apiKey
        DispatchQueue.global().async {
            try? CurlHTTPClient(timeoutSeconds: 20).relay(
                method: "GET", url: url, headers: ["Authorization": "Bearer \(key)"], bodyLength: nil, read: nil,
                isCancelled: { received.finished }, onHead: { _, _ in },
                onData: { received.append($0); return !received.finished })
            done.signal()
        }
        #expect(eventually(5) { received.text.contains("event: ready") })
        _ = try node.client.contextSet("watched", value: "1", ttl: nil)
        #expect(eventually(5) { received.text.contains("\"topic\":\"context\"") })
        #expect(received.text.contains("event: change") && received.text.contains("/api/v1/context/watched"))
        received.finish()
        _ = try node.client.contextSet("wake", value: "1", ttl: nil)  // the stream notices the client left
        #expect(done.wait(timeout: .now() + 10) == .success)
    }
}

/// Bytes an SSE reader received, shared with the test thread.
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var bytes: [UInt8] = []
    private var done = false

    func append(_ more: [UInt8]) { lock.withLock { bytes += more } }
    var text: String { lock.withLock { String(decoding: bytes, as: UTF8.self) } }
    func finish() { lock.withLock { done = true } }
    var finished: Bool { lock.withLock { done } }
}
