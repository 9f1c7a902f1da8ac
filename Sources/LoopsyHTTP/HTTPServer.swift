import CMicroHTTPD
import LoopsyPOSIX
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public struct HTTPServerOptions: Sendable {
    /// IPv4 or IPv6 literal to bind ("0.0.0.0", "127.0.0.1", "::"); "localhost" means 127.0.0.1.
    public var host: String
    /// 0 lets the kernel choose; `HTTPServer.port` tells which.
    public var port: UInt16
    public var threads: Int
    /// Idle seconds before a connection is closed (slowloris defence).
    public var connectionTimeout: Int
    /// Connections from remote addresses, all together (loopback clients have a reserve on top).
    public var connectionLimit: Int
    /// Connections one remote address may hold.
    public var connectionsPerAddress: Int
    /// Slots beyond `connectionLimit` that only loopback clients can take.
    public var loopbackReserve: Int
    /// Seconds a remote client has to send a whole request head (0: no deadline).
    public var headerTimeout: Int
    /// Serve HTTPS with this key and certificate (PEM).
    public var tls: TLSCredentials?
    /// SO_REUSEPORT, so a loopback listener and a wildcard one can share a port (the kernel
    /// prefers the socket bound to the exact address).
    public var sharePort: Bool
    /// Where libmicrohttpd's own messages go (a client's malformed request, the connection limit
    /// reached), at most `HTTPServer.libraryLinesPerSecond` a second; nil: to stderr, as they are.
    public var log: (@Sendable (String) -> Void)?
    /// Bytes of libmicrohttpd's memory pool per connection (`server.connectionMemoryKiB`). It
    /// holds the request head, a copy of its Cookie field (MHD parses cookies in a copy), 64
    /// bytes for each header field, query argument and cookie, the buffer a body is read into
    /// (half of the pool: one `recv` reads at most that much) and then the response head. A head
    /// too large for it gets 431, or, when only the response head no longer fits, no answer
    /// (`poolMessage` says which setting to raise). libmicrohttpd 0.9.75 zeroes the whole pool
    /// after every request and half of it once each request head is read, so every small request
    /// writes 1.5 times this: with its default of 32 KiB, 48 KiB a request, which with 50
    /// connections pushed what the caches held out for each GET. 16 KiB takes about 5% off the
    /// CPU of a small request, halves what an open connection holds, and adds about 6% to a
    /// 512 MiB push over loopback (8 KB reads instead of 16 KB); see issue 24's notes in the README.
    public var connectionMemory: Int
    /// Added to libmicrohttpd's messages that say a request did not fit the pool (what to raise).
    public var poolMessage: String?

    public init(host: String = "127.0.0.1", port: UInt16 = 0, threads: Int = 2,
                connectionTimeout: Int = 30, connectionLimit: Int = 1000, connectionsPerAddress: Int = 64,
                loopbackReserve: Int = 64, headerTimeout: Int = 15, tls: TLSCredentials? = nil,
                sharePort: Bool = false, log: (@Sendable (String) -> Void)? = nil, connectionMemory: Int = 16 << 10,
                poolMessage: String? = nil) {
        self.host = host
        self.port = port
        self.threads = threads
        self.connectionTimeout = connectionTimeout
        self.connectionLimit = connectionLimit
        self.connectionsPerAddress = connectionsPerAddress
        self.loopbackReserve = loopbackReserve
        self.headerTimeout = headerTimeout
        self.tls = tls
        self.sharePort = sharePort
        self.log = log
        self.connectionMemory = connectionMemory
        self.poolMessage = poolMessage
    }
}

public struct TLSCredentials: Sendable {
    public var keyPEM: String
    public var certificatePEM: String
    public init(keyPEM: String, certificatePEM: String) {
        self.keyPEM = keyPEM
        self.certificatePEM = certificatePEM
    }
}

public enum HTTPServerError: Error, CustomStringConvertible {
    case badHost(String)
    case startFailed(host: String, port: UInt16)

    public var description: String {
        switch self {
        case .badHost(let host): return "server.host '\(host)' is not an IPv4 or IPv6 address"
        case .startFailed(let host, let port):
            return "could not listen on \(host):\(port) (port in use or address not on this machine?)"
        }
    }
}

/// libmicrohttpd with its internal thread pool and epoll. Handlers run synchronously on MHD's
/// worker threads.
public final class HTTPServer: @unchecked Sendable {
    private let handler: any HTTPHandler
    private let options: HTTPServerOptions
    private var daemon: OpaquePointer?
    public private(set) var port: UInt16 = 0
    /// Answers still being prepared; completed with 503 at stop so no connection stays suspended.
    private let deferrals = WaitRegistry<DeferredResponse> { !$0.isPending }
    /// Streams still being sent; ended at stop so no connection stays suspended.
    private let streams = StreamRegistry()
    /// Bodies held back (BodyGate); opened at stop so no connection stays suspended.
    private let gates = WaitRegistry<BodyGate> { $0.isOpen }
    /// Requests MHD has begun and not yet reported complete (answer sent, or connection gone).
    /// A stop lets them finish sending (bounded by `drainSeconds`) before it closes connections.
    fileprivate let openRequests = Atomic<Int>(0)
    /// How long a stop waits for answers already given to be sent.
    static let drainSeconds = 2.0
    private let budget: ConnectionBudget

    /// Most bytes of request bodies held in memory at once (buffered bodies: JSON, context
    /// values; uploads stream to disk), by the connections of every server in this process:
    /// remote connections together, and loopback ones together, each this much. Each route
    /// bounds its own body (a context PUT up to 6 MiB), but one caller with a plain peer
    /// credential held 3 GB with 500 connections that each sent all of such a body but its
    /// last byte. Past this, a body is refused with 503 and Retry-After. Remote and local
    /// callers have budgets of their own, so no remote flood refuses the owner's writes.
    public static let bufferedBodyLimit = 64 << 20
    /// Of the remote budget, what one address (an IPv6 /64) may hold: a few hosts, not one,
    /// are needed to fill it.
    public static let bufferedBodyPerAddress = 16 << 20

    private struct BodyBudget {
        var loopback = 0
        var remote = 0
        var byAddress: [String: Int] = [:]
    }
    private static let bodyBudget = PlainMutex(BodyBudget())

    /// Takes `count` bytes of the budgets for `context`; false (nothing taken) if they are not
    /// there.
    private static func reserveBody(_ count: Int, for context: RequestContext) -> Bool {
        let taken = bodyBudget.withLock { budget -> Bool in
            guard let address = context.budgetAddress else {
                guard budget.loopback + count <= bufferedBodyLimit else { return false }
                budget.loopback += count
                return true
            }
            let mine = budget.byAddress[address, default: 0]
            guard budget.remote + count <= bufferedBodyLimit, mine + count <= bufferedBodyPerAddress else { return false }
            budget.remote += count
            budget.byAddress[address] = mine + count
            return true
        }
        if taken { context.reserved += count }
        return taken
    }

    /// Gives back what `context`'s body holds of the budgets.
    fileprivate static func releaseBody(of context: RequestContext) {
        guard context.reserved > 0 else { return }
        let count = context.reserved
        context.reserved = 0
        bodyBudget.withLock { budget in
            guard let address = context.budgetAddress else {
                budget.loopback -= count
                return
            }
            budget.remote -= count
            let left = budget.byAddress[address, default: count] - count
            budget.byAddress[address] = left > 0 ? left : nil
        }
    }

    /// Bytes of request bodies held now, all servers together (for tests and status).
    public static var bufferedBodyBytes: Int { bodyBudget.withLock { $0.loopback + $0.remote } }
    /// Key, certificate and priorities as C strings for MHD (TLS only).
    private var tlsStrings: [UnsafeMutablePointer<CChar>?] = []
    /// Handed to MHD with its logger; freed once the daemon has stopped.
    private var libraryLogger: UnsafeMutablePointer<cmhd_logger>?
    /// Anyone can make libmicrohttpd log (a malformed request costs a line): past this many lines
    /// a second the rest are counted, and the count logged.
    public static let libraryLinesPerSecond = 20
    private let libraryLines = PlainMutex((second: Int64(0), lines: 0, dropped: 0))

    public init(handler: any HTTPHandler, options: HTTPServerOptions) {
        self.handler = handler
        self.options = options
        budget = ConnectionBudget(limits: .init(maxConnections: options.connectionLimit,
                                                maxPerAddress: options.connectionsPerAddress,
                                                headerTimeout: Double(options.headerTimeout)))
    }

    /// Open connections from other machines (loopback clients are not counted).
    public var remoteConnections: Int { budget.remoteConnections }

    deinit { stop() }

    /// Binds `port` instead of the configured one when given.
    public func start(port requestedPort: UInt16? = nil) throws {
        var options = self.options
        if let requestedPort { options.port = requestedPort }
        guard let bindAddress = SocketAddress(host: options.host, port: options.port) else {
            throw HTTPServerError.badHost(options.host)
        }
        var flags = MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_EPOLL.rawValue
            | MHD_ALLOW_SUSPEND_RESUME.rawValue | MHD_USE_ERROR_LOG.rawValue
        if bindAddress.isIPv6 { flags |= MHD_USE_IPv6.rawValue }
        if options.tls != nil { flags |= MHD_USE_TLS.rawValue }
        // MHD keeps these pointers; they live until stop().
        releaseTLSStrings()
        if let tls = options.tls {
            tlsStrings = [strdup(tls.keyPEM), strdup(tls.certificatePEM), strdup(tlsPriorities)]
        }
        // The server outlives every callback: stop() joins MHD's threads before `self` can go.
        let selfPointer = Unmanaged.passUnretained(self).toOpaque()
        daemon = bindAddress.withSockaddr { sockaddrPointer -> OpaquePointer? in
            var items: [MHD_OptionItem] = []
            // First, or what MHD says while reading the others goes to stderr.
            if options.log != nil {
                if libraryLogger == nil {
                    libraryLogger = .allocate(capacity: 1)
                    libraryLogger?.initialize(to: cmhd_logger(sink: librarySink, cls: selfPointer))
                }
                if let libraryLogger { items.append(cmhd_option_logger(libraryLogger)) }
            }
            items += [
                cmhd_option_int(.THREAD_POOL_SIZE, max(1, options.threads)),
                cmhd_option_int(.CONNECTION_TIMEOUT, options.connectionTimeout),
                cmhd_option_int(.CONNECTION_LIMIT, options.connectionLimit + max(0, options.loopbackReserve)),
                cmhd_option_int(.CONNECTION_MEMORY_LIMIT, max(4 << 10, options.connectionMemory)),
                cmhd_option_notify_connection(connectionNotified, selfPointer),
                cmhd_option_ptr(.SOCK_ADDR, 0, UnsafeMutableRawPointer(mutating: sockaddrPointer)),
                cmhd_option_completed(requestCompleted, selfPointer),
                cmhd_option_unescape(keepEscaped, nil),
            ]
            if options.sharePort { items.append(cmhd_option_int(.LISTENING_ADDRESS_REUSE, 1)) }
            if tlsStrings.count == 3, let key = tlsStrings[0], let certificate = tlsStrings[1],
               let priorities = tlsStrings[2] {
                items.append(cmhd_option_ptr(.HTTPS_MEM_KEY, 0, key))
                items.append(cmhd_option_ptr(.HTTPS_MEM_CERT, 0, certificate))
                items.append(cmhd_option_ptr(.HTTPS_PRIORITIES, 0, priorities))
            }
            items.append(cmhd_option_end())
            return items.withUnsafeMutableBufferPointer { buffer in
                cmhd_start_daemon(flags, options.port, acceptPolicy, selfPointer, accessHandler, selfPointer,
                                  buffer.baseAddress)
            }
        }
        guard let daemon else { throw HTTPServerError.startFailed(host: options.host, port: options.port) }
        port = Self.boundPort(listenFD: cmhd_listen_fd(daemon)) ?? options.port
        deferrals.reopen()
        streams.reopen()
        gates.reopen()
        budget.start()
    }

    /// Stops accepting, finishes with MHD's threads and closes every connection.
    public func stop() {
        if let daemon {
            // MHD aborts the process when stopped with a connection still suspended: every
            // answer that waits and every stream is ended first, and every held body let go
            // (any begun from now on is ended as it starts), which resumes their connections.
            for deferred in deferrals.close() {
                deferred.complete(.error(status: 503, message: "the daemon is shutting down; retry when it is back"))
            }
            streams.closeAll()
            for gate in gates.close() { gate.open() }
            budget.stop()
            // MHD_stop_daemon closes every connection at once, answers half-sent with them: a
            // pushed file stored just now (its 200) or the 503s above would reach nobody.
            let deadline = ContinuousClock.now + .seconds(Self.drainSeconds)
            while openRequests.load(ordering: .relaxed) > 0 && ContinuousClock.now < deadline { usleep(2000) }
            MHD_stop_daemon(daemon)
            self.daemon = nil
        }
        releaseTLSStrings()
        libraryLogger?.deallocate()
        libraryLogger = nil
    }

    /// One of libmicrohttpd's messages, passed on unless too many came this second.
    fileprivate func libraryMessage(_ line: String) {
        guard let log = options.log else { return }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let second = Int64(now.tv_sec)
        let (pass, dropped) = libraryLines.withLock { state -> (Bool, Int) in
            var dropped = 0
            if state.second != second {
                dropped = state.dropped
                state = (second, 0, 0)
            }
            state.lines += 1
            if state.lines > Self.libraryLinesPerSecond { state.dropped += 1 }
            return (state.lines <= Self.libraryLinesPerSecond, dropped)
        }
        if dropped > 0 { log("libmicrohttpd: \(dropped) more message(s) before this one were not logged (over \(Self.libraryLinesPerSecond) in a second)") }
        guard pass else { return }
        // Its words for a request head that did not fit the connection's pool (0.9.75).
        if let hint = options.poolMessage,
           ["memory in pool", "header was too big", "failed to create response header"].contains(where: line.includes) {
            log("libmicrohttpd: \(line) (\(hint))")
        } else {
            log("libmicrohttpd: \(line)")
        }
    }

    private func releaseTLSStrings() {
        for string in tlsStrings {
            // The key is secret: clear it before the memory goes back.
            if let string { memset(string, 0, strlen(string)) }
            free(string)
        }
        tlsStrings = []
    }

    private static func boundPort(listenFD: Int32) -> UInt16? {
        guard listenFD >= 0 else { return nil }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listenFD, $0, &length) }
        }
        guard ok == 0 else { return nil }
        return SocketAddress.port(of: storage)
    }

    // MARK: Per-request flow

    fileprivate func access(connection: OpaquePointer, url: UnsafePointer<CChar>, method: UnsafePointer<CChar>,
                            uploadData: UnsafePointer<CChar>?, uploadSize: UnsafeMutablePointer<Int>,
                            state: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> MHD_Result {
        guard let existing = state.pointee else {
            // First call: headers only. Queueing now would make MHD close the connection, so
            // unless the plan is to refuse the request, we answer on a later call.
            var headers = Self.headers(connection)
            let conflictingLengths = Self.settleLengths(&headers)
            let query = Self.query(connection)
            let context = RequestContext(head: HTTPRequestHead(
                method: String(cString: method), rawPath: Self.target(url),
                headers: headers, query: query ?? [:],
                remoteAddress: Self.remoteAddress(connection), secure: options.tls != nil, queryUndecodable: query == nil))
            let slot = ConnectionBudget.Slot.of(connection)
            context.budgetAddress = slot?.address
            // Released in requestCompleted, which MHD calls exactly once per request.
            state.pointee = Unmanaged.passRetained(context).toOpaque()
            openRequests.add(1, ordering: .relaxed)
            if conflictingLengths {
                // MHD reads the body by the first; a proxy in front may have used another: where
                // this request ends is unclear, so it is refused and the connection closed.
                var refusal = HTTPResponse.error(status: 400, code: "bad_request",
                                                 message: "the request has Content-Length headers that differ")
                refusal.setHeader("Connection", "close")
                context.answered = true
                return queue(refusal, on: connection)
            }
            let plan = handler.plan(for: context.head)
            switch plan {
            case .respond(let response):
                if Self.readsBodyFirst(context.head) {
                    context.refusal = response
                    return .YES
                }
                context.answered = true
                return queue(response, on: connection)
            case .stream(let sink):
                // An admitted upload (authenticated, within limits) may take as long as it needs.
                slot?.requestStarted()
                context.sink = sink
            case .buffer(let limit), .bufferNoting(let limit, _):
                context.limit = limit
                if case .bufferNoting(_, let note) = plan { context.note = note }
                if let length = context.head.headers["content-length"].flatMap(Int.init), length > limit {
                    let refusal = handler.payloadTooLarge(for: context.head, limit: limit)
                    // A client that asked first (Expect: 100-continue) is answered now and sends
                    // nothing. Most others (urllib, requests) send the whole body before reading:
                    // answered now, they would meet a reset instead of the 413, so the body is
                    // read and dropped first, up to `discardLimit`.
                    guard Self.readsBodyFirst(context.head) else {
                        context.answered = true
                        return queue(refusal, on: connection)
                    }
                    context.refusal = refusal
                }
            }
            return .YES
        }
        let context = Unmanaged<RequestContext>.fromOpaque(existing).takeUnretainedValue()
        if let gate = context.gate {
            // Called while the body is held (MHD goes on through a chunked body's chunks
            // without waiting for the resume): nothing is taken until the gate opens, and MHD
            // offers the same bytes again then.
            if !gate.isOpen { return .YES }
            context.gate = nil
        }
        if uploadSize.pointee > 0 {
            let count = uploadSize.pointee
            uploadSize.pointee = 0
            // MHD accepts a response only before the body starts or after it ends, so a body
            // refused midway is read and dropped, and the refusal is sent at the end; past
            // `discardLimit` the connection is closed instead.
            if context.answered || context.refusal != nil {
                context.discarded += count
                return context.discarded > Self.discardLimit ? .NO : .YES
            }
            guard let uploadData else { return .YES }
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(uploadData).assumingMemoryBound(to: UInt8.self),
                                            count: count)
            if let sink = context.sink {
                switch sink.consume(bytes) {
                case .taken:
                    break
                case .refused(let response):
                    context.refusal = response
                case .held(let gate):
                    // A server that is stopping holds nothing: the upload ends with the connection.
                    guard gates.add(gate) else { return .NO }
                    if gate.hold(connection) { context.gate = gate }
                }
                return .YES
            }
            guard context.body.count + count <= context.limit else {
                context.body = []
                Self.releaseBody(of: context)
                context.refusal = handler.payloadTooLarge(for: context.head, limit: context.limit)
                return .YES
            }
            guard Self.reserveBody(count, for: context) else {
                context.body = []
                Self.releaseBody(of: context)
                var refusal = HTTPResponse.error(status: 503, code: "unavailable", message: "the daemon holds as much of "
                    + "request bodies still arriving as it takes\(context.budgetAddress == nil ? "" : " from this address"); "
                    + "retry in a few seconds")
                refusal.setHeader("Retry-After", "2")
                refusal.setHeader("Connection", "close")
                context.refusal = refusal
                return .YES
            }
            context.body.append(contentsOf: bytes)
            return .YES
        }
        if let deferred = context.deferred {
            // Called again after a resume: the deferred answer is ready (or still is not).
            guard let response = deferred.take(suspending: connection) else { return .YES }
            context.deferred = nil
            return queue(response, on: connection)
        }
        if context.answered { return .YES }
        context.answered = true
        ConnectionBudget.Slot.of(connection)?.requestStarted()
        if let refusal = context.refusal { return queue(refusal, on: connection) }
        let head = context.head
        let request = HTTPRequest(method: head.method, rawPath: head.rawPath, query: head.query, headers: head.headers,
                                  body: context.body, remoteAddress: head.remoteAddress, bodySink: context.sink,
                                  secure: head.secure, planNote: context.note, queryUndecodable: head.queryUndecodable)
        context.note = nil
        context.body = []
        // The handler has the body now: it decodes it at once (a deferred answer keeps what
        // it decoded, bounded by the route), so its bytes count no longer.
        Self.releaseBody(of: context)
        let response = handler.handle(request)
        if let deferred = response.deferred {
            context.deferred = deferred
            if !deferrals.add(deferred) {
                deferred.complete(.error(status: 503, message: "the daemon is shutting down; retry when it is back"))
            }
            guard let ready = deferred.take(suspending: connection) else { return .YES }
            context.deferred = nil
            return queue(ready, on: connection)
        }
        return queue(response, on: connection)
    }

    fileprivate func admits(_ address: UnsafePointer<sockaddr>) -> Bool { budget.admits(address) }

    fileprivate func connection(_ connection: OpaquePointer, code: MHD_ConnectionNotificationCode,
                                context: UnsafeMutablePointer<UnsafeMutableRawPointer?>) {
        if cmhd_connection_started(code) != 0 {
            budget.opened(fd: cmhd_connection_fd(connection), address: cmhd_client_address(connection), context: context)
        } else {
            budget.closed(context: context)
        }
    }

    /// A Content-Length given more than once (repeated fields arrive joined with commas): true
    /// when the values differ; the same value repeated (allowed, RFC 9110 §8.6) becomes that
    /// one value, which every reader of the header then parses as MHD does.
    static func settleLengths(_ headers: inout HTTPHeaders) -> Bool {
        guard let lengths = headers["content-length"], lengths.contains(",") else { return false }
        let values = Set(lengths.split(separator: ",").map { $0.filter { $0 != " " && $0 != "\t" } })
        guard values.count == 1, let value = values.first else { return true }
        headers["content-length"] = String(value)
        return false
    }

    /// The request target as text. Bytes that are not UTF-8 are percent-encoded, so the path's
    /// decoding refuses them as it refuses `%FF` (400 bad_path): read as text they became
    /// U+FFFD, and keys made of different bytes met in one stored key.
    static func target(_ url: UnsafePointer<CChar>) -> String {
        if let text = String(validatingCString: url) { return text }
        var encoded = ""
        let digits = Array("0123456789ABCDEF".utf8)
        var index = 0
        while url[index] != 0 {
            let byte = UInt8(bitPattern: url[index])
            if byte < 0x80 {
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                encoded += "%"
                encoded.unicodeScalars.append(Unicode.Scalar(digits[Int(byte >> 4)]))
                encoded.unicodeScalars.append(Unicode.Scalar(digits[Int(byte & 0xF)]))
            }
            index += 1
        }
        return encoded
    }

    /// Bytes of a refused body read and dropped so that its client can read the refusal.
    static let discardLimit = 16 << 20

    /// Should an early answer wait until the body is read (and dropped)? Yes for a body of at
    /// most `discardLimit` from a client that did not ask first with Expect: 100-continue (MHD
    /// then sends no 100 and the client sends nothing).
    private static func readsBodyFirst(_ head: HTTPRequestHead) -> Bool {
        if head.headers["expect"]?.lowercased() == "100-continue" { return false }
        if let length = head.headers["content-length"].flatMap(Int.init) { return length > 0 && length <= discardLimit }
        return head.headers["transfer-encoding"] != nil
    }

    private func queue(_ response: HTTPResponse, on connection: OpaquePointer) -> MHD_Result {
        // The last line for a status from elsewhere (a peer's relayed answer is checked where it
        // is read): UInt32(-5) would stop the process, and MHD refuses more than three digits.
        guard (100...999).contains(response.status) else {
            response.stream?.detach()  // never sent: its producer is told the client is gone
            return queue(.error(status: 502, code: "peer_unreachable",
                                message: "the answer had no valid HTTP status (\(response.status))"),
                         on: connection)
        }
        let mhdResponse: OpaquePointer?
        if let stream = response.stream {
            stream.attach(connection)
            // At stop, streams end; one that starts during the stop ends at once.
            if !streams.add(stream) { stream.abort() }
            // MHD holds this reference until it calls streamFree with the response.
            let streamPointer = Unmanaged.passRetained(stream).toOpaque()
            mhdResponse = MHD_create_response_from_callback(response.streamLength ?? UInt64.max, 64 * 1024, streamRead, streamPointer,
                                                            streamFree)
            if mhdResponse == nil {
                Unmanaged<HTTPStream>.fromOpaque(streamPointer).release()
                stream.detach()  // never sent: its producer stops, and whoever waits for its end hears of it
            }
        } else if let file = response.file {
            // Read as sent, not sendfile (see cmhd_response_from_file): a file cut short fails the
            // answer at once. MHD closes the descriptor when it destroys the response.
            mhdResponse = cmhd_response_from_file(file.length, file.descriptor, file.offset, 64 * 1024)
        } else {
            mhdResponse = response.body.withUnsafeBytes { bytes in
                cmhd_response_copying(bytes.count, bytes.baseAddress)
            }
        }
        guard let mhdResponse else { return .NO }
        defer { MHD_destroy_response(mhdResponse) }
        for (name, value) in response.headers {
            // withCString: most names and many values are small strings, which passing a
            // String as a C pointer would copy to the heap first.
            _ = name.withCString { name in value.withCString { MHD_add_response_header(mhdResponse, name, $0) } }
        }
        return MHD_queue_response(connection, UInt32(response.status), mhdResponse)
    }

    /// The request's header fields, names lower-cased.
    private static func headers(_ connection: OpaquePointer) -> HTTPHeaders {
        var headers = HTTPHeaders()
        // The iteration is synchronous: the pointer to this frame's variable outlives it (no
        // object to allocate, no exclusivity check per field as a class's property had).
        withUnsafeMutablePointer(to: &headers) { pointer in
            _ = MHD_get_connection_values(connection, .HEADER_KIND, { cls, _, key, value in
                guard let cls, let key else { return .YES }
                cls.assumingMemoryBound(to: HTTPHeaders.self).pointee
                    .add(String(asciiLowercasing: key), value.map { String(cString: $0) } ?? "")
                return .YES
            }, UnsafeMutableRawPointer(pointer))
        }
        return headers
    }

    private static func values(_ connection: OpaquePointer, kind: MHD_ValueKind) -> [String: String] {
        final class Collector {
            var values: [String: String] = [:]
            /// Query arguments: bytes that are not UTF-8 are percent-encoded (see `target`).
            var encodesInvalid = false
        }
        let collector = Collector()
        collector.encodesInvalid = kind == .GET_ARGUMENT_KIND
        // The collector lives on this stack frame for the whole synchronous iteration.
        let pointer = Unmanaged.passUnretained(collector).toOpaque()
        _ = MHD_get_connection_values(connection, kind, { cls, _, key, value in
            guard let cls, let key else { return .YES }
            let collector = Unmanaged<Collector>.fromOpaque(cls).takeUnretainedValue()
            let encodes = collector.encodesInvalid
            let name = encodes ? HTTPServer.target(key) : String(cString: key)
            var text = ""
            if let value { text = encodes ? HTTPServer.target(value) : String(cString: value) }
            if let previous = collector.values[name] {
                collector.values[name] = previous + ", " + text
            } else {
                collector.values[name] = text
            }
            return .YES
        }, pointer)
        return collector.values
    }

    /// Query arguments arrive still escaped (see `keepEscaped`); decode them here, form-style.
    /// Nil when a name or value is not percent-encoded UTF-8 (its raw bytes included): such a
    /// value was kept as its escaped text, or as U+FFFD, and reached `destPath` that way.
    private static func query(_ connection: OpaquePointer) -> [String: String]? {
        // Most requests have no query: counted without an iterator, nothing is collected.
        if MHD_get_connection_values(connection, .GET_ARGUMENT_KIND, nil, nil) == 0 { return [:] }
        var decoded: [String: String] = [:]
        for (key, value) in values(connection, kind: .GET_ARGUMENT_KIND) {
            guard let name = PercentDecoding.decode(Substring(key), plusIsSpace: true),
                  let text = PercentDecoding.decode(Substring(value), plusIsSpace: true) else { return nil }
            decoded[name] = text
        }
        return decoded
    }

    private static func remoteAddress(_ connection: OpaquePointer) -> String {
        guard let address = cmhd_client_address(connection) else { return "unknown" }
        return SocketAddress.describe(address)
    }
}

/// TLS 1.2 and 1.3 only, GnuTLS's secure defaults otherwise.
private let tlsPriorities = "SECURE256:SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-SHA1"

/// State of one request between MHD's calls to the access handler.
///
/// Only MHD's callbacks for its connection touch it, one at a time (the access handler, then
/// `requestCompleted`), and none of its properties is passed inout across a call that could
/// reach it again: the runtime's exclusivity checks (`swift_beginAccess`, a lookup in a
/// per-thread set, several per request) are left out.
private final class RequestContext {
    let head: HTTPRequestHead
    @exclusivity(unchecked) var body: [UInt8] = []
    @exclusivity(unchecked) var limit = 0
    /// What `body` holds of `HTTPServer`'s body budgets.
    @exclusivity(unchecked) var reserved = 0
    /// The remote address whose share `reserved` counts against (nil: a loopback client).
    @exclusivity(unchecked) var budgetAddress: String?
    @exclusivity(unchecked) var sink: (any HTTPBodySink)?
    /// The plan's note for the handler (`BodyPlan.bufferNoting`).
    @exclusivity(unchecked) var note: (any Sendable)?
    /// A response decided while the body was still arriving.
    @exclusivity(unchecked) var refusal: HTTPResponse?
    /// Bytes of a refused body dropped so far.
    @exclusivity(unchecked) var discarded = 0
    @exclusivity(unchecked) var answered = false
    /// Set while the answer waits on another thread (the connection is suspended).
    @exclusivity(unchecked) var deferred: DeferredResponse?
    /// Set while the body is held back by its sink (the connection is suspended until it opens).
    @exclusivity(unchecked) var gate: BodyGate?
    init(head: HTTPRequestHead) { self.head = head }
}

private let librarySink: cmhd_log_sink = { cls, line in
    guard let cls, let line else { return }
    Unmanaged<HTTPServer>.fromOpaque(cls).takeUnretainedValue().libraryMessage(String(cString: line))
}

// The two per-request callbacks borrow the server (`_withUnsafeGuaranteedRef`) instead of taking
// a reference: it outlives every callback (stop() joins MHD's threads first), and a retain and
// release per request made the workers take turns owning the cache line of its reference count
// (swift_retain was 4.8% of loopsyd's cycles under wrk, most of it waiting for that line).
private let accessHandler: MHD_AccessHandlerCallback = {
    cls, connection, url, method, _, uploadData, uploadSize, state in
    guard let cls, let connection, let url, let method, let uploadSize, let state else { return .NO }
    return Unmanaged<HTTPServer>.fromOpaque(cls)._withUnsafeGuaranteedRef { server in
        server.access(connection: connection, url: url, method: method, uploadData: uploadData,
                      uploadSize: uploadSize, state: state)
    }
}

private let requestCompleted: MHD_RequestCompletedCallback = { cls, connection, state, _ in
    if let connection { ConnectionBudget.Slot.of(connection)?.requestEnded() }
    guard let state, let pointer = state.pointee else { return }
    let context = Unmanaged<RequestContext>.fromOpaque(pointer)
    context._withUnsafeGuaranteedRef { context in
        // Ended before it was answered (client gone, timeout, shutdown): whoever consumes the
        // body or prepares the answer must stop.
        if !context.answered { context.sink?.cancel() }
        HTTPServer.releaseBody(of: context)
        context.deferred?.abandon()
    }
    context.release()
    state.pointee = nil
    if let cls {
        Unmanaged<HTTPServer>.fromOpaque(cls)._withUnsafeGuaranteedRef { $0.openRequests.subtract(1, ordering: .relaxed) }
    }
}

private let acceptPolicy: MHD_AcceptPolicyCallback = { cls, address, _ in
    guard let cls, let address else { return .NO }
    return Unmanaged<HTTPServer>.fromOpaque(cls).takeUnretainedValue().admits(address) ? .YES : .NO
}

private let connectionNotified: MHD_NotifyConnectionCallback = { cls, connection, context, code in
    guard let cls, let connection, let context else { return }
    Unmanaged<HTTPServer>.fromOpaque(cls).takeUnretainedValue().connection(connection, code: code, context: context)
}

private let streamRead: MHD_ContentReaderCallback = { cls, _, buffer, max in
    guard let cls, let buffer else { return -2 }  // MHD_CONTENT_READER_END_WITH_ERROR
    switch Unmanaged<HTTPStream>.fromOpaque(cls).takeUnretainedValue().read(into: buffer, max: max) {
    case .bytes(let count): return count
    case .wait: return 0
    case .end: return -1  // MHD_CONTENT_READER_END_OF_STREAM
    case .error: return -2  // MHD_CONTENT_READER_END_WITH_ERROR
    }
}

private let streamFree: MHD_ContentReaderFreeCallback = { cls in
    guard let cls else { return }
    let stream = Unmanaged<HTTPStream>.fromOpaque(cls)
    stream.takeUnretainedValue().detach()
    stream.release()
}

/// Leaves the URL as sent: routing decodes segment by segment (see HTTPRequest.rawPath).
private let keepEscaped: cmhd_unescape_callback = { _, _, text in
    guard let text else { return 0 }
    return strlen(text)
}
