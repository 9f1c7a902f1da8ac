import Crypto
import Foundation
import LoopsyConfig
import LoopsyCore
import LoopsyPOSIX
import Testing
@testable import LoopsyTransfer

/// A file's digest is of the bytes it had when it was opened (what a pull sends, what a
/// checksum reports with its size): a file appended to meanwhile is hashed no further, and a
/// small one, hashed on the HTTP worker, never costs more than its size at open.
@Suite struct DigestTests {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-digest-\(UUID().uuidString)").path

    func hex(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }

    func digestNow(_ service: TransferService, _ fd: Int32, size: Int64) throws -> String? {
        if case .now(let digest) = try service.digest(of: fd, size: size) { return digest }
        return nil
    }

    @Test func aFileAppendedToAfterItWasOpenedIsHashedAsItWasThen() throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        var config = LoopsyConfig().transfer
        config.allowedPaths = [root]
        let service = TransferService(config: config, dataDir: nil, environment: ["HOME": root])
        let path = root + "/log.txt"
        let first = Array("first line\n".utf8)
        #expect(FileManager.default.createFile(atPath: path, contents: Data(first)))
        let fd = open(path, O_RDONLY)
        #expect(fd >= 0)
        defer { close(fd) }
        let size = Int64(first.count)
        // Appended to after the size was taken: the digest is still of the first bytes, and is
        // not kept for the grown file.
        let more = Array(String(repeating: "more\n", count: 1000).utf8)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(more))
        try handle.close()
        #expect(try digestNow(service, fd, size: size) == hex(first))
        // Asked with its size now, the whole file is hashed (nothing wrong was cached).
        #expect(try digestNow(service, fd, size: size + Int64(more.count)) == hex(first + more))
        // An empty file, and a size larger than the file (it shrank): what is there.
        #expect(try digestNow(service, fd, size: 0) == hex([]))
        #expect(try digestNow(service, fd, size: size + Int64(more.count) + 100) == hex(first + more))
    }
}
