import Crypto
import Foundation
import LoopsyAPI
import LoopsyClient
import LoopsyConfig
@testable import LoopsyPeers
import Testing

/// What an extra key or a peer can no longer do with a header or a body field: pass as another
/// node, escape its rate limit, use the owner's dashboard session, aim the node at an address,
/// or see and stop the owner's jobs.
@Suite struct TrustTests {
    static let trustedKey = String(repeating: "t", count: 40)

    static func node(_ name: String, tls: Bool = false, extra: @escaping (String) -> String = { $0 }) throws -> TestNode {
        try PeerTests.named(name, tls: tls) { text in
            extra(replacingLine(text, "  allowedKeys: {}", "  allowedKeys: {trusted: \(trustedKey)}"))
        }
    }

    @Test func aNodeIdHeaderOnAnUnboundKeyIdentifiesNothing() throws {
        let alpha = try Self.node("alpha") { replacingLine($0, "  context: 60", "  context: 3") }
        defer { alpha.cleanUp() }
        try alpha.start()
        let claimed = (0..<4).map { String(repeating: String($0), count: 32) }
        // A new node id per request does not buy a new rate-limit budget: the key is what counts.
        var statuses: [Int] = []
        for id in claimed {
            let response = try alpha.http("PUT", "/api/v1/context/k\(statuses.count)", body: #"{"value":"v"}"#,
                                          key: Self.trustedKey, headers: ["X-Loopsy-Node-Id": id])
            statuses.append(response.status)
        }
        #expect(statuses == [200, 200, 200, 429])
        // The entry is the key's, not the claimed node's; the audit log shows the claim as a claim.
        #expect(try alpha.client.contextGet("k0").fromNodeId == "key:trusted")
        #expect(try alpha.client.audit(limit: 100).contains {
            $0.caller == "key:trusted (claims node \(claimed[0]))" && $0.path == "/api/v1/context/k0"
        })
    }

    @Test func aDashboardCookieWithAnotherKeyGetsNoCSRFToken() throws {
        let alpha = try Self.node("alpha")
        defer { alpha.cleanUp() }
        try alpha.start()
        let login = try alpha.http("POST", "/dashboard/api/login", body: "{\"apiKey\":\"\(alpha.apiKey)\"}", key: "")
        #expect(login.status == 200)
        let cookie = try #require(login.headers["set-cookie"]?.split(separator: ";").first.map(String.init))
        let csrf = try login.json(DashboardSessionResponse.self).csrfToken
        // The owner's own session works with its cookie and token…
        let own = try alpha.http("GET", "/dashboard/api/session", key: "", headers: ["Cookie": cookie, "X-CSRF-Token": csrf])
        #expect(own.status == 200 && own.text.contains("csrfToken"), "\(own.status) \(own.text)")
        // …but the cookie sent along with another credential is that credential's request.
        let stolen = try alpha.http("GET", "/dashboard/api/session", key: Self.trustedKey, headers: ["Cookie": cookie])
        #expect(stolen.status == 403 && stolen.errorCode == "owner_only" && !stolen.text.contains("csrfToken"))
    }

    @Test func jobsAreTheirCallersAndAHandshakeCannotAimTheNode() throws {
        let alpha = try Self.node("alpha", tls: true), bravo = try Self.node("bravo")
        defer { alpha.cleanUp(); bravo.cleanUp() }
        try alpha.start(host: "127.0.0.2")
        try bravo.start()
        #expect(try alpha.cli("peers", "grant", "key:trusted", "exec").status == 0)
        // The owner's long job: the key neither sees it nor can stop it; the owner sees both.
        let stream = Process()
        stream.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        stream.arguments = ["-s", "-N", "-m", "40", "-X", "POST", "-H", "Authorization: Bearer \(alpha.apiKey)",
                            "-H", "Content-Type: application/json", "--data", #"{"command":"sleep","args":["30"]}"#,
                            alpha.baseURL + "/api/v1/execute/stream"]
        stream.standardOutput = FileHandle.nullDevice
        try stream.run()
        defer { kill(stream.processIdentifier, SIGKILL); stream.waitUntilExit() }
        var ownerJob = ""
        #expect(try eventually(5) {
            let jobs = try alpha.http("GET", "/api/v1/execute/jobs").json(JobListResponse.self).jobs
            ownerJob = jobs.first { $0.command == "sleep" }?.jobId ?? ""
            return !ownerJob.isEmpty
        })
        let listed = try alpha.http("GET", "/api/v1/execute/jobs", key: Self.trustedKey)
        #expect(listed.status == 200 && !listed.text.contains(ownerJob))
        let cancel = try alpha.http("DELETE", "/api/v1/execute/\(ownerJob)", key: Self.trustedKey)
        #expect(cancel.status == 404)
        #expect(try alpha.http("GET", "/api/v1/execute/jobs").text.contains(ownerJob))
        #expect(try alpha.http("DELETE", "/api/v1/execute/\(ownerJob)").status == 200)

        // bravo introduces itself to alpha naming another address: alpha keeps the one it was called from.
        let paired = try PeerTests.pair(bravo, alpha)
        #expect(paired.status == 0, "\(paired.stderr)")
        let peerKey = try run("/usr/bin/sqlite3", [bravo.dataDir + "/loopsy.db", "SELECT api_key FROM peers"])
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let identity = try bravo.client.identity()
        let handshake = PeerHandshakeRequest(
            nodeId: identity.nodeId, hostname: "bravo", publicKey: identity.publicKey, address: "10.66.0.9", port: 9,
            tls: false, platform: "linux", version: "x", capabilities: [], credential: nil)
        let body = String(decoding: try JSONEncoder().encode(handshake), as: UTF8.self)
        #expect(try alpha.http("POST", "/api/v1/peers/handshake", body: body, key: peerKey).status == 200)
        let peer = try #require(try alpha.peers().first { $0.nodeId == identity.nodeId })
        // (The handshake over TLS came from 127.0.0.1: bravo's curl leaves from there.)
        #expect(!peer.addresses.contains("10.66.0.9") && peer.address.hasPrefix("127."), "\(peer.addresses)")
    }

    @Test func aTransferGrantWithPathsReachesOnlyThem() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-grant-\(UUID().uuidString)").path
        for name in ["shared", "private"] {
            try FileManager.default.createDirectory(atPath: base + "/" + name, withIntermediateDirectories: true)
            try Data("in \(name)\n".utf8).write(to: URL(fileURLWithPath: base + "/" + name + "/f.txt"))
        }
        defer { try? FileManager.default.removeItem(atPath: base) }
        let alpha = try Self.node("alpha") { replacingLine($0, #"allowedPaths: ["~"]"#, #"allowedPaths: ["\#(base)"]"#) }
        defer { alpha.cleanUp() }
        try alpha.start()
        let pull = { (name: String) in
            try alpha.http("POST", "/api/v1/transfer/pull", body: #"{"sourcePath":"\#(base)/\#(name)/f.txt"}"#,
                           key: Self.trustedKey)
        }
        #expect(try pull("shared").errorCode == "grant_required")
        let granted = try alpha.cli("peers", "grant", "key:trusted", "transfer", "--path", base + "/shared")
        #expect(granted.status == 0 && granted.stdout.contains("transfers only in: \(base)/shared"), "\(granted.stdout)")
        #expect(try pull("shared").text == "in shared\n")
        let outside = try pull("private")
        #expect(outside.status == 403 && outside.errorCode == "path_forbidden", "\(outside.text)")
        // The owner is not narrowed; and --all-paths gives the key the whole of allowedPaths again.
        #expect(try alpha.http("POST", "/api/v1/transfer/pull", body: #"{"sourcePath":"\#(base)/private/f.txt"}"#).status == 200)
        #expect(try alpha.cli("peers", "grant", "key:trusted", "--all-paths").status == 0)
        #expect(try pull("private").text == "in private\n")
    }

    @Test func aKeyCannotReleaseTheOwnersLockAndStrangersSendNoLargeBodies() throws {
        let alpha = try Self.node("alpha")
        defer { alpha.cleanUp() }
        try alpha.start()
        // The owner's lock: the key (context grants by default) sees its token but cannot use it.
        let taken = try alpha.http("POST", "/api/v1/locks/deploy", body: #"{"holder":"ci","ttl":60}"#)
        #expect(taken.status == 201)
        let token = try taken.json(LockInfo.self).token
        let release = try alpha.http("DELETE", "/api/v1/locks/deploy?token=\(token)", key: Self.trustedKey)
        #expect(release.status == 409, "\(release.text)")
        let renew = try alpha.http("POST", "/api/v1/locks/deploy/renew", body: #"{"token":\#(token),"ttl":60}"#,
                                   key: Self.trustedKey)
        #expect(renew.status == 409, "\(renew.text)")
        #expect(try alpha.http("DELETE", "/api/v1/locks/deploy?token=\(token)").status == 200)

        // A 5 MB context value announced by someone without a valid key is refused from the head:
        // asked for "100 Continue", the answer is the refusal, before a byte of the body is sent
        // (without the Expect header the body is read and dropped, never held).
        let fd = try HardeningTests.connection(alpha.port, timeout: 3)
        defer { close(fd) }
        let head = "PUT /api/v1/context/big HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + String(repeating: "x", count: 40) + "\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 5000000\r\n\r\n"
        _ = head.withCString { send(fd, $0, strlen($0), 0) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        let answer = String(decoding: buffer.prefix(max(0, count)), as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 403") && answer.contains("invalid_credentials"), "\(answer)")
    }

    /// What a pairing payload says of where the node is and what it is called follows the rules
    /// a handshake's does: calls go where the pairing came from (a claimed loopback address is
    /// never taken, nor any other before it answers there with the node's key), and a name
    /// another peer has gets the newcomer's node id prefix.
    @Test func aPairingPayloadChoosesNeitherWhereCallsGoNorAnotherPeersName() throws {
        let alpha = try PeerTests.named("alpha"), bravo = try PeerTests.named("bravo", tls: true)
        defer { alpha.cleanUp(); bravo.cleanUp() }
        try alpha.start()
        try bravo.start(host: "127.0.0.2")
        #expect(try PeerTests.pair(alpha, bravo).status == 0)
        let started = try alpha.http("POST", "/api/v1/pair/start", body: "{}")
        #expect(started.status < 300, "\(started.text)")
        var stranger = HostilePairingInitiator(node: alpha, code: try started.json(PairStartResponse.self).code)
        try stranger.introduce()
        #expect(try alpha.http("POST", "/api/v1/pair/confirm", body: #"{"accept":true}"#).status < 300)
        let nodeId = try stranger.exchange(address: "127.0.0.9", port: alpha.port, hostname: "bravo")
        let stored = try #require(try alpha.peers().first { $0.nodeId == nodeId })
        #expect(stored.address == "127.0.0.1", "\(stored)")
        #expect(stored.name == "bravo-" + nodeId.prefix(6), "\(stored)")
        #expect(try alpha.peers().filter { $0.name == "bravo" }.count == 1)
    }

    @Test func peersWordsCannotRewriteTheScreen() throws {
        let alpha = try PeerTests.named("alpha"), bravo = try PeerTests.named("bravo", tls: true)
        defer { alpha.cleanUp(); bravo.cleanUp() }
        try alpha.start()
        try bravo.start(host: "127.0.0.2")
        #expect(try PeerTests.pair(alpha, bravo).status == 0)
        // C0 controls (ESC) are not message text at all; C1 controls (a one-byte CSI) and bidi
        // overrides are, and are shown escaped.
        let escape = String(decoding: try JSONEncoder().encode(["to": "bravo", "body": "x\u{1B}[2K"]), as: UTF8.self)
        #expect(try alpha.http("POST", "/api/v1/messages", body: escape).status == 400)
        let hostile = "safe text\u{9B}1A\u{9B}2Kapproved\u{202E}gnp.exe"
        let body = String(decoding: try JSONEncoder().encode(["to": "bravo", "body": hostile]), as: UTF8.self)
        #expect(try alpha.http("POST", "/api/v1/messages", body: body).status == 201)
        let shown = try bravo.cli("msg", "inbox").stdout
        #expect(!shown.contains("\u{9B}") && !shown.contains("\u{202E}"), "\(shown)")
        #expect(shown.contains("safe text\\u{9b}1A\\u{9b}2Kapproved\\u{202e}gnp.exe"), "\(shown)")
    }
}

/// A pairing initiator that follows the protocol (the daemon's own PairingCrypto) but chooses
/// its payload freely: what a stranger who got the invite code and the person's confirmation
/// can send.
struct HostilePairingInitiator {
    let node: TestNode
    let code: String
    private let ephemeral = P256.KeyAgreement.PrivateKey()
    private let nonce = PairingCrypto.randomBytes(32)
    private var session: PairingCrypto.Session?

    init(node: TestNode, code: String) {
        self.node = node
        self.code = code
    }

    private func post<T: Decodable>(_ path: String, _ body: some Encodable, as type: T.Type) throws -> T {
        let response = try node.http("POST", "/api/v1/pair/" + path,
                                     body: String(decoding: try JSONEncoder().encode(body), as: UTF8.self), key: "")
        guard response.status < 300 else { throw HarnessError("pair/\(path): \(response.status) \(response.text)") }
        return try response.json(type)
    }

    /// Commit and reveal: both sides now show the same six digits.
    mutating func introduce() throws {
        let publicKey = Array(ephemeral.publicKey.x963Representation)
        let commitment = PairingCrypto.commitment(code: code, publicKey: publicKey, nonce: nonce)
        let share = try post("commit", PairCommit(commitment: commitment.map { String(format: "%02x", $0) }.joined()),
                             as: PairKeyShare.self)
        let theirKey = Array(try #require(Data(base64Encoded: share.publicKey)))
        let theirNonce = Array(try #require(Data(base64Encoded: share.nonce)))
        struct Empty: Decodable {}
        _ = try? post("reveal", PairKeyShare(publicKey: Data(publicKey).base64EncodedString(),
                                             nonce: Data(nonce).base64EncodedString()), as: Empty.self)
        let transcript = PairingCrypto.transcript(commitment: commitment, responderKey: theirKey,
                                                  responderNonce: theirNonce, initiatorKey: publicKey, initiatorNonce: nonce)
        session = try PairingCrypto.derive(privateKey: ephemeral, peerKey: theirKey, transcript: transcript)
    }

    /// Sends an identity (proved, as the protocol asks) with this address, port and name; its
    /// node id once the responder has stored it.
    func exchange(address: String, port: Int, hostname: String) throws -> String {
        let session = try #require(session)
        let identity = P256.Signing.PrivateKey()
        let identityKey = Array(identity.publicKey.x963Representation)
        let nodeId = NodeIdentity.nodeId(for: identity.publicKey)
        let proof = try identity.signature(for: PairPayload.signedBytes(role: "initiator", transcript: session.transcript))
        let payload = PairPayload(nodeId: nodeId, hostname: hostname, publicKey: Data(identityKey).base64EncodedString(),
                                  tls: false, port: port, address: address, credential: String(repeating: "c", count: 64),
                                  platform: "linux", version: "0.1.0", capabilities: [],
                                  proof: proof.derRepresentation.base64EncodedString())
        let box = try PairingCrypto.seal(Array(try JSONEncoder().encode(payload)), key: session.toResponder,
                                         label: "initiator", transcript: session.transcript)
        for _ in 0..<100 {
            if try post("exchange", PairSealed(box: box), as: PairExchangeReply.self).state == "done" { return nodeId }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw HarnessError("the responder never finished the exchange")
    }
}
