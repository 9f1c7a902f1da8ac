import CCurl
import LoopsyPOSIX

/// Idle libcurl easy handles, by origin and TLS pin. An easy handle keeps its live connections
/// and TLS session cache across `curl_easy_reset`, so taking one for the same origin and pin
/// reuses the connection the last call opened: no TCP or TLS handshake per call to a peer. A
/// connection checked against one pin is never used for another (the pin is part of the key).
final class CurlHandlePool: Sendable {
    static let shared = CurlHandlePool()

    /// Handles kept per origin and in all; more are closed.
    static let perKey = 8
    static let total = 128

    private struct Handle: @unchecked Sendable { let pointer: UnsafeMutableRawPointer }
    private let idle = PlainMutex<(byKey: [String: [Handle]], count: Int)>(([:], 0))

    /// "scheme://host:port" of `url` (without path or credentials) and the pin.
    static func key(url: String, pin: String?) -> String {
        let bytes = Array(url.utf8)
        var end = bytes.count
        // After "scheme://", the origin ends at the first '/', '?' or '#'.
        if let colon = bytes.firstIndex(of: UInt8(ascii: ":")), colon + 2 < bytes.count,
           bytes[colon + 1] == UInt8(ascii: "/"), bytes[colon + 2] == UInt8(ascii: "/") {
            let stops: Set<UInt8> = [UInt8(ascii: "/"), UInt8(ascii: "?"), UInt8(ascii: "#")]
            end = bytes[(colon + 3)...].firstIndex(where: stops.contains) ?? bytes.count
        }
        let origin = String(decoding: bytes[..<end], as: UTF8.self).lowercased()
        return origin + "|" + (pin ?? "")
    }

    func take(_ key: String) -> UnsafeMutableRawPointer? {
        let handle = idle.withLock { state -> Handle? in
            guard let handle = state.byKey[key]?.popLast() else { return nil }
            state.count -= 1
            // No empty lists left behind: origins come and go (a host advertising itself on
            // ever new ports would otherwise add a key per port, forever).
            if state.byKey[key]?.isEmpty == true { state.byKey[key] = nil }
            return handle
        }
        return handle?.pointer ?? ccurl_easy_init()
    }

    /// Returns a handle after its transfer: kept (options reset, connection kept) when the
    /// transfer ended well and there is room, else closed.
    func give(_ key: String, _ pointer: UnsafeMutableRawPointer, reusable: Bool) {
        guard reusable else {
            ccurl_easy_cleanup(pointer)
            return
        }
        ccurl_easy_reset(pointer)
        let kept = idle.withLock { state -> Bool in
            guard state.count < Self.total, state.byKey[key, default: []].count < Self.perKey else { return false }
            state.byKey[key, default: []].append(Handle(pointer: pointer))
            state.count += 1
            return true
        }
        if !kept { ccurl_easy_cleanup(pointer) }
    }
}
