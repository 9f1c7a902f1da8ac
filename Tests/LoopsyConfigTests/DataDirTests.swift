import Glibc
import LoopsyConfig
import Testing

/// Where the data dir is when nothing names it, and relative paths, without FileManager.
@Suite struct DataDirTests {
    @Test func withoutHomeTheAccountsHomeDirectoryIsUsed() throws {
        // A uid without an account entry (a container's --user 12345) has /var/empty.
        let home = getpwuid(geteuid()).map { String(cString: $0.pointee.pw_dir) } ?? "/var/empty"
        #expect(DataDir.homeDirectory(environment: [:]) == home)
        #expect(DataDir.homeDirectory(environment: ["HOME": ""]) == home)
        #expect(DataDir.homeDirectory(environment: ["HOME": "/srv/agent"]) == "/srv/agent")
        #expect(DataDir.resolve(environment: [:]).root == home + "/.loopsy")
    }

    @Test func relativePathsAreTakenFromTheWorkingDirectory() throws {
        let directory = try #require(getcwd(nil, 0))
        defer { free(directory) }
        let cwd = String(cString: directory)
        #expect(DataDir.resolve(explicit: "nodes/a", environment: [:]).root == cwd + "/nodes/a")
        #expect(DataDir.resolve(environment: ["LOOPSY_DATA_DIR": "b", "HOME": "/h"]).root == cwd + "/b")
        #expect(DataDir.resolve(explicit: "~/c", environment: ["HOME": "/h"]).root == "/h/c")
        #expect(DataDir.resolve(explicit: "/abs", environment: [:]).root == "/abs")
    }
}
