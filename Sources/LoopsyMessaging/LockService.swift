import Dispatch
import LoopsyAPI
import LoopsyCore
import LoopsyPOSIX
import LoopsyStore

/// Locks with leases, for agents on several machines that must not do the same work twice. A
/// lock lives on the node that serves it; agents elsewhere take it through forwarding. A taker
/// may wait (`?wait=S`): it gets a `Pending` answer (no thread waits), completed the moment the
/// lock is released or its lease ends, in the order the waiters came.
public final class LockService: Sendable {
    /// What an acquisition comes to: the lock (201), or who holds it (409 `lock_held`).
    public enum Outcome: Sendable {
        case taken(LockInfo)
        case held(LockHeldBody)
    }

    public let store: LockStore
    private let changes: ChangeBus?
    /// Locks held at once, at most.
    public static let maxLocks = 10_000
    /// Requests waiting for a lock, at most (each holds a suspended connection).
    public static let maxWaiters = 1_000

    private struct Waiter {
        var id: UInt64
        var holder: String
        var owner: String
        var ttlMillis: Int64
        var answer: Pending<Outcome>
    }
    private struct State {
        var next: UInt64 = 0
        /// By the name's bytes, as the store tells locks apart (see BytewiseKey): keyed by String,
        /// a waiter for "K" was handed "\u{212A}" (Kelvin sign), another lock in SQLite.
        var waiters: [BytewiseKey: [Waiter]] = [:]
        var count = 0
    }
    private let state = PlainMutex(State())
    /// Timers (wait deadlines, lease ends) and hand-overs run here, never on an HTTP worker.
    private let queue = DispatchQueue(label: "loopsy.locks")

    public init(store: LockStore, changes: ChangeBus?) {
        self.store = store
        self.changes = changes
    }

    /// Takes `name`, or waits up to `wait` seconds for it. 201 with the lock, or 409 `lock_held`
    /// with its current holder.
    public func acquire(_ name: String, holder: String, owner: String, ttl: Int, wait: Int) throws -> Answer<Outcome> {
        let ttlMillis = Int64(ttl) * 1000
        do {
            return .now(taken(try take(name, holder: holder, owner: owner, ttlMillis: ttlMillis)))
        } catch LockStoreError.held(let current) {
            guard wait > 0 else { return .now(Self.held(current)) }
            let answer = Pending<Outcome>()
            let id = try state.withLock { state -> UInt64 in
                guard state.count < Self.maxWaiters else {
                    throw APIError(status: 503, code: .tooManyWaiters,
                                   message: "\(Self.maxWaiters) requests wait for locks already; retry later",
                                   headers: ["Retry-After": "1"])
                }
                state.next += 1
                state.count += 1
                state.waiters[BytewiseKey(name), default: []].append(Waiter(id: state.next, holder: holder, owner: owner,
                                                               ttlMillis: ttlMillis, answer: answer))
                return state.next
            }
            scheduleHandOver(name, at: current.expiresAt)
            // A caller that stops waiting gives up its place at once.
            answer.onCancel { [weak self] in
                guard let self, remove(name, id: id) != nil else { return }
                answer.fail(APIError.serviceUnavailable("the client went away"))
            }
            queue.asyncAfter(deadline: .now() + .seconds(wait)) { [self] in
                guard let waiter = remove(name, id: id) else { return }
                let holder = (try? store.get(name)) ?? current
                waiter.answer.succeed(Self.held(holder, waited: wait))
            }
            return .later(answer)
        }
    }

    /// `owner`: the caller's credential, which must be the one that took the lock (nil: the
    /// node's owner, who may renew or release any).
    public func renew(_ name: String, token: Int64, ttl: Int, owner: String?) throws -> LockInfo {
        do {
            let info = try store.renew(name, token: token, ttlMillis: Int64(ttl) * 1000, owner: owner)
            changes?.publish(.locks, detail: ["name": name])
            return info
        } catch LockStoreError.notHeld(let current) {
            throw Self.notHeld(name, token: token, current: current)
        }
    }

    public func release(_ name: String, token: Int64, owner: String?) throws {
        do {
            try store.release(name, token: token, owner: owner)
        } catch LockStoreError.notHeld(let current) {
            throw Self.notHeld(name, token: token, current: current)
        }
        changes?.publish(.locks, detail: ["name": name])
        queue.async { [self] in handOver(name) }
    }

    /// Daemon stop: every waiter is answered (the server would answer them with 503 anyway).
    public func finishAll() {
        let all = state.withLock { state -> [Waiter] in
            defer { state.waiters.removeAll(); state.count = 0 }
            return state.waiters.values.flatMap { $0 }
        }
        for waiter in all { waiter.answer.fail(APIError.serviceUnavailable("the daemon is stopping")) }
    }

    // MARK: Internals

    private func take(_ name: String, holder: String, owner: String, ttlMillis: Int64) throws -> LockInfo {
        if try store.get(name) == nil, try store.count() >= Self.maxLocks {
            throw APIError.conflict("\(Self.maxLocks) locks are held already; release some", code: .tooManyLocks)
        }
        return try store.acquire(name, holder: holder, owner: owner, ttlMillis: ttlMillis)
    }

    private func taken(_ info: LockInfo) -> Outcome {
        changes?.publish(.locks, detail: ["name": info.name])
        // The lease may end unreleased: whoever waits then gets the lock.
        scheduleHandOver(info.name, at: info.expiresAt)
        return .taken(info)
    }

    private func scheduleHandOver(_ name: String, at expiresAt: Int64) {
        let delay = max(0, Double(expiresAt - Clock.nowMillis()) / 1000) + 0.005
        queue.asyncAfter(deadline: .now() + delay) { [self] in handOver(name) }
    }

    /// The lock may be free: the first waiter still there takes it.
    private func handOver(_ name: String) {
        while let waiter = state.withLock({ $0.waiters[BytewiseKey(name)]?.first }) {
            if waiter.answer.isCancelled {
                // Its client left: the answer still goes out, so the suspended connection ends.
                if remove(name, id: waiter.id) != nil {
                    waiter.answer.fail(APIError.serviceUnavailable("the client went away"))
                }
                continue
            }
            do {
                let info = try take(name, holder: waiter.holder, owner: waiter.owner, ttlMillis: waiter.ttlMillis)
                guard remove(name, id: waiter.id) != nil else {
                    // Its wait ended meanwhile: the lock goes back.
                    try? store.release(name, token: info.token)
                    continue
                }
                waiter.answer.succeed(taken(info))
                return
            } catch LockStoreError.held(let current) {
                scheduleHandOver(name, at: current.expiresAt)
                return
            } catch {
                guard remove(name, id: waiter.id) != nil else { continue }
                waiter.answer.fail(error)
            }
        }
    }

    private func remove(_ name: String, id: UInt64) -> Waiter? {
        state.withLock { state in
            let key = BytewiseKey(name)
            guard let index = state.waiters[key]?.firstIndex(where: { $0.id == id }) else { return nil }
            let waiter = state.waiters[key]!.remove(at: index)
            if state.waiters[key]!.isEmpty { state.waiters[key] = nil }
            state.count -= 1
            return waiter
        }
    }

    static func held(_ current: LockInfo, waited: Int? = nil) -> Outcome {
        let seconds = max(0, (current.expiresAt - Clock.nowMillis() + 999) / 1000)
        let message = "\(current.name) is held by \(current.holder) (token \(current.token)) for up to \(seconds) s more"
            + (waited.map { "; waited \($0) s" } ?? "") + "; retry, or wait with ?wait=S"
        return .held(LockHeldBody(message: message, current: current))
    }

    static func notHeld(_ name: String, token: Int64, current: LockInfo?) -> APIError {
        APIError.conflict("token \(token) does not hold \(name)"
            + (current.map { " (it is held by \($0.holder), token \($0.token))" } ?? " (it is free)")
            + ": the lease ended or was never this holder's; acquire it again", code: .lockNotHeld)
    }
}
