import ArgumentParser
import LoopsyAPI
import LoopsyClient
#if canImport(Glibc)
import Glibc
#endif

struct Pair: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pair",
        abstract: "Pair this machine with another one, securely.",
        discussion: """
            Without an address this machine waits: it shows a 6-digit invite code. On the other \
            machine run `loopsy pair <this address>` and type the code. Both screens then show a \
            6-digit verification code (SAS): compare them and answer on each machine. Only when \
            both people confirm do the machines exchange their identities and keys, encrypted. \
            The session closes after a wrong code and expires after pairing.timeoutSeconds. \
            Each person also decides what the other machine may do on theirs: it always gets \
            peers.defaultGrants (by default the context store and messages); running programs, \
            files and Claude Code tasks are asked one by one, or given with --grant (for example \
            --grant exec,transfer, or --grant none). Change them later with `loopsy peers grant|revoke`.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The other machine's address, as `loopsy pair` printed there (http://address when it serves plain HTTP); omit to wait for it.")
    var address: String?
    @Argument(help: "Its port.") var port: Int = 19532
    @Option(help: "The invite code (for scripts; otherwise asked).") var code: String?
    @Flag(help: "Accept the verification code without asking (for scripted tests only).") var yes = false
    @Flag(help: "Cancel this machine's pairing session.") var cancel = false
    @Option(name: .customLong("grant"), parsing: .singleValue,
            help: "What the other machine may do here, e.g. --grant context,messages,exec (none: nothing); not asked then.")
    var grants: [String] = []

    func validate() throws {
        if grants != ["none"] {
            do { _ = try Capability.parseList(grants) } catch { throw ValidationError("\(error)") }
        }
    }

    func run() throws {
        try runReporting {
            let client = try global.client(timeoutSeconds: 60)
            if cancel {
                _ = try client.pairCancel()
                say("pairing cancelled")
                return
            }
            if let address {
                try initiate(client, address: address)
            } else {
                try respond(client)
            }
        }
    }

    private func respond(_ client: LoopsyClient) throws {
        let started = try client.pairStart()
        let grouped = String(started.code.prefix(3)) + " " + String(started.code.suffix(3))
        let portHint = started.port == 19532 ? "" : " \(started.port)"
        // A node without TLS says so in the command, so the other side asks it in plain HTTP
        // (a TLS handshake would be a malformed request to it).
        let scheme = started.tls == false ? "http://" : ""
        say("Invite code: \(grouped)   (valid \(max(1, (started.expiresAt - nowMillis() + 59_999) / 60_000)) min)")
        if started.addresses.isEmpty {
            say("On the other machine run:  loopsy pair \(scheme)<this machine's address>\(portHint)")
        } else {
            for address in started.addresses { say("On the other machine run:  loopsy pair \(scheme)\(address)\(portHint)") }
        }
        say("Waiting for the other machine…")
        let status = try waitFor(client) { $0.state != "waiting" && $0.state != "committed" }
        try compareAndConfirm(client, status)
    }

    private func initiate(_ client: LoopsyClient, address: String) throws {
        var typed = code
        if typed == nil {
            typed = try Prompt.ask("Invite code shown on the other machine")
        }
        guard let typed, !typed.isEmpty else {
            throw CLIFailure(message: "the invite code is needed: run `loopsy pair` on the other machine to see it",
                             code: CLIFailure.usage)
        }
        var address = address, scheme: String?
        for prefix in ["http://", "https://"] where address.lowercased().hasPrefix(prefix) {
            scheme = String(prefix.dropLast(3))
            address = String(address.dropFirst(prefix.count))
        }
        say("contacting \(address):\(port) …")
        let status = try client.pairInitiate(PairInitiateRequest(address: address, port: port, code: typed, scheme: scheme))
        try compareAndConfirm(client, status)
    }

    /// Shows the SAS, asks the person, confirms here, and waits for the end.
    private func compareAndConfirm(_ client: LoopsyClient, _ status: PairStatus) throws {
        guard status.state == "sas", let sas = status.sas else { throw outcome(status) }
        say("Verification code: \(sas.prefix(3)) \(sas.suffix(3))")
        say("Check that the other screen shows the same six digits.")
        var accept = yes
        if !yes {
            let answer = try Prompt.ask("Same code on both screens? [y/N]")?.lowercased() ?? ""
            accept = answer == "y" || answer == "yes"
        }
        let granted = accept ? try chooseGrants(status) : nil
        let confirmed = try client.pairConfirm(accept: accept, grants: granted)
        guard accept else {
            throw CLIFailure(message: "pairing cancelled: the codes differ, so someone may be in between. Nothing was "
                + "exchanged; try again, ideally on a network you trust", code: CLIFailure.apiError)
        }
        if confirmed.state != "completed" { say("Waiting for the other person to confirm…") }
        let final = try waitFor(client) { !["sas", "confirmed"].contains($0.state) }
        guard final.state == "completed" else { throw outcome(final) }
        say("paired with \(final.peerName ?? "?") (\(final.peerNodeId ?? "?")): keys exchanged, TLS key pinned. "
            + "Try `loopsy exec \(final.peerName ?? "<peer>") uname -a`.")
    }

    /// What the other machine may do here: --grant, or the defaults plus one question per
    /// powerful grant (nil: the defaults, for scripted runs).
    private func chooseGrants(_ status: PairStatus) throws -> [Capability]? {
        if grants == ["none"] { return [] }
        if !grants.isEmpty { return try Capability.parseList(grants).sorted() }
        if yes || isatty(0) == 0 { return nil }
        let defaults = Set(status.defaultGrants ?? [.contextRead, .contextWrite, .messages])
        var chosen = defaults.filter { !$0.isPowerful }
        say("The other machine may " + chosen.sorted().map(\.summary).joined(separator: ", ") + " here.")
        for capability in Capability.allCases where capability.isPowerful {
            let byDefault = defaults.contains(capability)
            let answer = try Prompt.ask("Let it \(capability.summary)? [\(byDefault ? "Y/n" : "y/N")]")?.lowercased() ?? ""
            if answer.isEmpty ? byDefault : (answer == "y" || answer == "yes") { chosen.insert(capability) }
        }
        return chosen.sorted()
    }

    private func waitFor(_ client: LoopsyClient, until done: (PairStatus) -> Bool) throws -> PairStatus {
        while true {
            let status = try client.pairStatus()
            if done(status) { return status }
            usleep(200_000)
        }
    }

    private func outcome(_ status: PairStatus) -> CLIFailure {
        let reason: String
        switch status.state {
        case "expired": reason = "the pairing session expired; start again with `loopsy pair`"
        case "cancelled": reason = "pairing cancelled: \(status.error ?? "the other side declined")"
        default: reason = "pairing failed: \(status.error ?? status.state)"
        }
        return CLIFailure(message: reason, code: CLIFailure.apiError)
    }

    /// Printed at once: the other person may be waiting on this line (stdout may be a pipe).
    private func say(_ text: String) {
        print(text)
        fflush(nil)
    }

    private func nowMillis() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}
