import Foundation
import LoopsyAPI
import LoopsyConfig
import Testing
@testable import LoopsyTransfer

/// Directory listings a page at a time, from windows of the smallest names (byte-wise) rather
/// than the whole directory read and sorted: every shown name once, in order, whatever the
/// rules refuse on the way.
@Suite struct DirectoryListingTests {
    final class Folder {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-list-\(UUID().uuidString)").path
        init(_ names: [String]) throws {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            for name in names { #expect(FileManager.default.createFile(atPath: root + "/" + name, contents: nil)) }
        }
        deinit { try? FileManager.default.removeItem(atPath: root) }

        func service(denying denied: [String] = []) -> TransferService {
            var config = LoopsyConfig().transfer
            config.allowedPaths = [root]
            config.deniedPaths = denied.map { root + "/" + $0 }
            return TransferService(config: config, dataDir: nil, environment: ["HOME": root])
        }
    }

    static func bytewise(_ names: [String]) -> [String] { names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) } }

    /// Follows the pages from the start as a client does; each page checked on the way.
    static func follow(_ service: TransferService, _ path: String, limit: Int) throws -> [String] {
        var shown: [String] = []
        var after: String?
        for _ in 0..<10_000 {
            let page = try service.list(path, afterName: after, limit: limit, access: TransferAccess(owner: false))
            #expect(page.files.count <= limit)
            if page.more { #expect(page.files.count == limit) }
            shown += page.files.map(\.name)
            guard page.more, let last = page.files.last else { return shown }
            after = last.name
        }
        Issue.record("the pages of \(path) did not end")
        return shown
    }

    /// The smallest fifty names are refused (so the first windows show nothing), then one in
    /// seven: every page size still shows every other name once, by bytes ("e" + combining
    /// accent before "n…", the precomposed "é" after).
    @Test func pagesShowEveryNameTheRulesAllowOnceInByteOrder() throws {
        let names = (0..<300).map { String(format: "n%03d", $0) } + ["\u{e9}", "e\u{301}", "Z", "a"]
        let folder = try Folder(names)
        let denied = ["a"] + (0..<300).filter { $0 < 50 || $0 % 7 == 0 }.map { String(format: "n%03d", $0) }
        let service = folder.service(denying: denied)
        let expected = Self.bytewise(names.filter { !denied.contains($0) })
        #expect(expected.first == "Z" && expected.last == "\u{e9}" && expected.count == 300 + 4 - denied.count)
        for limit in [1, 2, 3, 7, 50, 299, 10_000] {
            let shown = try Self.follow(service, folder.root, limit: limit)
            #expect(shown.elementsEqual(expected) { $0.utf8.elementsEqual($1.utf8) }, "pages of \(limit)")
        }
        // Nothing refused: a page of exactly what is left says there is no more.
        let open = folder.service()
        let all = try open.list(folder.root, limit: names.count, access: TransferAccess(owner: false))
        #expect(all.files.count == names.count && !all.more)
        let short = try open.list(folder.root, limit: names.count - 1, access: TransferAccess(owner: false))
        #expect(short.files.count == names.count - 1 && short.more)
    }

    /// The window keeps the `count` smallest names past `after` of a directory many times its
    /// size, and says whether more follow.
    @Test func theWindowHoldsTheSmallestNamesOfALargerDirectory() throws {
        let names = (0..<5_000).map { String(format: "f%05d", ($0 * 7_919) % 5_000) }
        let folder = try Folder(names)
        let fd = open(folder.root, O_RDONLY | O_DIRECTORY)
        #expect(fd >= 0)
        defer { close(fd) }
        let sorted = Self.bytewise(names)
        for (after, count) in [(nil, 10), (nil, 4_999), (nil, 5_000), ("f02500", 3), ("f04990", 100)] as [(String?, Int)] {
            let window = try TransferService.smallestNames(in: fd, after: after, count: count, asked: folder.root,
                                                           isCancelled: { false })
            let past = sorted.filter { name in after.map { $0.utf8.lexicographicallyPrecedes(name.utf8) } ?? true }
            #expect(window.names == Array(past.prefix(count)), "after \(after ?? "-"), \(count)")
            #expect(window.truncated == (past.count > count), "after \(after ?? "-"), \(count)")
        }
    }

    /// A listing whose caller went away stops reading the directory and says why.
    @Test func aCancelledListingStops() throws {
        let folder = try Folder((0..<5_000).map { "g\($0)" })
        let service = folder.service()
        let error = #expect(throws: APIError.self) {
            _ = try service.list(folder.root, access: TransferAccess(owner: false), isCancelled: { true })
        }
        #expect(error?.status == 503)
        #expect(error?.message.contains("went away") == true)
    }
}
