import LoopsyAPI

extension LoopsyClient {
    public func pairStart() throws -> PairStartResponse {
        try call("POST", "/api/v1/pair/start", as: PairStartResponse.self)
    }

    public func pairInitiate(_ request: PairInitiateRequest) throws -> PairStatus {
        try call("POST", "/api/v1/pair/initiate", body: request, as: PairStatus.self)
    }

    public func pairConfirm(accept: Bool, grants: [Capability]? = nil) throws -> PairStatus {
        try call("POST", "/api/v1/pair/confirm", body: PairConfirmRequest(accept: accept, grants: grants),
                 as: PairStatus.self)
    }

    public func pairCancel() throws -> PairStatus {
        try call("POST", "/api/v1/pair/cancel", as: PairStatus.self)
    }

    public func pairStatus() throws -> PairStatus {
        try call("GET", "/api/v1/pair/status", as: PairStatus.self)
    }
}
