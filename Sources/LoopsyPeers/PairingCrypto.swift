import Crypto
import FoundationEssentials
import LoopsyAPI

/// The cryptography of pairing (docs/pairing.md): a commitment that binds the invite code to
/// the initiator's ephemeral key before it sees the responder's, ECDH P-256, keys and the SAS
/// from HKDF over the whole transcript, and AES-GCM for everything secret.
enum PairingCrypto {
    static let version = "loopsy-pair-v1"

    /// SHA-256 over length-prefixed fields, so no two field lists hash alike.
    static func hash(_ fields: [[UInt8]]) -> [UInt8] {
        var hasher = SHA256()
        for field in fields {
            var length = UInt32(field.count).bigEndian
            withUnsafeBytes(of: &length) { hasher.update(bufferPointer: $0) }
            hasher.update(data: field)
        }
        return Array(hasher.finalize())
    }

    static func commitment(code: String, publicKey: [UInt8], nonce: [UInt8]) -> [UInt8] {
        hash([Array("\(version) commit".utf8), Array(code.utf8), publicKey, nonce])
    }

    static func transcript(commitment: [UInt8], responderKey: [UInt8], responderNonce: [UInt8],
                           initiatorKey: [UInt8], initiatorNonce: [UInt8]) -> [UInt8] {
        hash([Array("\(version) transcript".utf8), commitment, responderKey, responderNonce, initiatorKey,
              initiatorNonce])
    }

    /// What both sides derive once the reveal checked out.
    struct Session: Sendable {
        /// Seals what the initiator sends, and opens it on the responder.
        let toResponder: [UInt8]
        /// Seals what the responder sends.
        let toInitiator: [UInt8]
        let abort: [UInt8]
        let sas: String
        let transcript: [UInt8]
    }

    static func derive(privateKey: P256.KeyAgreement.PrivateKey, peerKey: [UInt8], transcript: [UInt8]) throws
        -> Session {
        let peer = try P256.KeyAgreement.PublicKey(x963Representation: peerKey)
        let secret = try privateKey.sharedSecretFromKeyAgreement(with: peer)
        let keys = secret.hkdfDerivedSymmetricKey(using: SHA256.self, salt: transcript,
                                                  sharedInfo: Array("\(version) keys".utf8), outputByteCount: 96)
        let sasBytes = secret.hkdfDerivedSymmetricKey(using: SHA256.self, salt: transcript,
                                                      sharedInfo: Array("\(version) sas".utf8), outputByteCount: 8)
        let material = keys.withUnsafeBytes { Array($0) }
        let number = sasBytes.withUnsafeBytes { $0.reduce(UInt64(0)) { $0 << 8 | UInt64($1) } } % 1_000_000
        let digits = String(number)
        return Session(toResponder: Array(material[0..<32]), toInitiator: Array(material[32..<64]),
                       abort: Array(material[64..<96]), sas: String(repeating: "0", count: 6 - digits.count) + digits,
                       transcript: transcript)
    }

    static func seal(_ plaintext: [UInt8], key: [UInt8], label: String, transcript: [UInt8]) throws -> String {
        let box = try AES.GCM.seal(plaintext, using: SymmetricKey(data: key),
                                   authenticating: Array(label.utf8) + transcript)
        guard let combined = box.combined else { throw CryptoKitError.incorrectParameterSize }
        return Data(combined).base64EncodedString()
    }

    /// Nil when the box is not valid base64 or fails authentication.
    static func open(_ box: String, key: [UInt8], label: String, transcript: [UInt8]) -> [UInt8]? {
        guard let data = Data(base64Encoded: box), let sealed = try? AES.GCM.SealedBox(combined: data),
              let plain = try? AES.GCM.open(sealed, using: SymmetricKey(data: key),
                                            authenticating: Array(label.utf8) + transcript) else { return nil }
        return Array(plain)
    }

    static func abortTag(key: [UInt8], transcript: [UInt8]) -> String {
        let tag = HMAC<SHA256>.authenticationCode(for: Array("\(version) abort".utf8) + transcript,
                                                  using: SymmetricKey(data: key))
        return Data(tag).base64EncodedString()
    }

    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    /// Six digits, uniform, from the system CSPRNG.
    static func inviteCode() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = String(UInt32.random(in: 0..<1_000_000, using: &generator))
        return String(repeating: "0", count: 6 - digits.count) + digits
    }
}

/// What each side sends the other inside the AEAD box once both people confirmed.
struct PairPayload: Codable, Sendable, RangeChecked {
    var nodeId: String
    var hostname: String
    /// Base64 X9.63 identity key: the nodeId and TLS pin derive from it.
    var publicKey: String
    var tls: Bool
    var port: Int
    /// Where to call the sender ("" = the address the message came from).
    var address: String
    /// The key the receiver presents when it calls the sender.
    var credential: String
    var platform: String
    var version: String
    var capabilities: [String]
    /// Base64 DER ECDSA signature by the identity key over the role label and the transcript:
    /// proof that the sender holds the key whose nodeId it claims (public keys are public).
    var proof: String = ""

    func checkRanges() throws { try WireRange.check(port, WireRange.port, "port") }

    static func signedBytes(role: String, transcript: [UInt8]) -> [UInt8] {
        Array("\(PairingCrypto.version) identity \(role)".utf8) + transcript
    }
}
