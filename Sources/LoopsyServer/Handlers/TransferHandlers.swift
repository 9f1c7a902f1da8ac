import LoopsyAPI
import LoopsyHTTP
#if canImport(Glibc)
import Glibc
#endif

/// File transfer: push (streamed to disk), pull (sent by the kernel, with Range), list, checksum.
public enum TransferHandlers {
    static func uploadSink(_ context: RequestContext) throws -> any HTTPBodySink {
        let transfer = context.node.transfer
        return try UploadReceiver(context: context, policy: transfer.policy, maxFileSize: transfer.maxFileSize)
    }

    static func push(_ context: RequestContext) throws -> HTTPResponse {
        guard let receiver = context.request.bodySink as? UploadReceiver else {
            throw APIError.badRequest("send the upload as multipart/form-data", code: "bad_multipart")
        }
        return try .json(try receiver.finish())
    }

    static func pull(_ context: RequestContext) throws -> HTTPResponse {
        let request = try context.decode(TransferPullRequest.self)
        let transfer = context.node.transfer
        let (fd, _, size) = try transfer.openForReading(request.sourcePath)
        var headers: [(name: String, value: String)] = [("Content-Type", "application/octet-stream"),
                                                        ("Accept-Ranges", "bytes"), ("X-Loopsy-Size", String(size))]
        var status = 200
        var body = HTTPResponse.FileBody(descriptor: fd, offset: 0, length: UInt64(size))
        if let rangeHeader = context.request.header("range") {
            guard let range = ByteRange.parse(rangeHeader, size: size) else {
                close(fd)
                var refusal = HTTPResponse.error(APIError(status: 416, code: "range_not_satisfiable",
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
        return try transfer.withDigest(of: fd, size: size, keepsDescriptor: true) { [headers, status, body] digest in
            HTTPResponse(status: status, headers: headers + [(TransferHeaders.sha256, digest)], file: body)
        }
    }

    static func checksum(_ context: RequestContext) throws -> HTTPResponse {
        let request = try context.decode(TransferPathRequest.self)
        let (fd, real, size) = try context.node.transfer.openForReading(request.path)
        return try context.node.transfer.withDigest(of: fd, size: size, keepsDescriptor: false) { digest in
            try .json(ChecksumResponse(path: real, size: size, sha256: digest))
        }
    }

    static func list(_ context: RequestContext) throws -> HTTPResponse {
        let request = try context.decode(TransferPathRequest.self)
        let policy = context.node.transfer.policy
        let directory = try policy.resolve(request.path, for: .read)
        guard let handle = opendir(directory) else {
            throw errno == ENOTDIR ? APIError.badRequest("'\(request.path)' is not a directory", code: "not_a_directory")
                : APIError.forbidden("'\(request.path)' cannot be read by the daemon", code: "permission_denied")
        }
        defer { closedir(handle) }
        var files: [FileEntry] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            let path = directory == "/" ? "/" + name : directory + "/" + name
            // Entries the rules would refuse are not shown.
            if policy.denied.contains(where: { PathPolicy.isInside(path, $0) }) { continue }
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            let type: String
            switch info.st_mode & S_IFMT {
            case S_IFREG: type = "file"
            case S_IFDIR: type = "directory"
            case S_IFLNK: type = "symlink"
            default: type = "other"
            }
            files.append(FileEntry(name: name, path: path, type: type, size: Int64(info.st_size),
                                   modified: Int64(info.st_mtim.tv_sec) * 1000 + Int64(info.st_mtim.tv_nsec) / 1_000_000,
                                   mode: "0" + String(info.st_mode & 0o7777, radix: 8)))
        }
        return try .json(TransferListResponse(files: files.sorted { $0.name < $1.name }))
    }
}
