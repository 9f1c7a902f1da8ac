import CMicroHTTPD
import LoopsyPOSIX

/// Holds a request's body back without holding a worker thread. A sink whose consumer is behind
/// (a disk, a peer) takes the bytes it was given and answers `.held(gate)`: the server suspends
/// the connection, so MHD reads nothing more from it and TCP holds the sender back, until the
/// consumer calls `open`. A gate opened before the server got to suspend suspends nothing.
/// Suspend and resume happen under one lock, so an opening never slips between the two.
public final class BodyGate: Sendable {
    private struct State {
        var open = false
        /// The connection suspended on this gate, until it opens.
        var connection: ConnectionHandle?
    }
    private let state = PlainMutex(State())

    public init() {}

    /// Lets the body flow again; later calls do nothing.
    public func open() {
        state.withLock { state in
            guard !state.open else { return }
            state.open = true
            if let connection = state.connection {
                state.connection = nil
                MHD_resume_connection(connection.pointer)
            }
        }
    }

    /// True while the gate holds a connection whose client has hung up. MHD watches no
    /// suspended socket, so it is asked here: whoever would open the gate can give up instead.
    public var clientGone: Bool {
        state.withLock { state in
            guard let connection = state.connection else { return false }
            return cmhd_client_hung_up(connection.pointer) != 0
        }
    }

    var isOpen: Bool { state.withLock { $0.open } }

    /// A connection is suspended on the gate.
    var isHolding: Bool { state.withLock { $0.connection != nil } }

    /// On MHD's thread, in the access handler: suspends `connection` until the gate opens.
    /// False, and nothing suspended, when it is open already.
    func hold(_ connection: OpaquePointer) -> Bool {
        state.withLock { state in
            guard !state.open else { return false }
            state.connection = ConnectionHandle(pointer: connection)
            MHD_suspend_connection(connection)
            return true
        }
    }
}
