import LoopsyAPI
import LoopsyConfig
import LoopsyCore
import Testing
@testable import LoopsyServer

@Suite struct RouteTableTests {
    let routes = Routes.table(config: LoopsyConfig())

    @Test func tableIsSortedByPathThenMethod() {
        let keys = routes.map { "\($0.pattern) \($0.method.rawValue)" }
        #expect(keys == keys.sorted(), "keep Routes.table sorted by path, then method")
    }

    /// A second schema under a taken name would be silently shadowed by the first.
    @Test func schemaNamesAreUnique() {
        let names = Schemas.components.map(\.0)
        #expect(Set(names).count == names.count, "\(names.filter { name in names.filter { $0 == name }.count > 1 })")
    }

    @Test func tableHasNoDuplicates() {
        let keys = routes.map { "\($0.method.rawValue) \($0.pattern)" }
        #expect(Set(keys).count == keys.count)
        let operationIds = routes.map(\.doc.operationId)
        #expect(Set(operationIds).count == operationIds.count)
    }

    @Test func everyRouteLivesUnderTheAPIBaseOrIsTheDashboard() {
        for route in routes {
            #expect(route.pattern.hasPrefix("/api/v1/") || route.pattern == "/dashboard"
                || route.pattern.hasPrefix("/dashboard/"))
        }
    }

    /// Identity is public: mDNS announces the same facts, and peers need the key to pin it. The
    /// node-to-node pairing steps carry nothing secret in clear and do nothing without the code.
    /// The dashboard's static files are public, and its login is how a key becomes a session.
    @Test func onlyHealthIdentityPairingStepsAndDashboardFilesAreOpen() {
        #expect(routes.filter { $0.access == .open }.map(\.pattern) == [
            "/api/v1/health", "/api/v1/identity", "/api/v1/pair/abort", "/api/v1/pair/commit", "/api/v1/pair/exchange",
            "/api/v1/pair/reveal", "/dashboard", "/dashboard/", "/dashboard/api/login", "/dashboard/app.css",
            "/dashboard/app.js", "/dashboard/icon.svg",
        ])
        #expect(Set(DashboardWeb.assets.keys) == ["/dashboard/", "/dashboard/app.css", "/dashboard/app.js",
                                                  "/dashboard/icon.svg"])
    }

    @Test func openAPIDocumentsEveryRouteAndNothingElse() throws {
        let document = OpenAPIDocument.build(routes: routes)
        #expect(document["openapi"] == "3.1.0")
        guard case .object(let paths)? = document["paths"] else {
            Issue.record("paths missing")
            return
        }
        var documented: Set<String> = []
        for (path, item) in paths {
            guard case .object(let methods) = item else { continue }
            for (method, operation) in methods {
                documented.insert("\(method.uppercased()) \(path)")
                #expect(operation["responses"] != nil)
                #expect(operation["operationId"] != nil)
            }
        }
        #expect(documented == Set(routes.map { "\($0.method.rawValue) \($0.pattern.replacing("+}", with: "}"))" }))
    }

    @Test func everySchemaReferenceResolves() throws {
        let document = OpenAPIDocument.build(routes: routes)
        let names = Set(Schemas.components.map(\.0))
        var references: [String] = []
        func walk(_ value: JSONValue) {
            switch value {
            case .object(let pairs):
                for (key, child) in pairs {
                    if key == "$ref", case .string(let target) = child { references.append(target) }
                    walk(child)
                }
            case .array(let items): items.forEach(walk)
            default: break
            }
        }
        walk(document)
        #expect(!references.isEmpty)
        for reference in references {
            #expect(names.contains(String(reference.dropFirst("#/components/schemas/".count))), "\(reference)")
        }
    }
}

@Suite struct RouterTests {
    let router = Router<Route>(routes: Routes.table(config: LoopsyConfig()))

    func matched(_ method: String, _ path: String) -> (String, [String: String])? {
        if case .found(let route, let parameters) = router.match(method: method, rawPath: path) {
            return (route.pattern, parameters.dictionary)
        }
        return nil
    }

    /// Every route is reached by a path made from its own pattern (parameters filled with a
    /// value no literal has), with its parameters; another method there is refused with the
    /// methods the path has. Matching first compares one segment's hash per route (where the
    /// routes of a length differ most), so this walks every list and every position.
    @Test func everyRouteIsReachedByItsOwnPattern() {
        for route in router.routes {
            var expected: [String: String] = [:]
            let path = "/" + route.segments.map { segment -> String in
                guard segment.hasPrefix("{") else { return String(segment) }
                let name = segment.hasSuffix("+}") ? String(segment.dropFirst().dropLast(2))
                    : String(segment.dropFirst().dropLast())
                expected[name] = "v-\(name)"
                return "v-\(name)"
            }.joined(separator: "/")
            let found = matched(route.method.rawValue, path)
            #expect(found?.0 == route.pattern && found?.1 == expected, "\(route.method.rawValue) \(path)")
            let others = router.routes.filter { $0.pattern == route.pattern }.map(\.method.rawValue)
            if !others.contains("PATCH"), case .wrongMethod(let allowed) = router.match(method: "PATCH", rawPath: path) {
                #expect(Set(allowed) == Set(others), "\(path)")
            } else if !others.contains("PATCH") {
                Issue.record("PATCH \(path): expected wrongMethod")
            }
        }
    }

    /// The segment lists are temporary allocations sized by the path: on the stack for a few
    /// segments, on the heap for thousands (a path can be as long as libmicrohttpd takes).
    @Test func pathsOfManySegmentsMatchOrNotAsShorterOnes() {
        #expect(matched("GET", "/") == nil)
        #expect(matched("GET", "") == nil)
        #expect(matched("GET", String(repeating: "/", count: 5000)) == nil)
        #expect(matched("GET", "/api/v1/context" + String(repeating: "/x", count: 5000)) == nil)
        let long = (0..<3000).map { "s\($0)" }.joined(separator: "/")
        let relayed = matched("GET", "/api/v1/peers/p1/" + long)
        #expect(relayed?.0 == "/api/v1/peers/{peer}/{path+}" && relayed?.1 == ["peer": "p1", "path": long])
        #expect(matched("GET", "/api/v1/context/k")?.1 == ["key": "k"])
    }

    @Test func parametersAreDecodedPerSegment() {
        #expect(matched("GET", "/api/v1/context/a%2Fb")?.1 == ["key": "a/b"])
        #expect(matched("GET", "/api/v1/context/%C3%BC%20x")?.1 == ["key": "ü x"])
        #expect(matched("GET", "/api/v1/context/a/b") == nil)
    }

    @Test func encodedLiteralsAndOddShapesDoNotMatch() {
        #expect(matched("GET", "/api/v1/%63ontext") == nil)
        #expect(matched("GET", "/api//v1/status") == nil)
        #expect(matched("GET", "/api/v1/status/") == nil)
        #expect(matched("GET", "/api/v1/context/") == nil)
        #expect(matched("GET", "api/v1/status") == nil)
    }

    @Test func forwardingTakesTheRestOfThePathStillEncoded() {
        #expect(matched("POST", "/api/v1/peers/bob/execute/stream")?.1 == ["peer": "bob", "path": "execute/stream"])
        #expect(matched("GET", "/api/v1/peers/b%20o/context/a%2Fb")?.1 == ["peer": "b o", "path": "context/a%2Fb"])
        #expect(matched("GET", "/api/v1/peers/bob/") == nil)
        #expect(matched("GET", "/api/v1/peers/bob") == nil)
        // Fixed routes under /peers keep their own handlers.
        #expect(matched("POST", "/api/v1/peers/handshake")?.0 == "/api/v1/peers/handshake")
        #expect(matched("DELETE", "/api/v1/peers/bob")?.0 == "/api/v1/peers/{nodeId}")
    }

    @Test func badEscapesAreReported() {
        if case .badEncoding = router.match(method: "GET", rawPath: "/api/v1/context/%zz") {} else {
            Issue.record("expected badEncoding")
        }
        if case .badEncoding = router.match(method: "GET", rawPath: "/api/v1/context/%ff") {} else {
            Issue.record("expected badEncoding for non-UTF-8")
        }
    }

    @Test func wrongMethodListsTheAllowedOnes() {
        guard case .wrongMethod(let allowed) = router.match(method: "POST", rawPath: "/api/v1/context/k") else {
            Issue.record("expected wrongMethod")
            return
        }
        #expect(Set(allowed) == ["GET", "PUT", "DELETE"])
    }

    /// Found by schemathesis: `/execute/jobs` also matched `DELETE /execute/{jobId}`, so its Allow
    /// header listed a method the document does not give it. A literal segment now wins.
    @Test func aLiteralSegmentBeatsAParameter() {
        guard case .wrongMethod(let allowed) = router.match(method: "DELETE", rawPath: "/api/v1/execute/jobs") else {
            Issue.record("DELETE /execute/jobs must not cancel a job named 'jobs'")
            return
        }
        #expect(allowed == ["GET"])
        if case .wrongMethod(let methods) = router.match(method: "GET", rawPath: "/api/v1/context/broadcast") {
            #expect(methods == ["POST"])
        } else {
            Issue.record("GET /context/broadcast is the broadcast route's, not the key 'broadcast'")
        }
        guard case .found(let route, let parameters) = router.match(method: "DELETE", rawPath: "/api/v1/execute/job_1")
        else {
            Issue.record("expected the cancel route")
            return
        }
        #expect(route.pattern == "/api/v1/execute/{jobId}" && parameters["jobId"] == "job_1" && parameters["key"] == nil)
        if case .found(let route, _) = router.match(method: "GET", rawPath: "/api/v1/execute/jobs") {
            #expect(route.pattern == "/api/v1/execute/jobs")
        } else {
            Issue.record("expected the job list")
        }
    }
}

@Suite struct HostPolicyTests {
    let policy = HostPolicy(hostnames: ["leo"])

    @Test(arguments: ["127.0.0.1:19532", "localhost", "LOCALHOST:1", "[::1]:19532", "10.1.2.3", "leo", "leo.local:19532",
                      "app.localhost", "localhost.", "LEO.Local:1", "[::1]", "::1", "192.168.0.10:8080", "127.0.0.1.",
                      "127.0.0.1.:80", "[FE80::1]:80", "FE80::1"])
    func acceptsThisNode(host: String) { #expect(policy.allows(host: host)) }

    @Test(arguments: ["evil.com", "127.0.0.1.evil.com", "leo.evil.com", "localhost.evil.com:80", "300.1.1.1", "1.2.3",
                      "1.2.3.4.5", "1..2.3", "1.2.3.4444", "[evil.com]:80", "LEO.EVIL.COM", ":80",
                      "1.2.3.4..", ".1.2.3.4", "1.2.3.256:80", "1.2.3.4 "])
    func refusesOtherNames(host: String) { #expect(!policy.allows(host: host)) }

    @Test func originMustBeTheSameOrigin() {
        #expect(policy.allows(origin: nil, host: "127.0.0.1:5"))
        #expect(policy.allows(origin: "http://127.0.0.1:5", host: "127.0.0.1:5"))
        #expect(!policy.allows(origin: "http://evil.com", host: "127.0.0.1:5"))
        #expect(!policy.allows(origin: "null", host: "127.0.0.1:5"))
    }
}

@Suite struct RateLimiterTests {
    @Test func burstThenRefillPerCallerAndCategory() {
        let limiter = RateLimiter(perMinute: [.context: 3, .execute: 0])
        for _ in 0..<3 { #expect(limiter.take(caller: "a", category: .context, now: 100) == nil) }
        #expect(limiter.take(caller: "a", category: .context, now: 100) == 20)
        #expect(limiter.take(caller: "b", category: .context, now: 100) == nil)
        #expect(limiter.take(caller: "a", category: .context, now: 120) == nil)
        #expect(limiter.take(caller: "a", category: .context, now: 120) != nil)
        for _ in 0..<100 { #expect(limiter.take(caller: "a", category: .execute, now: 100) == nil) }
        #expect(limiter.take(caller: "a", category: .transfer, now: 100) == nil)
    }

    /// Without a credential, an IPv6 client is its /64: a new address per connection is the
    /// same caller (but link-local ones, which every host on every link shares). At most
    /// `maxAnonymous` networks are tracked; past that new ones share one bucket until older
    /// buckets have refilled and are forgotten, and callers with credentials go on as before.
    @Test func callersWithoutACredentialAreCountedByNetworkAndBounded() {
        #expect(RateLimiter.networkKey("2001:db8:1:2:3:4:5:6") == RateLimiter.networkKey("2001:db8:1:2::9"))
        #expect(RateLimiter.networkKey("2001:db8:1:2::9") == "20:1:d:b8:0:1:0:2::/64")
        #expect(RateLimiter.networkKey("2001:db8:1:3::9") != RateLimiter.networkKey("2001:db8:1:2::9"))
        #expect(RateLimiter.networkKey("fe80::1") != RateLimiter.networkKey("fe80::2"))
        #expect(RateLimiter.networkKey("febf::1") == "febf::1")
        #expect(RateLimiter.networkKey("fec0::1") == RateLimiter.networkKey("fec0::2"))
        #expect(RateLimiter.networkKey("::ffff:10.0.0.1") == "10.0.0.1")
        #expect(RateLimiter.networkKey("10.0.0.1") == "10.0.0.1")
        #expect(RateLimiter.networkKey("not an address") == "not an address")

        let limiter = RateLimiter(perMinute: [.pairing: 2])
        let one = RateLimiter.networkKey("2001:db8::1"), sameNetwork = RateLimiter.networkKey("2001:db8::2")
        let other = RateLimiter.networkKey("2001:db8:0:1::1")
        #expect(limiter.take(caller: one, category: .pairing, anonymous: true, now: 0) == nil)
        #expect(limiter.take(caller: sameNetwork, category: .pairing, anonymous: true, now: 0) == nil)
        #expect(limiter.take(caller: one, category: .pairing, anonymous: true, now: 0) != nil, "one network, one bucket")
        #expect(limiter.take(caller: other, category: .pairing, anonymous: true, now: 0) == nil)
        for index in 2..<RateLimiter.maxAnonymous {
            #expect(limiter.take(caller: "10.\(index >> 16).\((index >> 8) & 255).\(index & 255)", category: .pairing,
                                 anonymous: true, now: 1) == nil)
        }
        #expect(limiter.count == RateLimiter.maxAnonymous)
        // Full: newcomers share one bucket (a burst of 2 here), and nothing more is tracked.
        #expect(limiter.take(caller: "192.0.2.1", category: .pairing, anonymous: true, now: 2) == nil)
        #expect(limiter.take(caller: "192.0.2.2", category: .pairing, anonymous: true, now: 2) == nil)
        #expect(limiter.take(caller: "192.0.2.3", category: .pairing, anonymous: true, now: 2) != nil)
        #expect(limiter.count == RateLimiter.maxAnonymous + 1)
        #expect(limiter.take(caller: "key:k", category: .pairing, now: 2) == nil, "a credential is not held up")
        // Once the first two networks' buckets have refilled, they are forgotten and a place is taken.
        #expect(limiter.take(caller: "192.0.2.4", category: .pairing, anonymous: true, now: 60.5) == nil)
        #expect(limiter.count == RateLimiter.maxAnonymous + 1)
        limiter.prune(now: 1000)
        #expect(limiter.count == 0)
    }
}

@Suite struct PathParametersTests {
    /// Kept inline for up to two, in a list past that; a name set again takes the new value.
    @Test func holdsEachNameOnce() {
        var parameters = PathParameters()
        #expect(parameters["a"] == nil && parameters.dictionary.isEmpty)
        parameters.set("a", "1")
        parameters.set("b", "2")
        parameters.set("c", "3")
        parameters.set("b", "two")
        parameters.set("d", "4")
        parameters.set("c", "three")
        #expect(parameters["a"] == "1" && parameters["b"] == "two" && parameters["c"] == "three" && parameters["d"] == "4")
        #expect(parameters["e"] == nil)
        #expect(parameters.dictionary == ["a": "1", "b": "two", "c": "three", "d": "4"])
    }
}

@Suite struct RouteAccessTests {
    /// The kinds a route admits (kept as bits) read back as they were given, and decide
    /// `admits` and `isOpen` for every kind of caller.
    @Test func kindsRoundTripAndDecideAdmission() {
        let accesses: [RouteAccess] = [.open, .owner, .ownerKey, .credential, .ownerOrPeer, .peer(),
                                       .grant(.exec), .grantToPeers(.exec), .peer(.contextRead)]
        let callers: [Caller] = [.local, .dashboard, .key("k", grants: [.exec], transferPaths: nil),
                                 .peer("p", grants: [], transferPaths: nil), .anonymous("10.0.0.1")]
        for access in accesses {
            #expect(RouteAccess(kinds: access.kinds, grant: access.grant) == access)
            #expect(access.isOpen == access.kinds.contains(.anonymous))
            for caller in callers {
                let expected = access.kinds.contains(caller.kind)
                    && (access.grant == nil || caller.isOwner || caller.grants.contains(access.grant!))
                #expect(access.admits(caller) == expected, "\(access.kinds) \(caller.kind)")
            }
        }
        var changed = RouteAccess.owner
        changed.kinds = [.peer, .key]
        #expect(changed.kinds == [.peer, .key] && changed.admits(.peer("p", grants: [], transferPaths: nil)))
        #expect(!changed.admits(.local))
    }
}
