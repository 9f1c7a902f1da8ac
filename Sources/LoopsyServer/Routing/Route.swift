import LoopsyAPI
import LoopsyCore
import LoopsyHTTP

public enum HTTPMethod: String, Sendable, CaseIterable {
    case get = "GET", put = "PUT", post = "POST", delete = "DELETE"
}

/// Which `rateLimits` budget a route draws from.
public enum RateCategory: String, Sendable {
    case execute, transfer, context, pairing
}

/// What a handler gets: the request, decoded path parameters, who is calling, and the node.
public struct RequestContext: Sendable {
    public var request: HTTPRequest
    public var parameters: PathParameters
    public var caller: Caller
    public var requestId: String
    public var node: NodeServices

    public func parameter(_ name: String) -> String { parameters[name] ?? "" }

    /// A domain answer as HTTP: `render` makes the response of the value, now or when it comes
    /// (the connection waits suspended meanwhile); an error becomes its APIError, logged under
    /// this request's id when it is not one. `onFailure` runs when no response is rendered (the
    /// answer is an error, or `render` throws). A client that leaves cancels the Pending, so the
    /// domain's clean-ups run (waiters unregister, hashing stops).
    public func respond<Value: Sendable>(_ answer: Answer<Value>, onFailure: (@Sendable () -> Void)? = nil,
                                         _ render: @escaping @Sendable (Value) throws -> HTTPResponse) throws -> HTTPResponse {
        switch answer {
        case .now(let value):
            do {
                return try render(value)
            } catch {
                onFailure?()
                throw error
            }
        case .later(let pending):
            let deferred = DeferredResponse()
            pending.cancelled(when: { deferred.isAbandoned })
            deferred.onAbandon { pending.cancel() }
            let failure = reportsFailures
            pending.whenComplete { result in
                let value: Value
                switch result {
                case .success(let success):
                    value = success
                case .failure(let error):
                    onFailure?()
                    deferred.complete(.error(failure(error)))
                    return
                }
                do {
                    deferred.complete(try render(value))
                } catch {
                    onFailure?()
                    deferred.complete(.error(failure(error)))
                }
            }
            return HTTPResponse(deferred: deferred)
        }
    }

    /// Runs `work` on the node's `offloads` and answers with what it makes, the connection
    /// suspended meanwhile; a full pool, or a daemon that is stopping, is a 503 with
    /// Retry-After (nothing was done). `work` should capture what it needs, not the request's
    /// body (see `withoutBody`).
    public func offload(_ work: @escaping @Sendable () throws -> HTTPResponse) throws -> HTTPResponse {
        let pending = Pending<HTTPResponse>()
        let offloads = node.offloads
        guard offloads.submit({ pending.complete(Result { try work() }) }) else {
            let message = offloads.isOpen
                ? "\(offloads.load) calls to other machines are under way here; nothing was done, retry in a few seconds"
                : "the daemon is shutting down; nothing was done, retry when it is back"
            throw APIError(status: 503, code: .unavailable, message: message, headers: ["Retry-After": "2"])
        }
        return try respond(.later(pending)) { $0 }
    }

    /// This context without the request's body (decoded already): what offloaded work keeps,
    /// so that a 6 MiB body is not held for as long as a broadcast takes.
    public var withoutBody: RequestContext {
        var context = self
        context.request.body = []
        return context
    }

    /// Like `respond` for long polls: a JSON answer that comes later is sent as a stream (200
    /// and headers first), so a client that leaves ends the wait at once (`Pending.cancel`)
    /// instead of holding it until its timeout.
    public func respondAsStream<Value: Encodable & Sendable>(_ answer: Answer<Value>) throws -> HTTPResponse {
        let pending: Pending<Value>
        switch answer {
        case .now(let value): return try .json(value)
        case .later(let later): pending = later
        }
        let stream = HTTPStream()
        stream.onClose { pending.cancel() }
        let failure = reportsFailures
        pending.whenComplete { result in
            let body: [UInt8]
            do {
                body = Array(try SafeJSON.encoder.encode(try result.get()))
            } catch {
                // The status is sent already: the body says what went wrong.
                body = (try? SafeJSON.encoder.encode(ErrorBody(failure(error)))).map { Array($0) } ?? []
            }
            _ = stream.write(body, bounded: false)
            stream.finish()
        }
        return HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], stream: stream)
    }

    /// What the client gets for an error met after the handler returned (in a deferred answer):
    /// an APIError as it is, anything else logged under this request's id, which the 500 names.
    public var reportsFailures: @Sendable (any Error) -> APIError {
        let requestId = requestId, logger = node.logger
        return { error in (error as? APIError) ?? Dispatcher.map(error, requestId: requestId, logger: logger) }
    }
}

public typealias Handler = @Sendable (RequestContext) throws -> HTTPResponse
public typealias BodySinkFactory = @Sendable (RequestContext) throws -> any HTTPBodySink

/// Holds a route's `OperationDoc` (see `Route.doc`).
private final class DocBox: Sendable {
    let doc: OperationDoc
    init(_ doc: OperationDoc) { self.doc = doc }
}

/// One entry of the route table: method, path pattern (`{name}` matches one segment), who may
/// call it (declared here, enforced by the dispatcher, shown in the OpenAPI document), policy
/// and the OpenAPI description that documents it.
public struct Route: Sendable {
    public var method: HTTPMethod
    public var pattern: String
    public var access: RouteAccess
    public var category: RateCategory?
    /// Largest accepted request body.
    public var maxBody: Int
    /// What the OpenAPI document says of it, kept in a box: a route is copied for every request
    /// (the router's match, the dispatcher's plan), and a copy then costs one retain instead of
    /// one for each string and list of the description.
    public var doc: OperationDoc {
        get { docBox.doc }
        set { docBox = DocBox(newValue) }
    }
    private var docBox: DocBox
    public var handler: Handler
    /// For routes whose body streams (uploads): makes the sink once the request is admitted;
    /// the handler then finds it in `request.bodySink`.
    public var bodySink: BodySinkFactory?

    public init(_ method: HTTPMethod, _ pattern: String, access: RouteAccess,
                category: RateCategory? = nil, maxBody: Int = 64 * 1024, bodySink: BodySinkFactory? = nil,
                doc: OperationDoc, _ handler: @escaping Handler) {
        self.method = method
        self.pattern = pattern
        self.access = access
        self.category = category
        self.maxBody = maxBody
        self.bodySink = bodySink
        self.docBox = DocBox(doc)
        self.handler = handler
    }

    /// A route of the REST API (`API.…`).
    public init(_ method: HTTPMethod, _ path: APIPath, access: RouteAccess,
                category: RateCategory? = nil, maxBody: Int = 64 * 1024, bodySink: BodySinkFactory? = nil,
                doc: OperationDoc, _ handler: @escaping Handler) {
        self.init(method, path.pattern, access: access, category: category, maxBody: maxBody, bodySink: bodySink,
                  doc: doc, handler)
    }

}
