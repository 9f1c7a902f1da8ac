/// One event of a resumable stream: `id` is its cursor (a reader resumes after it).
public struct StreamedEvent: Sendable, Equatable {
    public var id: Int64
    public var name: String
    /// One line of JSON.
    public var data: String

    public init(id: Int64, name: String, data: String) {
        self.id = id
        self.name = name
        self.data = data
    }
}

/// Where a domain's stream of events goes (in the server, a Server-Sent Events response).
/// Called on the producer's thread, so it must not block.
public protocol EventSink: AnyObject, Sendable {
    /// `replayed`: from storage, before the live ones. False when the reader fell too far
    /// behind (or a replay filled its buffer): it is dropped, and resumes with its cursor.
    func send(_ event: StreamedEvent, replayed: Bool) -> Bool
    /// No more events: the producer ended (or dropped this reader).
    func finish()
}
