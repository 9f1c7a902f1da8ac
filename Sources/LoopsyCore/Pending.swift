import LoopsyPOSIX

/// An answer a domain operation gives later: a wait for a change, a hash on a pool, a prompt's
/// decision. The one that serves it (LoopsyServer turns it into a suspended HTTP answer)
/// registers `whenComplete`; the domain calls `complete` once. Nothing here knows HTTP.
///
/// Its methods are inlinable, so they are specialized where they are called: a generic one
/// looked up the metadata of `Result<Value, any Error>` and of its state each time, 3% of the
/// instructions of a context PUT.
public final class Pending<Value: Sendable>: Sendable {
    @usableFromInline struct State {
        @usableFromInline var result: Result<Value, any Error>?
        @usableFromInline var handlers: [@Sendable (Result<Value, any Error>) -> Void] = []
        @usableFromInline var cancelled = false
        @usableFromInline var cleanups: [@Sendable () -> Void] = []
        @usableFromInline var cancelledCheck: (@Sendable () -> Bool)?

        @usableFromInline init() {}
    }
    @usableFromInline let state: PlainMutex<State>

    @inlinable public init() { state = PlainMutex(State()) }

    @inlinable public func succeed(_ value: Value) { complete(.success(value)) }
    @inlinable public func fail(_ error: any Error) { complete(.failure(error)) }

    /// Delivers the answer; later calls are ignored.
    @inlinable public func complete(_ result: Result<Value, any Error>) {
        let handlers = state.withLock { state -> [@Sendable (Result<Value, any Error>) -> Void] in
            guard state.result == nil else { return [] }
            state.result = result
            defer { state.handlers = [] }
            return state.handlers
        }
        handlers.forEach { $0(result) }
    }

    /// Calls `handler` once with the answer: at once if it is already there.
    @inlinable public func whenComplete(_ handler: @escaping @Sendable (Result<Value, any Error>) -> Void) {
        let ready = state.withLock { state -> Result<Value, any Error>? in
            if let result = state.result { return result }
            state.handlers.append(handler)
            return nil
        }
        if let ready { handler(ready) }
    }

    @inlinable public var isComplete: Bool { state.withLock { $0.result != nil } }

    // MARK: The waiting side going away

    /// Nobody waits for the answer any more (its client left): the domain's clean-ups run.
    @inlinable public func cancel() {
        let cleanups = state.withLock { state -> [@Sendable () -> Void] in
            guard !state.cancelled else { return [] }
            state.cancelled = true
            defer { state.cleanups = [] }
            return state.cleanups
        }
        cleanups.forEach { $0() }
    }

    /// Runs `cleanup` when the answer is no longer awaited (at once if it already is not).
    @inlinable public func onCancel(_ cleanup: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            if state.cancelled { return true }
            state.cleanups.append(cleanup)
            return false
        }
        if now { cleanup() }
    }

    /// For a server that can only be asked whether the client is still there.
    @inlinable public func cancelled(when check: @escaping @Sendable () -> Bool) {
        state.withLock { $0.cancelledCheck = check }
    }

    /// True once nobody waits for the answer: long work checks it and stops.
    @inlinable public var isCancelled: Bool {
        let (cancelled, check) = state.withLock { ($0.cancelled, $0.cancelledCheck) }
        return cancelled || check?() == true
    }
}

/// What a domain operation answers: a value now, or one that comes later.
public enum Answer<Value: Sendable>: Sendable {
    case now(Value)
    case later(Pending<Value>)

    /// Runs `body` once the answer is settled, value or error: at once for `.now`.
    @inlinable public func whenSettled(_ body: @escaping @Sendable () -> Void) {
        switch self {
        case .now: body()
        case .later(let pending): pending.whenComplete { _ in body() }
        }
    }
}
