import Foundation
import Testing

/// Several hosts on one machine: network namespaces with their own dbus and avahi-daemon,
/// made and removed by Tests/Support/lab.sh. Needs root; without it the tests fail and say why.
final class Lab: @unchecked Sendable {
    static let script: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Support/lab.sh").path
    }()

    let name: String
    let hosts: Int
    private var nodes: [TestNode] = []

    init(hosts: Int) throws {
        let check = try run("/bin/bash", [Self.script, "check"])
        guard check.status == 0 else {
            throw HarnessError("multi-host tests need network namespaces (run as root with iproute2, dbus and "
                + "avahi-daemon installed; scripts/test.sh installs them): \(check.stderr)")
        }
        name = "l" + String(UUID().uuidString.lowercased().filter(\.isHexDigit).prefix(5))
        self.hosts = hosts
        let up = try run("/bin/bash", [Self.script, "up", name, String(hosts)])
        guard up.status == 0 else { throw HarnessError("lab.sh up failed: \(up.stderr)") }
    }

    func address(_ host: Int) -> String { "10.77.0.\(host)" }

    /// A node whose daemon and CLI run in namespace `host`; `configure` edits its config.
    /// A node on lab host `host`. `tls` is off unless asked for (or `configure` turns it on):
    /// the attack and mDNS tests speak plain HTTP to it.
    func node(_ host: Int, hostname: String? = nil, tls: Bool = false,
              configure: (String) -> String = { $0 }) throws -> TestNode {
        let node = try TestNode { text in
            var text = settingTLS(text, tls)
            if let hostname {
                text = text.replacingOccurrences(of: "  # hostname: my-laptop", with: "  hostname: \(hostname)")
            }
            return configure(text)
        }
        node.launcher = ["/bin/bash", Self.script, "exec", name, String(host)]
        nodes.append(node)
        return node
    }

    func avahi(_ host: Int, _ action: String) throws {
        let result = try run("/bin/bash", [Self.script, "avahi", name, String(host), action])
        guard result.status == 0 else { throw HarnessError("lab.sh avahi \(action) failed: \(result.stderr)") }
    }

    /// Runs a command inside namespace `host`.
    func exec(_ host: Int, _ arguments: [String]) throws -> CommandResult {
        try run("/bin/bash", [Self.script, "exec", name, String(host)] + arguments)
    }

    /// Starts a command inside namespace `host` and returns at once; `finish` waits for it.
    func spawn(_ host: Int, _ arguments: [String]) throws -> Spawned {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [Self.script, "exec", name, String(host)] + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        return Spawned(process: process, output: out)
    }

    final class Spawned: @unchecked Sendable {
        let process: Process
        let output: Pipe
        init(process: Process, output: Pipe) {
            self.process = process
            self.output = output
        }

        /// Waits for the command to end; what it printed.
        func finish() -> String {
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return String(decoding: data, as: UTF8.self)
        }
    }

    func tearDown() {
        for node in nodes { node.cleanUp() }
        _ = try? run("/bin/bash", [Self.script, "down", name])
    }
}
