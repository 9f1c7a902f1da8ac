import LoopsyAPI

extension Reader {
    mutating func server(_ node: YAMLNode, into server: inout LoopsyConfig.Server) throws {
        for (key, value) in try mapping(node, at: "server") {
            let path = "server.\(key)"
            switch key {
            case "port": server.port = try int(value, at: path, max: 65535)
            case "host": server.host = try string(value, at: path)
            case "hostname": server.hostname = value.isNull ? nil : try string(value, at: path)
            case "threads": server.threads = try int(value, at: path, max: 256)
            case "connectionTimeout": server.connectionTimeout = try int(value, at: path, min: 1, max: 3600)
            case "maxConnections": server.maxConnections = try int(value, at: path, min: 1, max: 100_000)
            case "maxConnectionsPerAddress": server.maxConnectionsPerAddress = try int(value, at: path, min: 1, max: 100_000)
            case "loopbackReserve": server.loopbackReserve = try int(value, at: path, max: 10_000)
            case "headerTimeout": server.headerTimeout = try int(value, at: path, max: 3600)
            // Every open connection holds this much: 128 KiB × 2,128 connections is 266 MiB.
            case "connectionMemoryKiB": server.connectionMemoryKiB = try int(value, at: path, min: 8, max: 128)
            default: unknown(path)
            }
        }
    }

    mutating func auth(_ node: YAMLNode, into auth: inout LoopsyConfig.Auth) throws {
        for (key, value) in try mapping(node, at: "auth") {
            let path = "auth.\(key)"
            switch key {
            case "apiKey": auth.apiKey = try string(value, at: path)
            case "allowedKeys": auth.allowedKeys = try stringMap(value, at: path)
            default: unknown(path)
            }
        }
    }

    mutating func tls(_ node: YAMLNode, into tls: inout LoopsyConfig.TLS) throws {
        for (key, value) in try mapping(node, at: "tls") {
            let path = "tls.\(key)"
            switch key {
            case "enabled": tls.enabled = try bool(value, at: path)
            case "pinnedCerts":
                // A malformed pin must stop the daemon, not quietly turn pinning off.
                tls.pinnedCerts = try stringMap(value, at: path).mapValues { pin in
                    let hex = pin.lowercased().filter { $0 != ":" }
                    guard hex.count == 64, hex.allSatisfy(\.isHexDigit) else {
                        throw ConfigError("config key '\(path)' values must be SHA-256 fingerprints (64 hex digits, "
                            + "as `loopsy status` prints them); '\(pin)' is not")
                    }
                    return hex
                }
            default: unknown(path)
            }
        }
    }

    mutating func execution(_ node: YAMLNode, into execution: inout LoopsyConfig.Execution) throws {
        for (key, value) in try mapping(node, at: "execution") {
            let path = "execution.\(key)"
            switch key {
            case "denylist": execution.denylist = try strings(value, at: path)
            case "allowlist": execution.allowlist = value.isNull ? nil : try strings(value, at: path)
            case "maxConcurrent": execution.maxConcurrent = try int(value, at: path, min: 1, max: 1000)
            case "defaultTimeout": execution.defaultTimeout = try int(value, at: path, min: 1, max: WireRange.timeoutMillis.upperBound)
            case "maxTimeout": execution.maxTimeout = try int(value, at: path, min: 1, max: WireRange.timeoutMillis.upperBound)
            case "maxOutputBytes": execution.maxOutputBytes = try int(value, at: path, min: 1, max: 1 << 30)
            case "environment": execution.environment = try strings(value, at: path)
            default: unknown(path)
            }
        }
    }

    mutating func transfer(_ node: YAMLNode, into transfer: inout LoopsyConfig.Transfer) throws {
        for (key, value) in try mapping(node, at: "transfer") {
            let path = "transfer.\(key)"
            switch key {
            case "allowedPaths": transfer.allowedPaths = try strings(value, at: path)
            case "deniedPaths": transfer.deniedPaths = try strings(value, at: path)
            case "maxFileSize": transfer.maxFileSize = try int(value, at: path, min: 1, max: 1 << 50)
            case "allowedDotfiles": transfer.allowedDotfiles = try strings(value, at: path)
            default: unknown(path)
            }
        }
    }

    mutating func rateLimits(_ node: YAMLNode, into limits: inout LoopsyConfig.RateLimits) throws {
        for (key, value) in try mapping(node, at: "rateLimits") {
            let path = "rateLimits.\(key)"
            switch key {
            case "execute": limits.execute = try int(value, at: path, max: 1_000_000)
            case "transfer": limits.transfer = try int(value, at: path, max: 1_000_000)
            case "context": limits.context = try int(value, at: path, max: 1_000_000)
            case "pairing": limits.pairing = try int(value, at: path, max: 1_000_000)
            case "exemptLocalOwner": limits.exemptLocalOwner = try bool(value, at: path)
            default: unknown(path)
            }
        }
    }

    mutating func discovery(_ node: YAMLNode, into discovery: inout LoopsyConfig.Discovery) throws {
        for (key, value) in try mapping(node, at: "discovery") {
            let path = "discovery.\(key)"
            switch key {
            case "enabled": discovery.enabled = try bool(value, at: path)
            case "healthInterval": discovery.healthInterval = try int(value, at: path, min: 1, max: 86_400)
            case "offlineAfter": discovery.offlineAfter = try int(value, at: path, min: 1, max: 100)
            case "maxUnpairedPeers": discovery.maxUnpairedPeers = try int(value, at: path, max: 100_000)
            case "maxUnpairedPerAddress": discovery.maxUnpairedPerAddress = try int(value, at: path, max: 100_000)
            case "unpairedExpiry": discovery.unpairedExpiry = try int(value, at: path, min: 1, max: 31_536_000)
            case "manualPeers":
                guard case .sequence(let sequence, _) = value else {
                    throw ConfigError("config key '\(path)' must be a list of {address, port}")
                }
                discovery.manualPeers = try sequence.enumerated().map { index, item in
                    var peer = LoopsyConfig.ManualPeer(address: "", port: 19532)
                    for (field, fieldValue) in try mapping(item, at: "\(path)[\(index)]") {
                        let fieldPath = "\(path)[\(index)].\(field)"
                        switch field {
                        case "address": peer.address = try string(fieldValue, at: fieldPath)
                        case "port": peer.port = try int(fieldValue, at: fieldPath, min: 1, max: 65535)
                        default: unknown(fieldPath)
                        }
                    }
                    if peer.address.isEmpty { throw ConfigError("config key '\(path)[\(index)].address' is required") }
                    return peer
                }
            default: unknown(path)
            }
        }
    }

    mutating func logging(_ node: YAMLNode, into logging: inout LoopsyConfig.Logging) throws {
        for (key, value) in try mapping(node, at: "logging") {
            let path = "logging.\(key)"
            switch key {
            case "level":
                let text = try string(value, at: path)
                guard let level = LogLevel(rawValue: text) else {
                    throw ConfigError("config key '\(path)' must be one of debug, info, warn, error, not '\(text)'")
                }
                logging.level = level
            case "maxFileBytes": logging.maxFileBytes = try int(value, at: path, min: 65_536, max: 1 << 40)
            default: unknown(path)
            }
        }
    }

    mutating func context(_ node: YAMLNode, into context: inout LoopsyConfig.Context) throws {
        for (key, value) in try mapping(node, at: "context") {
            let path = "context.\(key)"
            switch key {
            case "maxValueBytes": context.maxValueBytes = try int(value, at: path, min: 1, max: 64 * 1024 * 1024)
            case "maxEntries": context.maxEntries = try int(value, at: path, min: 1, max: 100_000_000)
            default: unknown(path)
            }
        }
    }

    mutating func audit(_ node: YAMLNode, into audit: inout LoopsyConfig.Audit) throws {
        for (key, value) in try mapping(node, at: "audit") {
            let path = "audit.\(key)"
            switch key {
            case "retentionDays": audit.retentionDays = try int(value, at: path, min: 1, max: 36_500)
            case "maxEntries": audit.maxEntries = try int(value, at: path, min: 100, max: 1_000_000_000)
            default: unknown(path)
            }
        }
    }

    mutating func messages(_ node: YAMLNode, into messages: inout LoopsyConfig.Messages) throws {
        for (key, value) in try mapping(node, at: "messages") {
            let path = "messages.\(key)"
            switch key {
            case "maxBodyBytes": messages.maxBodyBytes = try int(value, at: path, min: 1, max: 16 * 1024 * 1024)
            case "defaultTtl": messages.defaultTtl = try int(value, at: path, min: 1, max: 30 * 86_400)
            case "maxInboxPerSender": messages.maxInboxPerSender = try int(value, at: path, min: 1, max: 10_000_000)
            default: unknown(path)
            }
        }
    }
}
