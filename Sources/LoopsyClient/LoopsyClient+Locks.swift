import FoundationEssentials
import LoopsyAPI

extension LoopsyClient {
    /// Takes `name` for `ttl` seconds, waiting up to `wait` seconds; a lock held by someone else
    /// is a 409 `lock_held` API error naming the holder.
    public func lockAcquire(_ name: String, holder: String, ttl: Int, wait: Int = 0) throws -> LockInfo {
        try call("POST", "/api/v1/locks/\(PathEncoding.segment(name))" + (wait > 0 ? "?wait=\(wait)" : ""),
                 body: LockAcquireRequest(holder: holder, ttl: ttl), as: LockInfo.self)
    }

    public func lockRenew(_ name: String, token: Int64, ttl: Int) throws -> LockInfo {
        try call("POST", "/api/v1/locks/\(PathEncoding.segment(name))/renew", body: LockRenewRequest(token: token, ttl: ttl),
                 as: LockInfo.self)
    }

    public func lockRelease(_ name: String, token: Int64) throws {
        _ = try call("DELETE", "/api/v1/locks/\(PathEncoding.segment(name))?token=\(token)", as: LockReleased.self)
    }

    public func locks() throws -> [LockInfo] {
        try call("GET", "/api/v1/locks", as: LockListResponse.self).locks
    }
}
