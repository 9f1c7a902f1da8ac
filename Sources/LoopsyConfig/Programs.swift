#if canImport(Glibc)
import Glibc
#endif

/// Finding the programs that come with loopsy (and others), and this machine's name.
public enum Programs {
    /// The executable `name` installed next to the running program (`/proc/self/exe`).
    public static func sibling(_ name: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return nil }
        let path = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let candidate = String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)]) + "/" + name
        return access(candidate, X_OK) == 0 ? candidate : nil
    }

    /// An absolute path for `program`: itself when it holds a "/", else the first match on PATH.
    public static func onPath(_ program: String) -> String? {
        if program.contains("/") { return access(program, X_OK) == 0 ? program : nil }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") where access("\(directory)/\(program)", X_OK) == 0 {
            return "\(directory)/\(program)"
        }
        return nil
    }

    /// A loopsy program: next to this one, else on PATH.
    public static func companion(_ name: String) -> String? { sibling(name) ?? onPath(name) }

    /// gethostname(2), or "localhost".
    public static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
