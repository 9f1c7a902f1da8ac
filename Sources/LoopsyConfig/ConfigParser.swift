import LoopsyAPI

public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Reads `config.yaml` strictly: a wrong type or out-of-range value is an error naming the key;
/// an unknown key is a warning (so a newer config still starts an older daemon).
public enum ConfigParser {
    public static func parse(_ yaml: String) throws -> (config: LoopsyConfig, warnings: [String]) {
        let root: YAMLNode?
        do {
            root = try YAML.parse(yaml)
        } catch {
            throw ConfigError("config.yaml is not valid YAML: \(error)")
        }
        var reader = Reader()
        var config = LoopsyConfig()
        guard let root else { return (config, []) }
        let sections = try reader.mapping(root, at: "")
        for (name, node) in sections {
            switch name {
            case "server": try reader.server(node, into: &config.server)
            case "auth": try reader.auth(node, into: &config.auth)
            case "tls": try reader.tls(node, into: &config.tls)
            case "execution": try reader.execution(node, into: &config.execution)
            case "transfer": try reader.transfer(node, into: &config.transfer)
            case "rateLimits": try reader.rateLimits(node, into: &config.rateLimits)
            case "discovery": try reader.discovery(node, into: &config.discovery)
            case "logging": try reader.logging(node, into: &config.logging)
            case "context": try reader.context(node, into: &config.context)
            case "audit": try reader.audit(node, into: &config.audit)
            case "messages": try reader.messages(node, into: &config.messages)
            case "aiTasks":
                for (key, value) in try reader.mapping(node, at: "aiTasks") {
                    let path = "aiTasks.\(key)"
                    switch key {
                    case "claudePath": config.aiTasks.claudePath = try reader.string(value, at: path)
                    case "maxConcurrent": config.aiTasks.maxConcurrent = try reader.int(value, at: path, min: 1, max: 64)
                    case "maxDurationSeconds":
                        config.aiTasks.maxDurationSeconds = try reader.int(value, at: path, min: 1, max: 86_400)
                    case "approvalTimeoutSeconds":
                        config.aiTasks.approvalTimeoutSeconds = try reader.int(value, at: path, min: 1, max: 86_400)
                    case "retentionDays": config.aiTasks.retentionDays = try reader.int(value, at: path, min: 1, max: 3650)
                    case "maxEventBytes":
                        config.aiTasks.maxEventBytes = try reader.int(value, at: path, min: 65_536, max: 1 << 30)
                    case "environment": config.aiTasks.environment = try reader.strings(value, at: path)
                    default: reader.unknown(path)
                    }
                }
            case "channels":
                for (key, value) in try reader.mapping(node, at: "channels") {
                    let path = "channels.\(key)"
                    switch key {
                    case "approvers": config.channels.approvers = try reader.strings(value, at: path)
                    case "approvalTimeoutSeconds":
                        config.channels.approvalTimeoutSeconds = try reader.int(value, at: path, min: 1, max: 86_400)
                    case "maxPendingApprovals":
                        config.channels.maxPendingApprovals = try reader.int(value, at: path, min: 1, max: 100_000)
                    default: reader.unknown(path)
                    }
                }
            case "peers":
                for (key, value) in try reader.mapping(node, at: "peers") {
                    switch key {
                    case "defaultGrants":
                        let names = try reader.strings(value, at: "peers.defaultGrants")
                        do {
                            config.peers.defaultGrants = try Capability.parseList(names)
                        } catch {
                            throw ConfigError("peers.defaultGrants: \(error)")
                        }
                    default: reader.unknown("peers.\(key)")
                    }
                }
            case "pairing":
                for (key, value) in try reader.mapping(node, at: "pairing") {
                    switch key {
                    case "timeoutSeconds":
                        config.pairing.timeoutSeconds = try reader.int(value, at: "pairing.timeoutSeconds", min: 1, max: 3600)
                    default: reader.unknown("pairing.\(key)")
                    }
                }
            default: reader.warnings.append("unknown config key '\(name)' ignored")
            }
        }
        return (config, reader.warnings)
    }
}

/// Typed access to YAML nodes that knows the dotted path of what it reads.
struct Reader {
    var warnings: [String] = []

    func mapping(_ node: YAMLNode, at path: String) throws -> [(String, YAMLNode)] {
        if node.isNull { return [] }
        guard case .mapping(let pairs, _) = node else { throw typeError(path, "a mapping", node) }
        return pairs.map { ($0.key, $0.value) }
    }

    /// Every number names its range: values are multiplied into milliseconds, added to sizes
    /// and used as counts, and one past what the daemon can hold must be refused here, not
    /// trap later (a large audit.retentionDays stopped the daemon at its first upkeep).
    func int(_ node: YAMLNode, at path: String, min: Int = 0, max: Int) throws -> Int {
        guard let value = node.int else {
            // Digits that do not fit in 64 bits are a number out of range, not a word.
            if case .scalar(let text, _, _) = node, !text.isEmpty,
               text.utf8.drop(while: { $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "+") }).allSatisfy({ (48...57).contains($0) }),
               text.utf8.contains(where: { (48...57).contains($0) }) {
                throw ConfigError("config key '\(path)' must be between \(min) and \(max), not \(text) (line \(node.line))")
            }
            throw typeError(path, "an integer", node)
        }
        guard value >= min && value <= max else {
            throw ConfigError("config key '\(path)' must be between \(min) and \(max), not \(value) (line \(node.line))")
        }
        return value
    }

    func bool(_ node: YAMLNode, at path: String) throws -> Bool {
        guard let value = node.bool else { throw typeError(path, "true or false", node) }
        return value
    }

    func string(_ node: YAMLNode, at path: String) throws -> String {
        guard case .scalar(let text, _, _) = node, !node.isNull else { throw typeError(path, "a string", node) }
        return text
    }

    func strings(_ node: YAMLNode, at path: String) throws -> [String] {
        guard case .sequence(let items, _) = node else { throw typeError(path, "a list of strings", node) }
        return try items.enumerated().map { try string($1, at: "\(path)[\($0)]") }
    }

    func stringMap(_ node: YAMLNode, at path: String) throws -> [String: String] {
        var result: [String: String] = [:]
        for (key, value) in try mapping(node, at: path) { result[key] = try string(value, at: "\(path).\(key)") }
        return result
    }

    mutating func unknown(_ path: String) { warnings.append("unknown config key '\(path)' ignored") }

    private func typeError(_ path: String, _ expected: String, _ node: YAMLNode) -> ConfigError {
        let found: String
        switch node {
        case .scalar(let text, _, _): found = node.isNull ? "nothing" : "'\(text)'"
        case .mapping: found = "a mapping"
        case .sequence: found = "a list"
        }
        return ConfigError("config key '\(path.isEmpty ? "<top level>" : path)' must be \(expected), found \(found) "
            + "(line \(node.line))")
    }
}
