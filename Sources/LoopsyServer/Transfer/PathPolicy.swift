import LoopsyAPI
import LoopsyConfig
#if canImport(Glibc)
import Glibc
#endif

/// Where transfers may read and write: one function for push, pull and list.
///
/// A path must be absolute and free of `..`; its real location (symlinks resolved first, for a
/// new file that of its deepest existing parent) must lie inside an `allowedPaths` entry and
/// outside every `deniedPaths` entry, compared on whole path components.
struct PathPolicy: Sendable {
    let allowed: [String]
    let denied: [String]

    init(config: LoopsyConfig.Transfer, environment: [String: String]) {
        allowed = config.allowedPaths.map { Self.canonical(DataDir.expandTilde($0, environment: environment)) }
        denied = config.deniedPaths.map { Self.canonical(DataDir.expandTilde($0, environment: environment)) }
    }

    enum Access { case read, write }

    /// The real path the request may use, or the 4xx that refuses it.
    func resolve(_ path: String, for access: Access) throws -> String {
        guard path.hasPrefix("/") else {
            throw APIError.badRequest("'\(path)' is not an absolute path", code: "bad_path")
        }
        guard !path.contains("\0") else { throw APIError.badRequest("the path contains a NUL byte", code: "bad_path") }
        let components = path.split(separator: "/")
        guard !components.contains("..") else {
            throw APIError.forbidden("'\(path)' contains '..'; give the path without it", code: "path_forbidden")
        }
        // Follow symlinks before checking, never after: the check sees where the bytes really go.
        var existing = components.count
        var real: String?
        while existing >= 0 {
            let prefix = "/" + components.prefix(existing).joined(separator: "/")
            if let resolved = Self.realPath(prefix) {
                real = resolved
                break
            }
            existing -= 1
        }
        guard var target = real else { throw APIError.notFound("path '\(path)'") }
        let missing = components.dropFirst(max(existing, 0))
        for component in missing where component != "." { target += (target == "/" ? "" : "/") + component }
        try check(target, asked: path)
        if !missing.isEmpty && access == .read { throw APIError.notFound("path '\(path)'") }
        return target
    }

    private func check(_ target: String, asked: String) throws {
        guard allowed.contains(where: { Self.isInside(target, $0) }) else {
            throw APIError.forbidden("'\(asked)' is outside transfer.allowedPaths (\(allowed.joined(separator: ", ")))",
                                     code: "path_forbidden")
        }
        if let rule = denied.first(where: { Self.isInside(target, $0) }) {
            throw APIError.forbidden("'\(asked)' is inside '\(rule)', which transfer.deniedPaths refuses",
                                     code: "path_forbidden")
        }
    }

    /// True when `path` is `root` or below it on a component boundary (`/home/al` is not inside
    /// `/home/alice`'s sibling check: `/home/alice` is not inside `/home/al`).
    static func isInside(_ path: String, _ root: String) -> Bool {
        path == root || root == "/" || path.hasPrefix(root + "/")
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// A configured path's real location if it exists, else the path with `.`, empty and
    /// trailing components removed.
    private static func canonical(_ path: String) -> String {
        if let real = realPath(path) { return real }
        let parts = path.split(separator: "/").filter { $0 != "." }
        return "/" + parts.joined(separator: "/")
    }
}
