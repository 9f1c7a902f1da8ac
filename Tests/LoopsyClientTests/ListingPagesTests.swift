import Foundation
import LoopsyAPI
@testable import LoopsyClient
import LoopsyHTTP
import LoopsyPOSIX
import Testing

/// The client follows a listing's pages to the end, byte-wise, and stops on pages that do not
/// move on: a broken or hostile daemon (a peer, through the proxy) cannot keep it asking.
@Suite struct ListingPagesTests {
    /// Answers `GET /api/v1/context` with pages from `pages`, chosen by the `afterKey` asked for
    /// (nil: the first page), and counts the requests.
    final class Pages: HTTPHandler, Sendable {
        let pages: @Sendable (String?) -> ContextListResponse
        let requests = PlainMutex(0)
        init(_ pages: @escaping @Sendable (String?) -> ContextListResponse) { self.pages = pages }
        func plan(for head: HTTPRequestHead) -> BodyPlan { .buffer(limit: 1 << 20) }
        func payloadTooLarge(for head: HTTPRequestHead, limit: Int) -> HTTPResponse { HTTPResponse(status: 413) }
        func handle(_ request: HTTPRequest) -> HTTPResponse {
            let count = requests.withLock { count -> Int in
                count += 1
                return count
            }
            guard count < 50, let body = try? JSONEncoder().encode(pages(request.query["afterKey"])) else {
                return HTTPResponse(status: 500)
            }
            return HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: Array(body))
        }
    }

    static func entry(_ key: String) -> ContextEntry {
        ContextEntry(key: key, value: "v", fromNodeId: "n", createdAt: 1, updatedAt: 1, ttl: nil, expiresAt: nil, revision: 1)
    }

    static func page(_ keys: [String], more: Bool, next: String? = nil) -> ContextListResponse {
        var page = ContextListResponse(entries: keys.map(entry), more: more)
        if let next { page.nextAfterKey = next }
        return page
    }

    private func listing(_ pages: Pages) throws -> (keys: [String], requests: Int) {
        let server = HTTPServer(handler: pages, options: HTTPServerOptions(host: "127.0.0.1", port: 0))
        try server.start()
        defer { server.stop() }
        let keys = try LoopsyClient(baseURL: "http://127.0.0.1:\(server.port)", apiKey: "k").contextList(prefix: nil).map(\.key)
        return (keys, pages.requests.withLock { $0 })
    }

    @Test func keysThatAreEqualAsStringsButNotAsBytesArePagedPast() throws {
        // Two different keys, canonically equivalent: a String comparison took the second page
        // for one that did not move on, and the rest of the listing was lost.
        let first = "a\u{301}\u{323}", second = "a\u{323}\u{301}"
        #expect(first == second && !first.utf8.elementsEqual(second.utf8))
        let (keys, requests) = try listing(Pages { afterKey in
            guard let afterKey else { return Self.page([first], more: true) }
            return afterKey.utf8.elementsEqual(first.utf8) ? Self.page([second], more: true) : Self.page(["z"], more: false)
        })
        #expect(keys.map { Array($0.utf8) } == [Array(first.utf8), Array(second.utf8), Array("z".utf8)])
        #expect(requests == 3)
    }

    @Test func anEmptyPageThatSaysMoreEndsTheListing() throws {
        let (keys, requests) = try listing(Pages { afterKey in Self.page([], more: true, next: (afterKey ?? "") + "a") })
        #expect(keys.isEmpty && requests == 1)
    }

    @Test func aPageThatDoesNotMoveOnEndsTheListing() throws {
        let (keys, requests) = try listing(Pages { afterKey in
            afterKey == nil ? Self.page(["m"], more: true) : Self.page(["b"], more: true, next: "b")
        })
        #expect(keys == ["m", "b"] && requests == 2)
    }
}
