import FoundationEssentials
import LoopsyAPI
import LoopsyHTTP

extension HTTPResponse {
    static var jsonEncoder: JSONEncoder { SafeJSON.encoder }

    public static func json<T: Encodable>(_ value: T, status: Int = 200) throws -> HTTPResponse {
        let body: [UInt8]
        if let writable = value as? any JSONWritable {
            var writer = JSONWriter()
            writable.write(to: &writer)
            body = writer.bytes
        } else {
            body = Array(try jsonEncoder.encode(value))
        }
        return .json(encoded: body, status: status)
    }

    /// A body that is JSON already.
    public static func json(encoded body: [UInt8], status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, headers: jsonHeaders(), body: body)
    }

    /// Content-Type, with room for `more` headers and for what the dispatcher adds to every
    /// answer (three, and `DashboardWeb.lockDown`'s two), so that a plain answer's array is not
    /// made and then grown.
    static func jsonHeaders(more: Int = 0) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(6 + more)
        headers.append(("Content-Type", "application/json"))
        return headers
    }

    public static func error(_ error: APIError) -> HTTPResponse {
        var writer = JSONWriter()
        ErrorBody(error).write(to: &writer)
        // Its own headers, and a Connection: close that refusals add.
        var response = HTTPResponse(status: error.status, headers: jsonHeaders(more: error.headers.count + 1),
                                    body: writer.bytes)
        for (name, value) in error.headers.sorted(by: { $0.key < $1.key }) { response.setHeader(name, value) }
        return response
    }
}

extension RequestContext {
    /// Decodes a JSON body, turning every decoding failure into a 400 that names the field.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T { try request.decodeJSON(type) }
}

extension HTTPRequest {
    /// Decodes a JSON body, turning every decoding failure into a 400 that names the field.
    /// `requireContentType`: refuse a body not labelled application/json (an HTML form cannot
    /// send that cross-site without a CORS preflight); otherwise only a wrong label is refused.
    /// `simply` may read the common shapes of the body without JSONDecoder (nil: it cannot).
    public func decodeJSON<T: Decodable>(_ type: T.Type, requireContentType: Bool = false,
                                         simply: ((UnsafeRawBufferPointer) -> T?)? = nil) throws -> T {
        let contentType = header("content-type")
        if let contentType, !contentType.asciiLowercased().hasPrefix("application/json") {
            throw APIError.unsupportedMediaType("send the body as application/json, not \(contentType)")
        }
        if requireContentType && contentType == nil {
            throw APIError.unsupportedMediaType("send the body as application/json")
        }
        guard !body.isEmpty else { throw APIError.badRequest("a JSON body is required", code: .badJson) }
        do {
            if let simply, let value = body.withUnsafeBytes(simply) {
                if let checked = value as? any RangeChecked { try checked.checkRanges() }
                return value
            }
            return try SafeJSON.decode(type, from: Data(body))
        } catch let error as DecodingError {
            throw APIError.badRequest(Self.describe(error), code: .badJson)
        } catch let error as OutOfRange {
            throw APIError.badRequest("\(error)", code: error.code)
        } catch let error as SafeJSON.TooDeep {
            throw APIError.badRequest("\(error)", code: .badJson)
        } catch {
            throw APIError.badRequest("body is not valid JSON", code: .badJson)
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context.codingPath)
            return "missing field '\(parent.isEmpty ? key.stringValue : parent + "." + key.stringValue)'"
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            let name = type == String.self ? "a string" : (type == Int.self ? "an integer" : "\(type)")
            return "field '\(path(context.codingPath))' must be \(name)"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "body is not valid JSON"
                : "field '\(path(context.codingPath))' is invalid"
        @unknown default:
            return "body is not valid JSON"
        }
    }
}
