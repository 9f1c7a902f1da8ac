import ArgumentParser
import LoopsyAPI
import LoopsyClient
import LoopsyConfig
import LoopsyPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// One finding of `loopsy doctor`.
struct Finding: Codable, Sendable {
    /// ok, warn or fail.
    var status: String
    var check: String
    var message: String
    /// The command (or action) that fixes it.
    var fix: String?
}

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "doctor",
        abstract: "Check this node: config, daemon, database, TLS, mDNS, Claude Code, peers, service, port.",
        discussion: "Exits 1 when anything fails (warnings alone exit 0); each problem comes with what fixes it.")

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let findings = Checks(dataDir: global.resolvedDataDir, explicitDataDir: global.dataDir).all()
        if json {
            print(try JSONLine.encode(DoctorReport(ok: !findings.contains { $0.status == "fail" }, findings: findings),
                                      pretty: true))
        } else {
            for finding in findings {
                let mark = finding.status == "ok" ? "ok  " : (finding.status == "warn" ? "warn" : "FAIL")
                print("\(mark) \(finding.check): \(finding.message)" + (finding.fix.map { "\n     fix: \($0)" } ?? ""))
            }
        }
        if findings.contains(where: { $0.status == "fail" }) { throw ExitCode(1) }
    }
}

struct DoctorReport: Codable, Sendable {
    var ok: Bool
    var findings: [Finding]
}

private struct Checks {
    let dataDir: DataDir
    let explicitDataDir: String?

    func all() -> [Finding] {
        var findings: [Finding] = []
        let (config, configFindings) = checkConfig()
        findings += configFindings
        guard let config else { return findings }
        findings += checkDatabase()
        findings += checkTLS(config)
        let client = checkDaemon(config, into: &findings)
        findings += checkAvahi(config)
        findings += checkMCP()
        if let client { findings += checkPeers(client) }
        findings += checkService()
        return findings
    }

    private func ok(_ check: String, _ message: String) -> Finding { Finding(status: "ok", check: check, message: message) }
    private func warn(_ check: String, _ message: String, _ fix: String?) -> Finding {
        Finding(status: "warn", check: check, message: message, fix: fix)
    }
    private func fail(_ check: String, _ message: String, _ fix: String?) -> Finding {
        Finding(status: "fail", check: check, message: message, fix: fix)
    }

    private func checkConfig() -> (LoopsyConfig?, [Finding]) {
        guard SecureFile.exists(dataDir.configFile) else {
            return (nil, [fail("config", "no config at \(dataDir.configFile)", "loopsy init")])
        }
        var findings: [Finding] = []
        let config: LoopsyConfig
        do {
            let (parsed, warnings) = try ConfigFile.load(dataDir)
            config = parsed
            let unknown = warnings.filter { $0.includes("unknown config key") }
            findings.append(unknown.isEmpty ? ok("config", "\(dataDir.configFile) parses")
                            : warn("config", unknown.joined(separator: "; "), "remove or fix those keys"))
        } catch {
            return (nil, [fail("config", "\(error)", "fix the line it names, or `loopsy init --force` for a fresh one")])
        }
        if let mode = SecureFile.mode(dataDir.configFile), mode & 0o077 != 0 {
            findings.append(fail("config private", "\(dataDir.configFile) is mode \(String(mode, radix: 8)): others can "
                + "read the API key", "chmod 600 \(dataDir.configFile)"))
        } else {
            findings.append(ok("config private", "config.yaml is readable by you only"))
        }
        if let mode = SecureFile.mode(dataDir.root), mode & 0o077 != 0 {
            findings.append(fail("data dir private", "\(dataDir.root) is mode \(String(mode, radix: 8))",
                                 "chmod 700 \(dataDir.root)"))
        }
        return (config, findings)
    }

    private func checkDatabase() -> [Finding] {
        guard SecureFile.exists(dataDir.databaseFile) else {
            return [warn("database", "no database yet (it is made when loopsyd first starts)", "loopsy start")]
        }
        // loopsyd owns the database: it reads it (read-only) and says what it found.
        guard let loopsyd = try? DaemonProcess.executable() else {
            return [fail("database", "loopsyd, which reads the database, was not found next to loopsy or on PATH",
                         "reinstall loopsy")]
        }
        var checker = Subprocess(loopsyd, ["check-database", "--data-dir", dataDir.root])
        checker.stdout = .capture
        checker.stderr = .discard
        let check: DatabaseCheck
        do {
            let (status, output) = try checker.run()
            guard status == .exited(0), let decoded = try? SafeJSON.decode(DatabaseCheck.self, from: output) else {
                let reason = (try? SafeJSON.decode(ErrorBody.self, from: output))?.error.message ?? "\(status)"
                return [fail("database", "cannot read \(dataDir.databaseFile): \(reason)",
                             "check the file's owner and mode; if it is damaged, stop loopsyd, move it aside and start again")]
            }
            check = decoded
        } catch {
            return [fail("database", "cannot run loopsyd to read \(dataDir.databaseFile): \(error)", "reinstall loopsy")]
        }
        guard check.integrity == ["ok"] else {
            return [fail("database", "integrity check: \(check.integrity.prefix(3).joined(separator: "; "))",
                         "stop loopsyd, move \(dataDir.databaseFile) aside and start again (context and messages are lost)")]
        }
        if check.applied < check.available {
            return [warn("database", "schema at migration \(check.applied), this build has \(check.available)",
                         "restart loopsyd to apply them (`loopsy stop && loopsy start`)")]
        }
        return [ok("database", "integrity ok, migrations current (\(check.applied))")]
    }

    private func checkTLS(_ config: LoopsyConfig) -> [Finding] {
        guard let identity = try? NodeIdentity.load(from: dataDir.identityKeyFile) else {
            return [fail("identity", "no readable identity at \(dataDir.identityKeyFile)", "loopsy init")]
        }
        let files = SecureFile.exists(dataDir.tlsCertificateFile) && SecureFile.exists(dataDir.tlsKeyFile)
        if let mode = SecureFile.mode(dataDir.tlsKeyFile), mode & 0o077 != 0 {
            return [fail("tls", "\(dataDir.tlsKeyFile) is mode \(String(mode, radix: 8))", "chmod 600 \(dataDir.tlsKeyFile)")]
        }
        guard files else {
            return [config.tls.enabled ? fail("tls", "tls.enabled but no certificate in \(dataDir.tlsDirectory)", "loopsy init")
                    : warn("tls", "no certificate yet; peers would use plain HTTP", "loopsy init (then set tls.enabled)")]
        }
        let certificate = (try? SecureFile.read(dataDir.tlsCertificateFile)).flatMap(TLSCertificate.der(fromPEM:)) ?? []
        guard TLSFiles.certificateMatches(certificate, identity: identity) else {
            return [fail("tls", "tls/cert.pem is not for this node's identity key", "loopsy init (it remakes the certificate)")]
        }
        let fingerprint = TLSCertificate.fingerprint(of: identity.privateKey.publicKey)
        return config.tls.enabled ? [ok("tls", "serving peers over HTTPS, fingerprint \(fingerprint)")]
            : [warn("tls", "tls.enabled is false: keys and data between peers cross the network in clear",
                    "set tls.enabled: true in \(dataDir.configFile) and restart loopsyd")]
    }

    private func checkDaemon(_ config: LoopsyConfig, into findings: inout [Finding]) -> LoopsyClient? {
        guard let pid = dataDir.runningDaemonPid() else {
            findings.append(fail("daemon", "loopsyd is not running", "loopsy start"))
            let port = config.server.port
            findings.append(Port.isFree(host: config.server.host, port: UInt16(port)) ? ok("port", "port \(port) is free for loopsyd")
                            : fail("port", "port \(port) is taken by another program", "stop it, or change server.port"))
            return nil
        }
        do {
            let client = try LoopsyClient.local(dataDir, timeoutSeconds: 5)
            let health = try client.health()
            findings.append(ok("daemon", "loopsyd \(health.version) healthy (pid \(pid)) at \(client.baseURL)"))
            return client
        } catch {
            findings.append(fail("daemon", "loopsyd (pid \(pid)) does not answer: \(CLIFailure.from(error).message)",
                                 "loopsy stop && loopsy start; see \(dataDir.daemonLogFile)"))
            return nil
        }
    }

    private func checkAvahi(_ config: LoopsyConfig) -> [Finding] {
        guard config.discovery.enabled else { return [ok("mdns", "discovery.enabled is false: mDNS not used")] }
        guard let avahi = Programs.onPath("avahi-daemon") ?? ["/usr/sbin/avahi-daemon"].first(where: {
            access($0, X_OK) == 0
        }) else {
            return [warn("mdns", "avahi-daemon is not installed: peers are not discovered automatically",
                         "sudo apt-get install avahi-daemon")]
        }
        let running = (try? ClaudeRegistration.run(avahi, ["--check"], quiet: true)) == 0
        return running ? [ok("mdns", "avahi-daemon is running")]
            : [warn("mdns", "avahi-daemon is not running: peers are not discovered automatically",
                    "sudo systemctl start avahi-daemon")]
    }

    private func checkMCP() -> [Finding] {
        let registration = ClaudeRegistration(dataDir: explicitDataDir)
        guard ClaudeRegistration.claudeIsPresent() else {
            return [ok("claude code", "Claude Code not found; nothing to register")]
        }
        let found = registration.registrations()
        return found.isEmpty ? [warn("claude code", "loopsy-mcp is not registered with Claude Code", "loopsy mcp add")]
            : [ok("claude code", "loopsy-mcp registered (\(found.map(\.0.rawValue).joined(separator: ", ")))")]
    }

    private func checkPeers(_ client: LoopsyClient) -> [Finding] {
        guard let peers = try? client.peers() else { return [] }
        return peers.filter(\.hasCredential).map { peer in
            do {
                let health = try client.throughPeer(peer.nodeId).health()
                guard health.nodeId == peer.nodeId else {
                    return fail("peer \(peer.name)", "another node answers at \(peer.address):\(peer.port)",
                                "loopsy peers remove \(peer.nodeId), then add or pair it again")
                }
                if peer.address.hasPrefix("127.") { return ok("peer \(peer.name)", "reachable on this machine (loopback)") }
                return peer.tls && peer.fingerprint != nil ? ok("peer \(peer.name)", "reachable, TLS key pinned")
                    : warn("peer \(peer.name)", "reachable over plain HTTP", "enable tls on \(peer.name), then pair again")
            } catch ClientError.api(let error) where error.is(.peerPinMismatch) {
                return fail("peer \(peer.name)", "presents a TLS key other than the pinned one",
                            "if it was re-installed: loopsy peers remove \(peer.nodeId) and pair again")
            } catch {
                return warn("peer \(peer.name)", "not reachable: \(CLIFailure.from(error).message)",
                            "check that loopsyd runs there (loopsy status on \(peer.name))")
            }
        }
    }

    private func checkService() -> [Finding] {
        SecureFile.exists(UserService.unitPath) ? [ok("service", "user unit \(UserService.unitPath)")]
            : [warn("service", "not registered as a user service (it will not start at login)", "loopsy enable")]
    }
}
