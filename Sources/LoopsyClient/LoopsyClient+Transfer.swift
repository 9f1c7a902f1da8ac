import FoundationEssentials
import LoopsyAPI

extension LoopsyClient {
    /// Uploads a local file in one pass, hashing it as it goes: the digest of what was sent
    /// follows the file, and the daemon stores the file only if what it received has that
    /// digest. Returns the daemon's answer and the digest sent.
    public func push(localPath: String, remotePath: String, overwrite: Bool,
                     progress: CurlHTTPClient.Progress? = nil) throws -> (result: TransferPushResult, sent: String) {
        let body = try PushBody(path: localPath)
        // The destination goes in the query, so a refused path is answered before any upload.
        let path = API.transferPush(query: ["destPath": remotePath, "overwrite": overwrite])
        let response: CurlHTTPClient.Response
        do {
            response = try http.upload(url: url(path), headers: headers(accept: "application/json", contentType: body.contentType),
                                       length: body.length, read: body.read(into:), rewind: body.rewind, progress: progress)
        } catch {
            if let failure = body.failure { throw ClientError.local(failure) }
            throw ClientError.from(error, baseURL: baseURL)
        }
        try checkStatus(response, method: "POST", path: API.transferPush())
        guard let sent = body.digest else { throw ClientError.badResponse("the daemon answered before the whole file was sent") }
        do {
            return (try SafeJSON.decode(TransferPushResult.self, from: Data(response.body)), sent)
        } catch {
            throw ClientError.badResponse("push result could not be decoded")
        }
    }

    /// Streams a remote file (from byte `offset`) to `onData`; returns the response headers
    /// (`x-loopsy-sha256`, `x-loopsy-size`, `content-range`) and status (200, or 206 when resumed).
    public func pull(remotePath: String, offset: Int64, progress: CurlHTTPClient.Progress? = nil,
                     onData: @escaping ([UInt8]) -> Bool) throws -> (status: Int, headers: [String: String]) {
        var headers = headers(accept: "application/octet-stream", contentType: "application/json")
        if offset > 0 { headers["Range"] = "bytes=\(offset)-" }
        let body = Array(try JSONEncoder().encode(TransferPullRequest(sourcePath: remotePath)))
        let response: CurlHTTPClient.Response
        do {
            response = try http.stream(method: "POST", url: url(API.transferPull()), headers: headers,
                                                   body: body, progress: progress, onData: onData)
        } catch {
            throw ClientError.from(error, baseURL: baseURL)
        }
        try checkStatus(response, method: "POST", path: API.transferPull())
        return (response.status, response.headers)
    }

    /// Every entry of a directory on the daemon, read a page at a time (a daemon answers at most
    /// 10,000 entries at once).
    public func list(remotePath: String) throws -> [FileEntry] {
        try Self.allPages { afterName, _ in
            let page = try call("POST", API.transferList(), body: TransferListRequest(path: remotePath, afterName: afterName),
                                as: TransferListResponse.self)
            return (page.files, page.more, page.nextAfterName ?? page.files.last?.name)
        }
    }

    public func checksum(remotePath: String) throws -> ChecksumResponse {
        try call("POST", API.transferChecksum(), body: TransferPathRequest(path: remotePath), as: ChecksumResponse.self)
    }
}
