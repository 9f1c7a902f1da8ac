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
    /// Each route with its segments and its number of literal segments.
    private let compiled: [(route: Route, segments: [Segment], literals: Int)]

    public init(routes: [Route]) {
        self.routes = routes
        compiled = routes.map { route in
            let segments = route.segments.map { segment -> Segment in
                if segment.hasPrefix("{") && segment.hasSuffix("+}") { return .rest(String(segment.dropFirst().dropLast(2))) }
                return segment.hasPrefix("{") ? .parameter(String(segment.dropFirst().dropLast()))
                    : .literal(Array(segment.utf8))
            }
            let literals = segments.filter { if case .literal = $0 { return true } else { return false } }.count
            return (route, segments, literals)
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

        // A literal segment beats a parameter in the same place: /execute/jobs is never the job
        // "jobs", and only its own methods are allowed there.
        var allowed: [String] = []
        var allowedSpecificity = -1
        var best: (route: Route, pattern: [Segment], specificity: Int)?
        for (route, pattern, specificity) in compiled {
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
            if specificity > allowedSpecificity {
                allowedSpecificity = specificity
                allowed = []
            }
            if specificity == allowedSpecificity { allowed.append(route.method.rawValue) }
            if route.method.rawValue == method, specificity > best?.specificity ?? -1 {
                best = (route, pattern, specificity)
            }
        }
        guard let best, best.specificity == allowedSpecificity else {
            return allowed.isEmpty ? .notFound : .wrongMethod(allowed: allowed)
        }
        let (route, pattern) = (best.route, best.pattern)
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
}
