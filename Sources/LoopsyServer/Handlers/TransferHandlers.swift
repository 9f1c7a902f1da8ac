import LoopsyAPI
import LoopsyCore
import LoopsyConfig
import LoopsyHTTP
import LoopsyTransfer
#if canImport(Glibc)
import Glibc
#endif

/// File transfer: push (streamed to disk), pull (read as it is sent, with Range), list, checksum.
public enum TransferHandlers {
    /// What the caller may reach: the owner, or someone with less (no code-running dotfiles,
    /// no hard-linked files, and only below its own transfer paths when its grant has some).
    static func access(_ context: RequestContext) -> TransferAccess {
        let caller = context.caller
        return TransferAccess(owner: caller.isOwner,
                              roots: caller.isOwner ? nil : caller.transferPaths.map { $0.map { DataDir.expandTilde($0) } })
    }

    static func uploadSink(_ context: RequestContext) throws -> any HTTPBodySink {
        let transfer = context.node.transfer
        let request = context.request
        let head = Upload.Head(contentType: request.header("content-type"),
                               contentLength: request.header("content-length").flatMap(Int64.init),
                               destPath: request.query["destPath"], expectedSha256: request.header(TransferHeaders.sha256),
                               overwrite: ["1", "true", "yes"].contains(request.query["overwrite"]?.lowercased() ?? ""))
        return UploadSink(try Upload(head, policy: transfer.policy, maxFileSize: transfer.maxFileSize,
                                     access: access(context)))
    }

    static func push(_ context: RequestContext) throws -> HTTPResponse {
        guard let receiver = (context.request.bodySink as? UploadSink)?.upload else {
            throw APIError.badRequest("send the upload as multipart/form-data", code: .badMultipart)
        }
        // The fsync and rename run off this HTTP worker; the answer comes when they are done.
        return try context.respond(try context.node.transfer.finish(receiver)) { try .json($0) }
    }

    static func pull(_ context: RequestContext) throws -> HTTPResponse {
        let request = try context.decode(TransferPullRequest.self)
        let transfer = context.node.transfer
        let (fd, _, size) = try transfer.openForReading(request.sourcePath, access: access(context))
        var headers: [(name: String, value: String)] = [("Content-Type", "application/octet-stream"),
                                                        ("Accept-Ranges", "bytes"), ("X-Loopsy-Size", String(size))]
        var status = 200
        var body = HTTPResponse.FileBody(descriptor: fd, offset: 0, length: UInt64(size))
        if let rangeHeader = context.request.header("range") {
            guard let range = ByteRange.parse(rangeHeader, size: size) else {
                close(fd)
                var refusal = HTTPResponse.error(APIError(status: 416, code: .rangeNotSatisfiable,
                                                          message: "range '\(rangeHeader)' is outside the file (\(size) bytes)"))
                refusal.setHeader("Content-Range", "bytes */\(size)")
                return refusal
            }
            status = 206
            headers.append(("Content-Range", "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(size)"))
            body = .init(descriptor: fd, offset: UInt64(range.lowerBound), length: UInt64(range.count))
        }
        guard size <= TransferService.inlineChecksumLimit else {
            return HTTPResponse(status: status, headers: headers, file: body)
        }
        // The file is the body: it stays open until the answer is sent (or dropped, which closes it).
        return try context.respond(try digest(of: fd, size: size, context), onFailure: { close(fd) }) {
            [headers, status, body] digest in
            HTTPResponse(status: status, headers: headers + [(TransferHeaders.sha256, digest)], file: body)
        }
    }

    static func checksum(_ context: RequestContext) throws -> HTTPResponse {
        let request = try context.decode(TransferPathRequest.self)
        let (fd, real, size) = try context.node.transfer.openForReading(request.path, access: access(context))
        let answer = try digest(of: fd, size: size, context)
        // The descriptor is only for hashing: it closes once the digest is settled, either way.
        answer.whenSettled { close(fd) }
        return try context.respond(answer) { digest in try .json(ChecksumResponse(path: real, size: size, sha256: digest)) }
    }

    /// The file's digest, now or later; the file is closed here if that fails at once.
    private static func digest(of fd: Int32, size: Int64, _ context: RequestContext) throws -> Answer<String> {
        do {
            return try context.node.transfer.digest(of: fd, size: size)
        } catch {
            close(fd)
            throw error
        }
    }

    static func list(_ context: RequestContext) throws -> HTTPResponse {
        let request = try context.decode(TransferListRequest.self)
        let page = try context.node.transfer.listLater(request.path, afterName: request.afterName, access: access(context))
        return try context.respond(page) { page in try .json(page) }
    }
}

/// The body of `POST /transfer/push`, fed to the transfer library's Upload as it arrives.
final class UploadSink: HTTPBodySink {
    let upload: Upload

    init(_ upload: Upload) { self.upload = upload }

    func consume(_ bytes: UnsafeBufferPointer<UInt8>) -> BodyIntake {
        do {
            try upload.consume(bytes)
        } catch {
            return .refused(.error(error as? APIError ?? .badRequest("upload failed: \(error)", code: .badMultipart)))
        }
        // The disk is behind: the rest waits in the sender's socket, not on this thread.
        let gate = BodyGate()
        return upload.whenRoom { gate.open() } ? .held(gate) : .taken
    }

    func cancel() { upload.cancel() }
}
