import Crypto
import Testing
@testable import LoopsyPeers

/// The pairing protocol's cryptography, both sides computed here.
@Suite struct PairingCryptoTests {
    struct Run {
        let responder: PairingCrypto.Session
        let initiator: PairingCrypto.Session
    }

    /// One honest exchange between two fresh ephemeral keys.
    func honestRun(code: String = "123456") throws -> Run {
        let responderKey = P256.KeyAgreement.PrivateKey(), initiatorKey = P256.KeyAgreement.PrivateKey()
        let responderNonce = PairingCrypto.randomBytes(32), initiatorNonce = PairingCrypto.randomBytes(32)
        let initiatorPublic = Array(initiatorKey.publicKey.x963Representation)
        let responderPublic = Array(responderKey.publicKey.x963Representation)
        let commitment = PairingCrypto.commitment(code: code, publicKey: initiatorPublic, nonce: initiatorNonce)
        let transcript = PairingCrypto.transcript(commitment: commitment, responderKey: responderPublic,
                                                  responderNonce: responderNonce, initiatorKey: initiatorPublic,
                                                  initiatorNonce: initiatorNonce)
        return Run(responder: try PairingCrypto.derive(privateKey: responderKey, peerKey: initiatorPublic, transcript: transcript),
                   initiator: try PairingCrypto.derive(privateKey: initiatorKey, peerKey: responderPublic, transcript: transcript))
    }

    @Test func bothSidesDeriveTheSameSASAndKeys() throws {
        let run = try honestRun()
        #expect(run.responder.sas == run.initiator.sas)
        #expect(run.responder.sas.count == 6 && run.responder.sas.allSatisfy(\.isNumber))
        #expect(run.responder.toResponder == run.initiator.toResponder)
        #expect(run.responder.toInitiator != run.responder.toResponder)
        // Another run (other ephemeral keys) gives another SAS and other keys.
        let other = try honestRun()
        #expect(other.responder.toResponder != run.responder.toResponder)
    }

    @Test func theCommitmentBindsCodeKeyAndNonce() {
        let key = PairingCrypto.randomBytes(65), nonce = PairingCrypto.randomBytes(32)
        let commitment = PairingCrypto.commitment(code: "123456", publicKey: key, nonce: nonce)
        #expect(commitment == PairingCrypto.commitment(code: "123456", publicKey: key, nonce: nonce))
        #expect(commitment != PairingCrypto.commitment(code: "123457", publicKey: key, nonce: nonce))
        #expect(commitment != PairingCrypto.commitment(code: "123456", publicKey: PairingCrypto.randomBytes(65), nonce: nonce))
        // Length prefixes: moving a byte between fields changes the hash.
        #expect(PairingCrypto.hash([[1, 2], [3]]) != PairingCrypto.hash([[1], [2, 3]]))
    }

    @Test func sealedBoxesOpenOnlyWithTheirKeyLabelAndTranscript() throws {
        let run = try honestRun()
        let box = try PairingCrypto.seal(Array("secret".utf8), key: run.initiator.toResponder, label: "initiator",
                                         transcript: run.initiator.transcript)
        #expect(PairingCrypto.open(box, key: run.responder.toResponder, label: "initiator",
                                   transcript: run.responder.transcript) == Array("secret".utf8))
        #expect(PairingCrypto.open(box, key: run.responder.toInitiator, label: "initiator",
                                   transcript: run.responder.transcript) == nil)
        #expect(PairingCrypto.open(box, key: run.responder.toResponder, label: "responder",
                                   transcript: run.responder.transcript) == nil)
        #expect(PairingCrypto.open(box, key: run.responder.toResponder, label: "initiator",
                                   transcript: PairingCrypto.randomBytes(32)) == nil)
        #expect(!box.contains("secret"))
    }

    @Test func inviteCodesAreSixDigits() {
        let codes = (0..<200).map { _ in PairingCrypto.inviteCode() }
        #expect(codes.allSatisfy { $0.count == 6 && $0.allSatisfy(\.isNumber) })
        #expect(Set(codes).count > 190)
    }
}
