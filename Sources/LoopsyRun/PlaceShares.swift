/// How the places under a concurrency limit (`execution.maxConcurrent`, `aiTasks.maxConcurrent`)
/// are shared. The node's owner takes any free one. Any other caller (a peer, an extra key)
/// holds at most half of them, rounded up, so one peer cannot take every place from the others;
/// and such callers together hold all but the last, which stays the owner's (with a limit of 1
/// there is nothing to keep).
struct PlaceShares: Sendable {
    enum Refusal { case full, callersHalf, ownersPlace }

    let limit: Int
    /// For messages: the setting the limit comes from, and what holds the places ("jobs running
    /// or sending their results").
    let setting: String
    let holders: String

    var callerShare: Int { (limit + 1) / 2 }
    var othersShare: Int { max(1, limit - 1) }

    /// Why a new place is refused, given the places held now: in all, by this caller, and by
    /// every caller other than the owner; nil when it may be taken.
    func refusal(owner: Bool, total: Int, byCaller: Int, byOthers: Int) -> Refusal? {
        if total >= limit { return .full }
        if owner { return nil }
        if byCaller >= callerShare { return .callersHalf }
        if byOthers >= othersShare { return .ownersPlace }
        return nil
    }

    /// What the 429 says.
    func message(_ refusal: Refusal) -> String {
        switch refusal {
        case .full:
            "every place under \(setting) (\(limit)) is taken by \(holders); wait for one to end, or cancel one"
        case .callersHalf:
            "this caller already has \(callerShare) \(holders), half of \(setting) (\(limit)); wait for one to end"
        case .ownersPlace:
            "the other places under \(setting) (\(limit)) are taken and the last is kept for this node's owner; "
                + "wait for one to end"
        }
    }
}
