import Crypto
import Foundation
import LoopsyAPI
import LoopsyClient
import Testing

/// Where `swift build` put the binaries under test (next to this test bundle).
enum Binaries {
    static let directory: String = {
        let bundle = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
        var candidate = bundle.deletingLastPathComponent()
        // The bundle may be a directory (…/loopsyPackageTests.xctest/…); walk up to the build folder.
        while candidate.path != "/" {
            if FileManager.default.isExecutableFile(atPath: candidate.appendingPathComponent("loopsyd").path) {
                return candidate.path
            }
            candidate = candidate.deletingLastPathComponent()
        }
        return bundle.deletingLastPathComponent().path
    }()

    static func path(_ name: String) throws -> String {
        let path = directory + "/" + name
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError("\(path) is missing: run `swift build` before `swift test` (scripts/test.sh does)")
        }
        return path
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The result of running a command to completion.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a binary with the given environment additions and waits for it.
func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
         stdin: String? = nil) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    // Read both pipes fully before waiting, so a chatty child cannot block on a full pipe.
    let group = DispatchGroup()
    nonisolated(unsafe) var outData = Data(), errData = Data()
    group.enter()
    DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    errData = err.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// A real loopsyd on an ephemeral port with its own data directory, made by `loopsy init`.
final class TestNode: @unchecked Sendable {
    let dataDir: String
    private(set) var process: Process?
    /// Set by start(), or by a test that started the daemon another way (`loopsy start`).
    var port = 0
    private var stderrPipe: Pipe?
    /// A command that runs the binaries elsewhere (`lab.sh exec LAB I` for a network namespace).
    var launcher: [String] = []

    /// `configure` edits the generated config.yaml text before the daemon starts.
    init(dataDir directory: String? = nil, configure: (String) -> String = { $0 }) throws {
        dataDir = directory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-it-\(UUID().uuidString)").path
        let result = try run(try Binaries.path("loopsy"), ["init", "--no-mcp", "--data-dir", dataDir])
        guard result.status == 0 else { throw HarnessError("loopsy init failed: \(result.stderr)") }
        let configPath = dataDir + "/config.yaml"
        let text = try String(contentsOfFile: configPath, encoding: .utf8)
        try configure(text).write(toFile: configPath, atomically: true, encoding: .utf8)
        chmod(configPath, 0o600)
    }

    var apiKey: String {
        let text = (try? String(contentsOfFile: dataDir + "/config.yaml", encoding: .utf8)) ?? ""
        let line = text.split(separator: "\n").first { $0.trimming().hasPrefix("apiKey:") } ?? ""
        return line.split(separator: ":", maxSplits: 1).last.map { $0.trimming() } ?? ""
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }
    var environment: [String: String] { ["LOOPSY_DATA_DIR": dataDir] }

    /// Starts loopsyd (by default on an ephemeral loopback port) and reads the bound port from
    /// its first line of output.
    func start(environment extra: [String: String] = [:], host: String = "127.0.0.1", port: Int = 0) throws {
        let process = Process()
        let daemon = try Binaries.path("loopsyd")
        let arguments = ["--data-dir", dataDir, "--port", String(port), "--host", host]
        process.executableURL = URL(fileURLWithPath: launcher.first ?? daemon)
        process.arguments = launcher.isEmpty ? arguments : Array(launcher.dropFirst()) + [daemon] + arguments
        if !extra.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 } }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        self.process = process
        stderrPipe = err
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard let portText = text.split(separator: " ").firstIndex(of: "port").map({ text.split(separator: " ")[$0 + 1] }),
              let port = Int(portText.trimming()) else {
            process.waitUntilExit()
            let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw HarnessError("loopsyd did not start: \(text) \(errors)")
        }
        self.port = port
    }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    func stop() -> Int32 {
        guard let process, process.isRunning else { return process?.terminationStatus ?? 0 }
        process.terminate()
        process.waitUntilExit()
        self.process = nil
        return process.terminationStatus
    }

    func kill9() {
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    /// Set by tests that send malformed HTTP on purpose.
    var sendsMalformedRequests = false

    func cleanUp() {
        stop()
        if !sendsMalformedRequests {
            let log = stderrText() + ((try? String(contentsOfFile: dataDir + "/logs/loopsyd.log", encoding: .utf8)) ?? "")
            checkNoMalformedRequests(log, daemon: dataDir)
        }
        try? FileManager.default.removeItem(atPath: dataDir)
    }

    /// Everything loopsyd wrote to stderr so far (only after stop).
    func stderrText() -> String {
        guard let stderrPipe else { return "" }
        return String(decoding: stderrPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    var client: LoopsyClient { LoopsyClient(baseURL: baseURL, apiKey: apiKey) }

    /// A raw HTTP exchange, for checking statuses and headers of refusals.
    func http(_ method: String, _ path: String, body: String? = nil, key: String? = nil,
              headers: [String: String] = [:]) throws -> CurlHTTPClient.Response {
        var allHeaders = headers
        if let key = key ?? Optional(apiKey), !key.isEmpty { allHeaders["Authorization"] = "Bearer \(key)" }
        if body != nil && allHeaders["Content-Type"] == nil { allHeaders["Content-Type"] = "application/json" }
        return try CurlHTTPClient().send(method: method, url: baseURL + path, headers: allHeaders,
                                         body: body.map { Array($0.utf8) })
    }

    func cli(_ arguments: String...) throws -> CommandResult {
        try cli(arguments)
    }

    func cli(_ arguments: [String], stdin: String? = nil) throws -> CommandResult {
        let loopsy = try Binaries.path("loopsy")
        guard let first = launcher.first else { return try run(loopsy, arguments, environment: environment, stdin: stdin) }
        return try run(first, Array(launcher.dropFirst()) + [loopsy] + arguments, environment: environment, stdin: stdin)
    }

    /// Peers as `loopsy peers --json` shows them.
    func peers() throws -> [PeerInfo] {
        let result = try cli("peers", "list", "--json")
        guard result.status == 0 else { throw HarnessError("loopsy peers failed: \(result.stderr)") }
        return try JSONDecoder().decode(PeerListResponse.self, from: Data(result.stdout.utf8)).peers
    }

    /// The nodeId `loopsy init` made (SHA-256 of the identity's public key, first 16 bytes).
    var nodeId: String {
        get throws {
            let pem = try String(contentsOfFile: dataDir + "/identity.pem", encoding: .utf8)
            let key = try P256.Signing.PrivateKey(pemRepresentation: pem)
            return SHA256.hash(data: key.publicKey.x963Representation).prefix(16).map { String(format: "%02x", $0) }
                .joined()
        }
    }
}

/// Polls `condition` every 100 ms until it holds or `seconds` pass; returns whether it held.
func eventually(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: 0.1)
    }
    return try condition()
}

/// Sets tls.enabled in a config.yaml made by `loopsy init` (which turns it on).
func settingTLS(_ text: String, _ on: Bool) -> String {
    let line = { (value: Bool) in "  enabled: \(value)\(value ? " " : "")           # serve peers" }
    return text.contains(line(on)) ? text : replacingLine(text, line(!on), line(on))
}

/// Changes one config line ("  key: old" → "  key: new"), failing loudly if it is not there.
func replacingLine(_ text: String, _ old: String, _ new: String) -> String {
    precondition(text.contains(old), "config template has no line '\(old)'")
    return text.replacingOccurrences(of: old, with: new)
}

extension CurlHTTPClient.Response {
    var text: String { String(decoding: body, as: UTF8.self) }
    var errorCode: String? { (try? JSONDecoder().decode(ErrorBody.self, from: Data(body)))?.error.code }
    func json<T: Decodable>(_ type: T.Type) throws -> T { try JSONDecoder().decode(type, from: Data(body)) }
}

/// Our own clients never send a daemon what it cannot parse (a TLS ClientHello to a plain-HTTP
/// daemon was one): any such line in a daemon's log fails the test that ran it.
func checkNoMalformedRequests(_ log: String, daemon: String) {
    let lines = log.split(separator: "\n").filter { $0.contains("Request malformed") }
    if !lines.isEmpty {
        Issue.record("loopsyd for \(daemon) logged \(lines.count) malformed request(s): \(lines.first ?? "")")
    }
}

/// A TCP socket listening on an ephemeral port of 127.0.0.1: its descriptor and the port.
func listenOnLoopback() throws -> (descriptor: Int32, port: Int) {
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0
        }
    }
    guard bound, listen(listener, 16) == 0 else {
        close(listener)
        throw HarnessError("cannot listen on 127.0.0.1")
    }
    return (listener, Int(UInt16(bigEndian: address.sin_port)))
}
