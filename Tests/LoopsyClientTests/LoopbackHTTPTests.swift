import LoopsyAPI
import LoopsyHTTP
import LoopsyPOSIX
import Testing
@testable import LoopsyClient
#if canImport(Glibc)
import Glibc
#endif

/// The CLI's plain client for its own daemon (LoopbackHTTP): it answers as libcurl does against
/// a real libmicrohttpd server, and reads whatever else holds the port as carefully.
@Suite struct LoopbackHTTPTests {
    @Test(arguments: [
        ("http://127.0.0.1:19532/api/v1/health", 19532, "/api/v1/health"),
        ("http://127.0.0.1:1/", 1, "/"),
        ("http://127.0.0.1:65535/api/v1/context?prefix=a%20b&limit=2", 65535, "/api/v1/context?prefix=a%20b&limit=2"),
    ])
    func loopbackURLsAreTaken(url: String, port: Int, path: String) throws {
        let target = try #require(LoopbackHTTP.target(url))
        #expect(Int(target.port) == port && target.path == path)
    }

    @Test(arguments: [
        "https://127.0.0.1:19532/api/v1/health", "http://localhost:19532/", "http://127.0.0.2:19532/",
        "http://127.0.0.1:0/", "http://127.0.0.1:65536/", "http://127.0.0.1:019532/", "http://127.0.0.1:+80/",
        "http://127.0.0.1:80", "http://127.0.0.1:80@evil.example/", "http://127.0.0.1:/x", "http://127.0.0.1:80/a b",
        "http://127.0.0.1:80/a\r\nX: y", "http://127.0.0.1:80/é", "http://[::1]:80/",
    ])
    func anythingElseStaysWithCurl(url: String) {
        #expect(LoopbackHTTP.target(url) == nil)
    }

    // MARK: Against libmicrohttpd, the same answers as libcurl's

    final class Canned: HTTPHandler, Sendable {
        let last = PlainMutex<(method: String, body: [UInt8], auth: String?, connection: String?)>(("", [], nil, nil))
        func plan(for head: HTTPRequestHead) -> BodyPlan { .buffer(limit: 1 << 20) }
        func payloadTooLarge(for head: HTTPRequestHead, limit: Int) -> HTTPResponse { HTTPResponse(status: 413) }
        func handle(_ request: HTTPRequest) -> HTTPResponse {
            last.withLock { $0 = (request.method, request.body, request.headers["authorization"], request.headers["connection"]) }
            let json = [(name: "Content-Type", value: "application/json")]
            switch request.rawPath {
            case "/ok": return HTTPResponse(status: 200, headers: json + [("X-Thing", "  spaced  ")], body: Array(#"{"a":1}"#.utf8))
            case "/big": return HTTPResponse(status: 200, body: [UInt8](repeating: 0x61, count: 300_000))
            case "/empty": return HTTPResponse(status: 204)
            case "/missing":
                return HTTPResponse(status: 404, headers: json, body: Array(#"{"error":{"code":"not_found","message":"no"}}"#.utf8))
            case "/huge-error": return HTTPResponse(status: 500, body: [UInt8](repeating: 0x62, count: 100_000))
            default: return HTTPResponse(status: 400)
            }
        }
    }

    /// A real libmicrohttpd server with `Canned` answers, and two clients of it: libcurl, and the
    /// same client with the plain path on.
    private func cannedServer(maxResponseBytes: Int) throws -> (HTTPServer, Canned, CurlHTTPClient, CurlHTTPClient, String) {
        let handler = Canned()
        let server = HTTPServer(handler: handler, options: HTTPServerOptions(host: "127.0.0.1", port: 0))
        try server.start()
        var curl = CurlHTTPClient(timeoutSeconds: 5)
        curl.maxResponseBytes = maxResponseBytes
        var loopback = curl
        loopback.usesLoopbackClient = true
        return (server, handler, curl, loopback, "http://127.0.0.1:\(server.port)")
    }

    @Test func libmicrohttpdAnswersReadTheSameAsThroughLibcurl() throws {
        let (server, handler, curl, loopback, base) = try cannedServer(maxResponseBytes: 200_000)
        defer { server.stop() }
        for (method, path, body) in [("GET", "/ok", nil), ("GET", "/empty", nil), ("GET", "/missing", nil),
                                     ("GET", "/huge-error", nil), ("POST", "/ok", Array(#"{"x":"y"}"#.utf8)),
                                     ("PUT", "/ok", [] as [UInt8]?), ("HEAD", "/ok", nil), ("DELETE", "/ok", nil)] {
            let headers = ["Authorization": "Bearer k", "Accept": "application/json"]
            let expected = try curl.send(method: method, url: base + path, headers: headers, body: body)
            let sentThroughCurl = handler.last.withLock { $0 }
            let answer = try loopback.send(method: method, url: base + path, headers: headers, body: body)
            let sent = handler.last.withLock { $0 }
            #expect(answer.status == expected.status, "\(method) \(path)")
            #expect(answer.body == expected.body, "\(method) \(path)")
            for name in ["content-type", "content-length", "x-thing"] {
                #expect(answer.headers[name] == expected.headers[name], "\(method) \(path) \(name)")
            }
            #expect(sent.method == sentThroughCurl.method && sent.body == sentThroughCurl.body && sent.auth == "Bearer k")
            // The plain client ran (it closes; curl keeps the connection).
            #expect(sent.connection == "close" && sentThroughCurl.connection == nil)
        }
        // A 2xx answer longer than maxResponseBytes is refused by both, not cut.
        for client in [curl, loopback] {
            #expect {
                _ = try client.send(method: "GET", url: base + "/big")
            } throws: { error in
                if case CurlHTTPClient.Failure.tooLarge(_, let limit) = error { return limit == 200_000 }
                return false
            }
        }
        #expect(try loopback.send(method: "GET", url: base + "/huge-error").body.count == CurlHTTPClient.maxErrorBodyBytes)
    }

    /// Event streams (exec output) take the plain path too: the same pieces in order, an error
    /// answer returned whole, no limit on a 2xx body (the caller's onData decides).
    @Test func anEventStreamReadsTheSameAsThroughLibcurl() throws {
        let (server, handler, curl, loopback, base) = try cannedServer(maxResponseBytes: 1000)
        defer { server.stop() }
        for path in ["/ok", "/big", "/missing", "/empty"] {
            var viaCurl: [UInt8] = [], viaLoopback: [UInt8] = []
            let expected = try curl.stream(method: "GET", url: base + path, eventStream: true) { viaCurl += $0; return true }
            let answer = try loopback.stream(method: "GET", url: base + path, eventStream: true) { viaLoopback += $0; return true }
            #expect(handler.last.withLock { $0.connection } == "close", "\(path)")
            #expect(answer.status == expected.status && answer.body == expected.body && viaLoopback == viaCurl, "\(path)")
        }
        #expect(handler.last.withLock { $0.connection } == "close")
    }

    @Test(.timeLimit(.minutes(1))) func aStreamEndsWhenItsCallerSaysSo() throws {
        // onData returning false stops a stream that would never end.
        let trickle = try RawServer(.trickle(head: Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8),
                                             forever: Array("1\r\nX\r\n".utf8)))
        defer { trickle.stop() }
        var pieces = 0
        let stopped = try LoopbackHTTP.stream(method: "GET", url: "http://127.0.0.1:\(trickle.port)/", port: trickle.port, path: "/",
                                              headers: [:], body: nil, connectTimeoutSeconds: 5, isCancelled: nil) { _ in
            pieces += 1
            return pieces < 3
        }
        #expect(stopped.status == 200 && pieces == 3)
        // isCancelled ends one where nothing comes, within a quarter of a second or so…
        let silent = try Self.cancelledAfter300ms(.silent)
        #expect(silent.status == 0 && silent.took >= 300 && silent.took < 3_000, "took \(silent.took) ms")
        // …and one where bytes keep coming that onData takes (SSE comments, a trickled head):
        // the cancel is looked at before every read, not only when nothing arrives.
        let comments = try Self.cancelledAfter300ms(.trickle(head: Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8),
                                                             forever: Array("3\r\n:\n\n\r\n".utf8)))
        #expect(comments.status == 200 && comments.took >= 300 && comments.took < 3_000, "took \(comments.took) ms")
        // The status line was read: its status is what comes back, as from curl.
        let head = try Self.cancelledAfter300ms(.byteByByte(Array(("HTTP/1.1 200 OK\r\n" + String(repeating: "X: y\r\n", count: 2000)).utf8)))
        #expect(head.status == 200 && head.took < 3_000, "took \(head.took) ms")
    }

    /// A stream from a server in `mode` whose isCancelled turns true after 300 ms: its status,
    /// and the milliseconds it took.
    private static func cancelledAfter300ms(_ mode: RawServer.Mode) throws -> (status: Int, took: Int64) {
        let server = try RawServer(mode)
        defer { server.stop() }
        let started = LoopbackHTTP.Deadline.now()
        let response = try LoopbackHTTP.stream(method: "GET", url: "http://127.0.0.1:\(server.port)/", port: server.port, path: "/",
                                               headers: [:], body: nil, connectTimeoutSeconds: 5,
                                               isCancelled: { LoopbackHTTP.Deadline.now() - started > 300 }) { _ in true }
        return (response.status, LoopbackHTTP.Deadline.now() - started)
    }

    @Test func theLocalClientOfADataDirTakesThePlainPath() throws {
        let handler = Canned()
        let server = HTTPServer(handler: handler, options: HTTPServerOptions(host: "127.0.0.1", port: 0))
        try server.start()
        defer { server.stop() }
        var client = LoopsyClient(baseURL: "http://127.0.0.1:\(server.port)", apiKey: "secret", timeoutSeconds: 5)
        #expect(!client.http.usesLoopbackClient)
        client.http.usesLoopbackClient = true
        let response = try client.request("GET", "/ok")
        #expect(response.status == 200 && handler.last.withLock { $0.auth } == "Bearer secret")
        #expect(handler.last.withLock { $0.connection } == "close")
        #expect {
            _ = try client.request("GET", "/missing")
        } throws: { error in
            if case ClientError.api(let api) = error { return api.status == 404 && api.code == "not_found" }
            return false
        }
    }

    @Test func nothingListeningIsCouldNotConnect() throws {
        let server = try RawServer(.silent)
        let port = server.port
        server.stop()
        #expect {
            _ = try Self.send(port: port, timeout: 2)
        } throws: { error in
            if case CurlHTTPClient.Failure.couldNotConnect = error { return true }
            return false
        }
    }

    // MARK: Whatever else answers on the port

    @Test func theRequestIsOneCloseDelimitedHTTP11Request() throws {
        let server = try RawServer(.answer(Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".utf8)))
        defer { server.stop() }
        // A header without a value is not sent (as with curl).
        let answer = try LoopbackHTTP.send(method: "POST", url: "http://127.0.0.1:\(server.port)/p?q=1", port: server.port,
                                           path: "/p?q=1", headers: ["Authorization": "Bearer k", "X-Empty": ""],
                                           body: Array("abc".utf8),
                                           timeoutSeconds: 5, connectTimeoutSeconds: 5, maxResponseBytes: 100)
        #expect(answer.status == 200 && answer.body == Array("hi".utf8))
        let request = String(decoding: server.received(), as: UTF8.self)
        #expect(request == "POST /p?q=1 HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\nAuthorization: Bearer k\r\n"
            + "Content-Length: 3\r\nConnection: close\r\n\r\nabc")
    }

    @Test(arguments: [
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;name=value\r\n world\r\n0\r\n\r\n", "hello world"),
        ("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes", "yes"),
        ("HTTP/1.0 200 OK\r\n\r\nuntil the end", "until the end"),
        ("HTTP/1.1 200 OK\nContent-Length: 4\n\nbare", "bare"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", ""),
    ])
    func framingsAreRead(answer: String, body: String) throws {
        // In one write, and a byte at a time (every line and length split across reads).
        for mode in [RawServer.Mode.answer(Array(answer.utf8)), .byteByByte(Array(answer.utf8))] {
            let server = try RawServer(mode)
            defer { server.stop() }
            let response = try Self.send(port: server.port, timeout: 5)
            #expect(response.status == 200 && String(decoding: response.body, as: UTF8.self) == body, "\(mode)")
        }
    }

    /// Each of these fails with a message, in time, without a crash or a huge allocation.
    @Test(arguments: [
        ("SSH-2.0-OpenSSH_9.2\r\n", "not HTTP"),
        ("HTTP/1.1 2000 OK\r\n\r\n", "not HTTP"),
        ("", "Empty reply"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "partial"),
        ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", "Content-Length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n", "Content-Length"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n", "size is not a size"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n", "size is not a size"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + String(repeating: "e", count: 5000) + "\r\nX\r\n0\r\n\r\n",
         "size line is longer than 1024"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n", "chunk's end is longer than 2"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "partial"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "transfer encoding"),
        ("HTTP/1.1 200 OK\r\nX: " + String(repeating: "a", count: 70_000) + "\r\n\r\n", "head is longer than"),
        ("HTTP/1.1 200 OK\r\n" + String(repeating: "X: y\r\n", count: 12_000) + "\r\n", "head is longer than"),
        (String(repeating: "HTTP/1.1 100 Continue\r\n\r\n", count: 9) + "HTTP/1.1 200 OK\r\n\r\n", "interim"),
    ])
    func hostileAnswersFailCleanly(answer: String, expected: String) throws {
        for mode in [RawServer.Mode.answer(Array(answer.utf8)), .byteByByte(Array(answer.utf8))] where answer.count < 2000 || mode.isWhole {
            let server = try RawServer(mode)
            defer { server.stop() }
            #expect {
                _ = try Self.send(port: server.port, timeout: 5)
            } throws: { error in
                "\(error)".contains(expected)
            }
        }
    }

    /// A server that keeps sending (a chunk of one byte after another) does not hold the call
    /// past its timeout.
    @Test func bytesThatKeepComingDoNotHoldOffTheTimeout() throws {
        let server = try RawServer(.trickle(head: Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8),
                                            forever: Array("1\r\nX\r\n".utf8)))
        defer { server.stop() }
        let started = LoopbackHTTP.Deadline.now()
        #expect {
            _ = try Self.send(port: server.port, timeout: 1, limit: 512 << 20)
        } throws: { error in
            if case CurlHTTPClient.Failure.timedOut = error { return true }
            return false
        }
        let waited = LoopbackHTTP.Deadline.now() - started
        #expect(waited >= 900 && waited < 5_000, "waited \(waited) ms")
    }

    /// A server that answers from the head (413) and does not read the body: the answer is
    /// what the caller gets, as with curl, not a broken pipe.
    @Test func anAnswerBeforeTheWholeBodyIsTheAnswer() throws {
        let answer = "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 43\r\n\r\n"
            + #"{"error":{"code":"too_large","message":"x"}}"#.dropLast()
        let server = try RawServer(.answerEarly(Array(answer.utf8)))
        defer { server.stop() }
        let response = try LoopbackHTTP.send(method: "PUT", url: "http://127.0.0.1:\(server.port)/", port: server.port, path: "/",
                                             headers: [:], body: [UInt8](repeating: 0x61, count: 32 << 20), timeoutSeconds: 10,
                                             connectTimeoutSeconds: 5, maxResponseBytes: 100)
        #expect(response.status == 413 && response.body.count == 43)
    }

    @Test func aLengthPastTheLimitIsTooLargeBeforeAnyOfItIsRead() throws {
        let server = try RawServer(.answer(Array("HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n".utf8)))
        defer { server.stop() }
        #expect {
            _ = try Self.send(port: server.port, timeout: 5, limit: 1 << 20)
        } throws: { error in
            if case CurlHTTPClient.Failure.tooLarge(_, let limit) = error { return limit == 1 << 20 }
            return false
        }
    }

    @Test func aServerThatSaysNothingTimesOut() throws {
        let server = try RawServer(.silent)
        defer { server.stop() }
        let started = LoopbackHTTP.Deadline.now()
        #expect {
            _ = try Self.send(port: server.port, timeout: 1)
        } throws: { error in
            if case CurlHTTPClient.Failure.timedOut = error { return true }
            return false
        }
        let waited = LoopbackHTTP.Deadline.now() - started
        #expect(waited >= 900 && waited < 10_000, "waited \(waited) ms")
    }

    @Test(arguments: [["X-Bad": "a\r\nInjected: yes"], ["X-Bad\r\nInjected": "1"], ["X:Bad": "1"], ["": "1"], ["X-Nul": "a\u{0}b"],
                      ["X\tY": "1"], ["X Y": "1"], ["Host": "evil"], ["content-length": "5"], ["Transfer-Encoding": "chunked"],
                      ["Connection": "keep-alive"]])
    func headersThatWouldAddLinesOrFramingAreRefusedBeforeConnecting(headers: [String: String]) throws {
        let server = try RawServer(.answer(Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8)))
        defer { server.stop() }
        #expect(throws: CurlHTTPClient.Failure.self) {
            _ = try LoopbackHTTP.send(method: "GET", url: "http://127.0.0.1:\(server.port)/", port: server.port, path: "/",
                                      headers: headers, body: nil, timeoutSeconds: 2, connectTimeoutSeconds: 2,
                                      maxResponseBytes: 100)
        }
        #expect(server.connections() == 0)
    }

    private static func send(port: UInt16, timeout: Int, limit: Int = 1 << 20) throws -> CurlHTTPClient.Response {
        try LoopbackHTTP.send(method: "GET", url: "http://127.0.0.1:\(port)/x", port: port, path: "/x", headers: [:],
                              body: nil, timeoutSeconds: timeout, connectTimeoutSeconds: timeout, maxResponseBytes: limit)
    }
}

/// A TCP server on 127.0.0.1 that reads each request's head (and a body of its Content-Length)
/// and then answers as its mode says, one connection at a time.
final class RawServer: @unchecked Sendable {
    enum Mode: CustomStringConvertible {
        /// Writes the answer in one go and closes.
        case answer([UInt8])
        /// Writes the answer a byte at a time, 1 ms apart, and closes.
        case byteByByte([UInt8])
        /// Writes nothing and waits for the client to go.
        case silent
        /// Writes `head`, then `forever` again and again until the client goes.
        case trickle(head: [UInt8], forever: [UInt8])
        /// Reads only the request's head, answers, and closes 300 ms later without reading the body.
        case answerEarly([UInt8])

        var isWhole: Bool { if case .answer = self { return true } else { return false } }
        var description: String {
            switch self {
            case .answer: return "in one write"
            case .byteByByte: return "a byte at a time"
            case .silent: return "silent"
            case .trickle: return "trickle"
            case .answerEarly: return "answer early"
            }
        }
    }

    let port: UInt16
    private let fd: Int32
    private let state = PlainMutex<(received: [UInt8], connections: Int)>(([], 0))

    init(_ mode: Mode) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 8) == 0 else {
            close(listener)
            throw SystemCallFailure("bind/listen")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        fd = listener
        let state = state
        DedicatedThread.start("raw-server") {
            while true {
                let client = accept(listener, nil, nil)
                guard client >= 0 else {
                    // Closed here, not in `stop`: its number is not free for another socket
                    // while this thread may still accept on it.
                    close(listener)
                    return
                }
                state.withLock { $0.connections += 1 }
                var on: Int32 = 1
                setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
                switch mode {
                case .answer(let answer):
                    state.withLock { $0.received = RawServer.readRequest(client) }
                    _ = RawServer.write(client, answer)
                case .byteByByte(let answer):
                    state.withLock { $0.received = RawServer.readRequest(client) }
                    for byte in answer {
                        guard RawServer.write(client, [byte]) else { break }
                        usleep(1000)
                    }
                case .silent:
                    state.withLock { $0.received = RawServer.readRequest(client) }
                    var byte: UInt8 = 0
                    while recv(client, &byte, 1, 0) > 0 {}
                case .trickle(let head, let forever):
                    state.withLock { $0.received = RawServer.readRequest(client) }
                    var more = RawServer.write(client, head)
                    let many = Array([[UInt8]](repeating: forever, count: 64).joined())
                    while more { more = RawServer.write(client, many) }
                case .answerEarly(let answer):
                    state.withLock { $0.received = RawServer.readRequest(client, headOnly: true) }
                    _ = RawServer.write(client, answer)
                    usleep(300_000)
                }
                close(client)
            }
        }
    }

    /// False once the client is gone.
    private static func write(_ client: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                let count = Glibc.send(client, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                if count <= 0 { return false }
                sent += count
            }
            return true
        }
    }

    private static func readRequest(_ client: Int32, headOnly: Bool = false) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let end = bytes.firstRange(of: Array("\r\n\r\n".utf8)) {
                if headOnly { return bytes }
                let head = String(decoding: bytes[..<end.lowerBound], as: UTF8.self).lowercased()
                let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int(String($0.dropFirst("content-length:".count)).trimming()) } ?? 0
                if bytes.count >= end.upperBound + length { return bytes }
            }
            let count = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress!, $0.count, 0) }
            if count <= 0 { return bytes }
            bytes += chunk[..<count]
        }
    }

    func received() -> [UInt8] { state.withLock { $0.received } }
    func connections() -> Int { state.withLock { $0.connections } }

    /// The thread's next accept fails, and it closes the socket.
    func stop() { shutdown(fd, Int32(SHUT_RDWR)) }
}
