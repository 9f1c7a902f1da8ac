import FoundationEssentials
import LoopsyAPI

extension LoopsyClient {
    /// Takes `name` for `ttl` seconds, waiting up to `wait` seconds; a lock held by someone else
    /// is a 409 `lock_held` API error naming the holder.
    public func lockAcquire(_ name: String, holder: String, ttl: Int, wait: Int = 0) throws -> LockInfo {
        try call("POST", API.lock(name) + (wait > 0 ? "?wait=\(wait)" : ""),
                 body: LockAcquireRequest(holder: holder, ttl: ttl), as: LockInfo.self)
    }

    public func lockRenew(_ name: String, token: Int64, ttl: Int) throws -> LockInfo {
        try call("POST", API.lockRenew(name), body: LockRenewRequest(token: token, ttl: ttl),
                 as: LockInfo.self)
    }

    public func lockRelease(_ name: String, token: Int64) throws {
        _ = try call("DELETE", API.lock(name, query: ["token": token]), as: LockReleased.self)
    }

    public func locks() throws -> [LockInfo] {
        try call("GET", API.locks(), as: LockListResponse.self).locks
    }
}

extension LoopsyClient {
    /// The changes of keys starting with `prefix` after cursor `after` (nil: from now), waiting
    /// up to `wait` seconds for one; pass the answer's cursor next time.
    public func contextChanges(prefix: String, after: Int64?, wait: Int) throws -> ContextChangesResponse {
        var query = "?prefix=\(PathEncoding.segment(prefix))&wait=\(wait)"
        if let after { query += "&after=\(after)" }
        return try call("GET", API.context() + query, as: ContextChangesResponse.self)
    }

    /// `key` once it is at another revision than `afterRevision` (0: absent), or as it is when
    /// `wait` seconds pass; nil when it does not exist (deleted or expired).
    public func contextWatch(_ key: String, afterRevision: Int64, wait: Int) throws -> ContextEntry? {
        do {
            return try call("GET", API.contextEntry(key, query: ["afterRevision": afterRevision, "wait": wait]),
                            as: ContextEntry.self)
        } catch ClientError.api(let error) where error.status == 404 {
            return nil
        }
    }
}
