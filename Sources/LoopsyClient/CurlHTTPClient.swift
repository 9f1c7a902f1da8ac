import CCurl
import LoopsyAPI

/// A blocking HTTP client on libcurl. Easy handles are kept between requests by origin and pin
/// (`CurlHandlePool`), so calls to a peer reuse its open, pinned TLS connection.
public struct CurlHTTPClient: Sendable {
    public struct Response: Sendable {
        public var status: Int
        /// Header names lower-cased.
        public var headers: [String: String]
        public var body: [UInt8]
    }

    public enum Failure: Error, CustomStringConvertible {
        /// Nothing listens at the address (connection refused or host unreachable).
        case couldNotConnect(String)
        case timedOut(String)
        /// The server's TLS key is not the pinned one.
        case pinMismatch(String)
        /// TLS could not be set up (e.g. the server speaks plain HTTP).
        case tlsFailed(String)
        /// The answer was longer than `maxResponseBytes`.
        case tooLarge(url: String, limit: Int)
        case other(code: Int32, message: String)

        public var description: String {
            switch self {
            case .couldNotConnect(let detail): return "could not connect: \(detail)"
            case .timedOut(let detail): return "timed out: \(detail)"
            case .pinMismatch(let detail): return "TLS key does not match the pinned fingerprint: \(detail)"
            case .tlsFailed(let detail): return "TLS handshake failed: \(detail)"
            case .tooLarge(let url, let limit): return "\(url): the answer is longer than \(limit) bytes; nothing of it was used"
            case .other(_, let message): return message
            }
        }
    }

    /// The status codes an answer may have: three digits.
    static let statusRange = 100...999

    /// The status of a status line (`HTTP/1.1 200 OK`): its second field, when that is three
    /// digits. A server writes this line: `Int` of it would take -5 or 4294967296 too.
    static func status(ofLine line: String) -> Int? {
        let fields = line.utf8.split(maxSplits: 2, whereSeparator: { $0 == 0x20 || $0 == 0x0D || $0 == 0x0A })
        guard let field = fields.dropFirst().first.flatMap({ Substring($0) }),
              field.utf8.count == 3, field.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
              let status = Int(field), statusRange.contains(status) else { return nil }
        return status
    }

    /// Loads libcurl now rather than in the first request (see ccurl.h), e.g. while waiting for
    /// something else. Nil when it is usable, else why not.
    @discardableResult
    public static func preload() -> String? { ccurl_load_error().map { String(cString: $0) } }

    /// Whole-request limit for `send`; streams have none (they end when the server says).
    public var timeoutSeconds: Int
    /// For https URLs: the server's key must hash to this ("sha256//<base64>", see
    /// CURLOPT_PINNEDPUBLICKEY). Peers use self-signed certificates, so the chain is never
    /// verified: without a pin, TLS only hides the traffic from passive listeners.
    public var pinnedPublicKey: String?
    public var connectTimeoutSeconds = 10
    /// Most bytes `send` and `upload` keep of a 2xx answer: a longer one fails the call
    /// (`Failure.tooLarge`) instead of growing this process. Whoever answers decides the size,
    /// and a peer, or any host on the LAN that mDNS brought, need not answer small.
    public var maxResponseBytes = 512 << 20
    /// Most bytes kept of an error answer's body (it carries a JSON message): past them the
    /// transfer ends with what came.
    static let maxErrorBodyBytes = 64 << 10
    /// `send`, and `stream` of an event stream, to `http://127.0.0.1:PORT/…` go through
    /// `LoopbackHTTP` instead of libcurl (set for this machine's daemon: `LoopsyClient.local`).
    /// Other calls still load libcurl.
    public var usesLoopbackClient = false

    public init(timeoutSeconds: Int = 30, pinnedPublicKey: String? = nil) {
        self.timeoutSeconds = timeoutSeconds
        self.pinnedPublicKey = pinnedPublicKey
    }

    /// Bytes moved so far and the total when known (0 when not), for progress displays.
    public typealias Progress = (_ done: Int64, _ total: Int64) -> Void

    /// What a request sends.
    enum RequestBody {
        case none
        case bytes([UInt8])
        /// Pulled from `read` as curl sends (nil length: chunked). `read` fills the buffer and
        /// returns the count, 0 at the end, or nil to abort. `rewind`, when there is one, starts
        /// the body over (curl resends it when a kept connection turns out closed); false if it
        /// cannot.
        case reader(length: Int64?, read: (UnsafeMutableRawBufferPointer) -> Int?, rewind: (() -> Bool)? = nil)
    }

    /// A request whose body is pulled from `read` while sending and whose response, whatever its
    /// status, goes to `onHead` (status and headers, once) and then `onData` as it arrives.
    /// For relaying a request to another server without holding it in memory.
    public func relay(method: String, url: String, headers: [String: String], bodyLength: Int64?,
                      read: ((UnsafeMutableRawBufferPointer) -> Int?)?, timeout: Int = 0,
                      isCancelled: @escaping () -> Bool,
                      onHead: @escaping (Int, [String: String]) -> Void,
                      onData: @escaping ([UInt8]) -> Bool) throws {
        _ = try transfer(method: method, url: url, headers: headers,
                         body: read.map { .reader(length: bodyLength, read: $0) } ?? .none, timeout: timeout,
                         relayHead: onHead, isCancelled: isCancelled, onData: onData)
    }

    /// Sends a request and returns the whole response.
    public func send(method: String, url: String, headers: [String: String] = [:], body: [UInt8]? = nil) throws -> Response {
        if usesLoopbackClient, let target = LoopbackHTTP.target(url) {
            return try LoopbackHTTP.send(method: method, url: url, port: target.port, path: target.path,
                                         headers: headers, body: body, timeoutSeconds: timeoutSeconds,
                                         connectTimeoutSeconds: connectTimeoutSeconds, maxResponseBytes: maxResponseBytes)
        }
        var collected: [UInt8] = []
        let limit = maxResponseBytes
        var response = try transfer(method: method, url: url, headers: headers, body: body.map { .bytes($0) } ?? .none,
                                    timeout: timeoutSeconds) {
            collected += $0
            return collected.count <= limit
        }
        if collected.count > limit { throw Failure.tooLarge(url: url, limit: limit) }
        if (200..<300).contains(response.status) { response.body = collected }
        return response
    }

    /// POSTs a body of exactly `length` bytes pulled from `read` as curl sends (see
    /// `RequestBody.reader`), reporting the bytes sent as progress; returns the whole response.
    public func upload(url: String, headers: [String: String], length: Int64,
                       read: @escaping (UnsafeMutableRawBufferPointer) -> Int?, rewind: @escaping () -> Bool,
                       progress: Progress? = nil) throws -> Response {
        var collected: [UInt8] = []
        let limit = maxResponseBytes
        var response = try transfer(method: "POST", url: url, headers: headers,
                                    body: .reader(length: length, read: read, rewind: rewind),
                                    timeout: 0, progress: progress, isUpload: true) {
            collected += $0
            return collected.count <= limit
        }
        if collected.count > limit { throw Failure.tooLarge(url: url, limit: limit) }
        if (200..<300).contains(response.status) { response.body = collected }
        return response
    }

    /// Sends a request and hands a 2xx response's body to `onData` as it arrives (SSE, large
    /// downloads); `onData` returns false to stop. An error response's body is returned whole
    /// instead, so the caller can decode it.
    /// `isCancelled` is polled about once a second even while nothing arrives; true stops.
    /// An `eventStream` (SSE: small pieces, as they come) to this machine's daemon goes through
    /// `LoopbackHTTP` when `usesLoopbackClient` is set; downloads stay on libcurl (its 256 KiB
    /// reads, progress).
    public func stream(method: String, url: String, headers: [String: String] = [:], body: [UInt8]? = nil,
                       progress: Progress? = nil, isCancelled: (() -> Bool)? = nil, eventStream: Bool = false,
                       onData: @escaping ([UInt8]) -> Bool) throws -> Response {
        if eventStream, usesLoopbackClient, progress == nil, let target = LoopbackHTTP.target(url) {
            return try LoopbackHTTP.stream(method: method, url: url, port: target.port, path: target.path, headers: headers,
                                           body: body, connectTimeoutSeconds: connectTimeoutSeconds,
                                           isCancelled: isCancelled, onData: onData)
        }
        return try transfer(method: method, url: url, headers: headers, body: body.map { .bytes($0) } ?? .none, timeout: 0,
                            progress: progress, isCancelled: isCancelled, onData: onData)
    }

    private func transfer(method: String, url: String, headers: [String: String], body: RequestBody, timeout: Int,
                          progress: Progress? = nil, isUpload: Bool = false,
                          relayHead: ((Int, [String: String]) -> Void)? = nil,
                          isCancelled: (() -> Bool)? = nil, onData: @escaping ([UInt8]) -> Bool) throws -> Response {
        let poolKey = CurlHandlePool.key(url: url, pin: pinnedPublicKey)
        guard let curl = CurlHandlePool.shared.take(poolKey) else {
            // libcurl is loaded by the first call (see ccurl.h): this is where a missing one shows.
            throw Failure.other(code: -1, message: ccurl_load_error().map { String(cString: $0) } ?? "curl_easy_init failed")
        }
        // A handle goes back (with its live connection) only after a transfer that ended well.
        var reusable = false
        defer { CurlHandlePool.shared.give(poolKey, curl, reusable: reusable) }
        let sink = TransferSink(onData: onData, progress: progress)
        // An upload's progress is the bytes sent; the small answer that follows is not progress.
        sink.reportsUpload = isUpload
        sink.relayHead = relayHead
        sink.isCancelled = isCancelled
        // The sink outlives the transfer: curl_easy_perform returns before this frame ends.
        let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { ccurl_slist_free_all(headerList) }
        for (name, value) in headers { headerList = ccurl_slist_append(headerList, "\(name): \(value)") }
        if case .reader(let length, _, _) = body, length ?? Int64.max > 64 * 1024 {
            // A relayed upload waits for "100 Continue": a server that refuses it from its head
            // answers before the body, and that answer is what gets relayed (not a broken pipe).
            headerList = ccurl_slist_append(headerList, "Expect: 100-continue")
            _ = ccurl_setopt_long(curl, CURLOPT_EXPECT_100_TIMEOUT_MS, 10_000)
        } else {
            headerList = ccurl_slist_append(headerList, "Expect:")  // no 100-continue round trip
        }

        _ = ccurl_setopt_string(curl, CURLOPT_URL, url)
        _ = ccurl_setopt_string(curl, CURLOPT_CUSTOMREQUEST, method)
        _ = ccurl_setopt_long(curl, CURLOPT_NOSIGNAL, 1)
        _ = ccurl_setopt_long(curl, CURLOPT_TIMEOUT, timeout)
        _ = ccurl_setopt_long(curl, CURLOPT_CONNECTTIMEOUT, connectTimeoutSeconds)
        if url.hasPrefix("https:") {
            _ = ccurl_setopt_long(curl, CURLOPT_SSL_VERIFYPEER, 0)
            _ = ccurl_setopt_long(curl, CURLOPT_SSL_VERIFYHOST, 0)
            // Peers are never verified against CAs (their key is pinned instead): loading the
            // system store would cost hundreds of file opens and ~20 ms of parsing per call.
            _ = ccurl_setopt_null(curl, CURLOPT_CAINFO)
            _ = ccurl_setopt_null(curl, CURLOPT_CAPATH)
            if let pinnedPublicKey { _ = ccurl_setopt_string(curl, CURLOPT_PINNEDPUBLICKEY, pinnedPublicKey) }
        }
        _ = ccurl_setopt_slist(curl, CURLOPT_HTTPHEADER, headerList)
        _ = ccurl_setopt_write_function(curl, writeBody)
        _ = ccurl_setopt_pointer(curl, CURLOPT_WRITEDATA, sinkPointer)
        _ = ccurl_setopt_header_function(curl, writeHeader)
        _ = ccurl_setopt_pointer(curl, CURLOPT_HEADERDATA, sinkPointer)
        if method == "HEAD" { _ = ccurl_setopt_long(curl, CURLOPT_NOBODY, 1) }
        // Larger reads mean fewer callbacks and write(2) calls on big downloads.
        _ = ccurl_setopt_long(curl, CURLOPT_BUFFERSIZE, 256 * 1024)
        if relayHead != nil {
            // A relay is raw: no dot-segment clean-up, and it stops when its client goes away
            // (the progress callback runs about once a second even when nothing moves).
            _ = ccurl_setopt_long(curl, CURLOPT_PATH_AS_IS, 1)
        }
        if progress != nil || isCancelled != nil {
            _ = ccurl_setopt_long(curl, CURLOPT_NOPROGRESS, 0)
            _ = ccurl_setopt_xferinfo_function(curl, reportProgress)
            _ = ccurl_setopt_pointer(curl, CURLOPT_XFERINFODATA, sinkPointer)
        }

        let code: CURLcode
        switch body {
        case .none:
            code = ccurl_easy_perform(curl)
        case .bytes(let bytes):
            code = bytes.withUnsafeBytes { bytes -> CURLcode in
                _ = ccurl_setopt_long(curl, CURLOPT_POSTFIELDSIZE, bytes.count)
                // curl reads the body during perform, while `bytes` is still valid.
                _ = ccurl_setopt_pointer(curl, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress))
                return ccurl_easy_perform(curl)
            }
        case .reader(let length, let read, let rewind):
            let reader = BodyReader(read: read, rewind: rewind)
            _ = ccurl_setopt_long(curl, CURLOPT_UPLOAD, 1)
            _ = ccurl_setopt_string(curl, CURLOPT_CUSTOMREQUEST, method)  // UPLOAD would make it PUT
            if let length { _ = ccurl_setopt_off(curl, CURLOPT_INFILESIZE_LARGE, curl_off_t(length)) }
            _ = ccurl_setopt_read_function(curl, readBody)
            _ = ccurl_setopt_seek_function(curl, seekBody)
            // An upload is pulled in 1 MiB steps (curl's default is 64 KiB): fewer callbacks and writes.
            if isUpload { _ = ccurl_setopt_long(curl, CURLOPT_UPLOAD_BUFFERSIZE, 1 << 20) }
            code = withExtendedLifetime(reader) {
                _ = ccurl_setopt_pointer(curl, CURLOPT_READDATA, Unmanaged.passUnretained(reader).toOpaque())
                _ = ccurl_setopt_pointer(curl, CURLOPT_SEEKDATA, Unmanaged.passUnretained(reader).toOpaque())
                return ccurl_easy_perform(curl)
            }
        }
        if sink.unreadableStatus {
            throw Failure.other(code: -1, message: "\(url): the answer's status line is not HTTP")
        }
        guard code == CURLE_OK || (code == CURLE_WRITE_ERROR && sink.stoppedByCaller)
            || (code == CURLE_ABORTED_BY_CALLBACK && sink.isCancelled?() == true) else {
            let message = String(cString: ccurl_easy_strerror(code))
            switch code {
            case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST: throw Failure.couldNotConnect("\(url): \(message)")
            case CURLE_OPERATION_TIMEDOUT: throw Failure.timedOut("\(url): \(message)")
            case CURLE_SSL_PINNEDPUBKEYNOTMATCH: throw Failure.pinMismatch(url)
            case CURLE_SSL_CONNECT_ERROR: throw Failure.tlsFailed("\(url): \(message)")
            default: throw Failure.other(code: Int32(code.rawValue), message: "\(url): \(message)")
            }
        }
        var status = 0
        _ = ccurl_getinfo_long(curl, CURLINFO_RESPONSE_CODE, &status)
        // 0 is no answer at all (a transfer stopped before it); curl 7.88 passes on anything else a
        // server writes in its status line, -5 or 99999999999 among it, and reads 200 in lines
        // such as "HTTP/1.1 200x": the status is what both it and `status(ofLine:)` read.
        guard status == 0 || (Self.statusRange.contains(status) && status == sink.status) else {
            throw Failure.other(code: -1, message: "\(url): the answer's status line is not HTTP (status \(status))")
        }
        reusable = code == CURLE_OK
        return Response(status: status, headers: sink.headers, body: sink.errorBody)
    }
}

/// Where curl's callbacks put a response: 2xx body bytes to `onData`, anything else kept.
private final class TransferSink {
    let onData: ([UInt8]) -> Bool
    let progress: CurlHTTPClient.Progress?
    var headers: [String: String] = [:]
    var status = 0
    var errorBody: [UInt8] = []
    var stoppedByCaller = false
    /// A relayed answer's body came under a status line that is not HTTP.
    var unreadableStatus = false
    /// Set for relays: every body goes to onData, after the head went here.
    var relayHead: ((Int, [String: String]) -> Void)?
    var isCancelled: (() -> Bool)?
    var reportsUpload = false

    init(onData: @escaping ([UInt8]) -> Bool, progress: CurlHTTPClient.Progress?) {
        self.onData = onData
        self.progress = progress
    }
}

/// Reports whichever direction is moving: the upload while sending, else the download.
private let reportProgress: ccurl_xferinfo_callback = { userdata, downloadTotal, downloaded, uploadTotal, uploaded in
    guard let userdata else { return 0 }
    let sink = Unmanaged<TransferSink>.fromOpaque(userdata).takeUnretainedValue()
    if sink.isCancelled?() == true { return 1 }
    if sink.reportsUpload || uploadTotal > 0 && uploaded < uploadTotal || downloaded == 0 && uploaded > 0 {
        sink.progress?(Int64(uploaded), Int64(uploadTotal))
    } else {
        sink.progress?(Int64(downloaded), Int64(downloadTotal))
    }
    return 0
}

private let writeBody: ccurl_write_callback = { data, size, count, userdata in
    guard let data, let userdata else { return 0 }
    let sink = Unmanaged<TransferSink>.fromOpaque(userdata).takeUnretainedValue()
    let length = size * count
    let bytes = data.withMemoryRebound(to: UInt8.self, capacity: length) { Array(UnsafeBufferPointer(start: $0, count: length)) }
    if sink.relayHead != nil && sink.status < 200 {
        // A body under a head that was not relayed (its status line is not HTTP): nothing of
        // it goes on, and the transfer fails.
        sink.unreadableStatus = true
        return 0
    }
    if sink.relayHead == nil && !(200..<300).contains(sink.status) {
        sink.errorBody += bytes.prefix(CurlHTTPClient.maxErrorBodyBytes - sink.errorBody.count)
        if sink.errorBody.count < CurlHTTPClient.maxErrorBodyBytes { return length }
        sink.stoppedByCaller = true  // enough of it: the answer is what came
        return 0
    }
    if sink.onData(bytes) { return length }
    sink.stoppedByCaller = true
    return 0
}

private let writeHeader: ccurl_write_callback = { data, size, count, userdata in
    guard let data, let userdata else { return 0 }
    let sink = Unmanaged<TransferSink>.fromOpaque(userdata).takeUnretainedValue()
    let length = size * count
    let line = data.withMemoryRebound(to: UInt8.self, capacity: length) {
        String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
    }
    if line.hasPrefix("HTTP/") {
        // A new response (after a redirect or 100 Continue) starts over. A status that is not
        // three digits is none (0): the head is not relayed, and the transfer fails at its end.
        sink.headers = [:]
        sink.status = CurlHTTPClient.status(ofLine: line) ?? 0
    } else if let colon = line.firstIndex(of: ":") {
        sink.headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimming()
    } else if line == "\r\n" || line == "\n", sink.status >= 200, let relayHead = sink.relayHead {
        relayHead(sink.status, sink.headers)
    }
    return length
}

/// A streamed request body (relays, pushes).
private final class BodyReader {
    let read: (UnsafeMutableRawBufferPointer) -> Int?
    let rewind: (() -> Bool)?
    init(read: @escaping (UnsafeMutableRawBufferPointer) -> Int?, rewind: (() -> Bool)?) {
        self.read = read
        self.rewind = rewind
    }
}

/// curl asks to start the body over (offset 0 from the start) before resending it.
private let seekBody: ccurl_seek_callback = { userdata, offset, origin in
    guard let userdata else { return 1 }  // CURL_SEEKFUNC_FAIL
    let reader = Unmanaged<BodyReader>.fromOpaque(userdata).takeUnretainedValue()
    guard offset == 0, origin == SEEK_SET, let rewind = reader.rewind else { return 2 }  // CURL_SEEKFUNC_CANTSEEK
    return rewind() ? 0 : 1
}

private let readBody: ccurl_read_callback = { buffer, size, count, userdata in
    guard let buffer, let userdata else { return 0x1000_0000 }  // CURL_READFUNC_ABORT
    let reader = Unmanaged<BodyReader>.fromOpaque(userdata).takeUnretainedValue()
    let destination = UnsafeMutableRawBufferPointer(start: buffer, count: size * count)
    guard let filled = reader.read(destination) else { return 0x1000_0000 }
    return filled
}
