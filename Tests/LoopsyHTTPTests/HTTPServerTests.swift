import Dispatch
import LoopsyClient
@testable import LoopsyHTTP
import LoopsyPOSIX
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The libmicrohttpd core on its own: a real server on an ephemeral port, a real curl client.
@Suite struct HTTPServerTests {
    /// Answers /echo with what it received, /later from another thread after a pause, and
    /// /never not at all (until the server stops).
    final class Handler: HTTPHandler, Sendable {
        let pending = DispatchQueue(label: "later")
        /// What waited on each /held answer, as it does in the daemon (a Pending that holds the
        /// deferred answer, which holds it back through `onAbandon`): weakly, to see it freed.
        final class Waiter: Sendable {
            let deferred: DeferredResponse
            init(_ deferred: DeferredResponse) { self.deferred = deferred }
        }
        struct Weak: @unchecked Sendable { weak var waiter: Waiter? }
        let waiters = PlainMutex<[Weak]>([])
        func plan(for head: HTTPRequestHead) -> BodyPlan { .buffer(limit: 16) }
        func payloadTooLarge(for head: HTTPRequestHead, limit: Int) -> HTTPResponse {
            HTTPResponse(status: 413, body: Array("over \(limit)".utf8))
        }
        func handle(_ request: HTTPRequest) -> HTTPResponse {
            switch request.rawPath {
            case "/echo":
                let text = "\(request.method) \(request.query["q"] ?? "-") \(String(decoding: request.body, as: UTF8.self))"
                return HTTPResponse(status: 200, headers: [("X-Seen", request.header("x-test") ?? "")], body: Array(text.utf8))
            case "/later":
                let deferred = DeferredResponse()
                pending.asyncAfter(deadline: .now() + 0.05) { deferred.complete(HTTPResponse(status: 202, body: [0x6F, 0x6B])) }
                return HTTPResponse(deferred: deferred)
            case "/held":
                let deferred = DeferredResponse()
                let waiter = Waiter(deferred)
                deferred.onAbandon { _ = waiter }
                waiters.withLock { $0.append(Weak(waiter: waiter)) }
                pending.asyncAfter(deadline: .now() + 0.01) { deferred.complete(HTTPResponse(status: 200)) }
                return HTTPResponse(deferred: deferred)
            case "/never":
                return HTTPResponse(deferred: DeferredResponse())
            default:
                return HTTPResponse(status: 404)
            }
        }
    }

    private func started(_ handler: Handler = Handler()) throws -> (HTTPServer, String) {
        let server = HTTPServer(handler: handler, options: HTTPServerOptions(host: "127.0.0.1", port: 0))
        try server.start()
        #expect(server.port != 0)
        return (server, "http://127.0.0.1:\(server.port)")
    }

    @Test func answersWithWhatTheHandlerSaw() throws {
        let (server, base) = try started()
        defer { server.stop() }
        let response = try CurlHTTPClient().send(method: "POST", url: base + "/echo?q=a%20b", headers: ["X-Test": "yes"],
                                                 body: Array("body".utf8))
        #expect(response.status == 200)
        #expect(String(decoding: response.body, as: UTF8.self) == "POST a b body")
        #expect(response.headers["x-seen"] == "yes")
    }

    @Test func aBodyOverThePlannedLimitGetsTheHandlers413() throws {
        let (server, base) = try started()
        defer { server.stop() }
        let response = try CurlHTTPClient().send(method: "POST", url: base + "/echo", body: Array(repeating: 0x61, count: 17))
        #expect(response.status == 413)
        #expect(String(decoding: response.body, as: UTF8.self) == "over 16")
    }

    /// A request head as Chromium sends it: 15 fields and `cookies` cookies of `size` bytes each.
    private static func browserHeaders(cookies: Int, size: Int) -> [String: String] {
        var headers = ["X-Test": "yes", "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8",
                       "Accept-Encoding": "gzip, deflate, br, zstd", "Accept-Language": "en-GB,en-US;q=0.9,en;q=0.8",
                       "Cache-Control": "max-age=0", "Sec-Ch-Ua": "\"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"",
                       "Sec-Ch-Ua-Mobile": "?0", "Sec-Ch-Ua-Platform": "\"Linux\"", "Sec-Fetch-Dest": "document",
                       "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none", "Sec-Fetch-User": "?1",
                       "Upgrade-Insecure-Requests": "1",
                       "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"]
        headers["Cookie"] = (0..<cookies).map { "c\($0)=" + String(repeating: "v", count: size - 4 - String($0).count) }
            .joined(separator: "; ")
        return headers
    }

    /// The connection's memory pool (`HTTPServerOptions.connectionMemory`) holds the request head,
    /// a copy of its cookies and 64 bytes for each field and cookie: with 16 KiB, a browser's head
    /// with 40 cookies, 5 KB in all, fits; 32 KiB (`loopsy dashboard`) takes 12 KB of cookies. A
    /// head too large is refused with 431, the log says which setting to raise, and the server
    /// goes on answering.
    @Test func aBrowsersCookiesFitAndAnOversizedHeadIs431() throws {
        let lines = PlainMutex<[String]>([])
        let server = HTTPServer(handler: Handler(), options: HTTPServerOptions(
            host: "127.0.0.1", port: 0, log: { line in lines.withLock { $0.append(line) } }, poolMessage: "raise it"))
        try server.start()
        defer { server.stop() }
        let base = "http://127.0.0.1:\(server.port)"
        let fits = try CurlHTTPClient().send(method: "GET", url: base + "/echo", headers: Self.browserHeaders(cookies: 40, size: 128))
        #expect(fits.status == 200)
        #expect(fits.headers["x-seen"] == "yes")
        let oversized = try CurlHTTPClient().send(method: "GET", url: base + "/echo",
                                                  headers: Self.browserHeaders(cookies: 40, size: 256))
        #expect(oversized.status == 431)
        #expect(lines.withLock { $0 }.contains { $0.hasPrefix("libmicrohttpd: ") && $0.hasSuffix(" (raise it)") },
                "\(lines.withLock { $0 })")
        let after = try CurlHTTPClient().send(method: "GET", url: base + "/echo?q=after")
        #expect(String(decoding: after.body, as: UTF8.self) == "GET after ")

        let larger = HTTPServer(handler: Handler(), options: HTTPServerOptions(host: "127.0.0.1", port: 0,
                                                                               connectionMemory: 32 << 10))
        try larger.start()
        defer { larger.stop() }
        let twelve = try CurlHTTPClient().send(method: "GET", url: "http://127.0.0.1:\(larger.port)/echo",
                                               headers: Self.browserHeaders(cookies: 48, size: 256))
        #expect(twelve.status == 200)
    }

    @Test func aDeferredAnswerArrivesFromAnotherThread() throws {
        let (server, base) = try started()
        defer { server.stop() }
        let response = try CurlHTTPClient().send(method: "GET", url: base + "/later")
        #expect(response.status == 202 && response.body == [0x6F, 0x6B])
    }

    /// An answered deferred response lets go of what waited on it: one cycle kept per answer
    /// leaked every long poll, relayed call and grouped write.
    @Test func anAnsweredDeferredResponseIsFreedWithWhatWaitedOnIt() throws {
        let handler = Handler()
        let (server, base) = try started(handler)
        defer { server.stop() }
        for _ in 0..<20 { #expect(try CurlHTTPClient().send(method: "GET", url: base + "/held").status == 200) }
        // The server drops its reference when the request completes, just after the client has it.
        for _ in 0..<500 where handler.waiters.withLock({ $0.contains { $0.waiter != nil } }) { usleep(10_000) }
        #expect(handler.waiters.withLock { $0.count } == 20)
        #expect(handler.waiters.withLock { $0.filter { $0.waiter != nil }.count } == 0)
    }

    /// Stopping with an answer still owed ends that request (a 503 when it can still be
    /// written, else a closed connection) instead of aborting the process, as MHD does when
    /// stopped with a suspended connection; the client does not wait for its own timeout.
    @Test func stoppingAnswersWhatIsStillOwed() throws {
        let (server, base) = try started()
        let answered = DispatchSemaphore(value: 0)
        let status = PlainMutex(0)
        DispatchQueue.global().async {
            let answer = (try? CurlHTTPClient(timeoutSeconds: 10).send(method: "GET", url: base + "/never"))?.status ?? -1
            status.withLock { $0 = answer }
            answered.signal()
        }
        usleep(300_000)
        server.stop()
        #expect(answered.wait(timeout: .now() + 5) == .success)
        #expect([503, -1].contains(status.withLock { $0 }))
    }

    /// Streams /hold bodies into a sink that holds the body back after its first piece, as an
    /// upload whose disk is behind does, until `release`; /ping answers at once.
    final class HoldingHandler: HTTPHandler, Sendable {
        /// Holds after its first piece until `release`; after that it holds again every
        /// `holdEvery` pieces and opens from another thread a moment later.
        final class Sink: HTTPBodySink, Sendable {
            private struct State {
                var received = 0
                var checksum: UInt64 = 14_695_981_039_346_656_037
                var gate: BodyGate?
                var released = false
                var calls = 0
                var holds = 0
                /// Bytes offered while a gate was closed: the server must offer none.
                var offeredWhileHeld = 0
            }
            private let state = PlainMutex(State())
            let held = DispatchSemaphore(value: 0)
            let holdEvery: Int

            init(holdEvery: Int = 0) { self.holdEvery = holdEvery }

            func consume(_ bytes: UnsafeBufferPointer<UInt8>) -> BodyIntake {
                state.withLock { state -> BodyIntake in
                    if let gate = state.gate, !gate.isOpen { state.offeredWhileHeld += bytes.count }
                    for byte in bytes { state.checksum = (state.checksum ^ UInt64(byte)) &* 1_099_511_628_211 }
                    state.received += bytes.count
                    state.calls += 1
                    if state.gate == nil {
                        let gate = BodyGate()
                        state.gate = gate
                        held.signal()
                        return .held(gate)
                    }
                    guard state.released, holdEvery > 0, state.calls % holdEvery == 0 else { return .taken }
                    let gate = BodyGate()
                    state.gate = gate
                    state.holds += 1
                    DispatchQueue.global().asyncAfter(deadline: .now() + 0.001) { gate.open() }
                    return .held(gate)
                }
            }

            var received: Int { state.withLock { $0.received } }
            var offeredWhileHeld: Int { state.withLock { $0.offeredWhileHeld } }
            var holds: Int { state.withLock { $0.holds } }
            /// A connection is suspended on the first gate.
            var holding: Bool { state.withLock { $0.gate?.isHolding ?? false } }
            var summary: String { state.withLock { "\($0.received) \($0.checksum)" } }

            func release() {
                state.withLock { state in
                    state.released = true
                    state.gate?.open()
                }
            }
        }
        let sinks = PlainMutex<[Sink]>([])
        let holdEvery: Int

        init(holdEvery: Int = 0) { self.holdEvery = holdEvery }

        func plan(for head: HTTPRequestHead) -> BodyPlan {
            guard head.rawPath == "/hold" else { return .buffer(limit: 16) }
            let sink = Sink(holdEvery: holdEvery)
            sinks.withLock { $0.append(sink) }
            return .stream(sink)
        }
        func payloadTooLarge(for head: HTTPRequestHead, limit: Int) -> HTTPResponse { HTTPResponse(status: 413) }
        func handle(_ request: HTTPRequest) -> HTTPResponse {
            guard request.rawPath == "/hold", let sink = request.bodySink as? Sink else { return HTTPResponse(status: 200) }
            return HTTPResponse(status: 200, body: Array(sink.summary.utf8))
        }
    }

    private static func checksum(_ bytes: [UInt8]) -> UInt64 {
        bytes.reduce(14_695_981_039_346_656_037) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 }
    }

    /// Posts `body` to /hold on another thread; the semaphore is signalled with the outcome set.
    private func post(_ body: [UInt8], to base: String) -> (DispatchSemaphore, PlainMutex<(Int, String)?>) {
        let done = DispatchSemaphore(value: 0)
        let outcome = PlainMutex<(Int, String)?>(nil)
        DispatchQueue.global().async {
            let response = try? CurlHTTPClient(timeoutSeconds: 60).send(method: "POST", url: base + "/hold", body: body)
            outcome.withLock { $0 = response.map { ($0.status, String(decoding: $0.body, as: UTF8.self)) } }
            done.signal()
        }
        return (done, outcome)
    }

    /// A held body holds no worker thread: a server with one answers another client while an
    /// upload waits for its sink, and every byte of the upload arrives, in order, once the
    /// sink lets go. (A sink that waited on the thread instead kept the whole server waiting.)
    @Test func aHeldBodyHoldsNoWorkerThread() throws {
        let handler = HoldingHandler()
        let server = HTTPServer(handler: handler, options: HTTPServerOptions(host: "127.0.0.1", port: 0, threads: 1))
        try server.start()
        defer { server.stop() }
        let base = "http://127.0.0.1:\(server.port)"
        let body = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 13) }
        let (done, outcome) = post(body, to: base)
        for _ in 0..<500 where handler.sinks.withLock({ $0.isEmpty }) { usleep(10_000) }
        let sink = try #require(handler.sinks.withLock { $0.first })
        #expect(sink.held.wait(timeout: .now() + 10) == .success)
        #expect(try CurlHTTPClient(timeoutSeconds: 5).send(method: "GET", url: base + "/ping").status == 200)
        #expect(sink.received < body.count)
        #expect(outcome.withLock { $0 } == nil)
        sink.release()
        #expect(done.wait(timeout: .now() + 30) == .success)
        let answer = try #require(outcome.withLock { $0 })
        #expect(answer.0 == 200)
        #expect(answer.1 == "\(body.count) \(Self.checksum(body))")
    }

    /// The same with a chunked body in small chunks: MHD goes on through the chunks in its
    /// buffer without waiting for the resume, so the handler is offered bytes while the body
    /// is held; it takes none then, and none is lost or taken twice.
    @Test func aHeldChunkedBodyArrivesWhole() throws {
        let handler = HoldingHandler(holdEvery: 16)
        let server = HTTPServer(handler: handler, options: HTTPServerOptions(host: "127.0.0.1", port: 0, threads: 1))
        try server.start()
        defer { server.stop() }
        let body = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 5 &+ $0 >> 11) }
        // 1 KiB chunks, written as one stream, so that MHD's buffer holds many at a time.
        var request = Array("POST /hold HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".utf8)
        for start in stride(from: 0, to: body.count, by: 1024) {
            let chunk = body[start..<min(start + 1024, body.count)]
            request += Array((String(chunk.count, radix: 16) + "\r\n").utf8) + chunk + Array("\r\n".utf8)
        }
        request += Array("0\r\n\r\n".utf8)
        let done = DispatchSemaphore(value: 0)
        let outcome = PlainMutex<String?>(nil)
        let port = server.port
        DispatchQueue.global().async { [request] in
            let answer = Self.exchange(request, port: port)
            outcome.withLock { $0 = answer }
            done.signal()
        }
        for _ in 0..<500 where handler.sinks.withLock({ $0.isEmpty }) { usleep(10_000) }
        let sink = try #require(handler.sinks.withLock { $0.first })
        #expect(sink.held.wait(timeout: .now() + 10) == .success)
        usleep(200_000)
        #expect(sink.received == 1024)
        sink.release()
        #expect(done.wait(timeout: .now() + 30) == .success)
        #expect(outcome.withLock { $0 } == "\(body.count) \(Self.checksum(body))")
        // Held again and again on the way (a gate may open while MHD is still in its chunk
        // loop), never offered a byte while held.
        #expect(sink.holds > 10)
        #expect(sink.offeredWhileHeld == 0)
    }

    /// libmicrohttpd's own messages, which anyone can make it write (a malformed header line),
    /// go through the server's log, not past it to stderr; at most `libraryLinesPerSecond` a
    /// second, the rest counted in a line of their own.
    @Test func theLibrarysOwnMessagesAreLoggedAndBounded() throws {
        let lines = PlainMutex<[String]>([])
        let server = HTTPServer(handler: Handler(), options: HTTPServerOptions(
            host: "127.0.0.1", port: 0, log: { line in lines.withLock { $0.append(line) } }))
        try server.start()
        defer { server.stop() }
        let request = Array("GET /echo HTTP/1.1\r\nHost: x\r\nno colon here\r\nConnection: close\r\n\r\n".utf8)
        let start = ContinuousClock.now
        for _ in 0..<200 { _ = Self.exchange(request, port: server.port) }
        let elapsed = start.duration(to: .now)
        // The count of a second is logged with the first message of a later one.
        usleep(1_100_000)
        _ = Self.exchange(request, port: server.port)
        let logged = lines.withLock { $0 }
        #expect(logged.first?.hasPrefix("libmicrohttpd: ") == true, "\(logged.prefix(3))")
        let counts = logged.filter { $0.contains("were not logged (over") }
        let direct = logged.count - counts.count
        let seconds = Int(elapsed.components.seconds) + 3
        #expect(direct <= HTTPServer.libraryLinesPerSecond * seconds, "\(direct) lines in about \(seconds) s")
        if elapsed < .seconds(2) { #expect(!counts.isEmpty, "\(direct) lines, no count of those not logged: \(logged.prefix(30))") }
    }

    /// Sends `request` to 127.0.0.1:`port` and gives the body of the answer (after its head).
    private static func exchange(_ request: [UInt8], port: UInt16) -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0, (try? FileIO.writeAll(fd, request)) != nil else { return "" }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            answer += buffer[..<count]
        }
        let end: [UInt8] = [13, 10, 13, 10]
        guard let head = (0..<max(0, answer.count - 3)).first(where: { Array(answer[$0..<$0 + 4]) == end }) else { return "" }
        return String(decoding: answer[(head + 4)...], as: UTF8.self)
    }

    /// Stopping with a body held lets go of it first: MHD aborts the process when stopped with
    /// a connection suspended.
    @Test func stoppingLetsGoOfAHeldBody() throws {
        let handler = HoldingHandler()
        let server = HTTPServer(handler: handler, options: HTTPServerOptions(host: "127.0.0.1", port: 0))
        try server.start()
        let (done, _) = post(Array(repeating: 0x61, count: 1 << 20), to: "http://127.0.0.1:\(server.port)")
        for _ in 0..<500 where handler.sinks.withLock({ $0.isEmpty }) { usleep(10_000) }
        let sink = try #require(handler.sinks.withLock { $0.first })
        #expect(sink.held.wait(timeout: .now() + 10) == .success)
        for _ in 0..<500 where !sink.holding { usleep(10_000) }
        #expect(sink.holding)
        server.stop()
        #expect(done.wait(timeout: .now() + 10) == .success)
    }

    @Test func aPortInUseIsRefusedAndAnAddressThatIsNoLiteralIsAnError() throws {
        let (server, _) = try started()
        defer { server.stop() }
        let second = HTTPServer(handler: Handler(), options: HTTPServerOptions(host: "127.0.0.1", port: server.port))
        #expect(throws: HTTPServerError.self) { try second.start() }
        let named = HTTPServer(handler: Handler(), options: HTTPServerOptions(host: "example.org", port: 0))
        #expect(throws: HTTPServerError.self) { try named.start() }
    }
}
