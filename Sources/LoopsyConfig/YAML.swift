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
    /// How deep blocks and flow collections may nest: far more than config.yaml needs, and few
    /// enough that a file of `[[[[…` is an error, not a stack overflow.
    public static let maxDepth = 64

    /// Parses a document; nil when it holds nothing but comments.
    ///
    /// The text is read as UTF-8 bytes: everything YAML gives a meaning to here is ASCII, and no
    /// byte of a multi-byte character is, so cutting at those bytes never splits a character
    /// (reading it as Characters took a millisecond of every CLI command's start-up, and could
    /// not split CRLF lines: "\r\n" is one Character).
    public static func parse(_ text: String) throws -> YAMLNode? {
        let bytes = Array(text.utf8)
        var lines: [Line] = []
        var number = 0
        var start = 0
        while start <= bytes.count {
            number += 1
            var end = start
            while end < bytes.count && bytes[end] != Byte.newline { end += 1 }
            defer { start = end + 1 }
            var contentEnd = end
            if contentEnd > start && bytes[contentEnd - 1] == Byte.carriageReturn { contentEnd -= 1 }
            var position = start
            while position < contentEnd && (bytes[position] == Byte.space || bytes[position] == Byte.tab) {
                if bytes[position] == Byte.tab {
                    throw YAMLError(line: number, message: "tabs are not allowed for indentation")
                }
                position += 1
            }
            let indent = position - start
            let stripped = stripComment(bytes, start..<contentEnd)
            let body = trimSpaces(bytes[min(start + indent, stripped.upperBound)..<stripped.upperBound])
            if body.isEmpty || body.elementsEqual("---".utf8) { continue }
            if let first = body.first, first == UInt8(ascii: "&") || first == UInt8(ascii: "*") || first == UInt8(ascii: "!")
                || body.elementsEqual("...".utf8) {
                throw YAMLError(line: number, message: "anchors, aliases, tags and document markers are not supported")
            }
            lines.append(Line(number: number, indent: indent, text: string(body)))
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

    enum Byte {
        static let space = UInt8(ascii: " ")
        static let tab = UInt8(ascii: "\t")
        static let newline = UInt8(ascii: "\n")
        static let carriageReturn = UInt8(ascii: "\r")
        static let singleQuote = UInt8(ascii: "'")
        static let doubleQuote = UInt8(ascii: "\"")
        static let colon = UInt8(ascii: ":")
    }

    /// The bytes of `range` without a trailing `# comment` (a `#` inside quotes or not after a
    /// space stays).
    static func stripComment(_ bytes: [UInt8], _ range: Range<Int>) -> Range<Int> {
        var quote: UInt8?
        var previous = Byte.space
        for index in range {
            let byte = bytes[index]
            if let open = quote {
                if byte == open { quote = nil }
            } else if (byte == Byte.singleQuote || byte == Byte.doubleQuote) && " :[{,-".utf8.contains(previous) {
                // A quote opens a quoted scalar only where a scalar can start ("it's" is plain).
                quote = byte
            } else if byte == UInt8(ascii: "#") && (previous == Byte.space || index == range.lowerBound) {
                return range.lowerBound..<index
            }
            previous = byte
        }
        return range
    }

    /// `bytes` without leading and trailing spaces.
    static func trimSpaces(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var lower = bytes.startIndex
        var upper = bytes.endIndex
        while lower < upper && bytes[lower] == Byte.space { lower += 1 }
        while upper > lower && bytes[upper - 1] == Byte.space { upper -= 1 }
        return bytes[lower..<upper]
    }

    static func string(_ bytes: ArraySlice<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }
}

private struct BlockParser {
    let lines: [YAML.Line]
    var index = 0
    var depth = 0

    init(lines: [YAML.Line]) { self.lines = lines }

    mutating func block(indent: Int) throws -> YAMLNode {
        let first = lines[index]
        depth += 1
        defer { depth -= 1 }
        guard depth <= YAML.maxDepth else {
            throw YAMLError(line: first.number, message: "nested more than \(YAML.maxDepth) levels deep")
        }
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
                let itemIndent = indent + 1 + line.text.utf8.dropFirst().prefix { $0 == YAML.Byte.space }.count
                var rewritten = lines
                rewritten[index] = YAML.Line(number: line.number, indent: itemIndent, text: rest)
                var inner = BlockParser(lines: rewritten)
                inner.index = index
                inner.depth = depth
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
        let bytes = Array(text.utf8)
        guard let first = bytes.first else { return nil }
        if first == YAML.Byte.doubleQuote || first == YAML.Byte.singleQuote {
            guard let end = bytes[1...].firstIndex(of: first) else { return nil }
            let key = YAML.string(bytes[1..<end])
            guard end + 1 < bytes.count, bytes[end + 1] == YAML.Byte.colon else { return nil }
            let rest = bytes[(end + 2)...]
            guard rest.isEmpty || rest.first == YAML.Byte.space else { return nil }
            return (key, YAML.string(YAML.trimSpaces(rest)))
        }
        guard first != UInt8(ascii: "[") && first != UInt8(ascii: "{") else { return nil }
        for index in bytes.indices where bytes[index] == YAML.Byte.colon {
            if index + 1 == bytes.count || bytes[index + 1] == YAML.Byte.space {
                let key = YAML.trimSpaces(bytes[..<index])
                guard !key.isEmpty else { return nil }
                return (YAML.string(key), YAML.string(YAML.trimSpaces(bytes[(index + 1)...])))
            }
        }
        return nil
    }
}

/// One-line values: scalars and `[...]` / `{...}` collections.
private struct FlowParser {
    /// UTF-8, read byte by byte like the lines (see `YAML.parse`).
    var characters: [UInt8]
    var position = 0
    var depth = 0
    let line: Int

    static func parse(_ text: String, line: Int) throws -> YAMLNode {
        var parser = FlowParser(characters: Array(text.utf8), line: line)
        let node = try parser.value(inFlow: false)
        parser.skipSpaces()
        guard parser.position == parser.characters.count else {
            throw YAMLError(line: line, message: "unexpected text after the value: '\(YAML.string(parser.characters[parser.position...]))'")
        }
        return node
    }

    mutating func skipSpaces() {
        while position < characters.count && characters[position] == YAML.Byte.space { position += 1 }
    }

    /// Whether the byte at `position` is `ascii`.
    func at(_ ascii: Unicode.Scalar) -> Bool { position < characters.count && characters[position] == UInt8(ascii: ascii) }

    mutating func value(inFlow: Bool) throws -> YAMLNode {
        skipSpaces()
        guard position < characters.count else { return .scalar("", quoted: false, line: line) }
        depth += 1
        defer { depth -= 1 }
        guard depth <= YAML.maxDepth else {
            throw YAMLError(line: line, message: "nested more than \(YAML.maxDepth) levels deep")
        }
        switch Unicode.Scalar(characters[position]) {
        case "[":
            position += 1
            var items: [YAMLNode] = []
            skipSpaces()
            if at("]") { position += 1; return .sequence([], line: line) }
            while true {
                items.append(try value(inFlow: true))
                skipSpaces()
                guard position < characters.count else { throw YAMLError(line: line, message: "unclosed '['") }
                if at(",") { position += 1; continue }
                if at("]") { position += 1; return .sequence(items, line: line) }
                throw YAMLError(line: line, message: "expected ',' or ']'")
            }
        case "{":
            position += 1
            var pairs: [(key: String, value: YAMLNode)] = []
            skipSpaces()
            if at("}") { position += 1; return .mapping([], line: line) }
            while true {
                guard case .scalar(let key, _, _) = try value(inFlow: true) else {
                    throw YAMLError(line: line, message: "mapping keys must be scalars")
                }
                skipSpaces()
                guard at(":") else { throw YAMLError(line: line, message: "expected ':' after '\(key)'") }
                position += 1
                pairs.append((key, try value(inFlow: true)))
                skipSpaces()
                guard position < characters.count else { throw YAMLError(line: line, message: "unclosed '{'") }
                if at(",") { position += 1; continue }
                if at("}") { position += 1; return .mapping(pairs, line: line) }
                throw YAMLError(line: line, message: "expected ',' or '}'")
            }
        case "\"":
            return .scalar(try doubleQuoted(), quoted: true, line: line)
        case "'":
            position += 1
            var text: [UInt8] = []
            while position < characters.count {
                if at("'") {
                    if position + 1 < characters.count && characters[position + 1] == YAML.Byte.singleQuote {
                        text.append(YAML.Byte.singleQuote)
                        position += 2
                        continue
                    }
                    position += 1
                    return .scalar(YAML.string(text[...]), quoted: true, line: line)
                }
                text.append(characters[position])
                position += 1
            }
            throw YAMLError(line: line, message: "unclosed single quote")
        case "&", "*", "!", "|", ">", "%", "@", "`":
            throw YAMLError(line: line, message: "'\(Character(Unicode.Scalar(characters[position])))' (anchors, aliases, tags, block scalars) is not supported")
        default:
            let start = position
            while position < characters.count {
                let byte = characters[position]
                if inFlow && (byte == UInt8(ascii: ",") || byte == UInt8(ascii: "]") || byte == UInt8(ascii: "}")) { break }
                if inFlow && byte == YAML.Byte.colon
                    && (position + 1 == characters.count || characters[position + 1] == YAML.Byte.space) { break }
                position += 1
            }
            return .scalar(YAML.string(YAML.trimSpaces(characters[start..<position])), quoted: false, line: line)
        }
    }

    private mutating func doubleQuoted() throws -> String {
        position += 1
        var text: [UInt8] = []
        while position < characters.count {
            let byte = characters[position]
            position += 1
            if byte == YAML.Byte.doubleQuote { return YAML.string(text[...]) }
            guard byte == UInt8(ascii: "\\") else {
                text.append(byte)
                continue
            }
            guard position < characters.count else { break }
            let escaped = characters[position]
            position += 1
            switch Unicode.Scalar(escaped) {
            case "n": text.append(YAML.Byte.newline)
            case "t": text.append(YAML.Byte.tab)
            case "r": text.append(YAML.Byte.carriageReturn)
            case "0": text.append(0)
            case "\"", "\\", "/", " ": text.append(escaped)
            default:
                // The whole character after the backslash (its UTF-8 may be several bytes).
                var end = position
                while end < characters.count && characters[end] & 0xC0 == 0x80 { end += 1 }
                throw YAMLError(line: line, message: "unsupported escape '\\\(YAML.string(characters[(position - 1)..<end]))'")
            }
        }
        throw YAMLError(line: line, message: "unclosed double quote")
    }
}
