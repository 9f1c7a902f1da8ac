/// Paths as the kernel reads them: "/" bytes separate the names, and a name is its bytes.
///
/// Swift's String works on Characters instead, and a "/" followed by a combining mark (U+0301)
/// is one Character: `split(separator: "/")` does not split there, `hasPrefix(root + "/")`
/// does not see the root and `contains("/")` finds no slash, where the kernel sees all three.
/// Checked that way, `<root>/.config/autostart/\u{301}x` was not inside the denied
/// `.config/autostart`, and `../\u{301}x` was a plain name. `==` also calls "é" and
/// "e\u{301}" one name, which are two on disk. Every decision on a path goes through these.
public enum KernelPath {
    /// The names between "/" bytes, empty ones left out.
    public static func names(_ path: String) -> [Substring] {
        path.utf8.split(separator: UInt8(ascii: "/")).map { Substring($0) }
    }

    public static func isAbsolute(_ path: some StringProtocol) -> Bool { path.utf8.first == UInt8(ascii: "/") }

    /// Whether the two are the same bytes.
    public static func same(_ one: some StringProtocol, _ other: some StringProtocol) -> Bool {
        one.utf8.elementsEqual(other.utf8)
    }

    /// Whether `name` has a "/" byte (is not one plain name).
    public static func hasSlash(_ name: some StringProtocol) -> Bool { name.utf8.contains(UInt8(ascii: "/")) }

    /// Whether `name` is "." or "..", the names the kernel resolves itself.
    public static func isDots(_ name: some StringProtocol) -> Bool { same(name, ".") || same(name, "..") }

    /// True when `path` is `root` or below it on a name boundary (`/home/alice` is not inside
    /// `/home/al`), byte for byte.
    public static func isInside(_ path: String, _ root: String) -> Bool {
        if same(path, root) || same(root, "/") { return true }
        var rest = path.utf8[...]
        for byte in root.utf8 {
            guard rest.first == byte else { return false }
            rest = rest.dropFirst()
        }
        return rest.first == UInt8(ascii: "/")
    }
}

/// A String as SQLite and the kernel tell strings apart: by its UTF-8 bytes, for dictionary
/// keys. Swift's String == calls canonically equivalent strings equal ("caf\u{e9}" and
/// "cafe\u{301}", "\u{212A}" and "K"), which SQLite stores as two rows and the disk as two names:
/// keyed by String, a cache answered one key with the other's entry, and a lock's waiter was
/// handed another lock.
public struct BytewiseKey: Hashable, Sendable {
    public let text: String

    public init(_ text: String) { self.text = text }

    public static func == (lhs: BytewiseKey, rhs: BytewiseKey) -> Bool { lhs.text.utf8.elementsEqual(rhs.text.utf8) }

    public func hash(into hasher: inout Hasher) {
        var text = text
        text.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}
