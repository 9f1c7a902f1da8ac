import CMicroHTTPD
import LoopsyPOSIX

/// A response body produced over time by another thread (SSE events, a long job's result).
///
/// The producer calls `write` and finally `finish`; MHD pulls bytes through `read`. When MHD
/// asks and there is nothing yet, the connection is suspended (returning 0 would make MHD spin)
/// and the next `write` or `finish` resumes it. Suspend and resume happen under one lock, so a
/// write can never slip between "empty" and "suspended" and be missed.
public final class HTTPStream: Sendable {
    private struct State {
        var buffer: [UInt8] = []
        var offset = 0
        var finished = false
        var aborted = false
        var closed = false
        var connection: ConnectionHandle?
        var suspended = false
        var onClose: (@Sendable () -> Void)?
        var onDone: [@Sendable () -> Void] = []
        /// Takes the stream out of its server's registry once MHD is done with it.
        var unregister: (@Sendable () -> Void)?
    }

    private let state = PlainMutex(State())
    /// Bytes the stream holds for a slow client before `write` starts refusing.
    public let bufferLimit: Int

    public init(bufferLimit: Int = 4 * 1024 * 1024) { self.bufferLimit = bufferLimit }

    /// Queues bytes for the client. False when the client has gone, or when it is so far behind
    /// that the buffer is full (the caller decides whether to drop or stop); `bounded: false`
    /// queues regardless, for a final message that must arrive whole. A piece larger than the
    /// whole buffer is taken when the buffer is empty: refused every time, it would stop the
    /// stream for good (a task's event can be up to 8 MiB).
    @discardableResult
    public func write(_ bytes: [UInt8], bounded: Bool = true) -> Bool {
        state.withLock { state in
            guard !state.closed, !state.finished else { return false }
            let waiting = state.buffer.count - state.offset
            if bounded && waiting > 0 && waiting + bytes.count > bufferLimit { return false }
            state.buffer.append(contentsOf: bytes)
            Self.wake(&state)
            return true
        }
    }

    /// No more bytes will come; the response ends once the buffer is sent.
    public func finish() {
        state.withLock { state in
            state.finished = true
            Self.wake(&state)
        }
    }

    /// Ends the response as broken: the client sees the connection drop instead of a clean end
    /// (a relay that lost its source mid-way must not look complete).
    public func abort() {
        state.withLock { state in
            state.finished = true
            state.aborted = true
            Self.wake(&state)
        }
    }

    /// Ends the response at once as broken, dropping what it holds for the client: for a client
    /// that may no longer have it (its credential ended), where `abort` sends what is queued first.
    public func cut() {
        state.withLock { state in
            state.buffer = []
            state.offset = 0
            state.finished = true
            state.aborted = true
            Self.wake(&state)
        }
    }

    /// True once the client disconnected or the response was torn down.
    public var isClosed: Bool { state.withLock { $0.closed } }

    /// True once the client is gone, noticed even while the stream waits suspended for its next
    /// bytes (MHD watches no suspended socket; it is asked directly, without writing anything).
    public var clientHungUp: Bool {
        state.withLock { state in
            if state.closed { return true }
            guard state.suspended, let connection = state.connection else { return false }
            return cmhd_client_hung_up(connection.pointer) != 0
        }
    }

    /// Runs `handler` once when the client goes away before the stream finished (at once if it
    /// already has).
    public func onClose(_ handler: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            if state.closed { return true }
            state.onClose = handler
            return false
        }
        if runNow { handler() }
    }

    /// Runs `handler` once when the stream is over for good: everything was sent, or the client
    /// went away, or the response was never sent (at once if that is so already).
    public func whenDone(_ handler: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            if state.closed { return true }
            state.onDone.append(handler)
            return false
        }
        if runNow { handler() }
    }

    // MARK: Called by HTTPServer on MHD's threads

    func attach(_ connection: OpaquePointer) {
        state.withLock { $0.connection = ConnectionHandle(pointer: connection) }
    }

    func onDetach(_ unregister: @escaping @Sendable () -> Void) {
        state.withLock { $0.unregister = unregister }
    }

    enum ReadResult { case bytes(Int), wait, end, error }

    func read(into destination: UnsafeMutablePointer<CChar>, max: Int) -> ReadResult {
        state.withLock { state in
            let available = state.buffer.count - state.offset
            if available > 0 {
                let count = min(available, max)
                state.buffer.withUnsafeBytes { source in
                    UnsafeMutableRawPointer(destination).copyMemory(from: source.baseAddress! + state.offset, byteCount: count)
                }
                state.offset += count
                if state.offset == state.buffer.count {
                    state.buffer.removeAll(keepingCapacity: true)
                    state.offset = 0
                } else if state.offset > 1 << 20 {
                    state.buffer.removeFirst(state.offset)
                    state.offset = 0
                }
                return .bytes(count)
            }
            if state.aborted { return .error }
            if state.finished || state.closed { return .end }
            if let connection = state.connection, !state.suspended {
                state.suspended = true
                MHD_suspend_connection(connection.pointer)
            }
            return .wait
        }
    }

    /// The response is being destroyed: the client got everything, or went away (or it is
    /// dropped before it was ever sent).
    func detach() {
        let (handler, unregister, done) = state.withLock { state
            -> ((@Sendable () -> Void)?, (@Sendable () -> Void)?, [@Sendable () -> Void]) in
            // Aborted or cut is not finished: its producer hears of the end (a relay, a job).
            let wasFinished = state.finished && !state.aborted && state.buffer.count == state.offset
            state.closed = true
            state.connection = nil
            state.suspended = false
            // Nobody will read what is left: the memory goes now, not when the last reference does.
            state.buffer = []
            state.offset = 0
            defer {
                state.onClose = nil
                state.unregister = nil
                state.onDone = []
            }
            return (wasFinished ? nil : state.onClose, state.unregister, state.onDone)
        }
        unregister?()
        handler?()
        done.forEach { $0() }
    }

    private static func wake(_ state: inout State) {
        if state.suspended, let connection = state.connection {
            state.suspended = false
            MHD_resume_connection(connection.pointer)
        }
    }
}

/// An MHD connection pointer, only ever used under the stream's lock while MHD keeps the
/// connection alive (until `detach`).
struct ConnectionHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// The streams a server is sending, so stop() can end them (MHD must not be stopped with a
/// connection suspended on one).
final class StreamRegistry: Sendable {
    private struct State {
        var streams: [ObjectIdentifier: HTTPStream] = [:]
        var closed = false
    }
    private let state = PlainMutex(State())

    /// False once the server is stopping.
    func add(_ stream: HTTPStream) -> Bool {
        let id = ObjectIdentifier(stream)
        let added = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.streams[id] = stream
            return true
        }
        // A stream leaves the table when MHD is done with it.
        if added { stream.onDetach { [weak self] in self?.state.withLock { _ = $0.streams.removeValue(forKey: id) } } }
        return added
    }

    func reopen() { state.withLock { $0.closed = false } }

    func closeAll() {
        let open = state.withLock { state -> [HTTPStream] in
            state.closed = true
            defer { state.streams.removeAll() }
            return Array(state.streams.values)
        }
        for stream in open where !stream.isClosed { stream.abort() }
    }
}
