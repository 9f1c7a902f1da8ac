/// DNS-rebinding and cross-site defence: a request must name this node in `Host`, and a browser
/// request may only come from the same origin.
///
/// IP literals are always accepted (a rebinding attack needs a name that resolves to us); names
/// are accepted only if they are this node's: localhost, *.localhost, its hostname and
/// hostname.local.
public struct HostPolicy: Sendable {
    private let names: Set<String>

    public init(hostnames: [String]) {
        var names: Set<String> = ["localhost"]
        for name in hostnames where !name.isEmpty {
            names.insert(name.lowercased())
            names.insert(name.lowercased() + ".local")
        }
        self.names = names
    }

    /// Host without port, lower-cased, brackets removed from IPv6 literals.
    static func hostName(_ hostHeader: String) -> String {
        let host = hostHeader.lowercased()
        if host.hasPrefix("[") {
            return String(host.dropFirst().prefix { $0 != "]" })
        }
        if host.filter({ $0 == ":" }).count == 1, let colon = host.firstIndex(of: ":") {
            return String(host[..<colon])
        }
        return host
    }

    public func allows(host hostHeader: String?) -> Bool {
        guard let hostHeader, !hostHeader.isEmpty else { return true }  // HTTP/1.0 without Host
        let host = Self.hostName(hostHeader)
        if host.hasSuffix(".") { return allows(host: String(host.dropLast())) }
        return Self.isIPLiteral(host) || names.contains(host) || host.hasSuffix(".localhost")
    }

    /// A browser's Origin must be exactly this request's own origin.
    public func allows(origin: String?, host: String?) -> Bool {
        guard let origin else { return true }
        guard let host else { return false }
        return origin.lowercased() == "http://" + host.lowercased() || origin.lowercased() == "https://" + host.lowercased()
    }

    static func isIPLiteral(_ host: String) -> Bool {
        if host.contains(":") { return host.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." } }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isASCII) && part.allSatisfy(\.isNumber)
                && Int(part).map { $0 <= 255 } == true
        }
    }
}
