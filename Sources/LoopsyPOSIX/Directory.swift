#if canImport(Glibc)
import Glibc
#endif

/// Listing a directory's names (without "." and "..").
public enum Directory {
    public struct Entry: Sendable, Equatable {
        public var name: String
        /// d_type: DT_DIR, DT_REG, DT_LNK, … or DT_UNKNOWN when the file system does not say.
        public var type: UInt8

        public var isDirectory: Bool { type == UInt8(DT_DIR) }
        public var isRegularFile: Bool { type == UInt8(DT_REG) }
    }

    /// The entries of the directory at `path`, in the order the file system gives them.
    public static func entries(_ path: String) throws(Errno) -> [Entry] {
        guard let handle = opendir(path) else { throw Errno.current }
        defer { closedir(handle) }
        return read(handle)
    }

    /// The entries of the directory open as `fd`. The descriptor is the caller's: it stays open.
    public static func entries(fd: Int32) throws(Errno) -> [Entry] {
        var entries: [Entry] = []
        try visit(fd: fd) { entries.append($0); return true }
        return entries
    }

    /// Gives `body` each entry of the directory open as `fd`, in the order the file system gives
    /// them, holding none: a directory of millions of names costs one entry of memory here.
    /// `body` returns false to stop early. The descriptor is the caller's: it stays open.
    public static func visit(fd: Int32, _ body: (Entry) -> Bool) throws(Errno) {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw Errno.current }
        guard let handle = fdopendir(copy) else {
            let error = Errno.current
            close(copy)
            throw error
        }
        defer { closedir(handle) }
        // A dup shares the offset: start at the beginning whatever the caller read before.
        rewinddir(handle)
        visit(handle, body)
    }

    /// The names of the entries of `path`; empty when it cannot be read.
    public static func names(_ path: String) -> [String] {
        ((try? entries(path)) ?? []).map(\.name)
    }

    private static func read(_ handle: OpaquePointer) -> [Entry] {
        var entries: [Entry] = []
        visit(handle) { entries.append($0); return true }
        return entries
    }

    private static func visit(_ handle: OpaquePointer, _ body: (Entry) -> Bool) {
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            guard body(Entry(name: name, type: entry.pointee.d_type)) else { return }
        }
    }
}
