import ArgumentParser
import LoopsyConfig

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "init",
        abstract: "Create the node's config, API key and identity.",
        discussion: "An existing setup is kept as it is; --force writes a fresh config with a new API key "
            + "(the node identity, and so its nodeId, stays).")

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Replace an existing config.yaml (new API key).") var force = false
    @Option(help: "Port to write into the new config.") var port: Int = 19532
    @Flag(help: "Do not register loopsy-mcp with Claude Code.") var noMcp = false

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be from 1 to 65535") }
    }

    func run() throws {
        try runReporting {
            let dataDir = global.resolvedDataDir
            try SecureFile.makeDirectory(dataDir.root)
            try SecureFile.makeDirectory(dataDir.logsDirectory)
            let identity: NodeIdentity
            if !SecureFile.exists(dataDir.identityKeyFile) {
                identity = NodeIdentity.generate()
                try identity.save(to: dataDir.identityKeyFile)
                print("created node identity \(identity.nodeId) (\(dataDir.identityKeyFile))")
            } else {
                identity = try NodeIdentity.load(from: dataDir.identityKeyFile)
                print("node identity \(identity.nodeId) kept")
            }
            _ = try TLSFiles.ensure(dataDir, identity: identity)
            print("TLS certificate \(dataDir.tlsCertificateFile), key fingerprint "
                + TLSCertificate.fingerprint(of: identity.privateKey.publicKey))
            if SecureFile.exists(dataDir.configFile) && !force {
                _ = try ConfigFile.load(dataDir)
                print("config kept: \(dataDir.configFile) (use --force for a fresh one with a new API key)")
            } else {
                try SecureFile.write(dataDir.configFile, contents: ConfigFile.template(apiKey: Secrets.apiKey(), port: port))
                print("wrote \(dataDir.configFile) (mode 600) with a new API key")
            }
            if !noMcp {
                let registration = ClaudeRegistration(dataDir: global.dataDir)
                if !ClaudeRegistration.claudeIsPresent() {
                    print("Claude Code not found; register loopsy-mcp with it later with `loopsy mcp add`")
                } else if !registration.registrations().isEmpty {
                    print("loopsy-mcp is already registered with Claude Code (`loopsy mcp status`)")
                } else {
                    do {
                        print(try registration.add(scope: .user))
                    } catch {
                        print("could not register loopsy-mcp with Claude Code (\(error)); run `loopsy mcp add` later")
                    }
                }
            }
            print("next: `loopsy start`")
        }
    }
}
