import FoundationEssentials
import LoopsyAPI

extension LoopsyClient {
    public func execute(_ request: ExecuteRequest) throws -> ExecuteResult {
        try call("POST", API.execute(), body: request, as: ExecuteResult.self)
    }

    public func cancelJob(_ jobId: String) throws {
        _ = try call("DELETE", API.executeJob(jobId), as: CancelResponse.self)
    }

    public func jobs(includeFinished: Bool) throws -> [JobInfo] {
        try call("GET", API.executeJobs(query: ["all": includeFinished ? "1" : nil]), as: JobListResponse.self).jobs
    }

    /// Runs `request` with output streamed: `onEvent` sees each SSE event (start, stdout,
    /// stderr, exit) as it arrives; returning false stops reading.
    public func executeStream(_ request: ExecuteRequest, isCancelled: (() -> Bool)? = nil,
                              onEvent: @escaping (SSEEvent) -> Bool) throws {
        var parser = SSEParser()
        try stream("POST", API.executeStream(), body: Array(try JSONEncoder().encode(request)),
                   isCancelled: isCancelled) { bytes in
            for event in parser.feed(bytes) where !onEvent(event) { return false }
            return !parser.overflowed
        }
        try parser.checkOverflow(API.executeStream())
    }

    /// Runs `request` with output streamed and decoded: `onEvent` sees the start, each piece
    /// of output as the program's bytes (base64 chunks decoded), and the exit; returning false
    /// stops reading. Events this client does not know are skipped.
    public func executeEvents(_ request: ExecuteRequest, isCancelled: (() -> Bool)? = nil,
                              onEvent: @escaping (ExecuteEvent) -> Bool) throws {
        try executeStream(request, isCancelled: isCancelled) { event in
            guard let decoded = ExecuteEvent(event) else { return true }
            return onEvent(decoded)
        }
    }

    /// A request whose 2xx body is handed over as it arrives; errors decode as usual.
    public func stream(_ method: String, _ path: String, body: [UInt8]?, isCancelled: (() -> Bool)? = nil,
                       onData: @escaping ([UInt8]) -> Bool) throws {
        let headers = headers(accept: "text/event-stream, application/json",
                              contentType: body == nil ? nil : "application/json")
        let response: CurlHTTPClient.Response
        do {
            response = try http.stream(method: method, url: url(path), headers: headers, body: body,
                                       isCancelled: isCancelled, eventStream: true, onData: onData)
        } catch {
            throw ClientError.from(error, baseURL: baseURL)
        }
        try checkStatus(response, method: method, path: path)
    }
}

// Here, not in SSEParser.swift: the fuzz target builds that file without the client.
extension SSEParser {
    /// Throws when the stream from `path` had an event longer than `maxEventBytes` (it was ended there).
    func checkOverflow(_ path: String) throws {
        if overflowed {
            throw ClientError.badResponse("an event of the stream from \(path) is longer than \(Self.maxEventBytes) bytes")
        }
    }
}
