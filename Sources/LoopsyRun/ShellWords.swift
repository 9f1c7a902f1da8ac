/// Finds the simple commands in a shell string, for the execution policy: each command's words
/// with quotes removed, split at `;`, `&`, `|`, `&&`, `||`, newlines, parentheses, `{`/`}` words,
/// `$(`, backticks and shell keywords that start a new command.
///
/// This is not a shell, and it says so where it cannot be sure. A word whose text is made when
/// the script runs — a `$` expansion (unquoted or in double quotes), a command substitution, an
/// unquoted glob (`*`, `?`, `[`), a leading `~` or a brace expansion — carries
/// `ShellWords.dynamic` (a NUL, which no real argument can contain). The policy refuses a command
/// whose program word is dynamic, a script or `env -S` string that is dynamic, and a wrapper
/// (`env`, `nice`, …) in a script given a dynamic argument (word splitting could move it into
/// the program's place). The commands inside substitutions are returned as commands too.
///
/// What it cannot see: a program made by a later command (`x=rm; $x` is refused by the above,
/// but `printf rm > f; sh f` runs a file, which the policy refuses only in scripts and under an
/// allowlist), and functions and aliases are seen only through their bodies. What it cannot
/// read with certainty stands for a command with a dynamic program, so the policy refuses the
/// script: a here-document (its body is text in which `$( )` runs), a quote or substitution
/// that is never closed, quotes inside `${…}` in double quotes, nesting past `maxNesting`. A
/// denylist stays a speed bump; the allowlist is the real control.
enum ShellWords {
    /// Marks a word whose text is only known when the script runs.
    static let dynamic: Character = "\0"
    /// The program of the command that stands for a part of a script that could not be read
    /// (dynamic, so refused; the policy says why).
    static let unreadable = String(dynamic) + "unreadable" + String(dynamic)

    struct Parsed {
        var commands: [[String]] = []
        /// `NAME=value` words before a command's program (and whole commands of assignments).
        var assignments: [String] = []
    }

    static func commands(in script: String) -> [[String]] { parse(script).commands }

    /// Substitutions nested deeper than this are not read: the command they stand in is one
    /// with a dynamic program, which the policy refuses. (Each level was parsed from a copy of
    /// the rest of the script: 30,000 `$(` in a 90 KB request took gigabytes and the stack.)
    static let maxNesting = 32

    /// Read as Unicode scalars, as the shell reads bytes: as Characters, "\r\n" is one that is
    /// not "\n", and a quote followed by a combining mark one that is not a quote (each hid the
    /// commands after it).
    static func parse(_ script: String) -> Parsed {
        var characters = joiningContinuations(Array(script.unicodeScalars))
        characters.append("\n")
        return parse(characters, 0..<characters.count, depth: 0)
    }

    /// The script with every backslash-newline the shell removes before it reads anything else
    /// removed: `$\⏎(`, `<\⏎<` and `ca\⏎se` are `$(`, `<<` and `case` to the shell. Not in
    /// single quotes, `$'…'` or comments, where the shell keeps them. (Double quotes are not
    /// tracked through nesting; the parser refuses a `$` or `<` still followed by one.)
    static func joiningContinuations(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(scalars.count)
        var index = 0
        var wordStart = true
        var inDouble = false
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == "\\" {
                if index + 1 < scalars.count, scalars[index + 1] == "\n" {
                    index += 2
                    continue
                }
                out.append(contentsOf: scalars[index..<min(index + 2, scalars.count)])
                index += 2
                wordStart = false
                continue
            }
            if !inDouble && scalar == "'" {
                // Quoted text (or $'…', where \' is inside) is copied as it is.
                let ansi = out.last == "$"
                out.append(scalar)
                index += 1
                while index < scalars.count, scalars[index] != "'" {
                    if ansi, scalars[index] == "\\", index + 1 < scalars.count {
                        out.append(scalars[index])
                        index += 1
                    }
                    out.append(scalars[index])
                    index += 1
                }
                if index < scalars.count {
                    out.append(scalars[index])
                    index += 1
                }
                wordStart = false
                continue
            }
            if !inDouble && scalar == "#" && wordStart {
                while index < scalars.count, scalars[index] != "\n" {
                    out.append(scalars[index])
                    index += 1
                }
                continue
            }
            if scalar == "\"" { inDouble.toggle() }
            out.append(scalar)
            wordStart = !inDouble && wordBreaks.contains(scalar)
            index += 1
        }
        return out
    }

    /// Whether a backslash-newline follows `index` (one `joiningContinuations` left).
    private static func continuationFollows(_ characters: [Unicode.Scalar], _ index: Int, before end: Int) -> Bool {
        index + 2 < end && characters[index + 1] == "\\" && characters[index + 2] == "\n"
    }

    /// The commands in `characters[range]`; substitutions are read in place, not copied.
    private static func parse(_ characters: [Unicode.Scalar], _ range: Range<Int>, depth: Int) -> Parsed {
        var parsed = Parsed()
        guard depth <= maxNesting else {
            parsed.commands.append([Self.unreadable])
            return parsed
        }
        let end = range.upperBound
        var current: [String] = []
        var word = ""
        var inWord = false
        var quoted = false
        var isDynamic = false
        var dropNextWord = false  // the target of a redirection
        var index = range.lowerBound

        func endCommand() {
            // Leading assignments (FOO=bar cmd) and keywords are not the program.
            while let first = current.first, isAssignment(first) || startKeywords.contains(first) {
                if isAssignment(first) { parsed.assignments.append(first) }
                current.removeFirst()
            }
            // "é=1 rm": dash and bash run the program "é=1"; zsh and yash in a UTF-8 locale take
            // an assignment and run rm. Both are commands here.
            if let first = current.first, current.count > 1, mayBeAssignment(first) {
                parsed.assignments.append(first)
                parsed.commands.append(Array(current.dropFirst()))
            }
            // `for x do cmd` and `select x do cmd` (no ";" before do) carry a command after `do`.
            if let first = current.first, first == "for" || first == "select",
               let body = current.firstIndex(of: "do") {
                current = Array(current[(body + 1)...])
                endCommand()
                return
            }
            if let first = current.first, wordKeywords.contains(first) { current = [] }
            if !current.isEmpty { parsed.commands.append(current) }
            current = []
        }
        func endWord() {
            defer {
                word = ""
                inWord = false
                quoted = false
                isDynamic = false
            }
            guard inWord else { return }
            if dropNextWord {
                dropNextWord = false
                return
            }
            if !quoted && (word == "{" || word == "}") {
                endCommand()
                return
            }
            current.append(isDynamic ? word + String(dynamic) : word)
        }
        // A substitution the shell would not close (it refuses the script) is not read: it
        // stands for a command with a dynamic program, and nothing after it is read either.
        func unreadable() {
            parsed.commands.append([Self.unreadable])
            index = end
        }
        func substitution(from start: Int) {
            guard let close = Self.substitutionEnd(characters, from: start, before: end) else { return unreadable() }
            let nested = parse(characters, start..<close, depth: depth + 1)
            parsed.commands += nested.commands
            parsed.assignments += nested.assignments
            index = close
        }
        func backtick(inDoubleQuotes: Bool = false) {
            guard let close = Self.unescapedEnd("`", characters, from: index + 1, before: end) else {
                return unreadable()
            }
            // Inside backticks \`, \$ and \\ stand for the character itself: that is how they nest
            // (`echo \`rm x\``); in double quotes \" too. The inner text is read with them undone.
            let escaped: [Unicode.Scalar] = inDoubleQuotes ? ["`", "$", "\\", "\""] : ["`", "$", "\\"]
            var inner: [Unicode.Scalar] = []
            var at = index + 1
            while at < close {
                if characters[at] == "\\", at + 1 < close, escaped.contains(characters[at + 1]) {
                    inner.append(characters[at + 1])
                    at += 2
                    continue
                }
                inner.append(characters[at])
                at += 1
            }
            inner.append("\n")
            let nested = parse(inner, 0..<inner.count, depth: depth + 1)
            parsed.commands += nested.commands
            parsed.assignments += nested.assignments
            index = close
        }

        while index < end {
            let character = characters[index]
            switch character {
            case "'":
                inWord = true
                quoted = true
                index += 1
                while index < end && characters[index] != "'" { word.unicodeScalars.append(characters[index]); index += 1 }
                // Never closed: the shell refuses that, unless it was in a here-document's body, where
                // the lines after it are commands, which this would take as one quoted word.
                if index == end { unreadable() }
            case "\"":
                inWord = true
                quoted = true
                index += 1
                while index < end && characters[index] != "\"" {
                    if characters[index] == "\\" && index + 1 < end {
                        index += 1
                        if characters[index] != "\n" { word.unicodeScalars.append(characters[index]) }  // \<newline> joins lines
                    }
                    else if characters[index] == "$" && Self.continuationFollows(characters, index, before: end) {
                        unreadable()  // see joiningContinuations
                        break
                    } else if characters[index] == "$" && index + 1 < end && characters[index + 1] == "(" {
                        // A command substitution inside double quotes is a command too.
                        isDynamic = true
                        substitution(from: index + 2)
                    } else if characters[index] == "`" {
                        isDynamic = true
                        backtick(inDoubleQuotes: true)
                    } else if characters[index] == "$" && index + 1 < end && characters[index + 1] == "{" {
                        // In double quotes bash reads quotes inside ${…} its own way ("${x:-'"'}" is
                        // one word): one with quotes or substitutions inside is not read.
                        guard let close = Self.bracedEnd(characters, from: index + 2, before: end) else {
                            unreadable()
                            break
                        }
                        isDynamic = true
                        word.unicodeScalars.append(contentsOf: characters[index...close])
                        index = close
                    } else {
                        if characters[index] == "$" { isDynamic = true }
                        word.unicodeScalars.append(characters[index])
                    }
                    index += 1
                }
                if index == end { unreadable() }  // never closed (see above)
            case "\\":
                if index + 1 < end {
                    index += 1
                    if characters[index] != "\n" {  // \<newline> only joins lines
                        inWord = true
                        word.unicodeScalars.append(characters[index])
                    }
                }
            case "$" where continuationFollows(characters, index, before: end),
                 "<" where continuationFollows(characters, index, before: end):
                unreadable()  // joinable to `$(`, `<<`…: not read (see joiningContinuations)
            case "$" where index + 1 < end && characters[index + 1] == "{":
                // ${…} is one piece of a word, spaces and all (`${x:- #}` is no comment); one with
                // quotes, escapes or substitutions inside is not read.
                guard let close = Self.bracedEnd(characters, from: index + 2, before: end) else {
                    unreadable()
                    break
                }
                inWord = true
                isDynamic = true
                word.unicodeScalars.append(contentsOf: characters[index...close])
                index = close
            case "$" where index + 1 < end && characters[index + 1] == "'":
                // $'…' (bash): backslash escapes inside, so \' does not end it; its text is made
                // from those escapes ($'\x72m' is rm), so the word is dynamic.
                inWord = true
                quoted = true
                isDynamic = true
                guard let close = Self.unescapedEnd("'", characters, from: index + 2, before: end) else {
                    unreadable()
                    break
                }
                word.unicodeScalars.append(contentsOf: characters[index...close])
                index = close
            case "$" where index + 1 < end && characters[index + 1] == "(":
                inWord = true  // the substitution's output is (part of) a word of this command
                isDynamic = true
                substitution(from: index + 2)
            case "`":
                inWord = true
                isDynamic = true
                backtick()
            case "<" where Self.isHereDocument(characters, at: index, before: end):
                // A here-document's body is text, and in it `$( )` runs: reading it as commands,
                // a quote in it took the lines after it for one word. Not read.
                unreadable()
            case "<", ">":
                // A redirection: an fd number before it is not a word, and its target is not an argument.
                // By bytes: one ASCII digit is an fd number to every shell; a longer one is to bash
                // (while it fits an int) and a word to dash, so such a script is not read.
                let digits = !word.utf8.isEmpty && word.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
                if inWord && !quoted && digits && word.utf8.count > 1 {
                    unreadable()
                    continue
                }
                if inWord && !quoted && digits {
                    word = ""
                    inWord = false
                    isDynamic = false
                } else {
                    endWord()
                }
                while index + 1 < end, "<>&|".unicodeScalars.contains(characters[index + 1]) { index += 1 }
                if index + 1 < end, characters[index + 1] == "(" {
                    break  // <( … ) and >( … ): the parenthesis starts the commands inside
                }
                dropNextWord = true
            case ";", "&", "|", "\n", "(", ")":
                endWord()
                dropNextWord = false
                endCommand()
            case " ", "\t":
                endWord()
                if current.count == 1, startKeywords.contains(current[0]) { current = [] }
            case "#" where !inWord && index > range.lowerBound && characters[index - 1] == ")":
                // Right after `<(…)`, `a=(…)` or `@(…)` bash is still in a word: not a comment to
                // it, and not read here.
                unreadable()
                continue
            case "#" where !inWord:
                // A comment runs to the end of the line.
                while index < end && characters[index] != "\n" { index += 1 }
                continue
            case "*", "?", "[", "{", "$":
                inWord = true
                if character != "{" || !word.isEmpty
                    || (index + 1 < end && !" \t\n;".unicodeScalars.contains(characters[index + 1])) {
                    isDynamic = true  // a glob, a brace expansion or a variable
                }
                word.unicodeScalars.append(character)
            case "~" where !inWord:
                inWord = true
                isDynamic = true
                word.unicodeScalars.append(character)
            default:
                inWord = true
                word.unicodeScalars.append(character)
            }
            index += 1
        }
        endWord()
        endCommand()
        return parsed
    }

    /// The index of the parenthesis that closes a `$(` whose text starts at `start`, read as
    /// the shell reads it: a `)` in quotes, after a backslash or in a comment closes nothing
    /// (`$(echo ")"; rm x)` runs rm; counting parentheses alone hid it). Nil when nothing closes
    /// it before `end` (the shell refuses such a script) or quotes nest past `maxNesting`.
    private static func substitutionEnd(_ characters: [Unicode.Scalar], from start: Int, before end: Int,
                                        level: Int = 0) -> Int? {
        guard level <= maxNesting else { return nil }
        var depth = 1
        var index = start
        var wordStart = true
        // Inside `case … esac` a `)` ends a pattern, not the substitution. Any word `case` counts
        // (even an argument: such a script is refused, never misread).
        var cases = 0
        while index < end {
            let character = characters[index]
            if wordStart, isWord("case", in: characters, at: index, before: end) {
                // `esac` as an argument inside ended the count early: `$(case x in x) (echo esac);
                // rm;; esac)` ran rm unseen. A `case` in a substitution is not read.
                return nil
            }
            if wordStart, cases > 0, isWord("esac", in: characters, at: index, before: end) {
                cases -= 1
                index += 4
                wordStart = false
                continue
            }
            switch character {
            case "\\":
                // One joiningContinuations left (it does not follow quotes through nesting):
                // `ca\⏎se` would be `case` to the shell. Not read.
                if index + 1 < end, characters[index + 1] == "\n" { return nil }
                index += 2
                wordStart = false
                continue
            case "$" where index + 1 < end && characters[index + 1] == "'":
                guard let close = unescapedEnd("'", characters, from: index + 2, before: end) else { return nil }
                index = close
            case "<" where isHereDocument(characters, at: index, before: end):
                return nil  // not read (see parse)
            case "'":
                guard let close = characters[(index + 1)..<end].firstIndex(of: "'") else { return nil }
                index = close
            case "\"":
                guard let close = doubleQuoteEnd(characters, from: index + 1, before: end, level: level) else { return nil }
                index = close
            case "`":
                guard let close = unescapedEnd("`", characters, from: index + 1, before: end) else { return nil }
                index = close
            case "#" where wordStart:
                while index < end && characters[index] != "\n" { index += 1 }
                continue  // the newline is read next
            case "(" where cases == 0:
                depth += 1
            case ")" where cases == 0:
                depth -= 1
                if depth == 0 { return index }
            default:
                break
            }
            wordStart = wordBreaks.contains(character)
            index += 1
        }
        return nil
    }

    /// Whether `word` stands at `index` as a word of its own.
    private static func isWord(_ word: String, in characters: [Unicode.Scalar], at index: Int, before end: Int) -> Bool {
        let length = word.unicodeScalars.count
        guard index + length <= end, characters[index..<(index + length)].elementsEqual(word.unicodeScalars) else {
            return false
        }
        return index + length == end || wordBreaks.contains(characters[index + length])
    }

    /// Whether `<` at `index` starts a here-document (`<<`, `<<-`), not a here-string (`<<<`).
    private static func isHereDocument(_ characters: [Unicode.Scalar], at index: Int, before end: Int) -> Bool {
        index + 1 < end && characters[index + 1] == "<" && (index + 2 >= end || characters[index + 2] != "<")
            && (index == 0 || characters[index - 1] != "<")
    }

    /// The index of the `}` that ends a `${…}` whose text starts at `start`, when nothing in it
    /// is quoted or substituted (nil otherwise, or when nothing ends it).
    private static func bracedEnd(_ characters: [Unicode.Scalar], from start: Int, before end: Int) -> Int? {
        var depth = 1
        var index = start
        while index < end {
            switch characters[index] {
            case "'", "\"", "`", "\\": return nil
            case "$" where index + 1 < end && characters[index + 1] == "(": return nil
            case "{":
                // Only a nested "${" opens a level: bash and dash end `${x:-{}` at its first "}".
                // A bare "{" inside is not read further (the script is refused).
                guard index > start, characters[index - 1] == "$" else { return nil }
                depth += 1
            case "}":
                depth -= 1
                if depth == 0 { return index }
            default: break
            }
            index += 1
        }
        return nil
    }

    /// The index of the `"` that ends a double-quoted string whose text starts at `start`.
    private static func doubleQuoteEnd(_ characters: [Unicode.Scalar], from start: Int, before end: Int,
                                       level: Int) -> Int? {
        var index = start
        while index < end {
            switch characters[index] {
            case "\\":
                if index + 1 < end, characters[index + 1] == "\n" { return nil }  // see substitutionEnd
                index += 2
                continue
            case "\"":
                return index
            case "$" where index + 1 < end && characters[index + 1] == "(":
                guard let close = substitutionEnd(characters, from: index + 2, before: end, level: level + 1) else {
                    return nil
                }
                index = close
            case "$" where index + 1 < end && characters[index + 1] == "{":
                guard let close = bracedEnd(characters, from: index + 2, before: end) else { return nil }
                index = close
            case "`":
                guard let close = unescapedEnd("`", characters, from: index + 1, before: end) else { return nil }
                index = close
            default:
                break
            }
            index += 1
        }
        return nil
    }

    /// The index of the first `closing` not escaped by a backslash from `start` on: the end of a
    /// backtick substitution (`\``, a backtick inside, is how they nest) or of a `$'…'` (where
    /// `\'` is inside).
    private static func unescapedEnd(_ closing: Unicode.Scalar, _ characters: [Unicode.Scalar], from start: Int,
                                     before end: Int) -> Int? {
        var index = start
        while index < end {
            if characters[index] == "\\" {
                index += 2
                continue
            }
            if characters[index] == closing { return index }
            index += 1
        }
        return nil
    }

    /// What ends a word (and so may start a comment or a keyword after it).
    private static let wordBreaks: Set<Unicode.Scalar> = [" ", "\t", "\n", ";", "&", "|", "(", ")"]

    /// Reserved words before a command (`time` is not one: it is checked as the wrapper it is).
    private static let startKeywords: Set<String> = ["if", "then", "else", "elif", "do", "while", "until", "!", "fi",
                                                     "done", "esac", "coproc"]
    /// Reserved words whose whole simple command is no program (`for x in a b`, `case $x in`).
    private static let wordKeywords: Set<String> = ["for", "select", "case", "function", "in"]

    static func isAssignment(_ word: String) -> Bool {
        guard let name = shellAssignedName(word) else { return false }
        return isName(name)
    }

    /// An assignment to some shell though not to POSIX ones: a name with bytes past ASCII
    /// (letters to zsh, yash and fish in a UTF-8 locale).
    static func mayBeAssignment(_ word: String) -> Bool {
        guard let name = shellAssignedName(word), !isName(name), let first = name.utf8.first,
              !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return name.utf8.allSatisfy { $0 >= 0x80 || isNameByte($0) }
    }

    /// The variable a shell assigns with `word`: the bytes before its first "=", without the
    /// "+" of bash's and zsh's `NAME+=value` (which exports as `NAME=value` does).
    static func shellAssignedName(_ word: some StringProtocol) -> String? {
        guard let name = assignedName(word) else { return nil }
        return name.utf8.last == UInt8(ascii: "+") ? String(decoding: name.utf8.dropLast(), as: UTF8.self) : name
    }

    /// A variable name as shells take it, by bytes: an ASCII letter or "_", then ASCII letters,
    /// digits and "_". (Read as Characters, "X=\u{301}" had no "=" and "é=x" was a name; dash
    /// and bash read the first as an assignment and run the second as a program.)
    static func isName(_ name: some StringProtocol) -> Bool {
        guard let first = name.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return name.utf8.allSatisfy(isNameByte)
    }

    static func isNameByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_")
    }

    /// The bytes before the first "=" byte, when `word` has one: what env (strchr) and putenv
    /// take as the variable's name.
    static func assignedName(_ word: some StringProtocol) -> String? {
        let bytes = Array(word.utf8)
        guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")) else { return nil }
        return String(decoding: bytes[..<equals], as: UTF8.self)
    }
}
