import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// The sessions of a main data dir: `<root>/sessions/<name>/`, each a data dir of its own.
public struct SessionDirectory: Sendable {
    public struct Entry: Codable, Sendable {
        public var name: String
        public var dataDir: String
        public var port: Int
        public var running: Bool
        public var pid: Int?
    }

    public let main: DataDir
    public var root: String { main.root + "/sessions" }

    public init(main: DataDir) { self.main = main }

    /// The main data dir for `dataDir`: itself, or the one a session lives in.
    public static func mainDataDir(for dataDir: DataDir) -> DataDir {
        let parts = dataDir.root.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 3, parts[parts.count - 2] == "sessions" else { return dataDir }
        return DataDir(root: parts.dropLast(2).joined(separator: "/"))
    }

    /// Names become directory names: lowercase letters, digits and dashes only.
    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        return (1...32).contains(bytes.count) && bytes.first != 45
            && bytes.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 45 }
    }

    public func names() -> [String] {
        Directory.names(root).filter { Self.isValid($0) && SecureFile.exists(root + "/" + $0 + "/config.yaml") }.sorted()
    }

    public func dataDir(_ name: String) -> DataDir { DataDir(root: root + "/" + name) }

    public func entry(_ name: String) -> Entry {
        let dataDir = dataDir(name)
        var port = 0
        if let text = try? SecureFile.read(dataDir.portFile), let bound = Int(text.trimming()) {
            port = bound
        } else if let config = try? ConfigFile.load(dataDir).config {
            port = config.server.port
        }
        let pid = dataDir.runningDaemonPid()
        return Entry(name: name, dataDir: dataDir.root, port: port, running: pid != nil, pid: pid.map(Int.init))
    }

    public func entries() -> [Entry] { names().map(entry) }
}
