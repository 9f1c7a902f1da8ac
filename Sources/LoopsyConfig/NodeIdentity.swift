import Crypto
import LoopsyAPI

/// The node's persistent P-256 key pair. The nodeId is derived from the public key, so it is
/// stable for as long as `identity.pem` exists, and the TLS certificate is made for this key.
public struct NodeIdentity: Sendable {
    /// The key's raw scalar; kept as bytes because swift-crypto's key types are not Sendable.
    private let rawKey: [UInt8]
    /// 32 hex characters: the first 16 bytes of SHA-256 over the public key's X9.63 form.
    public let nodeId: String

    public init(privateKey: P256.Signing.PrivateKey) {
        rawKey = Array(privateKey.rawRepresentation)
        nodeId = Self.nodeId(for: privateKey.publicKey)
    }

    public var privateKey: P256.Signing.PrivateKey {
        // rawKey came from a valid key, so this cannot fail.
        (try? P256.Signing.PrivateKey(rawRepresentation: rawKey)) ?? P256.Signing.PrivateKey()
    }

    public static func nodeId(for publicKey: P256.Signing.PublicKey) -> String {
        SHA256.hash(data: publicKey.x963Representation).prefix(16).map { hexByte($0) }.joined()
    }

    public static func generate() -> NodeIdentity { NodeIdentity(privateKey: P256.Signing.PrivateKey()) }

    public static func load(from path: String) throws -> NodeIdentity {
        let pem = try SecureFile.read(path)
        do {
            return NodeIdentity(privateKey: try P256.Signing.PrivateKey(pemRepresentation: pem))
        } catch {
            throw ConfigError("\(path) does not hold a P-256 private key in PEM form (\(error))")
        }
    }

    public func save(to path: String) throws {
        try SecureFile.write(path, contents: privateKey.pemRepresentation, mode: 0o600)
    }
}

/// Random secrets from the system CSPRNG (getrandom on Linux).
public enum Secrets {
    /// A 256-bit key as 64 lowercase hex characters.
    public static func apiKey() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in hexByte(UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// Constant-time comparison of two secrets (time depends only on the lengths). Every
    /// authenticated request runs it (the byte form below, on the key where it lies in its
    /// header), so it reads both as contiguous bytes.
    public static func equal(_ lhs: String, _ rhs: String) -> Bool {
        var lhs = lhs
        return lhs.withUTF8 { equal($0, rhs) }
    }

    /// The same for bytes (a credential where it lies in its header).
    public static func equal(_ left: UnsafeBufferPointer<UInt8>, _ rhs: String) -> Bool {
        var rhs = rhs
        return rhs.withUTF8 { right in
            // Eight bytes at a time where both have them, then byte by byte; the longer one's
            // extra bytes are read as well, so the time depends on the lengths alone.
            let (shorter, longer) = left.count <= right.count ? (left, right) : (right, left)
            var difference: UInt64 = left.count == right.count ? 0 : 1
            var index = 0
            let words = UnsafeRawBufferPointer(shorter), others = UnsafeRawBufferPointer(longer)
            while index + 8 <= shorter.count {
                difference |= words.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                    ^ others.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                index += 8
            }
            while index < shorter.count {
                difference |= UInt64(shorter[index] ^ longer[index])
                index += 1
            }
            while index < longer.count {
                difference |= UInt64(longer[index])
                index += 1
            }
            return difference == 0
        }
    }

    /// What is stored of a key instead of the key: its SHA-256 as lowercase hex.
    public static func keyHash(_ key: String) -> String {
        Hex.encode(SHA256.hash(data: Array(key.utf8)))
    }
}

func hexByte(_ byte: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
}
