import CMicroHTTPD
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// An answer a handler cannot give yet because it waits on something slow (another machine):
/// the handler returns `HTTPResponse(deferred:)`, the connection is suspended (no worker thread
/// waits), and `complete` resumes it with the real response.
public final class DeferredResponse: Sendable {
    private struct State {
        var response: HTTPResponse?
        var connection: ConnectionHandle?
        var suspended = false
        var abandoned = false
        var taken = false
        /// `complete` was called (its response may still be on its way through `finalize`).
        var completing = false
        /// `response` has been through `finalize`.
        var finalized = false
        var finalize: (@Sendable (HTTPResponse) -> HTTPResponse)?
        var onAbandon: [@Sendable () -> Void] = []
    }

    private let state = PlainMutex(State())

    public init() {}

    /// Runs on the response when it completes (the dispatcher adds its headers and audits it).
    /// An answer that came before this was set goes through it now: the handler that returned
    /// the deferred response calls this before the server can send anything.
    public func finalize(with transform: @escaping @Sendable (HTTPResponse) -> HTTPResponse) {
        let early = state.withLock { state -> HTTPResponse? in
            state.finalize = transform
            guard let response = state.response, !state.finalized, !state.taken else { return nil }
            state.finalized = true
            return response
        }
        guard let early else { return }
        let final = transform(early)
        let unsent = state.withLock { state -> HTTPResponse? in
            guard !state.abandoned && !state.taken else { return final }
            state.response = final
            return nil
        }
        // Discarded outside the lock: a stream's close handlers run then.
        unsent.map(Self.discard)
    }

    /// Runs `body` once the request ends without waiting for the answer (the client left or
    /// the server stopped first); at once if it already has.
    public func onAbandon(_ body: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            if state.abandoned { return true }
            state.onAbandon.append(body)
            return false
        }
        if now { body() }
    }

    /// Delivers the answer; later calls are ignored.
    public func complete(_ response: HTTPResponse) {
        let first = state.withLock { state -> (Bool, (@Sendable (HTTPResponse) -> HTTPResponse)?) in
            guard !state.completing else { return (false, nil) }
            state.completing = true
            return (true, state.finalize)
        }
        guard first.0 else {
            Self.discard(response)  // answered already: a file it holds is closed, not leaked
            return
        }
        var transform = first.1
        var final = transform.map { $0(response) } ?? response
        while true {
            // A finalize set while the transform ran (or before none was) applies too.
            enum Next { case transform(@Sendable (HTTPResponse) -> HTTPResponse), discard, done }
            let next = state.withLock { state -> Next in
                if transform == nil, let finalize = state.finalize { return .transform(finalize) }
                // Nobody will send it: a file it holds is closed, not leaked (after the lock).
                if state.abandoned { return .discard }
                state.response = final
                state.finalized = transform != nil
                if state.suspended, let connection = state.connection {
                    state.suspended = false
                    MHD_resume_connection(connection.pointer)
                }
                return .done
            }
            switch next {
            case .done: return
            case .discard:
                Self.discard(final)
                return
            case .transform(let late):
                transform = late
                final = late(response)
            }
        }
    }

    /// True once the request ended without waiting for the answer, or its client hung up while
    /// the connection waits suspended (MHD watches no suspended socket, so it is asked here).
    public var isAbandoned: Bool {
        state.withLock { state in
            if state.abandoned { return true }
            guard state.suspended, state.response == nil, let connection = state.connection else { return false }
            return cmhd_client_hung_up(connection.pointer) != 0
        }
    }

    // MARK: Called by HTTPServer on MHD's threads

    /// The answer if it is ready; otherwise the connection is suspended until it is.
    func take(suspending connection: OpaquePointer) -> HTTPResponse? {
        state.withLock { state in
            if let response = state.response {
                state.taken = true
                // It will never be abandoned now: drop what would have run then (its closures
                // hold the answer's Pending, which holds this: a cycle, one per answer, if kept).
                state.onAbandon = []
                state.finalize = nil
                // MHD copies the body: nothing here holds it on (a context PUT's answer holds
                // its value) while the server's WaitRegistry keeps this until its next prune.
                state.response = nil
                return response
            }
            state.connection = ConnectionHandle(pointer: connection)
            if !state.suspended {
                state.suspended = true
                MHD_suspend_connection(connection)
            }
            return nil
        }
    }

    func abandon() {
        let (callbacks, unsent) = state.withLock { state -> ([@Sendable () -> Void], HTTPResponse?) in
            state.abandoned = true
            state.connection = nil
            let unsent = state.taken ? nil : state.response
            state.response = nil
            defer { state.onAbandon = [] }
            return (state.onAbandon, unsent)
        }
        unsent.map(Self.discard)
        callbacks.forEach { $0() }
    }

    private static func discard(_ response: HTTPResponse) { response.discard() }

    var isPending: Bool { state.withLock { !$0.completing && !$0.abandoned } }

    /// The answer as it would be sent, once it is there (for driving a dispatcher without MHD).
    var completedResponse: HTTPResponse? { state.withLock { $0.finalized || $0.finalize == nil ? $0.response : nil } }
}

/// What a server's connections wait on (deferred answers, held bodies), so that stop() can end
/// the waits still open: MHD aborts the process when stopped with a connection suspended.
/// Items that are `done` are dropped as new ones come: all of them once the list has doubled
/// since the last time, so an add costs O(1) on average however many wait. (Checked at every
/// add, a PUT at 50 connections asked fifty deferred answers whether they were done, a lock
/// each: 3% of its instructions.) So the list holds at most `minimum`, or twice what waited at
/// the last prune; as no more wait than there are connections, at most twice the connection
/// limit. A finished item must therefore hold little: a deferred answer lets go of its
/// response once MHD has it (`take`) or nobody will send it (`abandon`).
final class WaitRegistry<Item: Sendable>: Sendable {
    static var minimum: Int { 32 }

    private struct State {
        var items: [Item] = []
        /// Prune when `items` reaches this many.
        var pruneAt = WaitRegistry.minimum
        var closed = false
    }
    private let state = PlainMutex(State())
    private let done: @Sendable (Item) -> Bool

    init(done: @escaping @Sendable (Item) -> Bool) { self.done = done }

    /// False once the server is stopping: the caller ends the wait at once instead.
    func add(_ item: Item) -> Bool {
        state.withLock { state in
            guard !state.closed else { return false }
            if state.items.count >= state.pruneAt {
                state.items.removeAll(where: done)
                state.pruneAt = max(Self.minimum, 2 * state.items.count)
            }
            state.items.append(item)
            return true
        }
    }

    func reopen() { state.withLock { $0.closed = false } }

    /// Items held, done or not (tests look).
    var count: Int { state.withLock { $0.items.count } }

    /// Takes no more, and gives the items not done yet.
    func close() -> [Item] {
        state.withLock { state in
            state.closed = true
            defer {
                state.items.removeAll()
                state.pruneAt = Self.minimum
            }
            return state.items.filter { !done($0) }
        }
    }
}
