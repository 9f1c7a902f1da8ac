import LoopsyAPI

/// The YAML that config.yaml uses, read without Foundation: block mappings and sequences by
/// indentation, flow `[a, b]` and `{k: v}` on one line, plain/single/double-quoted scalars, and
/// `#` comments. Anchors, tags, multi-line scalars and documents are not supported and are
/// reported as errors rather than misread.
public indirect enum YAMLNode: Sendable, Equatable {
    case scalar(String, quoted: Bool, line: Int)
    case mapping([(key: String, value: YAMLNode)], line: Int)
    case sequence([YAMLNode], line: Int)

    public static func == (lhs: YAMLNode, rhs: YAMLNode) -> Bool {
        switch (lhs, rhs) {
        case let (.scalar(a, qa, la), .scalar(b, qb, lb)): return a == b && qa == qb && la == lb
        case let (.mapping(a, la), .mapping(b, lb)):
            return la == lb && a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case let (.sequence(a, la), .sequence(b, lb)): return a == b && la == lb
        default: return false
        }
    }

    public var line: Int {
        switch self {
        case .scalar(_, _, let line), .mapping(_, let line), .sequence(_, let line): return line
        }
    }

    /// A plain `~`, `null` or empty value.
    public var isNull: Bool {
        if case .scalar(let text, false, _) = self { return ["", "~", "null", "Null", "NULL"].contains(text) }
        return false
    }

    /// An integer written as one (quoted numbers are strings).
    public var int: Int? {
        guard case .scalar(let text, false, _) = self else { return nil }
        return Int(text.hasPrefix("+") ? String(text.dropFirst()) : text)
    }

    public var bool: Bool? {
        guard case .scalar(let text, false, _) = self else { return nil }
        switch text {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: return nil
        }
    }
}

public struct YAMLError: Error, Equatable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

public enum YAML {
    /// Parses a document; nil when it holds nothing but comments.
    public static func parse(_ text: String) throws -> YAMLNode? {
        var lines: [Line] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var content = Substring(raw)
            if content.last == "\r" { content = content.dropLast() }
            if content.contains("\t") && content.prefix(while: { $0 == " " || $0 == "\t" }).contains("\t") {
                throw YAMLError(line: index + 1, message: "tabs are not allowed for indentation")
            }
            let stripped = stripComment(content)
            let indent = stripped.prefix { $0 == " " }.count
            let body = stripped.dropFirst(indent).trimming([" "])
            if body.isEmpty || body == "---" { continue }
            if body.hasPrefix("&") || body.hasPrefix("*") || body.hasPrefix("!") || body == "..." {
                throw YAMLError(line: index + 1, message: "anchors, aliases, tags and document markers are not supported")
            }
            lines.append(Line(number: index + 1, indent: indent, text: body))
        }
        guard !lines.isEmpty else { return nil }
        var parser = BlockParser(lines: lines)
        let node = try parser.block(indent: lines[0].indent)
        if parser.index < lines.count {
            throw YAMLError(line: lines[parser.index].number, message: "unexpected indentation")
        }
        return node
    }

    struct Line {
        var number: Int
        var indent: Int
        var text: String
    }

    /// The line without a trailing `# comment` (a `#` inside quotes or not after a space stays).
    static func stripComment(_ line: Substring) -> Substring {
        var quote: Character?
        var previous: Character = " "
        for index in line.indices {
            let character = line[index]
            if let open = quote {
                if character == open { quote = nil }
            } else if (character == "'" || character == "\"") && " :[{,-".contains(previous) {
                // A quote opens a quoted scalar only where a scalar can start ("it's" is plain).
                quote = character
            } else if character == "#" && (previous == " " || index == line.startIndex) {
                return line[..<index]
            }
            previous = character
        }
        return line
    }
}

private struct BlockParser {
    let lines: [YAML.Line]
    var index = 0

    init(lines: [YAML.Line]) { self.lines = lines }

    mutating func block(indent: Int) throws -> YAMLNode {
        let first = lines[index]
        if first.text == "-" || first.text.hasPrefix("- ") { return try sequence(indent: indent) }
        if Self.splitKey(first.text) != nil { return try mapping(indent: indent) }
        index += 1
        return try FlowParser.parse(first.text, line: first.number)
    }

    mutating func mapping(indent: Int) throws -> YAMLNode {
        let start = lines[index].number
        var pairs: [(key: String, value: YAMLNode)] = []
        while index < lines.count, lines[index].indent == indent {
            let line = lines[index]
            guard let (key, rest) = Self.splitKey(line.text) else {
                throw YAMLError(line: line.number, message: "expected 'key: value'")
            }
            if pairs.contains(where: { $0.key == key }) { throw YAMLError(line: line.number, message: "duplicate key '\(key)'") }
            index += 1
            pairs.append((key, try value(rest, line: line, parentIndent: indent)))
        }
        return .mapping(pairs, line: start)
    }

    mutating func sequence(indent: Int) throws -> YAMLNode {
        let start = lines[index].number
        var items: [YAMLNode] = []
        while index < lines.count, lines[index].indent == indent, lines[index].text == "-" || lines[index].text.hasPrefix("- ") {
            let line = lines[index]
            let rest = String(line.text.dropFirst(1)).trimming([" "])
            if rest.isEmpty {
                index += 1
                items.append(try nested(under: indent, line: line))
            } else if Self.splitKey(rest) != nil {
                // "- key: value" starts a mapping whose other keys line up with "key".
                let itemIndent = indent + (line.text.count - line.text.dropFirst(1).drop { $0 == " " }.count)
                var rewritten = lines
                rewritten[index] = YAML.Line(number: line.number, indent: itemIndent, text: rest)
                var inner = BlockParser(lines: rewritten)
                inner.index = index
                items.append(try inner.mapping(indent: itemIndent))
                index = inner.index
            } else {
                index += 1
                items.append(try FlowParser.parse(rest, line: line.number))
            }
        }
        return .sequence(items, line: start)
    }

    private mutating func value(_ rest: String, line: YAML.Line, parentIndent: Int) throws -> YAMLNode {
        if !rest.isEmpty {
            if rest == "|" || rest == ">" || rest.hasPrefix("|") || rest.hasPrefix(">") {
                throw YAMLError(line: line.number, message: "multi-line scalars are not supported")
            }
            return try FlowParser.parse(rest, line: line.number)
        }
        return try nested(under: parentIndent, line: line)
    }

    /// The block below a line ending in `:` or `-`, or null when nothing is indented under it.
    private mutating func nested(under indent: Int, line: YAML.Line) throws -> YAMLNode {
        guard index < lines.count else { return .scalar("", quoted: false, line: line.number) }
        let next = lines[index]
        // A sequence may sit at the same indentation as its key (a common YAML style).
        if next.indent > indent || (next.indent == indent && (next.text == "-" || next.text.hasPrefix("- "))
                                    && Self.splitKey(line.text) != nil) {
            return try block(indent: next.indent)
        }
        return .scalar("", quoted: false, line: line.number)
    }

    /// "key: rest" → (key, rest); keys may be quoted.
    static func splitKey(_ text: String) -> (String, String)? {
        var characters = Substring(text)
        var key = ""
        if let quote = characters.first, quote == "\"" || quote == "'" {
            guard let end = characters.dropFirst().firstIndex(of: quote) else { return nil }
            key = String(characters[characters.index(after: characters.startIndex)..<end])
            characters = characters[characters.index(after: end)...]
            guard characters.first == ":" else { return nil }
            let rest = characters.dropFirst()
            guard rest.isEmpty || rest.first == " " else { return nil }
            return (key, rest.trimming([" "]))
        }
        guard !text.hasPrefix("[") && !text.hasPrefix("{") else { return nil }
        var index = characters.startIndex
        while index < characters.endIndex {
            if characters[index] == ":" {
                let after = characters.index(after: index)
                if after == characters.endIndex || characters[after] == " " {
                    key = String(characters[..<index]).trimming([" "])
                    guard !key.isEmpty else { return nil }
                    return (key, String(characters[after...]).trimming([" "]))
                }
            }
            index = characters.index(after: index)
        }
        return nil
    }
}

/// One-line values: scalars and `[...]` / `{...}` collections.
private struct FlowParser {
    var characters: [Character]
    var position = 0
    let line: Int

    static func parse(_ text: String, line: Int) throws -> YAMLNode {
        var parser = FlowParser(characters: Array(text), line: line)
        let node = try parser.value(inFlow: false)
        parser.skipSpaces()
        guard parser.position == parser.characters.count else {
            throw YAMLError(line: line, message: "unexpected text after the value: '\(String(parser.characters[parser.position...]))'")
        }
        return node
    }

    mutating func skipSpaces() {
        while position < characters.count && characters[position] == " " { position += 1 }
    }

    mutating func value(inFlow: Bool) throws -> YAMLNode {
        skipSpaces()
        guard position < characters.count else { return .scalar("", quoted: false, line: line) }
        switch characters[position] {
        case "[":
            position += 1
            var items: [YAMLNode] = []
            skipSpaces()
            if position < characters.count && characters[position] == "]" { position += 1; return .sequence([], line: line) }
            while true {
                items.append(try value(inFlow: true))
                skipSpaces()
                guard position < characters.count else { throw YAMLError(line: line, message: "unclosed '['") }
                if characters[position] == "," { position += 1; continue }
                if characters[position] == "]" { position += 1; return .sequence(items, line: line) }
                throw YAMLError(line: line, message: "expected ',' or ']'")
            }
        case "{":
            position += 1
            var pairs: [(key: String, value: YAMLNode)] = []
            skipSpaces()
            if position < characters.count && characters[position] == "}" { position += 1; return .mapping([], line: line) }
            while true {
                guard case .scalar(let key, _, _) = try value(inFlow: true) else {
                    throw YAMLError(line: line, message: "mapping keys must be scalars")
                }
                skipSpaces()
                guard position < characters.count, characters[position] == ":" else {
                    throw YAMLError(line: line, message: "expected ':' after '\(key)'")
                }
                position += 1
                pairs.append((key, try value(inFlow: true)))
                skipSpaces()
                guard position < characters.count else { throw YAMLError(line: line, message: "unclosed '{'") }
                if characters[position] == "," { position += 1; continue }
                if characters[position] == "}" { position += 1; return .mapping(pairs, line: line) }
                throw YAMLError(line: line, message: "expected ',' or '}'")
            }
        case "\"":
            return .scalar(try doubleQuoted(), quoted: true, line: line)
        case "'":
            position += 1
            var text = ""
            while position < characters.count {
                if characters[position] == "'" {
                    if position + 1 < characters.count && characters[position + 1] == "'" {
                        text.append("'")
                        position += 2
                        continue
                    }
                    position += 1
                    return .scalar(text, quoted: true, line: line)
                }
                text.append(characters[position])
                position += 1
            }
            throw YAMLError(line: line, message: "unclosed single quote")
        case "&", "*", "!", "|", ">", "%", "@", "`":
            throw YAMLError(line: line, message: "'\(characters[position])' (anchors, aliases, tags, block scalars) is not supported")
        default:
            var text = ""
            while position < characters.count {
                let character = characters[position]
                if inFlow && (character == "," || character == "]" || character == "}") { break }
                if inFlow && character == ":" && (position + 1 == characters.count || characters[position + 1] == " ") { break }
                text.append(character)
                position += 1
            }
            return .scalar(text.trimming([" "]), quoted: false, line: line)
        }
    }

    private mutating func doubleQuoted() throws -> String {
        position += 1
        var text = ""
        while position < characters.count {
            let character = characters[position]
            position += 1
            if character == "\"" { return text }
            guard character == "\\" else {
                text.append(character)
                continue
            }
            guard position < characters.count else { break }
            let escaped = characters[position]
            position += 1
            switch escaped {
            case "n": text.append("\n")
            case "t": text.append("\t")
            case "r": text.append("\r")
            case "0": text.append("\0")
            case "\"", "\\", "/", " ": text.append(escaped)
            default: throw YAMLError(line: line, message: "unsupported escape '\\\(escaped)'")
            }
        }
        throw YAMLError(line: line, message: "unclosed double quote")
    }
}
