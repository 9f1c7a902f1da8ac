import LoopsyAPI

extension LoopsyClient {
    public func pairStart() throws -> PairStartResponse {
        try call("POST", API.pairStart(), as: PairStartResponse.self)
    }

    public func pairInitiate(_ request: PairInitiateRequest) throws -> PairStatus {
        try call("POST", API.pairInitiate(), body: request, as: PairStatus.self)
    }

    public func pairConfirm(accept: Bool, grants: [Capability]? = nil) throws -> PairStatus {
        try call("POST", API.pairConfirm(), body: PairConfirmRequest(accept: accept, grants: grants),
                 as: PairStatus.self)
    }

    public func pairCancel() throws -> PairStatus {
        try call("POST", API.pairCancel(), as: PairStatus.self)
    }

    public func pairStatus() throws -> PairStatus {
        try call("GET", API.pairStatus(), as: PairStatus.self)
    }
}
