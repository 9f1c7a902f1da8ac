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

    /// The host in a Host header: its port and IPv6 brackets left out, and one trailing dot.
    private static func hostPart(_ header: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        var range = 0..<header.count
        if header.first == UInt8(ascii: "[") {
            range = 1..<(header.firstIndex(of: UInt8(ascii: "]")) ?? header.count)
        } else if let colon = header.firstIndex(of: UInt8(ascii: ":")),
                  !header[(colon + 1)...].contains(UInt8(ascii: ":")) {
            // One colon is host:port; more is a bare IPv6 literal.
            range = 0..<colon
        }
        if !range.isEmpty && header[range.upperBound - 1] == UInt8(ascii: ".") { range = range.dropLast() }
        return UnsafeBufferPointer(rebasing: header[range])
    }

    /// Works on the header's bytes: an IP literal (most requests: 127.0.0.1:port) is
    /// recognised without building a string.
    public func allows(host hostHeader: String?) -> Bool {
        guard var hostHeader, !hostHeader.isEmpty else { return true }  // HTTP/1.0 without Host
        return hostHeader.withUTF8 { header in
            let host = Self.hostPart(header)
            if HostAddress.isIPLiteral(bytes: host) { return true }
            let name = String(decoding: host, as: UTF8.self).asciiLowercased()
            // Lower-cased, an IPv6 literal in capitals is one too.
            return HostAddress.isIPLiteral(name) || names.contains(name) || name.hasSuffix(".localhost")
        }
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
