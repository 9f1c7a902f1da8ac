import LoopsyPOSIX

/// Tells observers which keys a committed write changed (watches wake on it). Observers run on
/// the writer's thread after the commit: they must be quick and never block.
public final class ChangeSignal: Sendable {
    private let observers = PlainMutex<[@Sendable ([String]) -> Void]>([])

    public init() {}

    public func observe(_ observer: @escaping @Sendable ([String]) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    func signal(_ keys: [String]) {
        for observer in observers.withLock({ $0 }) { observer(keys) }
    }
}
