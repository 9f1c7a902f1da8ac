import Foundation
import LoopsyAPI
import Testing

/// Requests shaped to slip past routing or auth, or to exhaust the server.
@Suite struct HardeningTests {
    @Test func encodedAndOddPathsNeverReachAnOpenRouteWithoutAuth() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        for path in ["/api/v1/%68ealth", "/api/v1/health%2F..%2Fstatus", "//api/v1/status", "/api/v1//status",
                     "/api/v1/status/", "/api/v1/./status", "/api/v1/x/../status", "/api/v1/%2e%2e/v1/status"] {
            let anonymous = try RawHTTP.exchange(port: node.port, requests: ["GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"])
            #expect(anonymous.first?.hasPrefix("HTTP/1.1 401") == true, "\(path): \(anonymous.first?.prefix(40) ?? "no reply")")
            let authorized = try RawHTTP.exchange(port: node.port, requests: [
                "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(node.apiKey)\r\n\r\n"])
            #expect(authorized.first.map { $0.hasPrefix("HTTP/1.1 404") || $0.hasPrefix("HTTP/1.1 400") } == true,
                    "\(path): \(authorized.first?.prefix(40) ?? "no reply")")
        }
        #expect(try node.client.health().status == "ok")
    }

    @Test func hugeHeadersAreRefusedAndTheDaemonCarriesOn() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        let filler = String(repeating: "a", count: 100_000)
        let replies = try RawHTTP.exchange(port: node.port, requests: [
            "GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: \(filler)\r\n\r\n"])
        if let reply = replies.first {
            let status = Int(reply.dropFirst(9).prefix(3)) ?? 0
            #expect((400..<500).contains(status), "\(reply.prefix(60))")
        }  // or the connection is simply closed, which is also a refusal
        #expect(try node.client.health().status == "ok")
    }

    @Test func hostHeaderVariantsAreCheckedOnEveryRoute() throws {
        let node = try TestNode()
        defer { node.cleanUp() }
        try node.start()
        for host in ["evil.example", "127.0.0.1.nip.io", "localhost.evil.example", "LOCALHOST.evil.example:80"] {
            let reply = try RawHTTP.exchange(port: node.port, requests: [
                "GET /api/v1/health HTTP/1.1\r\nHost: \(host)\r\n\r\n"])
            // Even the open route: a rebound name must not learn the node's identity.
            #expect(reply.first?.hasPrefix("HTTP/1.1 403") == true, "health: \(host)")
            let protected = try RawHTTP.exchange(port: node.port, requests: [
                "GET /api/v1/status HTTP/1.1\r\nHost: \(host)\r\nAuthorization: Bearer \(node.apiKey)\r\n\r\n"])
            #expect(protected.first?.hasPrefix("HTTP/1.1 403") == true, "\(host)")
        }
    }
}
