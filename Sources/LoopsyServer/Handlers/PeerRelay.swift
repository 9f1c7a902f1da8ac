import Dispatch
import LoopsyAPI
import LoopsyPeers
import LoopsyClient
import LoopsyHTTP
import LoopsyPOSIX
import LoopsyStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One request relayed to a peer. The request body flows through a pipe from MHD's thread to
/// curl's; a full pipe holds the uploader back (its connection waits suspended on a BodyGate
/// until curl has read, no worker thread waits); the answer is deferred (the connection is
/// suspended again) until the peer's status line arrives, then its body flows
/// into an HTTPStream as curl receives it (a slow client holds curl back). Nothing is buffered
/// whole. A client that goes away cancels the relay; a peer that fails mid-way aborts the
/// client's response instead of ending it cleanly.
final class PeerRelay: HTTPBodySink, @unchecked Sendable {
    /// Response headers passed back from the peer; the rest are its own business.
    private static let passedHeaders = [
        "content-type", "content-range", "accept-ranges", "retry-after", "content-disposition", "last-modified",
        "etag", "allow",
    ]
    /// Request headers passed on to the peer.
    static let forwardedHeaders = ["content-type", "accept", "range", "last-event-id", "if-range"]

    let stream = HTTPStream()
    let answer = DeferredResponse()
    // The body pipe: read by curl's thread (blocking), -1 once closed; its write end is
    // `body.fd`.
    private let bodyRead: Atomic<Int32>
    /// The pipe's write end (non-blocking, written on MHD's thread), what did not fit in the
    /// pipe yet, and the gate the uploader waits on until it has.
    private struct BodyState {
        var fd: Int32
        var pending: [UInt8] = []
        var gate: BodyGate?
        /// When the uploader began to wait (monotonic seconds), while it does.
        var heldSince: Double?
    }
    /// A peer that takes none of the body for this long has the call stopped: a held upload
    /// holds no thread of ours, but its connection and a relay thread, and MHD never times out
    /// a suspended connection.
    static let bodyStallLimit: Double = 120
    /// Set when the call was stopped for that.
    private let bodyStalled = Atomic<Bool>(false)
    private let body: PlainMutex<BodyState>
    private let cancelled = Atomic<Bool>(false)
    private let answered = Atomic<Bool>(false)

    private init(pipe: (Int32, Int32)) {
        bodyRead = Atomic(pipe.0)
        _ = fcntl(pipe.1, F_SETFL, fcntl(pipe.1, F_GETFL) | O_NONBLOCK)
        body = PlainMutex(BodyState(fd: pipe.1))
    }

    deinit {
        Self.close(bodyRead)
        closeBody()
    }

    private static func close(_ descriptor: borrowing Atomic<Int32>) {
        let fd = descriptor.exchange(-1, ordering: .acquiringAndReleasing)
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    /// Where a relay goes: a daemon's base URL, the headers that authenticate there, the TLS
    /// pin, and how its failures read.
    struct Target: Sendable {
        var name: String
        var baseURL: String
        var headers: [String: String]
        var pin: String?
        var describe: @Sendable (any Error, String) -> APIError
    }

    /// Each relayed call holds a thread while it lasts (a streamed job's can last minutes).
    static let pool = WorkPool(name: "loopsy-relay", threads: 64, queueLimit: 0)

    /// Starts relaying `method path?query` to the peer. A body, if any, is fed through
    /// `consume` and ended with `endBody`.
    static func start(service: PeerService, record: PeerRecord, method: String, path: String, query: String,
                      headers: HTTPHeaders, hasBody: Bool) throws -> PeerRelay {
        let endpoint = try service.endpoint(for: record)
        guard let apiKey = endpoint.apiKey else {
            throw APIError.conflict("this node holds no key for peer \(record.info.name), so it cannot call it; add it "
                + "with one of its keys (`loopsy peers add \(record.info.address) --key-stdin`) or pair with it",
                                    code: .peerWithoutKey)
        }
        let target = Target(
            name: "peer \(record.info.name)", baseURL: endpoint.baseURL,
            headers: ["X-Loopsy-Node-Id": service.local.identity.nodeId, "Authorization": "Bearer \(apiKey)"],
            pin: endpoint.pin,
            describe: { error, context in
                service.apiError(ClientError.from(error, baseURL: endpoint.baseURL), calling: record, context: context)
            })
        return try start(target, method: method, path: path, query: query, headers: headers, hasBody: hasBody)
    }

    /// Starts relaying `method /api/v1/path?query` to `target`.
    static func start(_ target: Target, method: String, path: String, query: String, headers: HTTPHeaders,
                      hasBody: Bool) throws -> PeerRelay {
        let pipe: (read: Int32, write: Int32)
        do {
            pipe = try Descriptors.pipe()
        } catch {
            throw SystemCallFailure("pipe2", error)
        }
        let relay = PeerRelay(pipe: (pipe.read, pipe.write))
        var outgoing = target.headers
        for name in forwardedHeaders { if let value = headers[name] { outgoing[name] = value } }
        let url = target.baseURL + LoopsyVersion.apiBase + "/" + path + (query.isEmpty ? "" : "?" + query)
        var http = CurlHTTPClient(timeoutSeconds: 0, pinnedPublicKey: target.pin)
        http.connectTimeoutSeconds = 5
        relay.stream.onClose { [weak relay] in relay?.cancel() }
        let bodyLength = headers["transfer-encoding"] == nil ? headers["content-length"].flatMap(Int64.init) : nil
        let queued = pool.submit { [http, outgoing] in
            do {
                try http.relay(
                    method: method, url: url, headers: outgoing, bodyLength: hasBody ? bodyLength : nil,
                    read: hasBody ? { relay.readBody(into: $0) } : nil,
                    isCancelled: {
                        relay.cancelled.load(ordering: .relaxed) || relay.answer.isAbandoned || relay.uploaderGone
                            || relay.bodyStalledTooLong()
                    },
                    onHead: { status, headers in relay.answer(status: status, headers: headers) },
                    onData: { relay.forward($0) })
                if !relay.answered.load(ordering: .acquiring) {
                    relay.fail(APIError.badGateway("\(target.name) closed the connection without answering"))
                }
                relay.stream.finish()
            } catch {
                if relay.answered.load(ordering: .acquiring) {
                    relay.stream.abort()
                } else if relay.bodyStalled.load(ordering: .relaxed) {
                    relay.fail(APIError.badGateway("\(target.name) took none of the request body for "
                        + "\(Int(bodyStallLimit)) s; the call was stopped"))
                } else if !relay.cancelled.load(ordering: .relaxed) {
                    relay.fail(target.describe(error, "\(method) /\(path)"))
                }
            }
            // An uploader still sending gets EPIPE (its bytes are dropped) instead of waiting
            // on a pipe nobody reads.
            Self.close(relay.bodyRead)
            relay.openBody()
        }
        guard queued else {
            throw APIError(status: 503, code: .relayBusy,
                           message: "\(pool.threads) relayed calls are in progress already; retry in a moment",
                           headers: ["Retry-After": "1"])
        }
        return relay
    }

    /// The API path after a relay prefix must be a plain one: no empty, `.` or `..` segments,
    /// and, between nodes, no second hop.
    static func checkPath(_ path: String, allowPeerHop: Bool = false) throws {
        // Decoded too: a library that normalises `%2e%2e` must not be able to climb out of /api/v1.
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
            .map { PercentDecoding.decode($0) ?? "." }
        guard !segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }),
              allowPeerHop || !path.hasPrefix("peers/") else {
            throw APIError.badRequest("the path after the relay prefix must be an API path like execute or "
                + "context/key", code: .badPath)
        }
    }

    /// A decoded query, encoded again for the relayed request.
    static func encodedQuery(_ query: [String: String]) -> String {
        var encoded = ""
        for (name, value) in query.sorted(by: { $0.key < $1.key }) {
            encoded += (encoded.isEmpty ? "" : "&") + PathEncoding.segment(name) + "=" + PathEncoding.segment(value)
        }
        return encoded
    }

    // MARK: Request body (MHD's thread → pipe → curl's thread)

    /// Writes what fits into the pipe; the rest waits in `pending`, and the uploader with it.
    func consume(_ bytes: UnsafeBufferPointer<UInt8>) -> BodyIntake {
        body.withLock { body -> BodyIntake in
            guard body.fd >= 0, let base = bytes.baseAddress else { return .taken }
            if !body.pending.isEmpty {
                // Offered while bytes still wait (only when a stopping server let the uploader
                // go): they stay behind those, never ahead.
                body.pending += bytes
                return .held(hold(&body))
            }
            var offset = 0
            while offset < bytes.count {
                let written = write(body.fd, base + offset, bytes.count - offset)
                if written >= 0 {
                    offset += written
                } else if errno == EAGAIN {
                    // Kept until curl has read; the gate opens then (or when curl stops).
                    body.pending = Array(bytes[offset...])
                    return .held(hold(&body))
                } else if errno != EINTR {
                    return .taken  // curl stopped reading: its outcome becomes the answer
                }
            }
            return .taken
        }
    }

    private func hold(_ body: inout BodyState) -> BodyGate {
        let gate = BodyGate()
        body.gate = gate
        if body.heldSince == nil { body.heldSince = Clock.monotonicSeconds() }
        return gate
    }

    /// Lets the uploader go on; what still waits is dropped.
    private static func release(_ body: inout BodyState) {
        body.pending = []
        body.gate?.open()
        body.gate = nil
        body.heldSince = nil
    }

    /// True (and remembered) once the uploader has waited past `bodyStallLimit`.
    private func bodyStalledTooLong() -> Bool {
        let since = body.withLock { $0.heldSince }
        guard let since, Clock.monotonicSeconds() - since > Self.bodyStallLimit else { return false }
        bodyStalled.store(true, ordering: .relaxed)
        return true
    }

    /// On curl's thread after it read from the pipe: moves what waits into the room made, and
    /// lets the uploader go on once nothing waits.
    private func flushPending() {
        body.withLock { body in
            guard !body.pending.isEmpty, body.fd >= 0 else { return }
            let written = body.pending.withUnsafeBytes { write(body.fd, $0.baseAddress, $0.count) }
            if written > 0 { body.pending.removeFirst(written) }
            if body.pending.isEmpty || (written < 0 && errno != EAGAIN && errno != EINTR) {
                Self.release(&body)
            }
        }
    }

    /// Lets a held uploader go on, its waiting bytes dropped (curl is done with the body).
    private func openBody() {
        body.withLock { Self.release(&$0) }
    }

    private func closeBody() {
        body.withLock { body in
            if body.fd >= 0 { _ = Glibc.close(body.fd) }
            body.fd = -1
            Self.release(&body)
        }
    }

    /// The uploader's client hung up while its body was held (MHD watches no suspended
    /// socket): curl gives up, which opens the gate, and MHD sees the hang-up.
    private var uploaderGone: Bool { body.withLock { $0.gate }?.clientGone ?? false }

    func endBody() {
        closeBody()
    }

    /// The client went away: stop reading and sending, and let curl give up.
    func cancel() {
        cancelled.store(true, ordering: .relaxed)
        closeBody()
    }

    /// Stops the relay and breaks off what the client has of the answer (its credential ended).
    func end() {
        cancel()
        if answered.load(ordering: .acquiring) {
            stream.abort()
        } else {
            fail(APIError.unauthorized("the dashboard session ended; log in again"))
        }
    }

    /// True once the client has the whole answer or went away.
    var isFinished: Bool { stream.isClosed || answer.isAbandoned }

    private func readBody(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        while true {
            let count = read(bodyRead.load(ordering: .acquiring), buffer.baseAddress, buffer.count)
            if cancelled.load(ordering: .relaxed) { return nil }  // abort, rather than send a cut body as whole
            if count > 0 { flushPending() }
            if count >= 0 { return count }
            if errno != EINTR { return nil }
        }
    }

    // MARK: Answer (curl's thread → deferred response → HTTPStream → MHD)

    private func answer(status: Int, headers: [String: String]) {
        guard !answered.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var response = HTTPResponse(status: status, stream: stream)
        for name in Self.passedHeaders { if let value = headers[name] { response.headers.append((name, value)) } }
        if let requestId = headers["x-request-id"] { response.headers.append(("X-Peer-Request-Id", requestId)) }
        for (name, value) in headers where name.hasPrefix("x-loopsy-") { response.headers.append((name, value)) }
        if let length = headers["content-length"].flatMap(UInt64.init) { response.streamLength = length }
        answer.complete(response)
    }

    private func fail(_ error: APIError) {
        guard !answered.exchange(true, ordering: .acquiringAndReleasing) else { return }
        answer.complete(.error(error))
    }

    /// Hands bytes to the client, waiting while it is behind; false stops the relay.
    private func forward(_ bytes: [UInt8]) -> Bool {
        while !stream.write(bytes) {
            if stream.isClosed || cancelled.load(ordering: .relaxed) || answer.isAbandoned || uploaderGone { return false }
            usleep(2_000)
        }
        return true
    }

    /// The placeholder response; the real one comes when the peer answers.
    func response() -> HTTPResponse {
        HTTPResponse(deferred: answer)
    }
}
