import FoundationEssentials
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// The files of one Loopsy node: `~/.loopsy` or a session's `~/.loopsy/sessions/<name>`.
public struct DataDir: Sendable, Equatable {
    public var root: String

    public init(root: String) { self.root = root }

    /// `explicit` (a --data-dir flag), else `$LOOPSY_DATA_DIR`, else `~/.loopsy`. `environment`
    /// stands in for the process's (nil: read it, one variable at a time).
    public static func resolve(explicit: String? = nil, environment: [String: String]? = nil) -> DataDir {
        if let explicit, !explicit.isEmpty { return DataDir(root: absolute(explicit, environment: environment)) }
        if let fromEnvironment = variable("LOOPSY_DATA_DIR", in: environment), !fromEnvironment.isEmpty {
            return DataDir(root: absolute(fromEnvironment, environment: environment))
        }
        return DataDir(root: homeDirectory(environment: environment) + "/.loopsy")
    }

    /// One variable of `environment`, or of the process's when it is nil. (Not
    /// ProcessInfo.environment: that copies every variable into a dictionary, 1M instructions
    /// of a 32M-instruction `loopsy context get`.)
    static func variable(_ name: String, in environment: [String: String]?) -> String? {
        if let environment { return environment[name] }
        return getenv(name).map { String(cString: $0) }
    }

    public var configFile: String { root + "/config.yaml" }
    public var databaseFile: String { root + "/loopsy.db" }
    public var identityKeyFile: String { root + "/identity.pem" }
    public var pidFile: String { root + "/daemon.pid" }
    /// The port the running daemon bound (differs from config when started with --port 0).
    public var portFile: String { root + "/daemon.port" }
    public var logsDirectory: String { root + "/logs" }
    public var daemonLogFile: String { logsDirectory + "/loopsyd.log" }
    public var tlsDirectory: String { root + "/tls" }
    public var tlsKeyFile: String { tlsDirectory + "/key.pem" }
    public var tlsCertificateFile: String { tlsDirectory + "/cert.pem" }

    public static func homeDirectory(environment: [String: String]? = nil) -> String {
        if let home = variable("HOME", in: environment), !home.isEmpty { return home }
        // No HOME (a service started with a scrubbed environment): the effective user's account
        // entry's, /var/empty when there is none. The entry's strings live in the buffer: they
        // are read while it is held, and a buffer too small for them is doubled.
        var size = 4096
        while size <= 1 << 20 {
            var status: Int32 = 0
            let home = withUnsafeTemporaryAllocation(of: CChar.self, capacity: size) { buffer -> String? in
                var entry = passwd()
                var found: UnsafeMutablePointer<passwd>?
                guard let base = buffer.baseAddress else { return nil }
                status = getpwuid_r(geteuid(), &entry, base, buffer.count, &found)
                guard status == 0, found != nil, let directory = entry.pw_dir else { return nil }
                return String(cString: directory)
            }
            if let home { return home }
            guard status == ERANGE else { break }
            size *= 2
        }
        return "/var/empty"
    }

    /// Expands a leading `~` to the home directory.
    public static func expandTilde(_ path: String, environment: [String: String]? = nil) -> String {
        if path == "~" { return homeDirectory(environment: environment) }
        if path.hasPrefix("~/") { return homeDirectory(environment: environment) + path.dropFirst(1) }
        return path
    }

    private static func absolute(_ path: String, environment: [String: String]?) -> String {
        let expanded = expandTilde(path, environment: environment)
        if expanded.hasPrefix("/") { return expanded }
        guard let directory = getcwd(nil, 0) else { return "/" + expanded }
        defer { free(directory) }
        return String(cString: directory) + "/" + expanded
    }
}

extension DataDir {
    /// The pid in daemon.pid if that process is alive and is a loopsyd (a stale file left by a
    /// crash, or a reused pid, does not count).
    public func runningDaemonPid() -> Int32? {
        guard let text = try? SecureFile.read(pidFile),
              let pid = Int32(text.filter(\.isNumber)), pid > 0, Self.isDaemon(pid) else {
            return nil
        }
        return pid
    }

    /// Whether `pid` is a live loopsyd: it exists (ours to signal or not) and its command line
    /// names loopsyd. A reused pid's does not, nor does a daemon that has exited and waits as a
    /// zombie for whoever adopted it to reap it (its command line is empty).
    public static func isDaemon(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        let cmdline = (try? SecureFile.read("/proc/\(pid)/cmdline")) ?? ""
        return cmdline.includes("loopsyd")
    }
}
