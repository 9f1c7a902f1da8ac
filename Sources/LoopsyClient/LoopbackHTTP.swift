import LoopsyAPI
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// A plain HTTP/1.1 client for the one server the CLI and loopsy-mcp talk to most: this
/// machine's loopsyd, on 127.0.0.1. It sends one request on a connection of its own and reads
/// one answer, and serves `CurlHTTPClient.send` and event streams (`CurlHTTPClient.stream` with
/// `eventStream`) for such URLs when the client says so (`CurlHTTPClient.usesLoopbackClient`,
/// set by `LoopsyClient.local`).
///
/// Why not libcurl: Debian's libcurl-gnutls brings 27 shared libraries (GnuTLS, OpenSSL's
/// libcrypto, Kerberos, LDAP, SASL, libssh2, …). Loading and initialising them took 7-8 ms of
/// `loopsy context get`'s 12 ms, and 8 MiB of its memory, for a request to loopback that needs
/// none of them. Uploads, downloads and every call to another host (TLS, pins) stay on libcurl.
///
/// What answers on the port need not be loopsyd (its port was taken by another program), so
/// the answer is read as carefully as curl would: the head is bounded, lengths and chunk sizes
/// are range-checked where they are read, a 2xx body is bounded by `maxResponseBytes` and an
/// error body by `CurlHTTPClient.maxErrorBodyBytes`, and every read and write by the timeout
/// and the caller's cancel.
enum LoopbackHTTP {
    /// Most bytes of an answer's head (status line and headers).
    static let maxHeadBytes = 64 << 10
    /// Interim (1xx) answers skipped before the final one.
    static let maxInterimAnswers = 8

    /// The port and request target of `url` when it is `http://127.0.0.1:PORT/…` with a port of
    /// 1-65535 in plain digits and a target of printable ASCII; nil for anything else.
    static func target(_ url: String) -> (port: UInt16, path: String)? {
        let prefix = "http://127.0.0.1:"
        guard url.utf8.starts(with: prefix.utf8) else { return nil }
        let rest = url.utf8.dropFirst(prefix.utf8.count)
        guard let slash = rest.firstIndex(of: UInt8(ascii: "/")) else { return nil }
        let digits = rest[..<slash]
        guard (1...5).contains(digits.count), digits.allSatisfy({ (0x30...0x39).contains($0) }),
              let port = Int(Substring(digits)), (1...65535).contains(port) else { return nil }
        let path = rest[slash...]
        // No spaces, controls or bytes past ASCII: they would change the request line.
        guard path.allSatisfy({ (0x21...0x7E).contains($0) }) else { return nil }
        return (UInt16(port), String(Substring(path)))
    }

    /// Sends `method` to `port` on 127.0.0.1 and returns the answer as `CurlHTTPClient.send`
    /// does: a 2xx answer's body (at most `maxResponseBytes`, else `tooLarge`), or the first
    /// `maxErrorBodyBytes` of another's. Failures are `CurlHTTPClient.Failure`s worded as curl's.
    static func send(method: String, url: String, port: UInt16, path: String, headers: [String: String],
                     body: [UInt8]?, timeoutSeconds: Int, connectTimeoutSeconds: Int,
                     maxResponseBytes: Int) throws -> CurlHTTPClient.Response {
        try exchange(method: method, url: url, port: port, path: path, headers: headers, body: body,
                     timeoutSeconds: timeoutSeconds, connectTimeoutSeconds: connectTimeoutSeconds,
                     maxResponseBytes: maxResponseBytes, isCancelled: nil, onData: nil)
    }

    /// As `CurlHTTPClient.stream` does: a 2xx answer's body goes to `onData` as it arrives
    /// (false stops reading), another's comes back whole (at most `maxErrorBodyBytes`). No
    /// overall timeout; `isCancelled` is asked before every read and write and every quarter of
    /// a second while nothing moves, and true ends the call with what came (status 0 if no
    /// status line yet).
    static func stream(method: String, url: String, port: UInt16, path: String, headers: [String: String],
                       body: [UInt8]?, connectTimeoutSeconds: Int, isCancelled: (() -> Bool)?,
                       onData: @escaping ([UInt8]) -> Bool) throws -> CurlHTTPClient.Response {
        try exchange(method: method, url: url, port: port, path: path, headers: headers, body: body, timeoutSeconds: 0,
                     connectTimeoutSeconds: connectTimeoutSeconds, maxResponseBytes: Int.max, isCancelled: isCancelled,
                     onData: onData)
    }

    private static func exchange(method: String, url: String, port: UInt16, path: String, headers: [String: String],
                                 body: [UInt8]?, timeoutSeconds: Int, connectTimeoutSeconds: Int, maxResponseBytes: Int,
                                 isCancelled: (() -> Bool)?,
                                 onData: (([UInt8]) -> Bool)?) throws -> CurlHTTPClient.Response {
        let request = try Self.request(method: method, port: port, path: path, headers: headers, body: body, url: url)
        let deadline = Deadline(seconds: timeoutSeconds)
        let connection: Connection
        do {
            connection = try Connection(port: port, url: url, deadline: deadline,
                                        connectDeadline: deadline.earlier(seconds: connectTimeoutSeconds),
                                        isCancelled: isCancelled)
        } catch is Connection.Cancelled {
            return CurlHTTPClient.Response(status: 0, headers: [:], body: [])
        }
        defer { connection.close() }
        // A server may answer before it read the whole body (a 413 from the head) and close:
        // that answer is what counts, as curl reads it while sending. Without one, the write's
        // failure is the error.
        var reader = AnswerReader(connection: connection)
        do {
            var writeFailure: CurlHTTPClient.Failure?
            do {
                try connection.write(request)
            } catch let failure as Connection.Unsent {
                writeFailure = failure.failure
            }
            if let writeFailure {
                do {
                    return try Self.answer(&reader, method: method, url: url, maxResponseBytes: maxResponseBytes, onData: onData)
                } catch let cancelled as Connection.Cancelled {
                    throw cancelled
                } catch {
                    // No answer came: the write's failure says what went wrong. Once one
                    // began, its own error does.
                    throw reader.finalStatus == 0 ? writeFailure : error
                }
            }
            return try answer(&reader, method: method, url: url, maxResponseBytes: maxResponseBytes, onData: onData)
        } catch is Connection.Cancelled {
            return CurlHTTPClient.Response(status: reader.finalStatus, headers: reader.finalHeaders, body: [])
        }
    }

    /// Reads interim answers, then the final one: a 2xx body to `onData` when there is one,
    /// else into the response (at most `maxResponseBytes`, `tooLarge` past it); another
    /// status's body into the response, cut at `maxErrorBodyBytes`.
    private static func answer(_ reader: inout AnswerReader, method: String, url: String, maxResponseBytes: Int,
                               onData: (([UInt8]) -> Bool)?) throws -> CurlHTTPClient.Response {
        var answers = 0
        while true {
            let (status, headers) = try reader.head()
            if status >= 200 {
                let success = (200..<300).contains(status)
                var body: [UInt8] = []
                if method != "HEAD" && status != 204 && status != 304 {
                    if success, let onData {
                        try reader.body(headers: headers, limit: Int.max, cutAtLimit: false, deliver: onData)
                    } else {
                        try reader.body(headers: headers, limit: success ? maxResponseBytes : CurlHTTPClient.maxErrorBodyBytes,
                                        cutAtLimit: !success) { piece in
                            body += piece
                            return true
                        }
                    }
                }
                return CurlHTTPClient.Response(status: status, headers: headers, body: body)
            }
            answers += 1
            guard answers <= maxInterimAnswers else {
                throw CurlHTTPClient.Failure.other(code: -1, message: "\(url): more than \(maxInterimAnswers) interim answers")
            }
        }
    }

    /// The request's bytes. Header names and values with a line break or NUL are refused: they
    /// would add headers of their own.
    static func request(method: String, port: UInt16, path: String, headers: [String: String], body: [UInt8]?,
                        url: String) throws -> [UInt8] {
        guard !method.isEmpty, method.utf8.allSatisfy({ (0x41...0x5A).contains($0) }) else {
            throw CurlHTTPClient.Failure.other(code: -1, message: "\(url): \(method) is not a request method")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256 + (body?.count ?? 0))
        bytes += "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n".utf8
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
            // A name is a token; the framing headers are this client's own; a value has no line
            // break or NUL.
            guard !name.isEmpty, name.utf8.allSatisfy(isTokenByte),
                  !["host", "content-length", "transfer-encoding", "connection"].contains(name.lowercased()),
                  !value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else {
                throw CurlHTTPClient.Failure.other(code: -1, message: "\(url): the header \(name.debugDescription) cannot be sent")
            }
            // As with curl, a header without a value is not sent.
            if value.utf8.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            bytes += "\(name): \(value)\r\n".utf8
        }
        if let body { bytes += "Content-Length: \(body.count)\r\n".utf8 }
        bytes += "Connection: close\r\n\r\n".utf8
        if let body { bytes += body }
        return bytes
    }

    /// RFC 9110's tchar: what a header name is made of.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// When the exchange must be over (none for a timeout of 0, as curl's).
    struct Deadline {
        /// CLOCK_MONOTONIC milliseconds; nil: none.
        let at: Int64?

        init(seconds: Int) { at = seconds > 0 ? Self.now() + Self.milliseconds(seconds) : nil }
        private init(at: Int64?) { self.at = at }

        func earlier(seconds: Int) -> Deadline {
            guard seconds > 0 else { return self }
            let other = Self.now() + Self.milliseconds(seconds)
            return Deadline(at: at.map { min($0, other) } ?? other)
        }

        /// At most about 292 million years: a larger timeout is that one, not an overflow.
        private static func milliseconds(_ seconds: Int) -> Int64 { Int64(min(seconds, Int(Int64.max / 4000))) * 1000 }

        var passed: Bool { at.map { Self.now() >= $0 } ?? false }

        /// Milliseconds left for poll(2): -1 for none, 0 once passed.
        var pollTimeout: Int32 {
            guard let at else { return -1 }
            return Int32(clamping: max(0, at - Self.now()))
        }

        static func now() -> Int64 {
            var spec = timespec()
            clock_gettime(CLOCK_MONOTONIC, &spec)
            return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
        }
    }

    /// A non-blocking TCP connection to 127.0.0.1 whose every wait ends at the deadline.
    final class Connection {
        private let fd: Int32
        /// For error messages.
        let url: String
        private let deadline: Deadline
        private let isCancelled: (() -> Bool)?

        /// The caller's `isCancelled` said so.
        struct Cancelled: Error {}

        init(port: UInt16, url: String, deadline: Deadline, connectDeadline: Deadline,
             isCancelled: (() -> Bool)? = nil) throws {
            self.url = url
            self.deadline = deadline
            self.isCancelled = isCancelled
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { throw Self.connectFailure(errno, url: url) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if connected != 0 {
                let code = errno
                guard code == EINPROGRESS || code == EINTR else {
                    Glibc.close(fd)
                    throw Self.connectFailure(code, url: url)
                }
                do {
                    try wait(for: Int16(POLLOUT), until: connectDeadline)
                } catch {
                    Glibc.close(fd)
                    throw error
                }
                var failure: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length)
                if failure != 0 {
                    Glibc.close(fd)
                    throw Self.connectFailure(failure, url: url)
                }
            }
            var on: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        }

        /// Any failure to connect is curl's CURLE_COULDNT_CONNECT (the CLI then says the daemon
        /// is not running), with the reason.
        private static func connectFailure(_ code: Int32, url: String) -> CurlHTTPClient.Failure {
            .couldNotConnect("\(url): Couldn't connect to server (Failed to connect to 127.0.0.1: \(Errno(code)))")
        }

        func close() { Glibc.close(fd) }

        @discardableResult
        private func wait(for events: Int16, until deadline: Deadline) throws -> Int16 {
            while true {
                var poller = pollfd(fd: fd, events: events, revents: 0)
                var timeout = deadline.pollTimeout
                if isCancelled != nil { timeout = timeout < 0 ? 250 : min(timeout, 250) }
                let ready = poll(&poller, 1, timeout)
                if ready > 0 { return poller.revents }
                if isCancelled?() == true { throw Cancelled() }
                if ready < 0 && errno == EINTR { continue }
                if ready < 0 {
                    throw CurlHTTPClient.Failure.other(code: -1, message: "\(url): poll: \(Errno.current)")
                }
                // poll waits at most 24.8 days at a time.
                if !deadline.passed { continue }
                throw CurlHTTPClient.Failure.timedOut("\(url): Timeout was reached")
            }
        }

        /// Before every recv and send: bytes that keep moving hold off neither the deadline nor a
        /// cancel (poll, which looks at both, only runs when nothing is there).
        private func checkStop() throws {
            if deadline.passed { throw CurlHTTPClient.Failure.timedOut("\(url): Timeout was reached") }
            if isCancelled?() == true { throw Cancelled() }
        }

        /// The request could not be sent whole: the server closed, or answered before taking it all.
        struct Unsent: Error { var failure: CurlHTTPClient.Failure }

        /// Sends `bytes`, checking the deadline before every call (bytes that keep moving do
        /// not hold it off).
        func write(_ bytes: [UInt8]) throws {
            var sent = 0
            while sent < bytes.count {
                try checkStop()
                let count = bytes.withUnsafeBytes { raw in
                    Glibc.send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                }
                if count > 0 {
                    sent += count
                } else if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                    let ready = try wait(for: Int16(POLLOUT) | Int16(POLLIN), until: deadline)
                    if ready & Int16(POLLIN) != 0 && ready & Int16(POLLOUT) == 0 {
                        throw Unsent(failure: .other(code: -1, message: "\(url): the server answered before it took the whole request"))
                    }
                } else if count < 0 && errno == EINTR {
                    continue
                } else {
                    throw Unsent(failure: .other(code: -1, message: "\(url): Failed sending data to the peer (\(Errno.current))"))
                }
            }
        }

        /// Up to `capacity` bytes into `buffer` from `offset`; 0 at the end of the stream.
        func read(into buffer: inout [UInt8], at offset: Int, capacity: Int) throws -> Int {
            while true {
                try checkStop()
                let count = buffer.withUnsafeMutableBytes { raw in
                    recv(fd, raw.baseAddress! + offset, capacity, 0)
                }
                if count >= 0 { return count }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    try wait(for: Int16(POLLIN), until: deadline)
                } else if errno != EINTR {
                    throw CurlHTTPClient.Failure.other(code: -1, message: "\(url): Failure when receiving data from the peer (\(Errno.current))")
                }
            }
        }
    }

    /// Reads heads and bodies from a connection through one buffer.
    struct AnswerReader {
        let connection: Connection
        private var buffer = [UInt8](repeating: 0, count: 16 << 10)
        /// Unread bytes are buffer[start..<end].
        private var start = 0
        private var end = 0
        private var ended = false
        /// The final answer's status once its status line is read (0 before), its headers once
        /// its head is.
        private(set) var finalStatus = 0
        private(set) var finalHeaders: [String: String] = [:]

        init(connection: Connection) { self.connection = connection }

        private var url: String { connection.url }

        /// Reads more into the buffer (moving the unread bytes to its front, growing it up to
        /// `cap`); false at the end of the stream.
        private mutating func fill(cap: Int) throws -> Bool {
            if ended { return false }
            if start > 0 {
                buffer.withUnsafeMutableBytes { raw in
                    raw.baseAddress!.copyMemory(from: raw.baseAddress! + start, byteCount: end - start)
                }
                end -= start
                start = 0
            }
            if end == buffer.count {
                guard buffer.count < cap else { return true }
                buffer += [UInt8](repeating: 0, count: min(buffer.count, cap - buffer.count))
            }
            let count = try connection.read(into: &buffer, at: end, capacity: buffer.count - end)
            if count == 0 {
                ended = true
                return false
            }
            end += count
            return true
        }

        /// The next line (without its CRLF or LF) within `limit` bytes, or nil at the end of the stream.
        private mutating func line(limit: Int, what: String) throws -> [UInt8]? {
            var searched = start
            while true {
                if let newline = buffer[searched..<end].firstIndex(of: 0x0A) {
                    // Its CR counts: a limit of 2 takes an empty line.
                    guard newline - start <= limit else {
                        throw CurlHTTPClient.Failure.other(code: -1, message: "\(url): \(what) is longer than \(limit) bytes")
                    }
                    var line = Array(buffer[start..<newline])
                    if line.last == 0x0D { line.removeLast() }
                    start = newline + 1
                    return line
                }
                searched = end
                if end - start >= limit {
                    throw CurlHTTPClient.Failure.other(code: -1, message: "\(url): \(what) is longer than \(limit) bytes")
                }
                let before = end - start
                guard try fill(cap: Self.bufferCap(limit)) else { return nil }
                searched = start + before
            }
        }

        private static func bufferCap(_ limit: Int) -> Int { max(16 << 10, limit + 2) }

        /// The status and headers (names lower-cased, the last of a name kept) of the next answer.
        mutating func head() throws -> (Int, [String: String]) {
            var used = 0
            guard let statusLine = try line(limit: maxHeadBytes, what: "the answer's head") else {
                throw CurlHTTPClient.Failure.other(code: -1, message: "\(url): Empty reply from server")
            }
            used += statusLine.count
            let text = String(decoding: statusLine, as: UTF8.self)
            guard statusLine.starts(with: "HTTP/1.".utf8), let status = CurlHTTPClient.status(ofLine: text) else {
                throw CurlHTTPClient.Failure.other(code: -1, message: "\(url): the answer's status line is not HTTP")
            }
            // What a cancel returns from here on (curl's response code is set by the status line).
            if status >= 200 { finalStatus = status }
            var headers: [String: String] = [:]
            while true {
                guard let header = try line(limit: maxHeadBytes - used, what: "the answer's head") else {
                    throw CurlHTTPClient.Failure.other(code: -1, message: "\(url): the answer ended inside its head")
                }
                used += header.count + 2
                if used > maxHeadBytes {
                    throw CurlHTTPClient.Failure.other(code: -1, message: "\(url): the answer's head is longer than \(maxHeadBytes) bytes")
                }
                if header.isEmpty {
                    if status >= 200 { finalHeaders = headers }
                    return (status, headers)
                }
                guard let colon = header.firstIndex(of: UInt8(ascii: ":")) else { continue }
                let name = String(decoding: header[..<colon], as: UTF8.self).lowercased()
                headers[name] = String(decoding: header[(colon + 1)...], as: UTF8.self).trimming()
            }
        }

        /// Hands the body, framed as `headers` say (chunked, Content-Length, or up to the end of
        /// the stream), to `deliver` as it arrives; `deliver` returning false ends it. Past
        /// `limit` bytes it fails with `tooLarge`, or with `cutAtLimit` ends there.
        mutating func body(headers: [String: String], limit: Int, cutAtLimit: Bool,
                           deliver: ([UInt8]) -> Bool) throws {
            var total = 0
            if let coding = headers["transfer-encoding"] {
                guard coding.lowercased() == "chunked" else {
                    throw CurlHTTPClient.Failure.other(code: -1, message: "\(url): unsupported transfer encoding \(coding)")
                }
                while true {
                    guard let sizeLine = try line(limit: 1024, what: "a chunk's size line") else { throw partial() }
                    let size = try Self.chunkSize(sizeLine, url: url)
                    if size == 0 { return }  // trailers, if any, go with the connection
                    if size > limit - total {
                        if cutAtLimit {
                            _ = try take(limit - total, atEnd: .partial, deliver: deliver)
                            return
                        }
                        throw CurlHTTPClient.Failure.tooLarge(url: url, limit: limit)
                    }
                    guard try take(size, atEnd: .fail, deliver: deliver) else { return }
                    total += size
                    guard let after = try line(limit: 2, what: "a chunk's end"), after.isEmpty else { throw partial() }
                }
            }
            if let declared = headers["content-length"] {
                guard (1...18).contains(declared.utf8.count), declared.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
                      let length = Int(declared) else {
                    throw CurlHTTPClient.Failure.other(code: -1, message: "\(url): the answer's Content-Length is not a length")
                }
                if length > limit {
                    if cutAtLimit {
                        _ = try take(limit, atEnd: .partial, deliver: deliver)
                        return
                    }
                    throw CurlHTTPClient.Failure.tooLarge(url: url, limit: limit)
                }
                _ = try take(length, atEnd: .fail, deliver: deliver)
                return
            }
            // Neither: the body is what comes until the server closes.
            while true {
                let available = end - start
                if available > 0 {
                    if available > limit - total {
                        if cutAtLimit {
                            _ = deliver(Array(buffer[start..<(start + limit - total)]))
                            return
                        }
                        throw CurlHTTPClient.Failure.tooLarge(url: url, limit: limit)
                    }
                    let piece = Array(buffer[start..<end])
                    start = end
                    total += available
                    guard deliver(piece) else { return }
                }
                guard try fill(cap: 256 << 10) else { return }
            }
        }

        private enum AtEnd { case fail, partial }

        /// Hands `count` bytes to `deliver` as they come; if the stream ends first, fails
        /// (`.fail`) or stops (`.partial`). False when `deliver` said to stop.
        private mutating func take(_ count: Int, atEnd: AtEnd, deliver: ([UInt8]) -> Bool) throws -> Bool {
            var wanted = count
            while wanted > 0 {
                if start == end {
                    guard try fill(cap: 256 << 10) else {
                        if atEnd == .partial { return true }
                        throw partial()
                    }
                    continue
                }
                let length = min(wanted, end - start)
                let piece = Array(buffer[start..<(start + length)])
                start += length
                wanted -= length
                guard deliver(piece) else { return false }
            }
            return true
        }

        private func partial() -> CurlHTTPClient.Failure {
            .other(code: -1, message: "\(url): Transferred a partial file")
        }

        /// A chunk's size: hex digits (at most 15, so it fits an Int with room), then optional
        /// extensions after ";".
        static func chunkSize(_ line: [UInt8], url: String) throws -> Int {
            let digits = line.prefix { $0 != UInt8(ascii: ";") && $0 != 0x20 && $0 != 0x09 }
            guard (1...15).contains(digits.count), let size = Int(String(decoding: digits, as: UTF8.self), radix: 16),
                  size >= 0, digits.allSatisfy({ $0 != UInt8(ascii: "+") && $0 != UInt8(ascii: "-") }) else {
                throw CurlHTTPClient.Failure.other(code: -1, message: "\(url): a chunk's size is not a size")
            }
            return size
        }
    }
}
