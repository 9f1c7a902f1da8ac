import LoopsyAPI
import Testing

/// The one spelling of every REST path, for the route table and the clients.
@Suite struct APIPathTests {
    @Test func patternsCarryTheAPIBase() {
        #expect(API.contextEntry.pattern == "/api/v1/context/{key}")
        #expect(API.peerForward.pattern == "/api/v1/peers/{peer}/{path+}")
        #expect(API.health() == "/api/v1/health")
    }

    /// Values are percent-encoded, so a key with "/", "?", "#", spaces or non-ASCII stays one
    /// segment and never adds a query or a fragment.
    @Test func valuesAreOneSegmentEach() {
        #expect(API.contextEntry("a/b c?d#é") == "/api/v1/context/a%2Fb%20c%3Fd%23%C3%A9")
        #expect(API.inboxAck("m-1") == "/api/v1/messages/inbox/m-1/ack")
        #expect(API.contextEntry("unreserved-._~AZaz09") == "/api/v1/context/unreserved-._~AZaz09")
        // A segment of dots alone would be removed by a client with the one before it (curl does).
        #expect(API.contextEntry("..") == "/api/v1/context/%2E%2E" && API.contextEntry(".") == "/api/v1/context/%2E")
        #expect(API.peerForward("..", "context/k") == "/api/v1/peers/%2E%2E/context/k")
        #expect(API.contextEntry("...") == "/api/v1/context/..." && API.contextEntry("a..") == "/api/v1/context/a..")
        // `{path+}` is the rest of a path: its slashes stay.
        #expect(API.peerForward("my laptop", "context/k") == "/api/v1/peers/my%20laptop/context/k")
    }

    @Test func queriesKeepOrderEncodeValuesAndLeaveOutNil() {
        let state: String? = nil
        #expect(API.outbox(query: ["limit": 5, "state": state]) == "/api/v1/messages/outbox?limit=5")
        #expect(API.context(query: ["prefix": "a&b=c"]) == "/api/v1/context?prefix=a%26b%3Dc")
        #expect(API.inbox(query: ["unread": 1, "after": Int64(7), "limit": 2, "wait": 0])
                == "/api/v1/messages/inbox?unread=1&after=7&limit=2&wait=0")
        #expect(API.audit(query: []) == "/api/v1/audit")
    }
}
