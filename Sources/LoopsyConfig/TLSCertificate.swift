import Crypto
import LoopsyAPI
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The node's self-signed TLS certificate, made for the identity key (so a peer that pins the
/// certificate's key pins the nodeId too). Peers never validate a chain: they pin the key.
public enum TLSCertificate {
    /// Hex SHA-256 of a public key's SubjectPublicKeyInfo DER: the pin peers store.
    public static func fingerprint(of publicKey: P256.Signing.PublicKey) -> String {
        Hex.encode(SHA256.hash(data: publicKey.derRepresentation))
    }

    /// libcurl's `CURLOPT_PINNEDPUBLICKEY` form of a hex fingerprint ("sha256//<base64>"), or nil
    /// if the text is not 64 hex digits.
    public static func curlPin(fingerprint: String) -> String? {
        guard fingerprint.utf8.count == 64, let bytes = Hex.decode(fingerprint) else { return nil }
        return "sha256//" + Data(bytes).base64EncodedString()
    }

    /// A PEM certificate for `identity`, CN "loopsy <nodeId>", valid from a day ago with no
    /// expiry (RFC 5280's 99991231235959Z): the pin, not the date, is what peers check.
    public static func makeSelfSigned(for identity: NodeIdentity, now: Int = time(nil)) throws -> String {
        let key = identity.privateKey
        let name = DER.sequence(DER.set(DER.sequence(
            DER.oid([0x55, 0x04, 0x03]), DER.tlv(0x0C, Array("loopsy \(identity.nodeId)".utf8)))))
        let ecdsaWithSHA256 = DER.sequence(DER.oid([0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]))
        var serial = [UInt8](repeating: 0, count: 16)
        var generator = SystemRandomNumberGenerator()
        for index in serial.indices { serial[index] = UInt8.random(in: 0...255, using: &generator) }
        serial[0] &= 0x7F  // positive
        let basicConstraints = DER.sequence(DER.oid([0x55, 0x1D, 0x13]), DER.tlv(0x04, DER.sequence()))
        let tbs = DER.sequence(
            DER.tlv(0xA0, DER.integer([2])),  // v3
            DER.integer(serial),
            ecdsaWithSHA256,
            name,
            DER.sequence(DER.utcTime(now - 86_400), DER.tlv(0x18, Array("99991231235959Z".utf8))),
            name,
            Array(key.publicKey.derRepresentation),
            DER.tlv(0xA3, DER.sequence(basicConstraints)))
        let signature = try key.signature(for: tbs)
        let certificate = DER.sequence(tbs, ecdsaWithSHA256, DER.tlv(0x03, [0] + Array(signature.derRepresentation)))
        return pem("CERTIFICATE", certificate)
    }

    /// The DER inside the first PEM block of `text`.
    public static func der(fromPEM text: String) -> [UInt8]? {
        let lines = text.split(whereSeparator: \.isNewline)
        guard let start = lines.firstIndex(where: { $0.hasPrefix("-----BEGIN ") }),
              let end = lines[start...].firstIndex(where: { $0.hasPrefix("-----END ") }) else { return nil }
        return Data(base64Encoded: lines[(start + 1)..<end].joined()).map(Array.init)
    }

    static func pem(_ label: String, _ der: [UInt8]) -> String {
        let base64 = Array(Data(der).base64EncodedString().utf8)
        var text = "-----BEGIN \(label)-----\n"
        for start in stride(from: 0, to: base64.count, by: 64) {
            text += String(decoding: base64[start..<min(start + 64, base64.count)], as: UTF8.self) + "\n"
        }
        return text + "-----END \(label)-----\n"
    }
}

/// tls/key.pem (the identity key, 0600) and tls/cert.pem: made when missing, remade when the
/// certificate is not for the current identity key.
public enum TLSFiles {
    /// Does this certificate (DER) carry the identity's public key?
    public static func certificateMatches(_ der: [UInt8], identity: NodeIdentity) -> Bool {
        der.contains(subsequence: Array(identity.privateKey.publicKey.derRepresentation))
    }

    public static func ensure(_ dataDir: DataDir, identity: NodeIdentity) throws -> (key: String, certificate: String) {
        try SecureFile.makeDirectory(dataDir.tlsDirectory)
        let keyPEM = identity.privateKey.pemRepresentation
        let spki = Array(identity.privateKey.publicKey.derRepresentation)
        if SecureFile.exists(dataDir.tlsCertificateFile), SecureFile.exists(dataDir.tlsKeyFile),
           let certificate = try? SecureFile.read(dataDir.tlsCertificateFile),
           let der = TLSCertificate.der(fromPEM: certificate), der.contains(subsequence: spki),
           (try? SecureFile.read(dataDir.tlsKeyFile)) == keyPEM {
            return (keyPEM, certificate)
        }
        let certificate = try TLSCertificate.makeSelfSigned(for: identity)
        try SecureFile.write(dataDir.tlsKeyFile, contents: keyPEM, mode: 0o600)
        try SecureFile.write(dataDir.tlsCertificateFile, contents: certificate, mode: 0o644)
        return (keyPEM, certificate)
    }
}

/// Just enough DER to write a certificate.
enum DER {
    static func tlv(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
        var length: [UInt8] = []
        if content.count < 0x80 {
            length = [UInt8(content.count)]
        } else {
            var value = content.count
            while value > 0 {
                length.insert(UInt8(value & 0xFF), at: 0)
                value >>= 8
            }
            length.insert(0x80 | UInt8(length.count), at: 0)
        }
        return [tag] + length + content
    }

    static func sequence(_ parts: [UInt8]...) -> [UInt8] { tlv(0x30, parts.flatMap { $0 }) }
    static func set(_ parts: [UInt8]...) -> [UInt8] { tlv(0x31, parts.flatMap { $0 }) }
    static func oid(_ encoded: [UInt8]) -> [UInt8] { tlv(0x06, encoded) }

    /// A non-negative INTEGER from big-endian magnitude bytes.
    static func integer(_ magnitude: [UInt8]) -> [UInt8] {
        var bytes = Array(magnitude.drop { $0 == 0 })
        if bytes.isEmpty || bytes[0] & 0x80 != 0 { bytes.insert(0, at: 0) }
        return tlv(0x02, bytes)
    }

    /// UTCTime (YYMMDDHHMMSSZ) for a Unix time before 2050.
    static func utcTime(_ seconds: Int) -> [UInt8] {
        var value = time_t(seconds)
        var parts = tm()
        gmtime_r(&value, &parts)
        let fields = [parts.tm_year % 100, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec]
        let text = fields.map { $0 < 10 ? "0\($0)" : "\($0)" }.joined() + "Z"
        return tlv(0x17, Array(text.utf8))
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard !subsequence.isEmpty, subsequence.count <= count else { return false }
        for start in 0...(count - subsequence.count) where self[start..<(start + subsequence.count)].elementsEqual(subsequence) {
            return true
        }
        return false
    }
}
