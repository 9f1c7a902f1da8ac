import Foundation
import LoopsyAPI
import LoopsyConfig
import LoopsyCore
import LoopsyPOSIX
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

    /// "a" and the smallest fifty "n…" names are refused, then one in seven: every page size
    /// still shows every other name once, by bytes ("e" + combining accent before "n…", the
    /// precomposed "é" after).
    @Test func pagesShowEveryNameTheRulesAllowOnceInByteOrder() throws {
        let names = (0..<300).map { String(format: "n%03d", $0) } + ["\u{e9}", "e\u{301}", "Z", "a"]
        let folder = try Folder(names)
        let denied = ["a"] + (0..<300).filter { $0 < 50 || $0 % 7 == 0 }.map { String(format: "n%03d", $0) }
        let service = folder.service(denying: denied)
        let expected = Self.bytewise(names.filter { !denied.contains($0) })
        #expect(expected.first == "Z" && expected.count == 300 + 4 - denied.count)
        #expect(expected.last.map { Array($0.utf8) } == [0xC3, 0xA9])
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

    /// A listing whose caller went away stops: before it opens the directory when the caller
    /// left while it waited, and within 4096 names when the caller leaves during the read.
    @Test func aCancelledListingStops() throws {
        let folder = try Folder((0..<10_000).map { "g\($0)" })
        let service = folder.service()
        let gone = #expect(throws: APIError.self) {
            _ = try service.list(folder.root + "/no-such-directory", access: TransferAccess(owner: false),
                                 isCancelled: { true })
        }
        #expect(gone?.status == 503 && gone?.message.contains("went away") == true)
        var asked = 0
        let leaving = #expect(throws: APIError.self) {
            _ = try service.list(folder.root, access: TransferAccess(owner: false), isCancelled: {
                asked += 1
                return asked > 1
            })
        }
        #expect(leaving?.status == 503 && asked == 2)
    }

    /// Holds both threads of `service`'s listing pool until `release`: what is submitted next
    /// waits in the queue.
    static func occupyThePool(of service: TransferService) -> DispatchSemaphore {
        let started = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        for _ in 0..<service.listing.threads {
            #expect(service.listing.submit {
                started.signal()
                release.wait()
            })
        }
        for _ in 0..<service.listing.threads { #expect(started.wait(timeout: .now() + 30) == .success) }
        return release
    }

    /// Listings wait for a pool of their own, two at a time and eight queued: the next is
    /// refused at once with 503 busy_listing and Retry-After, and each admitted one is answered.
    @Test func listingsBeyondThePoolAreRefusedAndTheRestAnswered() throws {
        let folder = try Folder((0..<12_000).map { "h\($0)" })
        let service = folder.service()
        let release = Self.occupyThePool(of: service)
        let answered = DispatchSemaphore(value: 0)
        let pages = LockedCounter()
        var admitted = 0
        var refusal: APIError?
        while refusal == nil && admitted < 20 {
            do {
                guard case .later(let pending) = try service.listLater(folder.root, afterName: nil,
                                                                        access: TransferAccess(owner: false)) else {
                    Issue.record("a listing was answered on the caller's thread")
                    break
                }
                admitted += 1
                pending.whenComplete { result in
                    if case .success(let page) = result, page.files.count == TransferService.listPage, page.more {
                        pages.add()
                    }
                    answered.signal()
                }
            } catch let error as APIError {
                refusal = error
            }
        }
        #expect(admitted == 8)
        #expect(refusal?.status == 503 && refusal?.code == "busy_listing" && refusal?.headers["Retry-After"] == "2")
        for _ in 0..<service.listing.threads { release.signal() }
        for _ in 0..<admitted { #expect(answered.wait(timeout: .now() + 120) == .success) }
        #expect(pages.value == admitted)
    }

    /// A listing whose client hangs up while it waits in the queue ends with 503 without
    /// opening its directory (which does not exist: opened, it would answer 404).
    @Test func aListingCancelledInTheQueueEndsWithoutOpeningItsDirectory() throws {
        let folder = try Folder(["one"])
        let service = folder.service()
        let release = Self.occupyThePool(of: service)
        guard case .later(let waiting) = try service.listLater(folder.root + "/absent", afterName: nil,
                                                                access: TransferAccess(owner: false)),
              case .later(let kept) = try service.listLater(folder.root + "/absent", afterName: nil,
                                                             access: TransferAccess(owner: false)) else {
            Issue.record("a listing was answered on the caller's thread")
            return
        }
        waiting.cancel()
        let answered = DispatchSemaphore(value: 0)
        let statuses = LockedList()
        for pending in [waiting, kept] {
            pending.whenComplete { result in
                if case .failure(let error as APIError) = result { statuses.add(error.status) }
                answered.signal()
            }
        }
        for _ in 0..<service.listing.threads { release.signal() }
        for _ in 0..<2 { #expect(answered.wait(timeout: .now() + 60) == .success) }
        // The one still awaited opened its directory and found none; the other did not look.
        #expect(statuses.values.sorted() == [404, 503])
    }
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

final class LockedList: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [Int] = []
    func add(_ value: Int) { lock.withLock { list.append(value) } }
    var values: [Int] { lock.withLock { list } }
}
