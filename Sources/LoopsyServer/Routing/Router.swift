import LoopsyAPI
import LoopsyHTTP

/// Matches raw request paths against the route table.
///
/// Segments are compared before any decoding; only parameter segments are percent-decoded, each
/// on its own. So `/api/v1/%63ontext` matches nothing and `%2F` inside a key stays in the key.
/// A last segment `{name+}` takes the rest of the path (one or more segments), still encoded:
/// it is relayed, not interpreted.
/// Matching works on UTF-8 bytes: it runs for every request.
///
/// Generic over what a route carries: the daemon's `Route` (access, limits, OpenAPI) and the
/// standalone dashboard gateway's own small table share this one matcher.
public struct Router<Entry: RoutePattern>: Sendable {
    public enum Match {
        case found(Entry, PathParameters)
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

    /// A route's pattern, ready for matching: its segments, its number of literal segments and
    /// its method; `index` is its place in `routes`.
    private struct Compiled: Sendable {
        var index: Int
        var method: String
        var segments: [Segment]
        /// A hash of each segment's bytes (0 for parameters): compared before any bytes, so a
        /// route that differs in one literal is passed over with a few integer compares.
        var hashes: [UInt64]
        var literals: Int
        var hasRest: Bool
    }

    /// FNV-1a of a segment's bytes.
    private static func hash(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    /// The routes a path of N segments can match, with a first test that reads no route: each
    /// one's literal hash at `position` (none where it has a parameter or a rest segment there,
    /// or has no segment there), so a path is compared in full only with the routes whose
    /// literal there is the path's and those that take anything there. The
    /// position is the one that leaves the fewest of those at worst: the last segment of
    /// `/api/v1/{area}/{x}` has the most distinct literals, but also every `{id}` route of every
    /// area, 11 full comparisons for a GET of a context key against 4 by its area.
    private struct Candidates: Sendable {
        var list: [Compiled]
        var position: Int
        /// The literal hashes found at `position`, sorted, and for each the candidates that may
        /// match a path with it there (those with that literal and those that take anything
        /// there), in `list` order: looked up by a binary search, so a path is never compared
        /// with the whole list, even by hash.
        var sortedKeys: [UInt64] = []
        var byKey: [[Int]] = []
        /// The candidates for a path whose segment there is none of those literals.
        var wildcards: [Int] = []

        init(_ list: [Compiled]) {
            self.list = list
            let longest = list.map(\.segments.count).max() ?? 0
            let worst = (0..<longest).map { position -> Int in
                let keys = list.map { $0.hashes.indices.contains(position) ? $0.hashes[position] : 0 }
                let wildcards = keys.filter { $0 == 0 }.count
                let buckets = Dictionary(grouping: keys.filter { $0 != 0 }, by: { $0 }).values.map(\.count)
                return wildcards + (buckets.max() ?? 0)
            }
            position = worst.indices.min { worst[$0] < worst[$1] } ?? 0
            let keys = list.map { [position] candidate in
                candidate.hashes.indices.contains(position) ? candidate.hashes[position] : 0
            }
            wildcards = keys.indices.filter { keys[$0] == 0 }
            sortedKeys = Set(keys.filter { $0 != 0 }).sorted()
            byKey = sortedKeys.map { key in keys.indices.filter { keys[$0] == 0 || keys[$0] == key } }
        }

        /// The candidates that may match a path whose segment hashes are `hashes`, in list order.
        func indices(for hashes: UnsafeBufferPointer<UInt64>) -> [Int] {
            guard position < hashes.count else { return wildcards }
            let wanted = hashes[position]
            var low = 0, high = sortedKeys.count
            while low < high {
                let middle = (low + high) / 2
                if sortedKeys[middle] < wanted { low = middle + 1 } else { high = middle }
            }
            return low < sortedKeys.count && sortedKeys[low] == wanted ? byKey[low] : wildcards
        }
    }

    public let routes: [Entry]
    /// The routes a path of N segments can match, by N: those of exactly N segments, and those
    /// ending in a rest segment with fewer. Matching looks at one list, never copies a Route
    /// until one is chosen.
    private let candidates: [Candidates]

    public init(routes: [Entry]) {
        self.routes = routes
        let compiled = routes.enumerated().map { index, route in
            let segments = route.segments.map { segment -> Segment in
                if segment.hasPrefix("{") && segment.hasSuffix("+}") { return .rest(String(segment.dropFirst().dropLast(2))) }
                return segment.hasPrefix("{") ? .parameter(String(segment.dropFirst().dropLast()))
                    : .literal(Array(segment.utf8))
            }
            let literals = segments.filter { if case .literal = $0 { return true } else { return false } }.count
            let hasRest: Bool
            if case .rest = segments.last { hasRest = true } else { hasRest = false }
            let hashes = segments.map { segment -> UInt64 in
                if case .literal(let bytes) = segment { return Self.hash(bytes) }
                return 0
            }
            return Compiled(index: index, method: route.method.rawValue, segments: segments, hashes: hashes,
                            literals: literals, hasRest: hasRest)
        }
        let longest = compiled.map(\.segments.count).max() ?? 0
        candidates = (0...longest + 1).map { count in
            Candidates(compiled.filter { $0.segments.count == count || ($0.hasRest && count > $0.segments.count) })
        }
    }

    /// Rest routes take any number of segments past the longest pattern: that last list.
    private func candidates(segments count: Int) -> Candidates {
        candidates[min(count, candidates.count - 1)]
    }

    public func match(method: String, rawPath: String) -> Match {
        var path = rawPath
        return path.withUTF8 { bytes in match(method: method, bytes: bytes) }
    }

    private func match(method: String, bytes: UnsafeBufferPointer<UInt8>) -> Match {
        guard bytes.first == UInt8(ascii: "/") else { return .notFound }
        // Segment boundaries after the leading slash; empty segments are kept (and match nothing).
        // Both lists are temporary (on the stack for a path of a few segments, on the heap for a
        // long one: withUnsafeTemporaryAllocation decides by size).
        let segments = 1 + bytes[1...].reduce(0) { $0 + ($1 == UInt8(ascii: "/") ? 1 : 0) }
        return withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: segments) { rangeSpace in
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: segments) { hashSpace in
                var count = 0, start = 1
                for index in 1..<bytes.count where bytes[index] == UInt8(ascii: "/") {
                    rangeSpace.initializeElement(at: count, to: start..<index)
                    count += 1
                    start = index + 1
                }
                rangeSpace.initializeElement(at: count, to: start..<bytes.count)
                for index in 0..<segments { hashSpace.initializeElement(at: index, to: Self.hash(bytes[rangeSpace[index]])) }
                // Trivial types: nothing to deinitialize.
                return match(method: method, bytes: bytes, ranges: UnsafeBufferPointer(rangeSpace),
                             hashes: UnsafeBufferPointer(hashSpace))
            }
        }
    }

    private func match(method: String, bytes: UnsafeBufferPointer<UInt8>, ranges: UnsafeBufferPointer<Range<Int>>,
                       hashes: UnsafeBufferPointer<UInt64>) -> Match {
        // A literal segment beats a parameter in the same place: /execute/jobs is never the job
        // "jobs", and only its own methods are allowed there. The methods allowed at the path are
        // listed only when the request's is not among them (one pass more, for a 405 or 404).
        let group = candidates(segments: ranges.count)
        let list = group.list
        let indices = group.indices(for: hashes)
        var topSpecificity = -1
        var best: (index: Int, specificity: Int)?
        for index in indices where Self.matches(list[index], ranges: ranges, hashes: hashes, bytes: bytes) {
            let specificity = list[index].literals
            topSpecificity = max(topSpecificity, specificity)
            if specificity > best?.specificity ?? -1, list[index].method == method {
                best = (index, specificity)
            }
        }
        guard let best, best.specificity == topSpecificity else {
            let allowed = indices.filter {
                list[$0].literals == topSpecificity
                    && Self.matches(list[$0], ranges: ranges, hashes: hashes, bytes: bytes)
            }
                .map { list[$0].method }
            return allowed.isEmpty ? .notFound : .wrongMethod(allowed: allowed)
        }
        let candidate = list[best.index]
        let (route, pattern) = (routes[candidate.index], candidate.segments)
        var parameters = PathParameters()
        for (segment, range) in zip(pattern, ranges) {
            if case .rest(let name) = segment {
                parameters.set(name, String(decoding: bytes[range.lowerBound..<bytes.count], as: UTF8.self))
                continue
            }
            guard case .parameter(let name) = segment else { continue }
            let raw = String(decoding: bytes[range], as: UTF8.self)
            guard let decoded = PercentDecoding.decode(Substring(raw)) else { return .badEncoding }
            parameters.set(name, decoded)
        }
        return .found(route, parameters)
    }

    /// Whether a path of these segments fits the candidate's pattern.
    private static func matches(_ candidate: Compiled, ranges: UnsafeBufferPointer<Range<Int>>,
                                hashes: UnsafeBufferPointer<UInt64>,
                                bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let pattern = candidate.segments
        guard pattern.count == ranges.count || (candidate.hasRest && ranges.count > pattern.count) else { return false }
        for (index, segment) in pattern.enumerated() {
            if case .literal = segment, candidate.hashes[index] != hashes[index] { return false }
        }
        for (segment, range) in zip(pattern, ranges) {
            switch segment {
            case .literal(let literal):
                guard literal.count == range.count && literal.elementsEqual(bytes[range]) else { return false }
            case .parameter, .rest:
                guard !range.isEmpty else { return false }
            }
        }
        return true
    }
}

/// A method and a path pattern (`/a/{name}/b`, a last `{rest+}`): what the Router matches.
public protocol RoutePattern: Sendable {
    var method: HTTPMethod { get }
    var pattern: String { get }
}

extension RoutePattern {
    /// The pattern's segments after the leading slash (empty ones kept: they match nothing).
    var segments: [Substring] { pattern.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map { $0 } }
}

extension Route: RoutePattern {}

/// A matched route's path parameters, decoded. A route has one or two (three at most): they are
/// kept inline, where a dictionary cost an allocation and a hash of each name per request.
public struct PathParameters: Sendable {
    private var first: (name: String, value: String)?
    private var second: (name: String, value: String)?
    private var more: [(name: String, value: String)] = []

    public init() {}

    public subscript(name: String) -> String? {
        if let first, first.name == name { return first.value }
        if let second, second.name == name { return second.value }
        return more.first { $0.name == name }?.value
    }

    /// Sets `name` (a pattern names each parameter once; a repeated name replaces the value).
    public mutating func set(_ name: String, _ value: String) {
        if first == nil || first?.name == name {
            first = (name, value)
        } else if second == nil || second?.name == name {
            second = (name, value)
        } else if let at = more.firstIndex(where: { $0.name == name }) {
            more[at].value = value
        } else {
            more.append((name, value))
        }
    }

    /// Every parameter, by name.
    public var dictionary: [String: String] {
        var all: [String: String] = [:]
        for pair in [first, second].compactMap({ $0 }) + more { all[pair.name] = pair.value }
        return all
    }
}
