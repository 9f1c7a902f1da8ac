import Foundation
import Glibc
import Testing
@testable import LoopsyConfig

/// What the daemon's log can grow to: lines are cut, and the file it writes is kept under
/// `logging.maxFileBytes` (renamed `.1`, a new one begun).
@Suite struct LoggerTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-log-\(UUID().uuidString)").path

    func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test func theFileIsRenamedPastItsLimitAndNoLineIsLost() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/loopsyd.log"
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        #expect(descriptor >= 0)
        defer { close(descriptor) }
        let limit = 204_800
        let logger = Logger(level: .info, maxFileBytes: limit, descriptor: descriptor)
        let filler = String(repeating: "x", count: 200)
        // Four threads at once, 1000 lines of about 250 bytes: the file passes its limit once.
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            for index in 0..<250 { logger.info("line \(thread)-\(index) \(filler)") }
        }
        let current = lines(path), previous = lines(path + ".1")
        #expect(FileManager.default.fileExists(atPath: path + ".1"))
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(size <= limit + 300, "\(size) bytes")
        #expect(current.allSatisfy { $0.hasSuffix(filler) } && previous.allSatisfy { $0.hasSuffix(filler) },
                "every line whole")
        // Between them the two files hold every line, each thread's in order.
        let kept = previous + current
        #expect(kept.count == 1000)
        for thread in 0..<4 {
            let numbers = kept.compactMap { line -> Int? in
                guard let range = line.range(of: "line \(thread)-") else { return nil }
                return Int(line[range.upperBound...].prefix { $0.isNumber })
            }
            #expect(numbers == Array(0..<250))
        }
    }

    @Test func aLongMessageIsCutToOneBoundedLine() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/out.log"
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        defer { close(descriptor) }
        let logger = Logger(level: .info, descriptor: descriptor)
        logger.warn("peer said: " + String(repeating: "é", count: 100_000))
        logger.warn("next")
        let written = lines(path)
        #expect(written.count == 2)
        #expect(written[0].utf8.count < Logger.maxLineBytes && written[0].hasSuffix("é…"))
        #expect(written[1].hasSuffix("warn next"))
    }

    @Test func aDescriptorThatIsNoFileIsNeverRotated() throws {
        var pipe: [Int32] = [0, 0]
        #expect(Glibc.pipe(&pipe) == 0)
        defer { close(pipe[0]); close(pipe[1]) }
        #expect(LogFile(descriptor: pipe[1], limit: 65_536) == nil)
    }
}
