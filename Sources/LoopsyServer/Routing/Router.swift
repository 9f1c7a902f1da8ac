import LoopsyAPI
import LoopsyHTTP

/// Matches raw request paths against the route table.
///
/// Segments are compared before any decoding; only parameter segments are percent-decoded, each
/// on its own. So `/api/v1/%63ontext` matches nothing and `%2F` inside a key stays in the key.
/// A last segment `{name+}` takes the rest of the path (one or more segments), still encoded:
/// it is relayed, not interpreted.
/// Matching works on UTF-8 bytes: it runs for every request.
public struct Router: Sendable {
    public enum Match {
        case found(Route, [String: String])
        /// The path exists with other methods.
        case wrongMethod(allowed: [String])
        case notFound
        case badEncoding
    }

    private enum Segment: Sendable {
        case literal([UInt8])
        case parameter(String)
        case rest(String)
    }

    public let routes: [Route]
    private let compiled: [(route: Route, segments: [Segment])]

    public init(routes: [Route]) {
        self.routes = routes
        compiled = routes.map { route in
            (route, route.segments.map { segment -> Segment in
                if segment.hasPrefix("{") && segment.hasSuffix("+}") { return .rest(String(segment.dropFirst().dropLast(2))) }
                return segment.hasPrefix("{") ? .parameter(String(segment.dropFirst().dropLast()))
                    : .literal(Array(segment.utf8))
            })
        }
    }

    public func match(method: String, rawPath: String) -> Match {
        var path = rawPath
        return path.withUTF8 { bytes in match(method: method, bytes: bytes) }
    }

    private func match(method: String, bytes: UnsafeBufferPointer<UInt8>) -> Match {
        guard bytes.first == UInt8(ascii: "/") else { return .notFound }
        // Segment boundaries after the leading slash; empty segments are kept (and match nothing).
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(8)
        var start = 1
        for index in 1..<bytes.count where bytes[index] == UInt8(ascii: "/") {
            ranges.append(start..<index)
            start = index + 1
        }
        ranges.append(start..<bytes.count)

        var allowed: [String] = []
        for (route, pattern) in compiled {
            let hasRest: Bool
            if case .rest = pattern.last { hasRest = true } else { hasRest = false }
            guard pattern.count == ranges.count || (hasRest && ranges.count > pattern.count) else { continue }
            var matched = true
            for (segment, range) in zip(pattern, ranges) {
                switch segment {
                case .literal(let literal):
                    matched = literal.count == range.count && literal.elementsEqual(bytes[range])
                case .parameter, .rest:
                    matched = !range.isEmpty
                }
                if !matched { break }
            }
            guard matched else { continue }
            guard route.method.rawValue == method else {
                allowed.append(route.method.rawValue)
                continue
            }
            var parameters: [String: String] = [:]
            for (segment, range) in zip(pattern, ranges) {
                if case .rest(let name) = segment {
                    parameters[name] = String(decoding: bytes[range.lowerBound..<bytes.count], as: UTF8.self)
                    continue
                }
                guard case .parameter(let name) = segment else { continue }
                let raw = String(decoding: bytes[range], as: UTF8.self)
                guard let decoded = PercentDecoding.decode(Substring(raw)) else { return .badEncoding }
                parameters[name] = decoded
            }
            return .found(route, parameters)
        }
        return allowed.isEmpty ? .notFound : .wrongMethod(allowed: allowed)
    }
}
