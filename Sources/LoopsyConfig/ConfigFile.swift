/// Reading, creating and editing `config.yaml`.
public enum ConfigFile {
    public static func load(_ dataDir: DataDir) throws -> (config: LoopsyConfig, warnings: [String]) {
        guard SecureFile.exists(dataDir.configFile) else {
            throw ConfigError("no config at \(dataDir.configFile); run `loopsy init` first")
        }
        var (config, warnings) = try ConfigParser.parse(try SecureFile.read(dataDir.configFile))
        if config.auth.apiKey.count < 32 {
            throw ConfigError("auth.apiKey in \(dataDir.configFile) is missing or shorter than 32 characters; "
                + "run `loopsy key generate`")
        }
        if let mode = SecureFile.mode(dataDir.configFile), mode & 0o077 != 0 {
            warnings.append("\(dataDir.configFile) is readable by other users (mode \(String(mode, radix: 8))); "
                + "run `chmod 600 \(dataDir.configFile)`")
        }
        return (config, warnings)
    }

    /// The config `loopsy init` writes: every key with its default, commented. A session's
    /// (`loopsy session`) listens on `host` 127.0.0.1 without mDNS `discovery`.
    public static func template(apiKey: String, port: Int = 19532, hostname: String? = nil, host: String? = nil,
                                discovery: Bool? = nil) -> String {
        var defaults = LoopsyConfig()
        if let host { defaults.server.host = host }
        if let discovery { defaults.discovery.enabled = discovery }
        return """
            # Loopsy node configuration. Restart loopsyd after editing (auth keys apply at once).
            server:
              port: \(port)
              host: \(defaults.server.host)          # address to listen on; 127.0.0.1 keeps it on this machine
            \(hostname.map { "  hostname: \($0)" } ?? "  # hostname: my-laptop   # name shown to peers (default: system hostname)")
              connectionTimeout: \(defaults.server.connectionTimeout)     # seconds idle (slowloris defence)
              maxConnections: \(defaults.server.maxConnections)     # from other machines, per listener; more are refused
              maxConnectionsPerAddress: \(defaults.server.maxConnectionsPerAddress)   # from one remote address
              loopbackReserve: \(defaults.server.loopbackReserve)     # extra slots only local clients can use
              headerTimeout: \(defaults.server.headerTimeout)       # seconds a client has to send a request head
              connectionMemoryKiB: \(defaults.server.connectionMemoryKiB)   # per connection: request head and cookies up to about a third of it
            auth:
              apiKey: \(apiKey)
              allowedKeys: {}          # name: key, for hand-made setups (pairing manages peer keys)
            tls:
              enabled: \(defaults.tls.enabled)\(defaults.tls.enabled ? " " : "")           # serve peers over HTTPS (tls/cert.pem); loopback stays HTTP
              pinnedCerts: {}          # peer name or nodeId: sha256 hex of its TLS key (overrides what was learned)
            execution:
              denylist: [\(defaults.execution.denylist.joined(separator: ", "))]
              # allowlist: [git, ls, cat]   # when set, only these programs may run
              maxConcurrent: \(defaults.execution.maxConcurrent)
              defaultTimeout: \(defaults.execution.defaultTimeout)     # ms
              maxTimeout: \(defaults.execution.maxTimeout)        # ms
              maxOutputBytes: \(defaults.execution.maxOutputBytes)
              environment: []          # daemon variables passed to commands besides HOME, USER, LANG, PATH, …
            transfer:
              allowedPaths: [\(quoted(defaults.transfer.allowedPaths))]   # "~" is the daemon user's home
              deniedPaths: [\(quoted(defaults.transfer.deniedPaths))]
              maxFileSize: \(defaults.transfer.maxFileSize)
              allowedDotfiles: []      # dotfiles that run code (~/.bashrc, ~/.config/systemd, …) peers may still use
            rateLimits:                # requests per minute per caller; 0 = unlimited
              execute: \(defaults.rateLimits.execute)
              transfer: \(defaults.rateLimits.transfer)
              context: \(defaults.rateLimits.context)
              pairing: \(defaults.rateLimits.pairing)               # per source address, on the routes that need no key
              exemptLocalOwner: \(defaults.rateLimits.exemptLocalOwner)   # the node's own key on loopback is not limited
            context:
              maxValueBytes: \(defaults.context.maxValueBytes)
              maxEntries: \(defaults.context.maxEntries)
            audit:
              retentionDays: \(defaults.audit.retentionDays)
              maxEntries: \(defaults.audit.maxEntries)
            aiTasks:                   # Claude Code tasks dispatched to this node
              claudePath: \(defaults.aiTasks.claudePath)
              maxConcurrent: \(defaults.aiTasks.maxConcurrent)
              maxDurationSeconds: \(defaults.aiTasks.maxDurationSeconds)
              approvalTimeoutSeconds: \(defaults.aiTasks.approvalTimeoutSeconds)   # unanswered permission requests are denied
              retentionDays: \(defaults.aiTasks.retentionDays)
              maxEventBytes: \(defaults.aiTasks.maxEventBytes)   # event data stored per task
              environment: [\(defaults.aiTasks.environment.joined(separator: ", "))]   # passed to claude
            channels:                  # Claude Code sessions with loopsy-mcp as a channel (see "Live sessions")
              approvers: []            # peers that get this machine's permission prompts (loopsy approve)
              approvalTimeoutSeconds: \(defaults.channels.approvalTimeoutSeconds)
              maxPendingApprovals: \(defaults.channels.maxPendingApprovals)
            peers:
              defaultGrants: [\(defaults.peers.defaultGrants.sorted().map(\.rawValue).joined(separator: ", "))]   # what a new peer may do here
            pairing:
              timeoutSeconds: \(defaults.pairing.timeoutSeconds)     # a `loopsy pair` session closes after this
            messages:
              maxBodyBytes: \(defaults.messages.maxBodyBytes)      # largest message body
              defaultTtl: \(defaults.messages.defaultTtl)        # seconds a message may wait for an offline peer
              maxInboxPerSender: \(defaults.messages.maxInboxPerSender)   # unacked messages kept per sender; more are refused (and as many acked, or twice while receipts are owed)
            discovery:
              enabled: \(defaults.discovery.enabled)\(defaults.discovery.enabled ? " " : "")           # mDNS (_loopsy._tcp via avahi-daemon)
              manualPeers: []          # [{address: 192.168.1.20, port: 19532}] probed at start
              healthInterval: \(defaults.discovery.healthInterval)       # seconds between peer health checks
              offlineAfter: \(defaults.discovery.offlineAfter)          # failed checks before a peer is offline
              maxUnpairedPeers: \(defaults.discovery.maxUnpairedPeers)       # peers known only from mDNS adverts; more are ignored
              maxUnpairedPerAddress: \(defaults.discovery.maxUnpairedPerAddress)   # of those, at one address
              unpairedExpiry: \(defaults.discovery.unpairedExpiry)       # seconds an unseen, unanswering mDNS-only peer is kept
            logging:
              level: \(defaults.logging.level.rawValue)
              maxFileBytes: \(defaults.logging.maxFileBytes)   # the log file then becomes loopsyd.log.1 and a new one begins

            """
    }

    /// YAML reads a bare `~` as null, so paths are always quoted.
    private static func quoted(_ items: [String]) -> String {
        items.map { "\"\($0)\"" }.joined(separator: ", ")
    }

    /// Replaces `auth.apiKey` in the file's text, keeping every other line and comment.
    public static func replacingAPIKey(in text: String, with newKey: String) throws -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var inAuth = false
        var replaced = 0
        for index in lines.indices {
            let line = lines[index]
            let trimmed = line.drop { $0 == " " }
            if !line.hasPrefix(" ") && !line.hasPrefix("#") && !line.isEmpty { inAuth = line.hasPrefix("auth:") }
            if inAuth && line.hasPrefix(" ") && trimmed.hasPrefix("apiKey:") {
                let indent = String(line.prefix { $0 == " " })
                lines[index] = indent + "apiKey: " + newKey
                replaced += 1
            }
        }
        guard replaced == 1 else {
            throw ConfigError("could not find exactly one auth.apiKey line in config.yaml to replace; edit it by hand")
        }
        let result = lines.joined(separator: "\n")
        let (parsed, _) = try ConfigParser.parse(result)
        guard parsed.auth.apiKey == newKey else {
            throw ConfigError("auth.apiKey in config.yaml has a layout this tool cannot edit; edit it by hand")
        }
        return result
    }
}
