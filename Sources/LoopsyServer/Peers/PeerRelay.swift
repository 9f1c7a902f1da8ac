import CPosix
import Dispatch
import LoopsyAPI
import LoopsyClient
import LoopsyStore
import LoopsyHTTP
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One request relayed to a peer. The request body flows through a pipe from MHD's thread to
/// curl's (a full pipe holds the uploader back); the response flows into an HTTPStream as
/// curl receives it (a slow client holds curl back). Nothing is buffered whole.
final class PeerRelay: HTTPBodySink, @unchecked Sendable {
    private struct Head {
        var status = 0
        var headers: [String: String] = [:]
        var error: APIError?
        var done = false
    }

    /// Response headers passed back from the peer; the rest are its own business.
    private static let passedHeaders = [
        "content-type", "content-range", "accept-ranges", "retry-after", "content-disposition", "last-modified",
        "etag", "allow", "www-authenticate",
    ]
    /// Request headers passed on to the peer.
    static let forwardedHeaders = ["content-type", "accept", "range", "last-event-id", "if-range"]

    let stream = HTTPStream()
    private let head = Mutex(Head())
    private let headReady = DispatchSemaphore(value: 0)
    // The body pipe: written by MHD's thread, read by curl's; -1 once closed.
    private let bodyRead: Atomic<Int32>
    private let bodyWrite: Atomic<Int32>
    private let cancelled = Atomic<Bool>(false)

    private init(pipe: (Int32, Int32)) {
        bodyRead = Atomic(pipe.0)
        bodyWrite = Atomic(pipe.1)
    }

    deinit {
        Self.close(bodyRead)
        Self.close(bodyWrite)
    }

    private static func close(_ descriptor: borrowing Atomic<Int32>) {
        let fd = descriptor.exchange(-1, ordering: .acquiringAndReleasing)
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    /// Starts relaying `method path?query` to the peer. The body, if any, is fed through
    /// `consume` and ended with `endBody`.
    static func start(service: PeerService, record: PeerRecord, method: String, path: String, query: String,
                      headers: [String: String], hasBody: Bool) throws -> PeerRelay {
        var fds: [Int32] = [0, 0]
        guard cposix_pipe_cloexec(&fds) == 0 else { throw APIError.internalError(requestId: "pipe") }
        let relay = PeerRelay(pipe: (fds[0], fds[1]))
        let endpoint = service.endpoint(for: record)
        var outgoing: [String: String] = ["X-Loopsy-Node-Id": service.local.identity.nodeId]
        for name in forwardedHeaders { if let value = headers[name] { outgoing[name] = value } }
        if let apiKey = endpoint.apiKey { outgoing["Authorization"] = "Bearer \(apiKey)" }
        let url = endpoint.baseURL + "/api/v1/" + path + (query.isEmpty ? "" : "?" + query)
        var http = CurlHTTPClient(timeoutSeconds: 0, pinnedPublicKey: endpoint.pin)
        http.connectTimeoutSeconds = 5
        relay.stream.onClose { [weak relay] in relay?.cancelled.store(true, ordering: .relaxed) }
        let bodyLength = headers["transfer-encoding"] == nil ? headers["content-length"].flatMap(Int64.init) : nil
        DispatchQueue.global().async { [http, outgoing] in
            do {
                try http.relay(
                    method: method, url: url, headers: outgoing, bodyLength: hasBody ? bodyLength : nil,
                    read: hasBody ? { relay.readBody(into: $0) } : nil,
                    isCancelled: { relay.cancelled.load(ordering: .relaxed) },
                    onHead: { status, headers in relay.publishHead(status: status, headers: headers, error: nil) },
                    onData: { relay.forward($0) })
                relay.publishHead(status: 502, headers: [:], error: APIError.badGateway(
                    "peer \(record.info.name) closed the connection without answering"))
            } catch {
                relay.publishHead(status: 502, headers: [:], error: service.apiError(
                    ClientError.from(error, baseURL: endpoint.baseURL), calling: record, context: "\(method) /\(path)"))
            }
            // An uploader still writing gets EPIPE instead of waiting on a pipe nobody reads.
            Self.close(relay.bodyRead)
            relay.stream.finish()
        }
        return relay
    }

    // MARK: Request body (MHD's thread → pipe → curl's thread)

    func consume(_ bytes: UnsafeBufferPointer<UInt8>) -> HTTPResponse? {
        var offset = 0
        while offset < bytes.count {
            let fd = bodyWrite.load(ordering: .acquiring)
            guard fd >= 0, let base = bytes.baseAddress else { return nil }
            let written = write(fd, base + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                return nil  // curl stopped reading: its error becomes the response
            }
            offset += written
        }
        return nil
    }

    func endBody() {
        Self.close(bodyWrite)
    }

    private func readBody(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        while true {
            let count = read(bodyRead.load(ordering: .acquiring), buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            if errno != EINTR { return nil }
        }
    }

    // MARK: Response (curl's thread → HTTPStream → MHD)

    private func publishHead(status: Int, headers: [String: String], error: APIError?) {
        let first = head.withLock { head -> Bool in
            guard !head.done else { return false }
            head = Head(status: status, headers: headers, error: error, done: true)
            return true
        }
        if first { headReady.signal() }
    }

    /// Hands bytes to the client, waiting while it is behind; false stops the relay.
    private func forward(_ bytes: [UInt8]) -> Bool {
        while !stream.write(bytes) {
            if stream.isClosed || cancelled.load(ordering: .relaxed) { return false }
            usleep(2_000)
        }
        return true
    }

    /// Waits for the peer's status line and headers, then answers with its body as a stream.
    func response() throws -> HTTPResponse {
        headReady.wait()
        let head = head.withLock { $0 }
        if let error = head.error { throw error }
        var response = HTTPResponse(status: head.status, stream: stream)
        for name in Self.passedHeaders { if let value = head.headers[name] { response.headers.append((name, value)) } }
        if let requestId = head.headers["x-request-id"] { response.headers.append(("X-Peer-Request-Id", requestId)) }
        for (name, value) in head.headers where name.hasPrefix("x-loopsy-") { response.headers.append((name, value)) }
        if let length = head.headers["content-length"].flatMap(UInt64.init) { response.streamLength = length }
        return response
    }
}

extension ClientError {
    /// Wraps a CurlHTTPClient failure the way LoopsyClient reports it.
    static func from(_ error: any Error, baseURL: String) -> any Error {
        switch error {
        case CurlHTTPClient.Failure.couldNotConnect: return ClientError.daemonUnreachable(baseURL)
        case let failure as CurlHTTPClient.Failure: return ClientError.network(failure)
        default: return error
        }
    }
}
