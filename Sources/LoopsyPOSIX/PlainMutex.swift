#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A lock around `value` on a plain (non-priority-inheriting) pthread mutex.
///
/// Swift's `Synchronization.Mutex` is a priority-inheritance futex on Linux: every contended
/// acquisition goes through the kernel's rt_mutex, after a spin in user space. With two HTTP
/// workers taking the same store lock that was 13% of loopsyd's time at 6,000 context writes/s
/// (`rt_mutex_slowlock_block` and `_MutexHandle._lockSlow` in perf). A plain mutex sleeps on
/// an ordinary futex and costs one atomic operation when nobody else holds it.
///
/// Same shape as `Mutex`: the value is reachable only inside `withLock`. Taking it again on the
/// thread that holds it is a bug: debug builds (the tests) stop there, as `Mutex` did.
public final class PlainMutex<Value>: @unchecked Sendable {
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Only `withLock` reaches it, holding the mutex: no two accesses can overlap, so the
    /// runtime's dynamic exclusivity check (`swift_beginAccess`, a lookup in a per-thread set) is
    /// left out of every lock taken.
    @exclusivity(unchecked) @usableFromInline var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        #if DEBUG
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ERRORCHECK))
        pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
        #else
        pthread_mutex_init(mutex, nil)
        #endif
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the value while holding the lock (not reentrant: `body` must not take it again).
    @inlinable
    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        let locked = pthread_mutex_lock(mutex)
        precondition(locked == 0, "PlainMutex: the lock was taken again by the thread that holds it")
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
