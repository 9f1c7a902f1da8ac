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

    /// An open log file at `directory`/loopsyd.log and a logger writing to it under `limit`.
    func logFile(limit: Int = 65_536) throws -> (path: String, descriptor: Int32, logger: Logger) {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/loopsyd.log"
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        #expect(descriptor >= 0)
        return (path, descriptor, Logger(level: .info, maxFileBytes: limit, descriptor: descriptor))
    }

    func writesTo(_ descriptor: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(descriptor)")
    }

    func size(_ path: String) -> Int {
        (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
    }

    /// A log deleted under the daemon (`rm loopsyd.log` to free space) is not written for ever
    /// where nobody sees it: past the limit the path is made again and the log goes on there.
    @Test func aDeletedLogBeginsAgainAtItsPath() throws {
        let (path, descriptor, logger) = try logFile()
        defer { close(descriptor); try? FileManager.default.removeItem(atPath: directory) }
        unlink(path)
        let filler = String(repeating: "x", count: 200)
        for index in 0..<400 { logger.info("line \(index) \(filler)") }
        #expect(writesTo(descriptor) == path)
        #expect(size(path) > 0 && size(path) <= 65_536, "\(size(path)) bytes")
        #expect(lines(path).last?.contains("line 399 ") == true)
    }

    /// logrotate (without copytruncate) moves the file aside and makes a new one: the log goes
    /// on in the new one, and the one moved aside stops growing.
    @Test func aLogMovedAsideGoesOnInTheFileNowAtThePath() throws {
        let (path, descriptor, logger) = try logFile()
        defer { close(descriptor); try? FileManager.default.removeItem(atPath: directory) }
        #expect(rename(path, path + ".old") == 0)
        #expect(FileManager.default.createFile(atPath: path, contents: Data("made by logrotate\n".utf8)))
        let filler = String(repeating: "x", count: 200)
        for index in 0..<400 { logger.info("line \(index) \(filler)") }
        #expect(writesTo(descriptor) == path)
        #expect(lines(path).first == "made by logrotate" && lines(path).last?.contains("line 399 ") == true)
        #expect(size(path + ".old") <= 65_536 + 300, "\(size(path + ".old")) bytes")
    }

    /// A data directory moved and linked back under its old name: the log at the old path is
    /// still the one written, and it is rotated there (not opened again and again, growing).
    @Test func aLogWhoseDirectoryWasMovedAndLinkedBackIsRotated() throws {
        let (path, descriptor, logger) = try logFile()
        let moved = directory + "-moved"
        defer {
            close(descriptor)
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.removeItem(atPath: moved)
        }
        #expect(rename(directory, moved) == 0 && symlink(moved, directory) == 0)
        let filler = String(repeating: "x", count: 200)
        for index in 0..<800 { logger.info("line \(index) \(filler)") }
        #expect(size(moved + "/loopsyd.log.1") > 60_000)
        #expect(size(path) <= 65_536, "\(size(path)) bytes")
        #expect(lines(path).last?.contains("line 799 ") == true)
    }

    /// In the directory of a log that is gone, a hard link to another file of the daemon's user
    /// is not taken for the new log.
    @Test func aHardLinkAtThePathOfAGoneLogIsNotWrittenTo() throws {
        let (path, descriptor, logger) = try logFile()
        defer { close(descriptor); try? FileManager.default.removeItem(atPath: directory) }
        let victim = directory + "/victim"
        #expect(FileManager.default.createFile(atPath: victim, contents: Data("precious\n".utf8)))
        unlink(path)
        #expect(link(victim, path) == 0)
        let filler = String(repeating: "x", count: 200)
        for index in 0..<400 { logger.info("line \(index) \(filler)") }
        #expect(lines(victim) == ["precious"])
    }

    /// A `.new` planted as a link to another file is not followed: the file it points at is
    /// left as it was, and the rotation happens.
    @Test func aPlantedLinkIsNotFollowed() throws {
        let (path, descriptor, logger) = try logFile()
        defer { close(descriptor); try? FileManager.default.removeItem(atPath: directory) }
        let victim = directory + "/victim"
        #expect(FileManager.default.createFile(atPath: victim, contents: Data("precious\n".utf8)))
        #expect(symlink(victim, path + ".new") == 0)
        let filler = String(repeating: "x", count: 200)
        for index in 0..<400 { logger.info("line \(index) \(filler)") }
        #expect(lines(victim) == ["precious"])
        #expect(size(path + ".1") > 60_000)
        #expect(lines(path).last?.contains("line 399 ") == true)
    }

    /// When no new file can be made (here `.new` is a directory, which is not removed), the log
    /// is emptied at twice its limit rather than let grow: old lines go, the disk stays free.
    @Test func aLogThatCannotBeRotatedIsEmptiedAtTwiceItsLimit() throws {
        let (path, descriptor, logger) = try logFile()
        defer { close(descriptor); try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: path + ".new", withIntermediateDirectories: false)
        let filler = String(repeating: "x", count: 200)
        var largest = 0
        for index in 0..<2000 {
            logger.info("line \(index) \(filler)")
            largest = max(largest, size(path))
        }
        #expect(largest <= 2 * 65_536 + 300, "\(largest) bytes")
        #expect(!FileManager.default.fileExists(atPath: path + ".1"))
        #expect(lines(path).last?.contains("line 1999 ") == true)
    }

    /// What others write to the log's descriptor (libmicrohttpd, the runtime) is not counted as
    /// it is written: the daemon's upkeep checks the file's size.
    @Test func whatOthersWroteIsRotatedByTheCheck() throws {
        let (path, descriptor, logger) = try logFile()
        defer { close(descriptor); try? FileManager.default.removeItem(atPath: directory) }
        let block = [UInt8](repeating: 0x61, count: 100_000)
        #expect(block.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) } == 100_000)
        logger.checkFileSize()
        #expect(size(path + ".1") == 100_000)
        #expect(size(path) == 0)
    }

    /// Line breaks and escape sequences in a message (a peer's name, an mDNS record) cannot
    /// forge a log line or reach the terminal that shows the log.
    @Test func controlCharactersAreWrittenAsEscapes() throws {
        let (path, descriptor, logger) = try logFile()
        defer { close(descriptor); try? FileManager.default.removeItem(atPath: directory) }
        logger.warn("peer hello\n2026-01-01T00:00:00.000Z error forged \u{1B}[31mred\u{85}\ttab")
        let written = lines(path)
        #expect(written.count == 1)
        #expect(written[0].hasSuffix(#"warn peer hello\u{a}2026-01-01T00:00:00.000Z error forged \u{1b}[31mred\u{85}"#
                                     + "\ttab"), "\(written)")
    }

    @Test func aDescriptorThatIsNoFileIsNeverRotated() throws {
        var pipe: [Int32] = [0, 0]
        #expect(Glibc.pipe(&pipe) == 0)
        defer { close(pipe[0]); close(pipe[1]) }
        #expect(LogFile(descriptor: pipe[1], limit: 65_536) == nil)
    }
}
