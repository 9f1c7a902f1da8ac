import Dispatch
import LoopsyPOSIX
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

    private struct Entry {
        var fd: Int32
        var address: String
        var loopback: Bool
        /// When the connection began waiting for a request head (nil while a request runs).
        var waitingSince: Double?
        var cut = false
    }

    private struct State {
        var entries: [UInt: Entry] = [:]
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
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return SocketAddress.describe(address)
        }
        return bytes[0..<8].map { String($0, radix: 16) }.joined(separator: ":") + "::/64"
    }

    /// Accept policy: may a connection from `address` open?
    func admits(_ address: UnsafePointer<sockaddr>) -> Bool {
        if Self.isLoopback(address) { return true }
        let key = Self.budgetKey(address)
        return state.withLock { state in
            state.remote < limits.maxConnections && state.perAddress[key, default: 0] < limits.maxPerAddress
        }
    }

    func opened(_ connection: OpaquePointer, fd: Int32, address: UnsafePointer<sockaddr>?) {
        let loopback = address.map(Self.isLoopback) ?? false
        let key = address.map(Self.budgetKey) ?? "unknown"
        let now = MonotonicClock.seconds()
        state.withLock { state in
            state.entries[UInt(bitPattern: connection)] = Entry(fd: fd, address: key, loopback: loopback, waitingSince: now)
            guard !loopback else { return }
            state.remote += 1
            state.perAddress[key, default: 0] += 1
        }
    }

    /// MHD calls this before it closes the socket, so `sweep` never touches a reused descriptor.
    func closed(_ connection: OpaquePointer) {
        state.withLock { state in
            guard let entry = state.entries.removeValue(forKey: UInt(bitPattern: connection)), !entry.loopback else { return }
            state.remote -= 1
            let left = state.perAddress[entry.address, default: 1] - 1
            state.perAddress[entry.address] = left > 0 ? left : nil
        }
    }

    /// The request no longer counts against the deadline (its handler runs, or an admitted
    /// upload streams).
    func requestStarted(_ connection: OpaquePointer) {
        state.withLock { $0.entries[UInt(bitPattern: connection)]?.waitingSince = nil }
    }

    /// The request ended; the connection may carry another, whose head has its own deadline.
    func requestEnded(_ connection: OpaquePointer) {
        let now = MonotonicClock.seconds()
        state.withLock { $0.entries[UInt(bitPattern: connection)]?.waitingSince = now }
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
        let cutoff = MonotonicClock.seconds() - limits.headerTimeout
        state.withLock { state in
            for (key, entry) in state.entries where !entry.cut {
                guard let since = entry.waitingSince, since < cutoff else { continue }
                shutdown(entry.fd, Int32(SHUT_RDWR))
                state.entries[key]?.cut = true
            }
        }
    }
}

enum MonotonicClock {
    static func seconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
