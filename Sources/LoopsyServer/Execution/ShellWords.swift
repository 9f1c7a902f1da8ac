/// Finds the simple commands in a shell string, for the denylist: each command's words with
/// quotes removed, split at `;`, `&`, `|`, `&&`, `||`, newlines, parentheses, braces, `$(`,
/// backticks and shell keywords that start a new command.
///
/// This is not a shell. Words made at run time (`$x`, `$(printf rm)`) cannot be seen here,
/// which is why the README calls a denylist a speed bump and the allowlist the real control.
enum ShellWords {
    static func commands(in script: String) -> [[String]] {
        var commands: [[String]] = []
        var current: [String] = []
        var word = ""
        var inWord = false
        var characters = Array(script)
        characters.append("\n")
        var index = 0

        func endWord() {
            if inWord { current.append(word) }
            word = ""
            inWord = false
        }
        func endCommand() {
            endWord()
            // Leading assignments (FOO=bar cmd) and keywords are not the program.
            while let first = current.first, isAssignment(first) || startKeywords.contains(first) {
                current.removeFirst()
            }
            if !current.isEmpty { commands.append(current) }
            current = []
        }

        while index < characters.count {
            let character = characters[index]
            switch character {
            case "'":
                inWord = true
                index += 1
                while index < characters.count && characters[index] != "'" { word.append(characters[index]); index += 1 }
            case "\"":
                inWord = true
                index += 1
                while index < characters.count && characters[index] != "\"" {
                    if characters[index] == "\\" && index + 1 < characters.count { index += 1 }
                    if characters[index] == "$" && index + 1 < characters.count && characters[index + 1] == "(" {
                        // A command substitution inside double quotes is a command too.
                        let (inner, end) = substitution(characters, from: index + 2)
                        commands += Self.commands(in: inner)
                        index = end
                    } else if characters[index] == "`" {
                        let end = characters[(index + 1)...].firstIndex(of: "`") ?? characters.count - 1
                        commands += Self.commands(in: String(characters[(index + 1)..<end]))
                        index = end
                    } else {
                        word.append(characters[index])
                    }
                    index += 1
                }
            case "\\":
                inWord = true
                if index + 1 < characters.count { index += 1; word.append(characters[index]) }
            case "$" where index + 1 < characters.count && characters[index + 1] == "(":
                let (inner, end) = substitution(characters, from: index + 2)
                commands += Self.commands(in: inner)
                inWord = true  // the substitution's output is (part of) a word of this command
                index = end
            case "`":
                let end = characters[(index + 1)...].firstIndex(of: "`") ?? characters.count - 1
                commands += Self.commands(in: String(characters[(index + 1)..<end]))
                inWord = true
                index = end
            case ";", "&", "|", "\n", "(", ")", "{", "}":
                endCommand()
            case " ", "\t":
                endWord()
                if current.count == 1, startKeywords.contains(current[0]) { current = [] }
            case "#" where !inWord:
                // A comment runs to the end of the line.
                while index < characters.count && characters[index] != "\n" { index += 1 }
                continue
            default:
                inWord = true
                word.append(character)
            }
            index += 1
        }
        endCommand()
        return commands
    }

    /// The text of `$( … )` starting after the parenthesis, and the index of its closing one.
    private static func substitution(_ characters: [Character], from start: Int) -> (String, Int) {
        var depth = 1
        var index = start
        while index < characters.count {
            if characters[index] == "(" { depth += 1 }
            if characters[index] == ")" { depth -= 1; if depth == 0 { break } }
            index += 1
        }
        return (String(characters[start..<min(index, characters.count)]), index)
    }

    private static let startKeywords: Set<String> = ["if", "then", "else", "elif", "do", "while", "until", "!", "time"]

    private static func isAssignment(_ word: String) -> Bool {
        guard let equals = word.firstIndex(of: "="), equals != word.startIndex else { return false }
        return word[..<equals].allSatisfy { $0 == "_" || $0.isLetter || $0.isNumber }
    }
}
