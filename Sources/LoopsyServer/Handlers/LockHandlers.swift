import LoopsyAPI
import LoopsyMessaging
import LoopsyCore
import LoopsyHTTP

/// Locks with leases: take, renew, release, list.
public enum LockHandlers {
    static func acquire(_ context: RequestContext) throws -> HTTPResponse {
        let name = try validName(context)
        let body = try context.decode(LockAcquireRequest.self)
        let holder = body.holder.isEmpty ? context.caller.id : body.holder
        guard holder.utf8.count <= LockLimits.maxHolderBytes, !holder.unicodeScalars.contains(where: Self.isControl) else {
            throw APIError.badRequest("holder must be at most \(LockLimits.maxHolderBytes) bytes without control characters",
                                      code: .badHolder)
        }
        let wait = try QueryValue.int(context, "wait", default: 0, range: 0...300)
        let answer = try context.node.locks.acquire(name, holder: holder, owner: context.caller.id, ttl: body.ttl,
                                                    wait: wait)
        return try context.respond(answer) { outcome in
            switch outcome {
            case .taken(let lock): return try .json(lock, status: 201)
            case .held(let holder): return try .json(holder, status: 409)
            }
        }
    }

    static func renew(_ context: RequestContext) throws -> HTTPResponse {
        let name = try validName(context)
        let body = try context.decode(LockRenewRequest.self)
        return try .json(try context.node.locks.renew(name, token: body.token, ttl: body.ttl, owner: owner(context)))
    }

    static func release(_ context: RequestContext) throws -> HTTPResponse {
        let name = try validName(context)
        guard context.request.query["token"] != nil else {
            throw APIError.badRequest("send the fencing token the lock was acquired with: DELETE /locks/\(name)?token=N",
                                      code: .badQuery)
        }
        let token = try QueryValue.int(context, "token", default: 0, range: 1...Int.max)
        try context.node.locks.release(name, token: Int64(token), owner: owner(context))
        return try .json(LockReleased(released: true))
    }

    static func list(_ context: RequestContext) throws -> HTTPResponse {
        try .json(LockListResponse(locks: try context.node.locks.store.list()))
    }

    /// A key or peer renews and releases only what its own credential took; the owner anything.
    private static func owner(_ context: RequestContext) -> String? {
        context.caller.isOwner ? nil : context.caller.id
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool { scalar.value < 0x20 || scalar.value == 0x7F }

    private static func validName(_ context: RequestContext) throws -> String {
        let name = context.parameter("name")
        // Counted in code points, as the OpenAPI document's maxLength counts.
        guard !name.isEmpty, name.unicodeScalars.count <= LockLimits.maxNameBytes,
              !name.unicodeScalars.contains(where: isControl) else {
            throw APIError.badRequest("a lock name is 1–\(LockLimits.maxNameBytes) characters without control characters",
                                      code: .badLockName)
        }
        return name
    }
}
