import CCurl
import LoopsyAPI

/// A blocking HTTP client on libcurl (one easy handle per request).
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
        case other(code: Int32, message: String)

        public var description: String {
            switch self {
            case .couldNotConnect(let detail): return "could not connect: \(detail)"
            case .timedOut(let detail): return "timed out: \(detail)"
            case .other(_, let message): return message
            }
        }
    }

    private static let globalInit: Bool = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK }()

    public var timeoutSeconds: Int

    public init(timeoutSeconds: Int = 30) {
        _ = Self.globalInit
        self.timeoutSeconds = timeoutSeconds
    }

    public func send(method: String, url: String, headers: [String: String] = [:], body: [UInt8]? = nil) throws -> Response {
        guard let curl = curl_easy_init() else { throw Failure.other(code: -1, message: "curl_easy_init failed") }
        defer { curl_easy_cleanup(curl) }
        let sink = ResponseSink()
        // The sink outlives the transfer: curl_easy_perform returns before this frame ends.
        let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }
        for (name, value) in headers { headerList = curl_slist_append(headerList, "\(name): \(value)") }
        headerList = curl_slist_append(headerList, "Expect:")  // no 100-continue round trip

        _ = ccurl_setopt_string(curl, CURLOPT_URL, url)
        _ = ccurl_setopt_string(curl, CURLOPT_CUSTOMREQUEST, method)
        _ = ccurl_setopt_long(curl, CURLOPT_NOSIGNAL, 1)
        _ = ccurl_setopt_long(curl, CURLOPT_TIMEOUT, timeoutSeconds)
        _ = ccurl_setopt_long(curl, CURLOPT_CONNECTTIMEOUT, 10)
        _ = ccurl_setopt_slist(curl, CURLOPT_HTTPHEADER, headerList)
        _ = ccurl_setopt_write_function(curl, writeBody)
        _ = ccurl_setopt_pointer(curl, CURLOPT_WRITEDATA, sinkPointer)
        _ = ccurl_setopt_header_function(curl, writeHeader)
        _ = ccurl_setopt_pointer(curl, CURLOPT_HEADERDATA, sinkPointer)
        if method == "HEAD" { _ = ccurl_setopt_long(curl, CURLOPT_NOBODY, 1) }

        let code: CURLcode
        if let body {
            code = body.withUnsafeBytes { bytes -> CURLcode in
                _ = ccurl_setopt_long(curl, CURLOPT_POSTFIELDSIZE, bytes.count)
                // curl reads the body during perform, while `bytes` is still valid.
                _ = ccurl_setopt_pointer(curl, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress))
                return curl_easy_perform(curl)
            }
        } else {
            code = curl_easy_perform(curl)
        }
        guard code == CURLE_OK else {
            let message = String(cString: curl_easy_strerror(code))
            switch code {
            case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST: throw Failure.couldNotConnect("\(url): \(message)")
            case CURLE_OPERATION_TIMEDOUT: throw Failure.timedOut("\(url): \(message)")
            default: throw Failure.other(code: Int32(code.rawValue), message: "\(url): \(message)")
            }
        }
        var status = 0
        _ = ccurl_getinfo_long(curl, CURLINFO_RESPONSE_CODE, &status)
        return Response(status: status, headers: sink.headers, body: sink.body)
    }
}

private final class ResponseSink {
    var body: [UInt8] = []
    var headers: [String: String] = [:]
}

private let writeBody: ccurl_write_callback = { data, size, count, userdata in
    guard let data, let userdata else { return 0 }
    let sink = Unmanaged<ResponseSink>.fromOpaque(userdata).takeUnretainedValue()
    let length = size * count
    data.withMemoryRebound(to: UInt8.self, capacity: length) {
        sink.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
    }
    return length
}

private let writeHeader: ccurl_write_callback = { data, size, count, userdata in
    guard let data, let userdata else { return 0 }
    let sink = Unmanaged<ResponseSink>.fromOpaque(userdata).takeUnretainedValue()
    let length = size * count
    let line = data.withMemoryRebound(to: UInt8.self, capacity: length) {
        String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
    }
    if line.hasPrefix("HTTP/") { sink.headers = [:] }  // a new response (after redirects or 100)
    if let colon = line.firstIndex(of: ":") {
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimming()
        sink.headers[name] = value
    }
    return length
}


extension CurlHTTPClient {
    /// Sends a request and hands the response body to `onData` as it arrives (for SSE and
    /// large downloads). `onData` returns false to abort the transfer. Returns the status and
    /// headers once the body has ended.
    public func stream(method: String, url: String, headers: [String: String] = [:], body: [UInt8]? = nil,
                       onData: @escaping ([UInt8]) -> Bool) throws -> Response {
        guard let curl = curl_easy_init() else { throw Failure.other(code: -1, message: "curl_easy_init failed") }
        defer { curl_easy_cleanup(curl) }
        let sink = StreamSink(onData: onData)
        // The sink outlives the transfer: curl_easy_perform returns before this frame ends.
        let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }
        for (name, value) in headers { headerList = curl_slist_append(headerList, "\(name): \(value)") }
        headerList = curl_slist_append(headerList, "Expect:")
        _ = ccurl_setopt_string(curl, CURLOPT_URL, url)
        _ = ccurl_setopt_string(curl, CURLOPT_CUSTOMREQUEST, method)
        _ = ccurl_setopt_long(curl, CURLOPT_NOSIGNAL, 1)
        _ = ccurl_setopt_long(curl, CURLOPT_CONNECTTIMEOUT, 10)
        _ = ccurl_setopt_slist(curl, CURLOPT_HTTPHEADER, headerList)
        _ = ccurl_setopt_write_function(curl, streamBody)
        _ = ccurl_setopt_pointer(curl, CURLOPT_WRITEDATA, sinkPointer)
        _ = ccurl_setopt_header_function(curl, streamHeader)
        _ = ccurl_setopt_pointer(curl, CURLOPT_HEADERDATA, sinkPointer)
        let code: CURLcode
        if let body {
            code = body.withUnsafeBytes { bytes -> CURLcode in
                _ = ccurl_setopt_long(curl, CURLOPT_POSTFIELDSIZE, bytes.count)
                _ = ccurl_setopt_pointer(curl, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress))
                return curl_easy_perform(curl)
            }
        } else {
            code = curl_easy_perform(curl)
        }
        var status = 0
        _ = ccurl_getinfo_long(curl, CURLINFO_RESPONSE_CODE, &status)
        if code != CURLE_OK && !(code == CURLE_WRITE_ERROR && sink.aborted) {
            let message = String(cString: curl_easy_strerror(code))
            if code == CURLE_COULDNT_CONNECT { throw Failure.couldNotConnect("\(url): \(message)") }
            throw Failure.other(code: Int32(code.rawValue), message: "\(url): \(message)")
        }
        return Response(status: status, headers: sink.headers, body: sink.errorBody)
    }
}

/// Body bytes of a 2xx response go to `onData`; an error response is collected instead, so
/// the caller can decode the error body.
private final class StreamSink {
    let onData: ([UInt8]) -> Bool
    var headers: [String: String] = [:]
    var status = 0
    var errorBody: [UInt8] = []
    var aborted = false

    init(onData: @escaping ([UInt8]) -> Bool) { self.onData = onData }
}

private let streamBody: ccurl_write_callback = { data, size, count, userdata in
    guard let data, let userdata else { return 0 }
    let sink = Unmanaged<StreamSink>.fromOpaque(userdata).takeUnretainedValue()
    let length = size * count
    let bytes = data.withMemoryRebound(to: UInt8.self, capacity: length) { Array(UnsafeBufferPointer(start: $0, count: length)) }
    if !(200..<300).contains(sink.status) {
        sink.errorBody += bytes
        return length
    }
    if sink.onData(bytes) { return length }
    sink.aborted = true
    return 0
}

private let streamHeader: ccurl_write_callback = { data, size, count, userdata in
    guard let data, let userdata else { return 0 }
    let sink = Unmanaged<StreamSink>.fromOpaque(userdata).takeUnretainedValue()
    let length = size * count
    let line = data.withMemoryRebound(to: UInt8.self, capacity: length) {
        String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
    }
    if line.hasPrefix("HTTP/") {
        sink.headers = [:]
        sink.status = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
    } else if let colon = line.firstIndex(of: ":") {
        sink.headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimming()
    }
    return length
}
