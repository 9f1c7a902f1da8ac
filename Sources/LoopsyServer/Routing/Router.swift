import LoopsyAPI
import LoopsyHTTP

/// Matches raw request paths against the route table.
///
/// Segments are compared before any decoding; only parameter segments are percent-decoded, each
/// on its own. So `/api/v1/%63ontext` matches nothing and `%2F` inside a key stays in the key.
public struct Router: Sendable {
    public enum Match {
        case found(Route, [String: String])
        /// The path exists with other methods.
        case wrongMethod(allowed: [String])
        case notFound
        case badEncoding
    }

    public let routes: [Route]
    private let compiled: [(route: Route, segments: [Substring])]

    public init(routes: [Route]) {
        self.routes = routes
        compiled = routes.map { ($0, $0.segments) }
    }

    public func match(method: String, rawPath: String) -> Match {
        guard rawPath.hasPrefix("/") else { return .notFound }
        let segments = rawPath.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        var allowed: [String] = []
        for (route, pattern) in compiled where pattern.count == segments.count {
            var parameters: [String: String] = [:]
            var matched = true
            for (patternSegment, segment) in zip(pattern, segments) {
                if patternSegment.hasPrefix("{") {
                    guard !segment.isEmpty else { matched = false; break }
                    guard let decoded = PercentDecoding.decode(segment) else { return .badEncoding }
                    parameters[String(patternSegment.dropFirst().dropLast())] = decoded
                } else if patternSegment != segment {
                    matched = false
                    break
                }
            }
            guard matched else { continue }
            if route.method.rawValue == method { return .found(route, parameters) }
            allowed.append(route.method.rawValue)
        }
        return allowed.isEmpty ? .notFound : .wrongMethod(allowed: allowed)
    }
}
