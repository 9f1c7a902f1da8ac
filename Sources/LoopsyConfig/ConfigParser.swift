import Yams

public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Reads `config.yaml` strictly: a wrong type or out-of-range value is an error naming the key;
/// an unknown key is a warning (so a newer config still starts an older daemon).
public enum ConfigParser {
    public static func parse(_ yaml: String) throws -> (config: LoopsyConfig, warnings: [String]) {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
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
            default: reader.warnings.append("unknown config key '\(name)' ignored")
            }
        }
        return (config, reader.warnings)
    }
}

/// Typed access to YAML nodes that knows the dotted path of what it reads.
struct Reader {
    var warnings: [String] = []

    func mapping(_ node: Node, at path: String) throws -> [(String, Node)] {
        if node.isNull { return [] }
        guard let mapping = node.mapping else { throw typeError(path, "a mapping", node) }
        return try mapping.map { key, value in
            guard let name = key.scalar?.string else { throw typeError(path, "string keys", key) }
            return (name, value)
        }
    }

    func int(_ node: Node, at path: String, min: Int = 0, max: Int = Int.max) throws -> Int {
        guard node.hasTag(.int), let value = node.int else { throw typeError(path, "an integer", node) }
        guard value >= min && value <= max else {
            throw ConfigError("config key '\(path)' must be between \(min) and \(max), not \(value)")
        }
        return value
    }

    func bool(_ node: Node, at path: String) throws -> Bool {
        guard node.hasTag(.bool), let value = node.bool else { throw typeError(path, "true or false", node) }
        return value
    }

    func string(_ node: Node, at path: String) throws -> String {
        guard let scalar = node.scalar, !node.isNull else { throw typeError(path, "a string", node) }
        return scalar.string
    }

    func strings(_ node: Node, at path: String) throws -> [String] {
        guard let sequence = node.sequence else { throw typeError(path, "a list of strings", node) }
        return try sequence.enumerated().map { try string($1, at: "\(path)[\($0)]") }
    }

    func stringMap(_ node: Node, at path: String) throws -> [String: String] {
        var result: [String: String] = [:]
        for (key, value) in try mapping(node, at: path) { result[key] = try string(value, at: "\(path).\(key)") }
        return result
    }

    mutating func unknown(_ path: String) { warnings.append("unknown config key '\(path)' ignored") }

    private func typeError(_ path: String, _ expected: String, _ node: Node) -> ConfigError {
        let line = node.mark.map { " (line \($0.line))" } ?? ""
        let found = node.scalar.map { "'\($0.string)'" } ?? (node.mapping != nil ? "a mapping" : "a list")
        return ConfigError("config key '\(path.isEmpty ? "<top level>" : path)' must be \(expected), found \(found)\(line)")
    }
}

extension Node {
    func hasTag(_ name: Tag.Name) -> Bool { tag.rawValue == name.rawValue }
    var isNull: Bool { hasTag(.null) }
}
