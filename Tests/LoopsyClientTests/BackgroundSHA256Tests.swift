import Crypto
import LoopsyAPI
import Testing
@testable import LoopsyClient

/// The hash a pull verifies, computed on a thread of its own while the pull receives.
@Suite struct BackgroundSHA256Tests {
    /// More pieces than may wait at once (the caller then waits for the hashing thread), on top
    /// of a resumed start: the digest is that of all the bytes in order, and stays so.
    @Test func digestIsThatOfEveryPieceInOrder() {
        let resumed = Array("bytes of a partial file from an earlier run".utf8)
        var start = SHA256()
        start.update(data: resumed)
        let hasher = BackgroundSHA256(start)
        var all = resumed
        for index in 0..<(BackgroundSHA256.maxPieces * 3) {
            let piece = (0..<(1000 + index * 37)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
            hasher.update(piece)
            all += piece
        }
        let expected = Hex.encode(SHA256.hash(data: all))
        #expect(hasher.finalize() == expected)
        #expect(hasher.finalize() == expected)
    }

    /// Nothing fed: the digest of the start alone (an empty file, or a pull that failed early
    /// and is only being wound up).
    @Test func nothingFedGivesTheStartsDigest() {
        #expect(BackgroundSHA256(SHA256()).finalize() == Hex.encode(SHA256.hash(data: [UInt8]())))
    }
}
