import LoopsyAPI
import LoopsyHTTP

/// DNS-rebinding and cross-site defence: a request must name this node in `Host`, and a browser
/// request may only come from the same origin.
///
/// IP literals are always accepted (a rebinding attack needs a name that resolves to us); names
/// are accepted only if they are this node's: localhost, *.localhost, its hostname and
/// hostname.local. Runs on every request, so it works on bytes.
public struct HostPolicy: Sendable {
    private let names: Set<String>

    public init(hostnames: [String]) {
        var names: Set<String> = ["localhost"]
        for name in hostnames where !name.isEmpty {
            names.insert(name.asciiLowercased())
            names.insert(name.asciiLowercased() + ".local")
        }
        self.names = names
    }

    /// Host without port, lower-cased, brackets removed from IPv6 literals.
    static func hostName(_ hostHeader: String) -> String {
        let bytes = hostHeader.utf8
        let name: Substring.UTF8View
        if bytes.first == UInt8(ascii: "[") {
            let end = bytes.firstIndex(of: UInt8(ascii: "]")) ?? bytes.endIndex
            name = bytes[bytes.index(after: bytes.startIndex)..<end]
        } else {
            // One colon is host:port; more is a bare IPv6 literal.
            var colons = 0
            var colon = bytes.endIndex
            for index in bytes.indices where bytes[index] == UInt8(ascii: ":") {
                colons += 1
                colon = index
            }
            name = bytes[..<(colons == 1 ? colon : bytes.endIndex)]
        }
        return Substring(name).asciiLowercased()
    }

    public func allows(host hostHeader: String?) -> Bool {
        guard var hostHeader, !hostHeader.isEmpty else { return true }  // HTTP/1.0 without Host
        // An IPv4 literal (most requests: 127.0.0.1:port) is recognised on the header's bytes,
        // without building any string.
        if hostHeader.withUTF8({ Self.isIPv4Literal(host: $0) }) { return true }
        var host = Self.hostName(hostHeader)
        if host.utf8.last == UInt8(ascii: ".") { host = String(host.dropLast()) }
        return HostAddress.isIPLiteral(host) || names.contains(host) || host.hasSuffix(".localhost")
    }

    /// Is the host of `header` (its port, if any, left out) an IPv4 literal?
    private static func isIPv4Literal(host header: UnsafeBufferPointer<UInt8>) -> Bool {
        var end = header.count
        if let colon = header.firstIndex(of: UInt8(ascii: ":")) {
            // host:port; a second colon means IPv6, which the slower path handles.
            guard !header[(colon + 1)...].contains(UInt8(ascii: ":")) else { return false }
            end = colon
        }
        if end > 0 && header[end - 1] == UInt8(ascii: ".") { end -= 1 }
        return HostAddress.isIPLiteral(bytes: UnsafeBufferPointer(rebasing: header[..<end]))
    }

    /// Host and Origin of a request, or the 403 that refuses it.
    public func check(_ request: HTTPRequest) throws {
        let host = request.headers["host"]
        guard allows(host: host) else {
            throw APIError.forbidden("Host '\(host ?? "")' does not name this node; use its IP address or localhost",
                                     code: .hostForbidden)
        }
        guard allows(origin: request.headers["origin"], host: host) else {
            throw APIError.forbidden("cross-origin requests are refused", code: .originForbidden)
        }
    }

    /// A browser's Origin must be exactly this request's own origin.
    public func allows(origin: String?, host: String?) -> Bool {
        guard let origin else { return true }
        guard let host else { return false }
        let sent = origin.asciiLowercased(), own = host.asciiLowercased()
        return sent == "http://" + own || sent == "https://" + own
    }

}
