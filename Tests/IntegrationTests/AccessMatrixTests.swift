import Foundation
import LoopsyAPI
import LoopsyClient
import Testing

/// The trust model, walked whole: every operation of the API description (generated from the
/// route table) × every kind of caller. Each call is either admitted (whatever the handler then
/// answers, never an access refusal) or refused with the declared status and code.
@Suite struct AccessMatrixTests {
    struct Caller {
        var name: String
        var kind: String
        var key: String?
        var grants: Set<String>
        var headers: [String: String] = [:]
    }

    @Test func everyRouteAdmitsExactlyTheCallersItDeclares() throws {
        let noneKey = String(repeating: "n", count: 40), allKey = String(repeating: "a", count: 40)
        let alpha = try PeerTests.named("alpha", tls: true) { text in
            replacingLine(text, "  allowedKeys: {}", "  allowedKeys: {bare: \(noneKey), trusted: \(allKey)}")
        }
        let bravo = try PeerTests.named("bravo")
        defer { alpha.cleanUp(); bravo.cleanUp() }
        try alpha.start(host: "127.0.0.2")
        try bravo.start()
        // bravo adds alpha with alpha's key: alpha gives bravo a peer credential of its own.
        let paired = try PeerTests.pair(bravo, alpha)
        try #require(paired.status == 0, "\(paired.stdout)\(paired.stderr)")
        let peerKey = try run("/usr/bin/sqlite3", [bravo.dataDir + "/loopsy.db", "SELECT api_key FROM peers"])
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(peerKey.count == 64)
        #expect(try alpha.cli("peers", "revoke", "key:bare", "all").status == 0)
        #expect(try alpha.cli("peers", "grant", "key:trusted", "all").status == 0)
        let defaults: Set<String> = ["context:read", "context:write", "messages"]
        let all = Set(Capability.allCases.map(\.rawValue))
        let callers = [
            Caller(name: "anonymous", kind: "anonymous", key: "", grants: []),
            Caller(name: "owner", kind: "owner", key: alpha.apiKey, grants: all),
            Caller(name: "key without grants", kind: "key", key: noneKey, grants: []),
            Caller(name: "key with every grant", kind: "key", key: allKey, grants: all),
            Caller(name: "peer with the default grants", kind: "peer", key: peerKey, grants: defaults,
                   headers: ["X-Loopsy-Node-Id": try bravo.nodeId]),
        ]

        let document = try alpha.http("GET", "/api/v1/openapi.json")
        let paths = try #require((try JSONSerialization.jsonObject(with: Data(document.body)) as? [String: Any])?["paths"]
            as? [String: [String: Any]])
        var checked = 0, refused = 0
        for (template, operations) in paths.sorted(by: { $0.key < $1.key }) {
            let path = Self.concrete(template)
            for (method, value) in operations {
                let operation = try #require(value as? [String: Any])
                let access = try #require(operation["x-loopsy-access"] as? [String: Any], "\(method) \(template)")
                let kinds = Set(try #require(access["callers"] as? [String]))
                let grant = access["grant"] as? String
                for caller in callers {
                    let admitted = kinds.contains(caller.kind)
                        && (grant == nil || caller.kind == "owner" || caller.grants.contains(grant!))
                    let response = try Self.call(alpha, method.uppercased(), path, caller)
                    let what = "\(method.uppercased()) \(path) as \(caller.name): \(response.status) \(response.text.prefix(200))"
                    checked += 1
                    if admitted {
                        // (A handler may still answer 401 for its own reason: the dashboard's session
                        // route without a session cookie.)
                        #expect(response.status != 401 || path == "/dashboard/api/session", "\(what)")
                        #expect(!(response.status == 403 && Self.accessCodes.contains(response.errorCode ?? "")), "\(what)")
                    } else if caller.kind == "anonymous" {
                        refused += 1
                        #expect(response.status == 401 && response.errorCode == "unauthorized", "\(what)")
                    } else {
                        refused += 1
                        #expect(response.status == 403, "\(what)")
                        let expected = grant != nil && kinds.contains(caller.kind) ? "grant_required"
                            : kinds == ["peer"] ? "peer_only" : kinds == ["owner"] ? "owner_key_only" : "owner_only"
                        #expect(response.errorCode == expected, "\(what)")
                        if expected == "grant_required" {
                            #expect(response.text.contains("loopsy peers grant"), "\(what)")
                        }
                    }
                }
            }
        }
        // The whole table was walked, and it refuses a good share of it to someone.
        #expect(checked >= 60 * callers.count)
        #expect(refused > 100)
    }

    static let accessCodes: Set<String> = ["grant_required", "owner_only", "owner_key_only", "peer_only"]

    /// A path with every parameter filled: the handler may then answer 400 or 404, but access is
    /// decided before it runs.
    static func concrete(_ template: String) -> String {
        template.replacingOccurrences(of: "{path}", with: "status")
            .replacingOccurrences(of: "{key}", with: "matrix-key")
            .replacingOccurrences(of: #"\{[A-Za-z]+\}"#, with: "matrix-x", options: .regularExpression)
    }

    /// One request with curl and a short deadline (event streams answer 200 and stay open).
    static func call(_ node: TestNode, _ method: String, _ path: String, _ caller: Caller) throws
        -> (status: Int, text: String, errorCode: String?) {
        var arguments = ["-s", "-m", "2", "-X", method, "-w", "\n%{http_code}", "-H", "Content-Type: application/json"]
        if let key = caller.key, !key.isEmpty { arguments += ["-H", "Authorization: Bearer \(key)"] }
        for (name, value) in caller.headers { arguments += ["-H", "\(name): \(value)"] }
        if method == "POST" || method == "PUT" { arguments += ["--data", "{}"] }
        let result = try run("/usr/bin/curl", arguments + [node.baseURL + path])
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let status = Int(lines.last ?? "") ?? 0
        let text = lines.dropLast().joined(separator: "\n")
        struct Body: Decodable { struct Inner: Decodable { var code: String }; var error: Inner }
        let code = try? JSONDecoder().decode(Body.self, from: Data(text.utf8)).error.code
        return (status, text, code)
    }
}
