import Dispatch
import CMicroHTTPD
import LoopsyPOSIX
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Who may hold a connection open, and for how long without finishing a request head.
///
/// - Remote addresses share `maxConnections`, and each holds at most `maxPerAddress` of them:
///   one host cannot take every slot. Refused connections are closed at accept.
/// - Loopback clients (the CLI, loopsy-mcp, the dashboard) are not counted against either: on
///   top of `maxConnections`, MHD keeps `loopbackReserve` slots that only they can reach,
///   however many remote connections are open.
/// - Every connection, loopback ones too, must finish each request within `headerTimeout`
///   seconds of connecting or of its previous request's end: its head, and its body unless it
///   is a streamed upload the dispatcher has admitted (authenticated, within limits). MHD's own
///   timeout is an idle one that a client dribbling a byte every few seconds never triggers.
///   Loopback connections once had no deadline: any local process, with no key, held every
///   slot (1,100 connections each sending a header line every 10 s kept the owner out).
final class ConnectionBudget: Sendable {
    struct Limits: Sendable {
        var maxConnections: Int
        var maxPerAddress: Int
        var headerTimeout: Double
    }

    /// One open connection, kept in MHD's socket context for the connection's life (retained
    /// from `opened` to `closed`): a request's start and end change its deadline with one atomic
    /// store, not a lock and a dictionary lookup.
    final class Slot: Sendable {
        let fd: Int32
        /// The budget it counts against (`budgetKey`); nil for a loopback client.
        let address: String?
        /// When the connection began waiting for a request head, in monotonic nanoseconds;
        /// `running` while a request runs.
        fileprivate let waitingSince: Atomic<Int64>
        static let running = Int64.max

        fileprivate init(fd: Int32, address: String?, now: Int64) {
            self.fd = fd
            self.address = address
            waitingSince = Atomic(now)
        }

        /// The request no longer counts against the deadline (its handler runs, or an
        /// admitted upload streams).
        func requestStarted() { waitingSince.store(Self.running, ordering: .relaxed) }

        /// The request ended; the connection may carry another, whose head has its own deadline.
        func requestEnded() { waitingSince.store(MonotonicClock.nanoseconds(), ordering: .relaxed) }

        /// The slot `opened` put in `connection`'s socket context. Only on the connection's own
        /// thread, between MHD's STARTED and CLOSED notifications (the connection is freed after).
        static func of(_ connection: OpaquePointer) -> Slot? {
            cmhd_socket_context(connection).map { Unmanaged<Slot>.fromOpaque($0).takeUnretainedValue() }
        }
    }

    private struct State {
        /// Open connections by their slot; `true` once `sweep` has cut one.
        var slots: [ObjectIdentifier: (slot: Slot, cut: Bool)] = [:]
        var perAddress: [String: Int] = [:]
        var remote = 0
        var timer: (any DispatchSourceTimer)?
    }

    let limits: Limits
    private let state = PlainMutex(State())
    private let queue = DispatchQueue(label: "loopsy.http.deadlines")

    init(limits: Limits) { self.limits = limits }

    static func isLoopback(_ address: UnsafePointer<sockaddr>) -> Bool {
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            let raw = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
            return raw >> 24 == 127
        case AF_INET6:
            let bytes = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                withUnsafeBytes(of: pointer.pointee.sin6_addr) { Array($0) }
            }
            if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }  // ::1
            // ::ffff:127.x.y.z, an IPv4 loopback client of a dual-stack socket
            return bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF && bytes[12] == 127
        default:
            return false
        }
    }

    /// The budget a remote address counts against: IPv4 addresses one by one, IPv6 ones by /64
    /// (one host usually holds a whole /64, and would otherwise have 2^64 budgets).
    static func budgetKey(_ address: UnsafePointer<sockaddr>) -> String {
        guard Int32(address.pointee.sa_family) == AF_INET6 else { return SocketAddress.describe(address) }
        let bytes = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
            withUnsafeBytes(of: pointer.pointee.sin6_addr) { Array($0) }
        }
        // An IPv4-mapped address is an IPv4 client.
        return SocketAddress.network64(bytes) ?? SocketAddress.describe(address)
    }

    /// Accept policy: may a connection from `address` open?
    func admits(_ address: UnsafePointer<sockaddr>) -> Bool {
        if Self.isLoopback(address) { return true }
        let key = Self.budgetKey(address)
        return state.withLock { state in
            state.remote < limits.maxConnections && state.perAddress[key, default: 0] < limits.maxPerAddress
        }
    }

    /// A connection opened: its slot, retained, goes in `context` (MHD's socket context).
    func opened(fd: Int32, address: UnsafePointer<sockaddr>?, context: UnsafeMutablePointer<UnsafeMutableRawPointer?>) {
        let loopback = address.map(Self.isLoopback) ?? false
        let slot = Slot(fd: fd, address: loopback ? nil : address.map(Self.budgetKey) ?? "unknown",
                        now: MonotonicClock.nanoseconds())
        context.pointee = Unmanaged.passRetained(slot).toOpaque()
        state.withLock { state in
            state.slots[ObjectIdentifier(slot)] = (slot, false)
            guard let key = slot.address else { return }
            state.remote += 1
            state.perAddress[key, default: 0] += 1
        }
    }

    /// MHD calls this before it closes the socket, so `sweep` never touches a reused descriptor.
    func closed(context: UnsafeMutablePointer<UnsafeMutableRawPointer?>) {
        guard let pointer = context.pointee else { return }
        context.pointee = nil
        let slot = Unmanaged<Slot>.fromOpaque(pointer).takeRetainedValue()
        state.withLock { state in
            guard state.slots.removeValue(forKey: ObjectIdentifier(slot)) != nil, let key = slot.address else { return }
            state.remote -= 1
            let left = state.perAddress[key, default: 1] - 1
            state.perAddress[key] = left > 0 ? left : nil
        }
    }

    var remoteConnections: Int { state.withLock { $0.remote } }

    func start() {
        guard limits.headerTimeout > 0 else { return }
        state.withLock { state in
            guard state.timer == nil else { return }
            let timer = DispatchSource.makeTimerSource(queue: queue)
            timer.schedule(deadline: .now() + 1, repeating: 1, leeway: .milliseconds(100))
            timer.setEventHandler { [weak self] in self?.sweep() }
            timer.resume()
            state.timer = timer
        }
    }

    func stop() {
        state.withLock { state in
            state.timer?.cancel()
            state.timer = nil
        }
    }

    /// Cuts connections whose request head is overdue: shutdown() makes MHD see the end of
    /// the stream and close the connection on its own thread. Done under the lock that `closed`
    /// takes, so the descriptor is still this connection's.
    func sweep() {
        let cutoff = MonotonicClock.nanoseconds() - Int64(min(limits.headerTimeout, 1e6) * 1e9)
        state.withLock { state in
            for (key, entry) in state.slots where !entry.cut {
                // (A request never counts: `running` is above every cutoff. One whose head came
                // between this read and the shutdown is cut: the head came late all the same.)
                guard entry.slot.waitingSince.load(ordering: .relaxed) < cutoff else { continue }
                shutdown(entry.slot.fd, Int32(SHUT_RDWR))
                state.slots[key]?.cut = true
            }
        }
    }
}

enum MonotonicClock {
    static func nanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}
