import Dispatch
import LoopsyHTTP
import LoopsyPOSIX

/// Answers that go on after their request was admitted (streams: a job's output, a task's
/// events, a relayed peer answer) are cut within about half a second once the credential that
/// opened them ends: a dashboard logout, a new API key, an extra key removed, a peer unpaired
/// or its grants changed. Admission is checked once, at the start; without this a session
/// logged out went on receiving what it had opened.
final class CredentialWatch: Sendable {
    private struct Watched {
        let stream: HTTPStream
        let stillValid: @Sendable () -> Bool
    }
    private struct State {
        var watched: [ObjectIdentifier: Watched] = [:]
        var timer: (any DispatchSourceTimer)?
    }
    private let state = PlainMutex(State())
    static let interval = 0.5

    /// Watches `stream` until it closes; aborts it when `stillValid` says no.
    func watch(_ stream: HTTPStream, while stillValid: @escaping @Sendable () -> Bool) {
        state.withLock { state in
            state.watched[ObjectIdentifier(stream)] = Watched(stream: stream, stillValid: stillValid)
            if state.timer == nil { state.timer = startTimer() }
        }
    }

    var count: Int { state.withLock { $0.watched.count } }

    private func startTimer() -> any DispatchSourceTimer {
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + Self.interval, repeating: Self.interval, leeway: .milliseconds(50))
        timer.setEventHandler { [weak self] in self?.check() }
        timer.resume()
        return timer
    }

    private func check() {
        let watched = state.withLock { Array($0.watched.values) }
        var ended: [ObjectIdentifier] = []
        for item in watched {
            if item.stream.isClosed {
                ended.append(ObjectIdentifier(item.stream))
            } else if !item.stillValid() {
                item.stream.cut()  // what it still holds is dropped (bytes MHD copied already go out)
                ended.append(ObjectIdentifier(item.stream))
            }
        }
        guard !ended.isEmpty else { return }
        state.withLock { state in
            for id in ended { state.watched[id] = nil }
            if state.watched.isEmpty {
                state.timer?.cancel()
                state.timer = nil
            }
        }
    }

    deinit { state.withLock { $0.timer?.cancel() } }
}
