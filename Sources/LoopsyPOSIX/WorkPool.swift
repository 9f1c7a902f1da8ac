import CPosix
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Threads of our own, for work that blocks (hashing a file, a job's I/O loop, a health check,
/// a relayed call). Blocking work never runs on `DispatchQueue.global()`: libdispatch grows that
/// pool by about one thread a second, so a few hundred blocked items there delay every wake-up,
/// long-poll timeout and timer in the daemon by seconds.
public enum DedicatedThread {
    private final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    /// Starts a detached thread named `name` (at most 15 bytes show) running `body`. False when
    /// the system has no thread to give (the caller refuses the work).
    @discardableResult
    public static func start(_ name: String, stackBytes: Int = 8 << 20,
                             _ body: @escaping @Sendable () -> Void) -> Bool {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        pthread_attr_setstacksize(&attributes, stackBytes)
        // Linux keeps 15 bytes of a thread's name.
        let shortName = String(decoding: Array(name.utf8.prefix(15)), as: UTF8.self)
        let box = Unmanaged.passRetained(Body {
            cposix_set_thread_name(shortName)
            body()
        }).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, &attributes, { argument in
            guard let argument else { return nil }
            Unmanaged<Body>.fromOpaque(argument).takeRetainedValue().run()
            return nil
        }, box)
        if result != 0 {
            Unmanaged<Body>.fromOpaque(box).release()
            return false
        }
        return true
    }
}

/// Runs `pass` every `interval` on a thread of its own until `stop` (or until `pass` returns
/// false: its owner is gone): for periodic work that blocks (SQLite writes that wait for the
/// writer lock behind context writes, pauses between prune chunks), which on the shared
/// dispatch pool would hold a thread that wake-ups and long-poll answers need.
public final class PeriodicThread: Sendable {
    private let wake = DispatchSemaphore(value: 0)
    private let ended = DispatchSemaphore(value: 0)
    private let stopping = Atomic<Bool>(false)

    private init() {}

    public static func start(_ name: String, every interval: DispatchTimeInterval, stackBytes: Int = 1 << 20,
                             _ pass: @escaping @Sendable () -> Bool) -> PeriodicThread {
        let periodic = PeriodicThread()
        let loop: @Sendable () -> Void = {
            while periodic.wake.wait(timeout: .now() + interval) == .timedOut, !periodic.stopping.load(ordering: .relaxed),
                  pass() {}
            periodic.ended.signal()
        }
        if !DedicatedThread.start(name, stackBytes: stackBytes, loop) {
            // No thread to be had: on the shared pool (holding one of its threads) rather than not at all.
            DispatchQueue.global().async(execute: loop)
        }
        return periodic
    }

    /// Puts `thread` (nil: none) in `slot` and stops the one it replaces: a second start
    /// replaces the first thread, and a stop is `replace(in: slot, with: nil)`.
    public static func replace(in slot: PlainMutex<PeriodicThread?>, with thread: PeriodicThread?) {
        slot.withLock { previous in
            defer { previous = thread }
            return previous
        }?.stop()
    }

    /// Ends the thread, after the pass it may be in (a later call returns at once). Not from
    /// within `pass`: it would wait for itself.
    public func stop() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        wake.signal()
        ended.wait()
    }
}

/// A bounded pool of dedicated threads: at most `threads` items run at once and at most
/// `queueLimit` more wait. `submit` refuses beyond that, so a flood of slow requests gets a 503
/// instead of an ever longer queue. Threads start on demand and end when the queue is empty.
public final class WorkPool: Sendable {
    private struct State {
        var queue: [@Sendable () -> Void] = []
        var head = 0
        var workers = 0
        var running = 0
    }
    public let name: String
    public let threads: Int
    public let queueLimit: Int
    private let state = PlainMutex(State())

    public init(name: String, threads: Int, queueLimit: Int) {
        self.name = name
        self.threads = max(1, threads)
        self.queueLimit = max(0, queueLimit)
    }

    /// Items running or waiting.
    public var load: Int { state.withLock { $0.running + $0.queue.count - $0.head } }

    /// Queues `work`; false (and nothing queued) when the pool is full.
    @discardableResult
    public func submit(_ work: @escaping @Sendable () -> Void) -> Bool {
        let startWorker = state.withLock { state -> Bool? in
            let waiting = state.queue.count - state.head
            guard waiting < queueLimit || state.workers < threads else { return nil }
            state.queue.append(work)
            guard state.workers < threads else { return false }
            state.workers += 1
            return true
        }
        guard let startWorker else { return false }
        if startWorker, !DedicatedThread.start(name, { [self] in drain() }) {
            // No thread to be had: the worker counted drains on the shared dispatch pool instead
            // (holding one of its threads, as PeriodicThread does) rather than not at all. Taking
            // the item back instead could not be done right: a submit that found this worker
            // counted had queued its own item and been told it would run.
            DispatchQueue.global().async { [self] in drain() }
        }
        return true
    }

    private func drain() {
        while true {
            let next = state.withLock { state -> (@Sendable () -> Void)? in
                guard state.head < state.queue.count else {
                    state.queue.removeAll(keepingCapacity: true)
                    state.head = 0
                    state.workers -= 1
                    return nil
                }
                let work = state.queue[state.head]
                state.head += 1
                state.running += 1
                if state.head > 64 && state.head * 2 > state.queue.count {
                    state.queue.removeFirst(state.head)
                    state.head = 0
                }
                return work
            }
            guard let next else { return }
            next()
            state.withLock { $0.running -= 1 }
        }
    }
}
