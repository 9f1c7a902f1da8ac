import ArgumentParser
import FoundationEssentials
import LoopsyAPI
import LoopsyClient
#if canImport(Glibc)
import Glibc
#endif

struct Peers: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "peers",
        abstract: "List, add and remove peers.",
        discussion: """
            Peers are found over mDNS, added by address, or paired. A peer may be named by its \
            name, its nodeId (or a unique prefix) or its address wherever a command takes <peer>.
            """,
        subcommands: [List.self, Add.self, Remove.self, Grant.self, Revoke.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List known peers.")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            try runReporting {
                let peers = try global.client().peers()
                if json {
                    print(try JSONLine.encode(PeerListResponse(peers: peers), pretty: true))
                    return
                }
                guard !peers.isEmpty else {
                    print("no peers yet: they appear when found over mDNS, or add one with `loopsy peers add <address>`")
                    return
                }
                print(PeerTable.render(peers))
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add",
            abstract: "Add a peer by address.",
            discussion: """
                The local daemon checks the address answers as a loopsy node (over TLS when it can, \
                with the node's key checked against its nodeId). With a key (one of the peer's keys, \
                from `loopsy key show` there) the daemon also introduces this node, so the peer can \
                call back. The key is read from stdin or a file, never from the command line.
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The peer's IP address or host name.") var address: String
        @Argument(help: "Its port.") var port: Int = 19532
        @Flag(help: "Read the peer's API key from the first line of stdin.") var keyStdin = false
        @Option(help: "Read the peer's API key from this file.") var keyFile: String?
        @Option(help: "The fingerprint you expect (from `loopsy status` on the peer); anything else is refused.")
        var fingerprint: String?
        @Flag(help: "Accept a peer without TLS even with a key (the key then crosses the network in clear).")
        var insecureHttp = false
        @Option(name: .customLong("grant"), parsing: .singleValue,
                help: "What the peer may do here once it calls back, e.g. --grant exec,transfer (default: peers.defaultGrants).")
        var grants: [String] = []

        func validate() throws {
            guard (1...65535).contains(port) else { throw ValidationError("the port must be from 1 to 65535") }
            if keyStdin && keyFile != nil { throw ValidationError("use --key-stdin or --key-file, not both") }
            do { _ = try Capability.parseList(grants) } catch { throw ValidationError("\(error)") }
        }

        func run() throws {
            try runReporting {
                let key = try SecretInput.read(stdin: keyStdin, file: keyFile)
                let client = try global.client(timeoutSeconds: 60)
                let granted = grants.isEmpty ? nil : try Capability.parseList(grants).sorted()
                let (peer, notes) = try client.addPeer(PeerAddRequest(address: address, port: port, apiKey: key,
                                                                       fingerprint: fingerprint,
                                                                       allowInsecure: insecureHttp, grants: granted))
                PeerTable.describeAdded(peer, notes: notes)
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove",
            abstract: "Forget a peer and revoke the credential it calls this node with.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The peer: name, nodeId (or prefix) or address.") var peer: String

        func run() throws {
            try runReporting {
                try global.client().removePeer(peer)
                print("removed \(peer); its credential no longer works here")
            }
        }
    }

    struct Grant: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "grant",
            abstract: "Let a peer or an extra key do more on this machine.",
            discussion: """
                Grants: \(Capability.allCases.map { "\($0.rawValue) (\($0.summary))" }.joined(separator: ", ")). \
                `context` means both context grants, `all` every grant. Applies to the peer's next \
                request, no restart. An extra key (auth.allowedKeys) is named key:NAME.
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The peer (name, nodeId or prefix, address) or key:NAME.") var who: String
        @Argument(help: "Grants to add, e.g. exec transfer.") var grants: [String] = []
        @Option(name: .customLong("path"), help: "With transfer: the only directories it may use (repeat; replaces earlier ones).")
        var paths: [String] = []
        @Flag(help: "Remove its own transfer directories (back to transfer.allowedPaths).") var allPaths = false
        @Flag(help: "Start from peers.defaultGrants instead of its current grants.") var reset = false

        func validate() throws {
            do { _ = try Capability.parseList(grants) } catch { throw ValidationError("\(error)") }
            if grants.isEmpty && paths.isEmpty && !allPaths && !reset {
                throw ValidationError("name at least one grant (\(Capability.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            if !paths.isEmpty && allPaths { throw ValidationError("use --path or --all-paths, not both") }
        }

        func run() throws {
            try runReporting {
                let change = GrantChangeRequest(grant: try Capability.parseList(grants).sorted(),
                                                transferPaths: allPaths ? [] : (paths.isEmpty ? nil : paths.map(absolute)),
                                                reset: reset ? true : nil)
                PeerTable.describe(try global.client().changeGrants(who, change))
            }
        }

        private func absolute(_ path: String) -> String {
            path.hasPrefix("/") || path.hasPrefix("~") ? path : currentDirectory() + "/" + path
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "revoke",
            abstract: "Take grants back from a peer or an extra key; refused at its next request.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The peer (name, nodeId or prefix, address) or key:NAME.") var who: String
        @Argument(help: "Grants to remove, e.g. exec (or all).") var grants: [String]

        func validate() throws {
            do { _ = try Capability.parseList(grants) } catch { throw ValidationError("\(error)") }
        }

        func run() throws {
            try runReporting {
                let change = GrantChangeRequest(revoke: try Capability.parseList(grants).sorted())
                PeerTable.describe(try global.client().changeGrants(who, change))
            }
        }
    }
}

private func currentDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    guard getcwd(&buffer, buffer.count) != nil else { return "." }
    return String(cString: buffer)
}

struct Connect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "connect",
        abstract: "Set up a peer by hand, step by step.",
        discussion: """
            Asks for the peer's address, port and API key (typed without echo), adds it, and \
            verifies the setup by calling it through the local daemon. Every answer can be given \
            as a flag instead, for scripts (then nothing is asked).
            """)
    @OptionGroup var global: GlobalOptions
    @Option(help: "The peer's address.") var address: String?
    @Option(help: "The peer's port.") var port: Int?
    @Flag(help: "Read the peer's API key from the first line of stdin.") var keyStdin = false
    @Option(help: "Read the peer's API key from this file.") var keyFile: String?
    @Option(help: "The fingerprint you expect; anything else is refused.") var fingerprint: String?
    @Flag(help: "Accept a peer without TLS even with a key (the key then crosses the network in clear).")
    var insecureHttp = false
    @Flag(help: "Do not ask anything; missing answers are errors (the key is then optional).") var yes = false

    func run() throws {
        try runReporting {
            let client = try global.client(timeoutSeconds: 60)
            let interactive = !yes && isatty(0) == 1
            guard let address = try address ?? (interactive ? Prompt.ask("Peer address (IP or host name)") : nil),
                  !address.isEmpty else {
                throw CLIFailure(message: "give the peer's address with --address", code: CLIFailure.usage)
            }
            var port = port ?? 19532
            if self.port == nil && interactive, let answer = try Prompt.ask("Port [19532]"), !answer.isEmpty {
                guard let value = Int(answer), (1...65535).contains(value) else {
                    throw CLIFailure(message: "the port must be a number from 1 to 65535", code: CLIFailure.usage)
                }
                port = value
            }
            var key = try SecretInput.read(stdin: keyStdin, file: keyFile)
            if key == nil && interactive {
                key = try Prompt.askSecret("Peer's API key (`loopsy key show` on it; Enter to skip)")
            }
            var expected = fingerprint
            if expected == nil && interactive {
                expected = try Prompt.ask("Its fingerprint from `loopsy status` there (Enter to trust what it says)")
                if expected?.isEmpty == true { expected = nil }
            }
            print("checking \(address):\(port) …")
            let (peer, notes) = try client.addPeer(PeerAddRequest(address: address, port: port, apiKey: key,
                                                                   fingerprint: expected, allowInsecure: insecureHttp))
            PeerTable.describeAdded(peer, notes: notes)
            guard peer.hasCredential else {
                print("without a key this node can see \(peer.name) but not call it; run `loopsy connect` again with one")
                return
            }
            let status = try client.throughPeer(peer.nodeId).status()
            print("verified: called \(status.hostname) through the local daemon (loopsyd \(status.version), "
                + "up \(Int(status.uptime)) s). Try `loopsy exec \(peer.name) uname -a`.")
        }
    }
}

enum PeerTable {
    static func render(_ peers: [PeerInfo]) -> String {
        var rows = [["NAME", "NODE", "ADDRESS", "STATUS", "SECURITY", "SOURCE", "MAY HERE", "LAST SEEN"]]
        let now = Int64(time(nil)) * 1000
        for peer in peers {
            let security = peer.tls ? (peer.fingerprint != nil ? "tls, pinned" : "tls, unpinned") : "plain http"
            let seen = peer.lastSeen.map { ago(now - $0) } ?? "never"
            rows.append([peer.name, String(peer.nodeId.prefix(12)), "\(peer.address):\(peer.port)", peer.status.rawValue,
                         security, peer.source.rawValue + (peer.hasCredential ? "" : " (no key)"), grantSummary(peer), seen])
        }
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    /// What the peer may do here: "-" when it cannot call us at all.
    static func grantSummary(_ peer: PeerInfo) -> String {
        guard peer.acceptsCredential, let grants = peer.grants else { return "-" }
        return grants.isEmpty ? "nothing" : grants.map(\.rawValue).joined(separator: ",")
    }

    static func describe(_ grant: GrantInfo) {
        let list = grant.grants.isEmpty ? "nothing" : grant.grants.map(\.rawValue).joined(separator: ", ")
        print("\(grant.kind == "key" ? "key " + grant.name : grant.name) may now: \(list)"
            + (grant.isDefault ? " (peers.defaultGrants)" : ""))
        if let paths = grant.transferPaths, grant.grants.contains(.transfer) {
            print("  transfers only in: \(paths.joined(separator: ", "))")
        }
    }

    static func ago(_ millis: Int64) -> String {
        let seconds = max(0, millis / 1000)
        if seconds < 60 { return "\(seconds)s ago" }
        if seconds < 3600 { return "\(seconds / 60)m ago" }
        return "\(seconds / 3600)h ago"
    }

    static func describeAdded(_ peer: PeerInfo, notes: [String]) {
        print("added \(peer.name) (\(peer.nodeId)) at \(peer.address):\(peer.port)")
        if let fingerprint = peer.fingerprint, peer.tls {
            print("  TLS key pinned: \(fingerprint)")
        } else {
            print("  plain HTTP: traffic to this peer is not encrypted (enable tls on it)")
        }
        print("  " + (peer.hasCredential ? "this node can call it" : "no key: this node cannot call it yet"))
        if peer.acceptsCredential { print("  it was given its own key for calling back") }
        for note in notes { print("  note: \(note)") }
    }
}

/// Secrets from stdin or a file, never argv (where `ps` and shell history would show them).
enum SecretInput {
    static func read(stdin: Bool, file: String?) throws -> String? {
        if stdin {
            guard let line = readLine(strippingNewline: true)?.trimming(), !line.isEmpty else {
                throw CLIFailure(message: "--key-stdin: nothing on stdin", code: CLIFailure.usage)
            }
            return line
        }
        guard let file else { return nil }
        guard let handle = fopen(file, "r") else {
            throw CLIFailure(message: "cannot read \(file): \(String(cString: strerror(errno)))", code: CLIFailure.usage)
        }
        defer { fclose(handle) }
        var buffer = [CChar](repeating: 0, count: 1024)
        guard fgets(&buffer, Int32(buffer.count), handle) != nil else {
            throw CLIFailure(message: "\(file) is empty", code: CLIFailure.usage)
        }
        let key = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).trimming()
        guard !key.isEmpty else { throw CLIFailure(message: "\(file) is empty", code: CLIFailure.usage) }
        return key
    }
}

/// Questions on the terminal.
enum Prompt {
    static func ask(_ question: String) throws -> String? {
        print("\(question): ", terminator: "")
        fflush(nil)
        guard let line = readLine(strippingNewline: true) else {
            throw CLIFailure(message: "no answer (stdin closed)", code: CLIFailure.usage)
        }
        return line.trimming()
    }

    /// Reads a line with echo off.
    static func askSecret(_ question: String) throws -> String? {
        var saved = termios()
        let isTerminal = tcgetattr(0, &saved) == 0
        if isTerminal {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(0, TCSANOW, &quiet)
        }
        defer {
            if isTerminal {
                tcsetattr(0, TCSANOW, &saved)
                print("")
            }
        }
        let answer = try ask(question)
        return answer?.isEmpty == true ? nil : answer
    }
}
