#if canImport(Glibc)
import Glibc
#endif

/// A failed system call's errno, with its text.
public struct Errno: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    public let code: Int32

    public init(_ code: Int32) { self.code = code }

    /// The calling thread's errno now.
    public static var current: Errno { Errno(errno) }

    public var description: String { String(cString: strerror(code)) }

    public static let noEntry = Errno(ENOENT)
}

/// Calls `body` again for as long as it fails with EINTR (returns -1 and sets errno).
/// The one retry loop for system calls a signal can interrupt.
@inlinable
public func retryingInterrupts<Result: BinaryInteger>(_ body: () -> Result) -> Result {
    while true {
        let result = body()
        if result != -1 || errno != EINTR { return result }
    }
}

/// A system call that failed, for logs: "forkpty: Resource temporarily unavailable".
public struct SystemCallFailure: Error, Sendable, CustomStringConvertible {
    public let call: String
    public let errno: Errno

    /// `call` failed with the calling thread's errno now.
    public init(_ call: String, _ errno: Errno = .current) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(errno)" }
}
