import LoopsyAPI
import LoopsyPOSIX

/// How a wrapper's option takes a value.
enum OptionArity: Sendable, Hashable {
    case none
    /// The rest of a short cluster (`-n5`), `--opt=value` or else the next word.
    case required
    /// Only attached: `-dVALUE` or `--opt=VALUE`.
    case optional
}

/// A program's options as its getopt_long sees them.
struct OptionTable: Sendable {
    struct Spec: Sendable, Hashable {
        let key: String
        let arity: OptionArity
    }
    var short: [Character: Spec] = [:]
    var long: [String: Spec] = [:]
    /// GNU getopt's default: options may follow operands (no leading "+" in the optstring).
    var permute = false

    /// `short` in getopt's notation ("C:iS:u:v0": one colon after a letter takes a value, two an
    /// optional attached one); each `long` as "name", "name=" (a value) or "name=?" (an optional
    /// `=value`), optionally followed by "/x": the short option it is the same as.
    init(_ short: String, _ long: [String] = [], permute: Bool = false) {
        self.permute = permute
        var letters = Array(short)
        var index = 0
        while index < letters.count {
            let letter = letters[index]
            var arity = OptionArity.none
            if index + 1 < letters.count, letters[index + 1] == ":" {
                arity = .required
                index += 1
                if index + 1 < letters.count, letters[index + 1] == ":" { arity = .optional; index += 1 }
            }
            self.short[letter] = Spec(key: String(letter), arity: arity)
            index += 1
        }
        letters = []
        for entry in long {
            let parts = entry.split(separator: "/", maxSplits: 1).map(String.init)
            var name = parts[0]
            var arity = OptionArity.none
            if name.hasSuffix("=?") { arity = .optional; name.removeLast(2) }
            else if name.hasSuffix("=") { arity = .required; name.removeLast() }
            self.long[name] = Spec(key: parts.count > 1 ? parts[1] : name, arity: arity)
        }
    }
}

/// getopt_long, as GNU and util-linux programs parse their options: clusters (`-iS'cmd'`),
/// values attached or in the next word, `--name=value`, unique prefixes of long names (`--un` is
/// `--unset`), `--` ending the options. Whatever it does not know is refused, never guessed.
struct Getopt {
    struct Option {
        let key: String
        let value: String?
    }
    let program: String
    let table: OptionTable
    private(set) var args: [String]
    private(set) var index = 0
    private var skipped: [String] = []
    private var cluster: Substring = ""
    private var ended = false
    /// The options ended at `--` (not at an operand).
    private(set) var sawDoubleDash = false

    init(_ program: String, _ table: OptionTable, _ args: [String]) {
        self.program = program
        self.table = table
        self.args = args
    }

    /// The operands: words that are not options (with `--` removed).
    var operands: [String] { skipped + args[index...] }
    /// The words not looked at yet.
    var unparsed: [String] { Array(args[index...]) }

    /// The next option, or nil when the options end.
    mutating func next() throws -> Option? {
        if !cluster.isEmpty { return try shortOption() }
        while !ended, index < args.count {
            let word = args[index]
            if word == "--" {
                index += 1
                ended = true
                sawDoubleDash = true
                return nil
            }
            if word.hasPrefix("--") {
                index += 1
                return try longOption(word)
            }
            if word.hasPrefix("-"), word.count > 1 {
                index += 1
                cluster = word.dropFirst()
                return try shortOption()
            }
            guard table.permute else {
                ended = true
                return nil
            }
            skipped.append(word)
            index += 1
        }
        ended = true
        return nil
    }

    /// All options, in order.
    mutating func all() throws -> [Option] {
        var options: [Option] = []
        while let option = try next() { options.append(option) }
        return options
    }

    private mutating func shortOption() throws -> Option {
        let letter = cluster.removeFirst()
        guard let spec = table.short[letter] else { throw Wrappers.notUnderstood(program, "-\(letter)") }
        switch spec.arity {
        case .none:
            return Option(key: spec.key, value: nil)
        case .optional:
            defer { cluster = "" }
            return Option(key: spec.key, value: cluster.isEmpty ? nil : String(cluster))
        case .required:
            if !cluster.isEmpty {
                defer { cluster = "" }
                return Option(key: spec.key, value: String(cluster))
            }
            guard index < args.count else { throw Wrappers.missingValue(program, "-\(letter)") }
            index += 1
            return Option(key: spec.key, value: args[index - 1])
        }
    }

    private mutating func longOption(_ word: String) throws -> Option {
        // Split at the first "=" byte, as getopt_long does (strchr).
        let body = Array(word.utf8.dropFirst(2))
        let equals = body.firstIndex(of: UInt8(ascii: "="))
        let name = String(decoding: body[..<(equals ?? body.endIndex)], as: UTF8.self)
        let attached = equals.map { String(decoding: body[($0 + 1)...], as: UTF8.self) }
        let spec: OptionTable.Spec
        if let exact = table.long[name] {
            spec = exact
        } else {
            let candidates = Set(table.long.filter { !name.isEmpty && $0.key.hasPrefix(name) }.values)
            guard let only = candidates.first else { throw Wrappers.notUnderstood(program, "--\(name)") }
            guard candidates.count == 1 else {
                throw APIError.forbidden("\(program): option '--\(name)' is ambiguous, so the command it runs cannot be "
                    + "checked; refused", code: .commandDenied)
            }
            spec = only
        }
        switch spec.arity {
        case .none:
            if attached != nil {
                throw APIError.forbidden("\(program): option '--\(name)' takes no value; refused", code: .commandDenied)
            }
            return Option(key: spec.key, value: nil)
        case .optional:
            return Option(key: spec.key, value: attached)
        case .required:
            if let attached { return Option(key: spec.key, value: attached) }
            guard index < args.count else { throw Wrappers.missingValue(program, "--\(name)") }
            index += 1
            return Option(key: spec.key, value: args[index - 1])
        }
    }
}

/// A command found inside another (`env rm x` → `rm x`), to be checked like the outer one.
struct InnerCommand: Equatable {
    var argv: [String]
    /// Where it runs, when that is known (nil after `cd` in a script, `find -execdir`, `su -l`, …).
    var cwd: String?
    /// More arguments may be appended when it runs (xargs' input).
    var open = false
    /// A command of a shell script (its words may be made at run time).
    var fromScript = false
    /// Its PATH is not the daemon's (env -i, env -u PATH, sudo, su, doas, systemd-run).
    var pathReset = false
    /// $SHELL is gone (env -i, env -u SHELL): flock -c, script and the like run /bin/sh.
    var shellReset = false
}

/// What a wrapper needs to know besides its arguments.
struct WrapperContext {
    var cwd: String?
    /// execution.allowlist is set: what cannot be checked against it is refused.
    var strict: Bool
    var open = false
    var fromScript = false
    /// The shell programs run with `-c` by flock, script, sudo -s, … ($SHELL).
    var shell = "/bin/sh"
}

/// Programs that run another program given in their arguments, and how to find it. Each wrapper's
/// options are declared as its own parser knows them (GNU coreutils 9, util-linux 2.38,
/// findutils 4.9, sudo 1.9, procps 4, bash 5); an option not declared is refused.
enum Wrappers {
    static func notUnderstood(_ program: String, _ option: String) -> APIError {
        .forbidden("\(program): option '\(option)' is not understood, so the command it runs cannot be checked; refused",
                   code: .commandDenied)
    }

    static func missingValue(_ program: String, _ option: String) -> APIError {
        .forbidden("\(program): option '\(option)' needs a value; refused", code: .commandDenied)
    }

    static func refused(_ program: String, _ why: String) -> APIError {
        .forbidden("\(program): \(why), so it cannot be checked; refused", code: .commandDenied)
    }

    /// Programs that run others but whose options are not modelled here: refused outright.
    static let opaqueRunners: Set<String> = [
        "strace", "ltrace", "valgrind", "gdb", "parallel", "unbuffer", "fakeroot", "fakechroot", "proot", "firejail",
        "setpriv", "prlimit", "numactl", "cgexec", "chpst", "catchsegv", "pkexec", "runcon", "newgrp", "expect",
        "sudoedit", "nocache", "torsocks", "proxychains", "proxychains4", "bwrap", "capsh", "daemonize", "start-stop-daemon",
        "dbus-launch", "xvfb-run", "rlwrap", "schroot", "machinectl", "flatpak-spawn", "nsjail",
        "setarch", "linux32", "linux64", "i386", "x86_64", "choom", "uclampset", "scriptlive",
    ]

    static let shells: Set<String> = ["sh", "bash", "dash", "zsh", "ksh", "ksh93", "ash", "mksh", "yash", "fish", "rbash",
                                      "lksh", "pdksh", "posh"]

    static let wrappers: Set<String> = [
        "env", "nice", "nohup", "timeout", "stdbuf", "setsid", "flock", "script", "unshare", "nsenter", "chroot", "ionice",
        "chrt", "taskset", "xargs", "find", "sudo", "su", "runuser", "doas", "time", "command", "exec", "builtin", "eval",
        "trap", "busybox", "watch", "systemd-run", "sg",
    ]

    static func isWrapper(_ name: String) -> Bool {
        wrappers.contains(name) || shells.contains(name) || opaqueRunners.contains(name)
    }

    /// The commands `argv` runs through its program `name` (`env rm x` → [rm x]); [] when it
    /// runs none.
    static func innerCommands(of argv: [String], name: String, context: WrapperContext) throws -> [InnerCommand] {
        let commands = try wrapped(argv, name: name, context: context)
        // xargs appends its input to the wrapper's words: a wrapper that runs nothing as written
        // (`ionice`, `env -u X`, `nice`) would run whatever the input names.
        if commands.isEmpty && context.open && (wrappers.contains(name) || shells.contains(name)) {
            throw refused(name, "the program it runs would come from xargs' input")
        }
        return commands
    }

    private static func wrapped(_ argv: [String], name: String, context: WrapperContext) throws -> [InnerCommand] {
        let args = Array(argv.dropFirst())
        if opaqueRunners.contains(name) {
            throw refused(name, "it runs other programs with options this daemon does not model")
        }
        if shells.contains(name) { return try shell(name, args, context) }
        switch name {
        case "env": return try env(args, context)
        case "nice": return try nice(args, context)
        case "nohup": return try simple(name, OptionTable("", ["help", "version"]), args, context)
        case "timeout":
            return try simple(name, OptionTable("+k:s:fpv", ["kill-after=/k", "signal=/s", "foreground", "preserve-status/p",
                                                           "verbose/v", "help", "version"]), args, context, skip: 1)
        case "stdbuf":
            return try simple(name, OptionTable("+i:o:e:", ["input=/i", "output=/o", "error=/e", "help", "version"]),
                              args, context)
        case "setsid":
            return try simple(name, OptionTable("+Vhcfw", ["ctty/c", "fork/f", "wait/w", "version/V", "help/h"]), args, context)
        case "flock": return try flock(args, context)
        case "script": return try script(args, context)
        case "unshare": return try unshare(args, context)
        case "nsenter": return try nsenter(args, context)
        case "chroot": return try chroot(args, context)
        case "ionice": return try ionice(args, context)
        case "chrt": return try chrt(args, context)
        case "taskset": return try taskset(args, context)
        case "xargs": return try xargs(args, context)
        case "find": return try find(args, context)
        case "sudo": return try sudo(args, context).map(resettingPath)
        case "su", "runuser": return try su(name, args, context).map(resettingPath)
        case "doas": return try doas(args, context).map(resettingPath)
        case "time":
            return try simple(name, OptionTable("+agvpqVf:o:", ["append/a", "format=/f", "output=/o", "portability/p",
                                                              "quiet/q", "verbose/v", "help", "version/V"]), args, context)
        case "command":
            var parser = Getopt(name, OptionTable("pVv"), args)
            let options = try parser.all()
            if options.contains(where: { $0.key != "p" }) { return [] }  // -v/-V describe, they do not run
            let commands = try requireCommand(name, command(name, parser.operands, context), context)
            return options.isEmpty ? commands : commands.map(resettingPath)  // -p: the shell's default PATH
        case "exec": return try simple(name, OptionTable("cla:"), args, context)
        case "builtin": return try simple(name, OptionTable(""), args, context)  // only `--`
        case "eval": return try script(name, args.joined(separator: " "), context)
        case "trap":
            var parser = Getopt(name, OptionTable("lpP"), args)
            _ = try parser.all()
            guard let action = parser.operands.first, action != "-", !action.isEmpty else { return [] }
            return try script(name, action, context)
        case "busybox": return try busybox(args, context)
        case "watch": return try watch(args, context)
        case "systemd-run": return try systemdRun(args, context).map(resettingPath)
        case "sg": return try sg(args, context)
        default: return []
        }
    }

    // MARK: Helpers

    /// A command run with another PATH than its wrapper's (sudo's secure_path, a login's).
    private static func resettingPath(_ command: InnerCommand) -> InnerCommand {
        var command = command
        command.pathReset = true
        return command
    }

    /// The command in `operands` (after `skip` leading ones, like timeout's duration).
    private static func command(_ program: String, _ operands: [String], _ context: WrapperContext, skip: Int = 0,
                                cwd: String?? = .none) -> [InnerCommand] {
        let words = Array(operands.dropFirst(skip))
        return words.isEmpty ? [] : [InnerCommand(argv: words, cwd: cwd ?? context.cwd, open: context.open,
                                                   fromScript: context.fromScript)]
    }

    /// A wrapper whose command must be there when more words may be appended (xargs' input
    /// would otherwise name the program).
    private static func requireCommand(_ program: String, _ commands: [InnerCommand], _ context: WrapperContext) throws
        -> [InnerCommand] {
        if commands.isEmpty && context.open {
            throw refused(program, "the program it runs would come from xargs' input")
        }
        return commands
    }

    private static func simple(_ program: String, _ table: OptionTable, _ args: [String], _ context: WrapperContext,
                               skip: Int = 0) throws -> [InnerCommand] {
        var parser = Getopt(program, table, args)
        _ = try parser.all()
        if context.open && parser.operands.count <= skip {
            throw refused(program, "the program it runs would come from xargs' input")
        }
        return command(program, parser.operands, context, skip: skip)
    }

    /// A shell script run by `program`, split into its commands.
    static func script(_ program: String, _ text: String, _ context: WrapperContext) throws -> [InnerCommand] {
        if text.contains(ShellWords.dynamic) {
            throw refused(program, "the script it runs is made when it runs (from input or expansions)")
        }
        // $'…' is a quote to bash, zsh and ksh; to dash and POSIX sh it is "$" and then '…', which
        // ends elsewhere. Scripts are read as bash reads them, so others may not use it.
        if !ansiQuotingShells.contains(program), text.includes("$'") {
            throw refused(program, "its script uses $'…', which this shell reads otherwise than bash")
        }
        if context.strict, let why = runTimeCode(text) { throw refused(program, why) }
        let parsed = ShellWords.parse(text)
        let words = parsed.assignments + parsed.commands.flatMap { $0 }
        if context.strict {
            for command in parsed.commands {
                // printf -v NAME and test/[ -v NAME evaluate NAME's subscript, and printf -v sets
                // any variable (PS4, BASH_ENV): code no reading of the words sees.
                if ["printf", "test", "["].contains(command.first ?? ""), command.dropFirst().contains(where: {
                    $0 == "-v" || (command.first == "printf" && $0.utf8.starts(with: "-v".utf8))
                }) {
                    throw refused(program, "its script uses \(command[0]) -v, which runs code the shell finds at run time")
                }
            }
            // A literal subscript holding a substitution ('a[$(cmd)]') is run by bash wherever it is
            // later used as a name: read, declare, unset, let, ${!x}, (( )), ${x:y}.
            for word in words where word.includes("[")
                && (word.includes("$(") || word.includes("`") || word.includes("$[")) {
                throw refused(program, "its script holds '\(word)', a subscript with a command in it, which bash "
                    + "runs when the text is used as a name")
            }
        }
        for word in words where ShellWords.isAssignment(word) {
            let name = ShellWords.shellAssignedName(word) ?? word
            if ExecutionPolicy.forbiddenVariable(name) {
                throw APIError.forbidden("\(program): the script sets \(name), which changes which program runs or what "
                    + "it loads; refused", code: .commandDenied)
            }
        }
        // After cd/pushd/popd a relative path names another file: its directory is not known.
        let changesDirectory = parsed.commands.contains { $0.contains { ["cd", "pushd", "popd"].contains($0) } }
        return parsed.commands.map {
            InnerCommand(argv: $0, cwd: changesDirectory ? nil : context.cwd, open: false, fromScript: true)
        }
    }

    /// Why `text` (a script, read under an allowlist) is refused for code bash finds only when it
    /// runs: `${x@P}` and `${!x}` (the value read as code or as a name), `$[ ]`, names and
    /// subscripts in arithmetic, and `${NAME:=…}` setting a variable the caller may not set.
    /// Nil when none is there. (A shell on the allowlist is otherwise trusted whole.)
    static func runTimeCode(_ text: String) -> String? {
        let bytes = Array(text.utf8)
        func at(_ index: Int, _ literal: StaticString) -> Bool {
            let count = literal.utf8CodeUnitCount
            guard index + count <= bytes.count else { return false }
            return literal.withUTF8Buffer { bytes[index..<(index + count)].elementsEqual($0) }
        }
        var index = 0
        while index < bytes.count {
            if at(index, "@P}") || at(index, "${!") { return "its script uses ${…@P} or ${!…}, which read a value as code or a name" }
            if at(index, "$[") { return "its script uses $[ ], arithmetic whose names bash evaluates" }
            if at(index, "((") {
                // Arithmetic: numbers and operators only; a name, subscript or substitution in it is
                // evaluated as code.
                var end = index + 2
                while end < bytes.count, !at(end, "))") {
                    let byte = bytes[end]
                    if (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || byte == 0x5F || byte == UInt8(ascii: "[")
                        || byte == UInt8(ascii: "$") || byte == UInt8(ascii: "`") {
                        return "its script has a name or substitution in arithmetic (( )), which bash evaluates as code"
                    }
                    end += 1
                }
                index = end + 2
                continue
            }
            if at(index, "${") {
                var end = index + 2
                while end < bytes.count, ShellWords.isNameByte(bytes[end]) { end += 1 }
                let name = String(decoding: bytes[(index + 2)..<end], as: UTF8.self)
                if !name.isEmpty, at(end, ":=") || at(end, "="), ExecutionPolicy.forbiddenVariable(name) {
                    return "its script sets \(name) with ${\(name):=…}, which changes which program runs or what it loads"
                }
            }
            index += 1
        }
        return nil
    }

    /// Shells that read $'…' as one quoted word.
    private static let ansiQuotingShells: Set<String> = ["bash", "rbash", "zsh", "ksh", "ksh93", "mksh", "lksh", "pdksh"]

    /// Where a wrapper's directory option (env -C, sudo -D, unshare -w, systemd-run
    /// --working-directory) runs its command: the last one given, from where the wrapper started.
    private static func joined(_ cwd: String?, _ directory: String) -> String? {
        if KernelPath.isAbsolute(directory) { return directory }
        return cwd.map { $0 + "/" + directory }
    }

    private static func checkAssignment(_ program: String, _ assignment: String) throws {
        let name = ShellWords.assignedName(assignment) ?? assignment
        if ExecutionPolicy.forbiddenVariable(name) {
            throw APIError.forbidden("\(program) may not set \(name): it would change which program runs or what it loads",
                                     code: .commandDenied)
        }
    }

    // MARK: Wrappers

    static let envTable = OptionTable("+C:iS:u:v0", [
        "ignore-environment/i", "null/0", "unset=/u", "chdir=/C", "debug/v", "split-string=/S", "block-signal=?",
        "default-signal=?", "ignore-signal=?", "list-signal-handling", "help", "version",
    ])

    private static func env(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        var parser = Getopt("env", envTable, args)
        var cwd = context.cwd
        var splits = 0
        var pathReset = false
        var shellReset = false
        while let option = try parser.next() {
            switch option.key {
            case "S":
                // env -S splits its value into words that take its place; parsing starts again on them.
                splits += 1
                guard splits < 8 else { throw refused("env", "it nests -S too deeply") }
                let words = try envSplit(option.value ?? "")
                parser = Getopt("env", envTable, words + parser.unparsed)
            case "C": cwd = joined(context.cwd, option.value ?? "")
            case "i":
                pathReset = true
                shellReset = true
            case "u" where option.value == "PATH": pathReset = true
            case "u" where option.value == "SHELL": shellReset = true
            case "help", "version": return []
            default: break
            }
        }
        var operands = parser.operands
        if operands.first == "-" {  // a lone "-" is -i
            operands.removeFirst()
            pathReset = true
            shellReset = true
        }
        // env takes any word with an "=" byte as an assignment (strchr), whatever its name.
        while let first = operands.first, ShellWords.assignedName(first) != nil {
            try checkAssignment("env", first)
            operands.removeFirst()
        }
        return try requireCommand("env", command("env", operands, context, cwd: .some(cwd)), context)
            .map { var command = $0; command.pathReset = pathReset; command.shellReset = shellReset; return command }
    }

    /// Splits an `env -S` string as env does: quotes, backslash escapes, `#` comments. A `${VAR}`
    /// (expanded by env) or anything it would reject is refused.
    static func envSplit(_ text: String) throws -> [String] {
        if text.contains(ShellWords.dynamic) || text.utf8.contains(UInt8(ascii: "$")) {
            throw refused("env", "its -S string expands variables or is made when it runs")
        }
        var words: [String] = []
        var word = ""
        var inWord = false
        // Unicode scalars, as env reads bytes: as Characters, a quote followed by a combining
        // mark ('\u{301}) was a letter here and a quote to env.
        let characters = Array(text.unicodeScalars)
        var index = 0
        func end() {
            if inWord { words.append(word) }
            word = ""
            inWord = false
        }
        func escape(_ character: Unicode.Scalar, quoted: Bool) throws -> Unicode.Scalar? {
            switch character {
            case "\\", "\"", "'", "#", "$": return character
            case "_": return quoted ? " " : nil
            case "f": return "\u{0C}"
            case "n": return "\n"
            case "r": return "\r"
            case "t": return "\t"
            case "v": return "\u{0B}"
            default: throw refused("env", "its -S string has an escape '\\\(character)' env would reject")
            }
        }
        scan: while index < characters.count {
            let character = characters[index]
            switch character {
            case " ", "\t", "\n", "\u{0B}", "\u{0C}", "\r": end()
            case "#" where !inWord: break scan
            case "'":
                inWord = true
                index += 1
                while index < characters.count, characters[index] != "'" {
                    if characters[index] == "\\", index + 1 < characters.count,
                       characters[index + 1] == "\\" || characters[index + 1] == "'" {
                        index += 1
                    }
                    word.unicodeScalars.append(characters[index])
                    index += 1
                }
                guard index < characters.count else { throw refused("env", "its -S string has an unterminated quote") }
            case "\"":
                inWord = true
                index += 1
                while index < characters.count, characters[index] != "\"" {
                    if characters[index] == "\\", index + 1 < characters.count {
                        index += 1
                        if characters[index] == "c" { throw refused("env", "its -S string uses \\c inside quotes") }
                        if let escaped = try escape(characters[index], quoted: true) { word.unicodeScalars.append(escaped) }
                    } else {
                        word.unicodeScalars.append(characters[index])
                    }
                    index += 1
                }
                guard index < characters.count else { throw refused("env", "its -S string has an unterminated quote") }
            case "\\":
                guard index + 1 < characters.count else { throw refused("env", "its -S string ends in a backslash") }
                index += 1
                if characters[index] == "c" { break scan }
                if let escaped = try escape(characters[index], quoted: false) {
                    inWord = true
                    word.unicodeScalars.append(escaped)
                } else {
                    end()  // \_ outside quotes separates words
                }
            default:
                inWord = true
                word.unicodeScalars.append(character)
            }
            index += 1
        }
        end()
        return words
    }

    private static func nice(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        // nice takes the old `-NUM` / `--NUM` / `-+NUM` adjustment anywhere before the command.
        func isLegacy(_ word: String) -> Bool {
            let characters = Array(word)
            guard characters.count > 1, characters[0] == "-" else { return false }
            let digit = characters[1] == "-" || characters[1] == "+" ? 2 : 1
            return digit < characters.count && characters[digit].isASCII && characters[digit].isNumber
        }
        let table = OptionTable("+n:", ["adjustment=/n", "help", "version"])
        var rest = args
        while true {
            if let first = rest.first, isLegacy(first) {
                rest.removeFirst()
                continue
            }
            var parser = Getopt("nice", table, rest)
            guard let option = try parser.next() else {
                rest = parser.operands
                break
            }
            if option.key == "help" || option.key == "version" { return [] }
            rest = parser.unparsed
        }
        return try requireCommand("nice", command("nice", rest, context), context)
    }

    private static func flock(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        var parser = Getopt("flock", OptionTable("+sexnoFuw:E:hV?", [
            "shared/s", "exclusive/x", "unlock/u", "nonblocking/n", "nonblock/n", "timeout=/w", "wait=/w",
            "conflict-exit-code=/E", "close/o", "no-fork/F", "verbose", "help/h", "version/V",
        ]), args)
        let options = try parser.all()
        if options.contains(where: { ["h", "V", "?"].contains($0.key) }) { return [] }
        let operands = parser.operands
        if operands.count > 1, operands[1] == "-c" || operands[1] == "--command" {
            guard operands.count == 3 else { return [] }  // flock refuses anything else
            return [InnerCommand(argv: [context.shell, "-c", operands[2]], cwd: context.cwd, fromScript: context.fromScript)]
        }
        return try requireCommand("flock", command("flock", operands, context, skip: 1), context)
    }

    private static func script(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        var parser = Getopt("script", OptionTable("aB:c:eE:fI:O:o:qm:T:t::Vh", [
            "append/a", "command=/c", "echo=/E", "return/e", "flush/f", "force", "log-in=/I", "log-out=/O", "log-io=/B",
            "log-timing=/T", "logging-format=/m", "output-limit=/o", "quiet/q", "timing=?/t", "version/V", "help/h",
        ], permute: true), args)
        let options = try parser.all()
        if options.contains(where: { $0.key == "V" || $0.key == "h" }) { return [] }
        if context.open { throw refused("script", "xargs' input would be taken as its options") }
        let commands = options.filter { $0.key == "c" }.compactMap(\.value)
        guard let last = commands.last else {
            // An interactive $SHELL, which reads its startup files (~/.bashrc): not known here.
            if context.strict { throw refused("script", "it starts an interactive shell, which reads startup files") }
            return [InnerCommand(argv: [context.shell], cwd: context.cwd, fromScript: context.fromScript)]
        }
        return [InnerCommand(argv: [context.shell, "-c", last], cwd: context.cwd, fromScript: context.fromScript)]
    }

    private static func unshare(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        var parser = Getopt("unshare", OptionTable("+fhVmuinpCTUrR:w:S:G:cl", [
            "fork/f", "help/h", "version/V", "mount=?/m", "uts=?/u", "ipc=?/i", "net=?/n", "pid=?/p", "user=?/U",
            "cgroup=?/C", "time=?/T", "mount-proc=?", "map-user=", "map-users=", "map-group=", "map-groups=",
            "map-root-user/r", "map-current-user/c", "map-auto", "propagation=", "setgroups=", "keep-caps", "setuid=/S",
            "setgid=/G", "root=/R", "wd=/w", "monotonic=", "boottime=", "kill-child=?", "load-interp=/l",
        ]), args)
        var cwd = context.cwd
        for option in try parser.all() {
            switch option.key {
            case "h", "V": return []
            case "R":
                if context.strict { throw refused("unshare", "--root runs its command in another root directory") }
                cwd = nil
            case "w": cwd = joined(context.cwd, option.value ?? "")
            default: break
            }
        }
        if context.open { throw refused("unshare", "the program it runs would come from xargs' input") }
        let operands = parser.operands
        if operands.isEmpty { return [InnerCommand(argv: [context.shell], cwd: cwd, fromScript: context.fromScript)] }
        return command("unshare", operands, context, cwd: .some(cwd))
    }

    private static func nsenter(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        var parser = Getopt("nsenter", OptionTable("+ahVt:m::u::i::n::p::C::U::T::S:G:r::w::W:eFcZ", [
            "all/a", "help/h", "version/V", "target=/t", "mount=?/m", "uts=?/u", "ipc=?/i", "net=?/n", "pid=?/p",
            "cgroup=?/C", "user=?/U", "time=?/T", "setuid=/S", "setgid=/G", "preserve-credentials", "root=?/r",
            "wd=?/w", "wdns=/W", "env/e", "no-fork/F", "user-parent/c", "follow-context/Z",
        ]), args)
        var cwd = context.cwd
        for option in try parser.all() {
            switch option.key {
            case "h", "V": return []
            case "r":
                if context.strict { throw refused("nsenter", "--root runs its command in another root directory") }
                cwd = nil
            case "w", "W", "t", "m": cwd = nil  // the target's working directory or mount namespace
            default: break
            }
        }
        if context.open { throw refused("nsenter", "the program it runs would come from xargs' input") }
        let operands = parser.operands
        if operands.isEmpty { return [InnerCommand(argv: [context.shell], cwd: cwd, fromScript: context.fromScript)] }
        return command("nsenter", operands, context, cwd: .some(cwd))
    }

    private static func chroot(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        var parser = Getopt("chroot", OptionTable("+", ["userspec=", "groups=", "skip-chdir", "help", "version"]), args)
        if try parser.all().contains(where: { $0.key == "help" || $0.key == "version" }) { return [] }
        if context.strict { throw refused("chroot", "its command is found in another root directory") }
        if context.open { throw refused("chroot", "the program it runs would come from xargs' input") }
        let operands = parser.operands
        guard operands.count > 0 else { return [] }
        if operands.count == 1 { return [InnerCommand(argv: [context.shell], cwd: nil, fromScript: context.fromScript)] }
        return command("chroot", operands, context, skip: 1, cwd: .some(nil))
    }

    private static func ionice(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        var parser = Getopt("ionice", OptionTable("+c:n:p:P:tu:hV", [
            "class=/c", "classdata=/n", "pid=/p", "pgid=/P", "ignore/t", "uid=/u", "help/h", "version/V",
        ]), args)
        let options = try parser.all()
        // With -p/-P/-u the operands are more ids, not a command.
        if options.contains(where: { ["p", "P", "u", "h", "V"].contains($0.key) }) { return [] }
        return command("ionice", parser.operands, context)
    }

    private static func chrt(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        var parser = Getopt("chrt", OptionTable("+abdD:fiphmoP:T:rRvV", [
            "all-tasks/a", "batch/b", "deadline/d", "fifo/f", "help/h", "idle/i", "max/m", "other/o", "pid/p", "rr/r",
            "reset-on-fork/R", "sched-runtime=/T", "sched-period=/P", "sched-deadline=/D", "verbose/v", "version/V",
        ]), args)
        let options = try parser.all()
        if options.contains(where: { ["p", "m", "h", "V"].contains($0.key) }) { return [] }
        let operands = parser.operands
        // The priority, when given, comes first (it may be left out for the other/batch/idle
        // policies): whatever strtol reads as a number ("+0", " 7", "-0"), by bytes.
        let skip = operands.first.map(isDecimal) == true ? 1 : 0
        if context.open && operands.count <= skip { throw refused("chrt", "the program it runs would come from xargs' input") }
        return command("chrt", operands, context, skip: skip)
    }

    /// Whether strtol (base 10) reads all of `word` as a number: blanks, a sign, ASCII digits.
    static func isDecimal(_ word: String) -> Bool {
        var bytes = word.utf8.drop { [0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D].contains($0) }
        if let sign = bytes.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
        return !bytes.isEmpty && bytes.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    private static func taskset(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        var parser = Getopt("taskset", OptionTable("+apchV", ["all-tasks/a", "pid/p", "cpu-list/c", "help/h", "version/V"]),
                            args)
        let options = try parser.all()
        if options.contains(where: { ["p", "h", "V"].contains($0.key) }) { return [] }
        if context.open && parser.operands.count <= 1 {
            throw refused("taskset", "the program it runs would come from xargs' input")
        }
        return command("taskset", parser.operands, context, skip: 1)
    }

    private static func xargs(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        // Run by another xargs (or find's `{} +`), its own options and command come from that input.
        if context.open { throw refused("xargs", "its options and command would come from another xargs' input") }
        var parser = Getopt("xargs", OptionTable("+0a:E:e::i::I:l::L:n:oprs:txP:d:", [
            "null/0", "arg-file=/a", "delimiter=/d", "eof=?/e", "replace=?/i", "max-lines=?/l", "max-args=/n",
            "open-tty/o", "interactive/p", "no-run-if-empty/r", "max-chars=/s", "verbose/t", "show-limits", "exit/x",
            "max-procs=/P", "process-slot-var=", "help", "version",
        ]), args)
        var replace: String?
        for option in try parser.all() {
            switch option.key {
            case "I": replace = option.value
            case "i": replace = option.value ?? "{}"
            case "process-slot-var": try checkAssignment("xargs", (option.value ?? "") + "=")
            case "help", "version": return []
            default: break
            }
        }
        var argv = parser.operands
        if argv.isEmpty { argv = ["echo"] }
        // With -I the input replaces a string in the words; without it, it is appended to them.
        if let replace, !replace.isEmpty {
            argv = argv.map { $0.replacingEvery(replace, with: String(ShellWords.dynamic)) }
        }
        return [InnerCommand(argv: argv, cwd: context.cwd, open: replace == nil, fromScript: context.fromScript)]
    }

    private static func find(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        if context.open { throw refused("find", "xargs' input would become part of its expression") }
        var commands: [InnerCommand] = []
        var index = 0
        while index < args.count {
            let word = args[index]
            if ["-exec", "-execdir", "-ok", "-okdir"].contains(word) {
                var command: [String] = []
                index += 1
                // By bytes: Swift's == takes U+037E (Greek question mark) for ";", find does not.
                // "+" ends it only right after "{}" (then many names are appended, as by xargs).
                var appends = false
                while index < args.count, !KernelPath.same(args[index], ";") {
                    if KernelPath.same(args[index], "+"), index > 0, KernelPath.same(args[index - 1], "{}") {
                        appends = true
                        break
                    }
                    command.append(args[index].replacingEvery("{}", with: String(ShellWords.dynamic)))
                    index += 1
                }
                // -execdir runs in each found file's directory: a relative program there is unknown.
                let cwd = word.hasSuffix("dir") ? nil : context.cwd
                if !command.isEmpty {
                    commands.append(InnerCommand(argv: command, cwd: cwd, open: appends, fromScript: context.fromScript))
                }
            } else if word == "-delete" {
                commands.append(InnerCommand(argv: ["rm"], cwd: context.cwd))  // find -delete removes like rm
            }
            index += 1
        }
        return commands
    }

    private static let sudoTable = OptionTable("+Aa:BbC:c:D:Eeg:Hh::iKklNnPp:R:r:SsT:t:U:u:Vv", [
        "askpass/A", "auth-type=/a", "background/b", "bell/B", "close-from=/C", "login-class=/c", "chdir=/D",
        "preserve-env=?/E", "edit/e", "group=/g", "set-home/H", "help", "host=?/h", "login/i", "remove-timestamp/K",
        "reset-timestamp/k", "list/l", "no-update/N", "non-interactive/n", "preserve-groups/P", "prompt=/p",
        "chroot=/R", "role=/r", "stdin/S", "shell/s", "type=/t", "command-timeout=/T", "other-user=/U", "user=/u",
        "version/V", "validate/v",
    ])

    private static func sudo(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        // sudo takes a word with an "=" byte that starts with neither "=" nor "/" as a variable,
        // whatever its name, and reads options again after it (parse_args.c, is_envar), until "--".
        var options: [Getopt.Option] = []
        var remaining = args
        var operands: [String]
        while true {
            var parser = Getopt("sudo", sudoTable, remaining)
            options += try parser.all()
            operands = parser.operands
            guard !parser.sawDoubleDash, let first = operands.first, ShellWords.assignedName(first) != nil,
                  let lead = first.utf8.first, lead != UInt8(ascii: "="), lead != UInt8(ascii: "/") else { break }
            try checkAssignment("sudo", first)
            remaining = Array(operands.dropFirst())
        }
        var cwd = context.cwd
        var shell = false
        for option in options {
            switch option.key {
            case "e": throw refused("sudo", "-e runs an editor chosen by the environment")
            case "R":
                if context.strict { throw refused("sudo", "--chroot runs its command in another root directory") }
                cwd = nil
            case "D": cwd = joined(context.cwd, option.value ?? "")
            case "i":
                shell = true
                cwd = nil  // the target user's home
            case "s": shell = true
            case "help", "V", "K": return []
            case "h" where option.value == nil: return []
            default: break
            }
        }
        if context.open { throw refused("sudo", "the program it runs would come from xargs' input") }
        var commands = command("sudo", operands, context, cwd: .some(cwd))
        if shell {
            // -s/-i run the command through the shell: check it as a script too.
            commands.append(InnerCommand(argv: [context.shell] + (operands.isEmpty ? [] : ["-c", operands.joined(separator: " ")]),
                                         cwd: cwd, fromScript: context.fromScript))
        }
        return commands
    }

    private static func su(_ name: String, _ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        var long = ["command=/c", "session-command=", "fast/f", "group=/g", "supp-group=/G", "login/l",
                    "preserve-environment/p", "pty/P", "shell=/s", "whitelist-environment=/w", "help/h", "version/V"]
        var short = "c:fg:G:hlmpPs:Vw:"
        if name == "runuser" {
            long.append("user=/u")
            short += "u:"
        }
        var parser = Getopt(name, OptionTable(short, long, permute: true), args)
        var script: String?
        var shell = context.shell
        var shellGiven = false
        var user: String?
        var login = false
        for option in try parser.all() {
            switch option.key {
            case "c", "session-command": script = option.value
            case "s":
                shell = option.value ?? shell
                shellGiven = true
            case "l": login = true
            case "u": user = option.value
            case "h", "V": return []
            default: break
            }
        }
        if context.open { throw refused(name, "xargs' input would be taken as its user or the shell's arguments") }
        var operands = parser.operands
        if operands.first == "-" {
            login = true
            operands.removeFirst()
        }
        let cwd = login ? nil : context.cwd
        if user != nil {  // runuser -u USER COMMAND…: the command itself
            return command(name, operands, context, cwd: .some(cwd))
        }
        // su [USER [ARG…]]: the user's shell from the account database (or -s SHELL; $SHELL with
        // -m/-p), with -c and the further arguments. Under an allowlist both the account's and
        // $SHELL are checked (the account database is read only then: it may be a network service).
        if login && context.strict { throw refused(name, "a login shell reads startup files") }
        var shells = [shell]
        if !shellGiven && context.strict {
            guard let own = Account.loginShell(of: operands.first ?? "root") else {
                throw refused(name, "the account '\(operands.first ?? "root")' and its shell are not known here")
            }
            if own != shell { shells.append(own) }
        }
        return shells.map { shell in
            InnerCommand(argv: [shell] + (script.map { ["-c", $0] } ?? []) + operands.dropFirst(), cwd: cwd,
                         fromScript: context.fromScript)
        }
    }

    private static func doas(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        var parser = Getopt("doas", OptionTable("+a:C:Lnsu:"), args)
        var shell = false
        for option in try parser.all() {
            switch option.key {
            case "C", "L": return []
            case "s": shell = true
            default: break
            }
        }
        let operands = parser.operands
        if operands.isEmpty && shell { return [InnerCommand(argv: [context.shell], cwd: context.cwd, fromScript: context.fromScript)] }
        return try requireCommand("doas", command("doas", operands, context), context)
    }

    private static func busybox(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        guard let first = args.first else { return [] }
        if first.hasPrefix("-") {
            guard ["--list", "--list-full", "--help", "--install", "--show"].contains(first) else {
                throw notUnderstood("busybox", first)
            }
            return []
        }
        // busybox APPLET ARGS: the applet runs as the program of that name would.
        return [InnerCommand(argv: [KernelPath.names(first).last.map(String.init) ?? first] + args.dropFirst(),
                             cwd: context.cwd, open: context.open, fromScript: context.fromScript)]
    }

    private static func watch(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        var parser = Getopt("watch", OptionTable("+bcCd::eghn:pq:tvwx", [
            "beep/b", "color/c", "no-color/C", "differences=?/d", "errexit/e", "chgexit/g", "equexit=/q", "interval=/n",
            "precise/p", "no-title/t", "no-wrap/w", "no-linewrap/w", "exec/x", "help/h", "version/v",
        ]), args)
        let options = try parser.all()
        if options.contains(where: { $0.key == "h" || $0.key == "v" }) { return [] }
        let operands = parser.operands
        if context.open { throw refused("watch", "the program it runs would come from xargs' input") }
        guard !operands.isEmpty else { return [] }
        if options.contains(where: { $0.key == "x" }) { return command("watch", operands, context) }
        // Without -x the words are joined and run by sh -c.
        return [InnerCommand(argv: ["/bin/sh", "-c", operands.joined(separator: " ")], cwd: context.cwd,
                             fromScript: context.fromScript)]
    }

    private static func systemdRun(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        var parser = Getopt("systemd-run", OptionTable("+u:p:rH:M:E:tPqGdSh", [
            "unit=/u", "property=/p", "remain-after-exit/r", "host=/H", "machine=/M", "setenv=/E", "pty/t", "pipe/P",
            "quiet/q", "collect/G", "same-dir/d", "shell/S", "help/h", "version", "user", "system", "scope",
            "description=", "slice=", "slice-inherit", "send-sighup", "service-type=", "uid=", "gid=", "nice=",
            "working-directory=", "wait", "no-block", "no-ask-password", "on-active=", "on-boot=", "on-startup=",
            "on-unit-active=", "on-unit-inactive=", "on-calendar=", "on-timezone-change", "on-clock-change",
            "timer-property=", "path-property=", "socket-property=",
        ]), args)
        var cwd = context.cwd
        var shell = false
        for option in try parser.all() {
            switch option.key {
            case "E": try checkAssignment("systemd-run", option.value ?? "")
            case "working-directory": cwd = joined(context.cwd, option.value ?? "")
            case "S": shell = true
            case "h", "version": return []
            case "H", "M", "user": cwd = nil
            case "p":
                // Properties can name programs (ExecStartPre=…): only a few harmless kinds are checked here.
                let property = ShellWords.assignedName(option.value ?? "") ?? (option.value ?? "")
                if property.hasPrefix("Exec") || property == "Environment" || property == "EnvironmentFile" {
                    throw refused("systemd-run", "the property \(property) runs or configures programs")
                }
            default: break
            }
        }
        if context.open { throw refused("systemd-run", "the program it runs would come from xargs' input") }
        let operands = parser.operands
        if operands.isEmpty && shell { return [InnerCommand(argv: [context.shell], cwd: cwd, fromScript: context.fromScript)] }
        return command("systemd-run", operands, context, cwd: .some(cwd))
    }

    private static func sg(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        var operands = args
        if operands.first == "-" { operands.removeFirst() }
        if let first = operands.first, first.hasPrefix("-") { throw notUnderstood("sg", first) }
        if context.open { throw refused("sg", "the program it runs would come from xargs' input") }
        guard operands.count > 1 else { return [] }
        var rest = Array(operands.dropFirst())
        if rest.first == "-c" { rest.removeFirst() }
        // sg GROUP [-c] COMMAND: the command is a string for /bin/sh -c.
        return [InnerCommand(argv: ["/bin/sh", "-c", rest.joined(separator: " ")], cwd: context.cwd,
                             fromScript: context.fromScript)]
    }

    // MARK: Shells

    private static func shellTable(_ name: String) -> (flags: String, values: String, long: [String: OptionArity]) {
        switch name {
        case "bash", "rbash":
            return ("abefhkmnptuvxBCEHPTilrsDc", "oO", [
                "debugger": .none, "dump-po-strings": .none, "dump-strings": .none, "help": .none, "init-file": .required,
                "rcfile": .required, "login": .none, "noediting": .none, "noprofile": .none, "norc": .none, "posix": .none,
                "pretty-print": .none, "restricted": .none, "verbose": .none, "version": .none,
            ])
        case "zsh":
            return ("0123456789abcdefghijklmnpqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "o", ["help": .none, "version": .none])
        case "ksh", "ksh93", "mksh", "lksh", "pdksh":
            return ("abcefhiklmnprsuvxBCEXU", "oTR", [:])
        case "yash":
            return ("abcefhilmnsuvxCV", "o", ["help": .none, "version": .none, "posix": .none, "interactive": .none,
                                               "login": .none, "noprofile": .none, "norcfile": .none,
                                               "profile": .required, "rcfile": .required])
        default:  // sh, dash, ash, posh
            return ("aCefnuvxIimqVEbpslc", "o", [:])
        }
    }

    private static func shell(_ name: String, _ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        if name == "fish" { return try fish(args, context) }
        let table = shellTable(name)
        var index = 0
        var command = false
        var fromInput = false
        var startupFile = false
        // Long options first (bash: exact names only, after "--" or one "-": -posix is --posix),
        // then option clusters with - or +.
        func longName(_ word: String) -> String? {
            if word.hasPrefix("--") && word != "--" { return String(word.dropFirst(2)) }
            if (name == "bash" || name == "rbash"), word.hasPrefix("-"), table.long[String(word.dropFirst())] != nil {
                return String(word.dropFirst())
            }
            return nil
        }
        while index < args.count, let option = longName(args[index]) {
            guard let arity = table.long[option] else { throw notUnderstood(name, args[index]) }
            if option == "help" || option == "version" { return [] }
            if option == "login" || option == "interactive" { startupFile = true }  // ~/.profile, ~/.bashrc
            index += 1
            if arity == .required {
                guard index < args.count else { throw missingValue(name, args[index - 1]) }
                startupFile = true
                index += 1
            }
        }
        while index < args.count {
            let word = args[index]
            if word == "--" || word == "-" {
                index += 1
                break
            }
            if word == "+" {  // an empty option cluster to bash and dash, not a script file
                index += 1
                continue
            }
            guard word.count > 1, word.hasPrefix("-") || word.hasPrefix("+") else { break }
            index += 1
            for letter in word.dropFirst() {
                if table.values.contains(letter) {
                    guard index < args.count else { throw missingValue(name, "\(word.first!)\(letter)") }
                    index += 1  // -o NAME, +O NAME
                } else if table.flags.contains(letter) {
                    // bash, dash and zsh take `+c` as `-c`; `-s` reads commands from the input
                    // even with operands (they are $1, $2, …).
                    if letter == "c" { command = true }
                    if letter == "s" { fromInput = true }
                    if letter == "i" || letter == "l" { startupFile = true }  // interactive or login: startup files
                } else {
                    throw notUnderstood(name, "\(word.first!)\(letter)")
                }
            }
        }
        let operands = Array(args[index...])
        if startupFile && context.strict { throw refused(name, "it reads a startup file") }
        if command {
            // The script is the first word after the options; the rest are $0, $1, …
            guard let text = operands.first else {
                if context.open { throw refused(name, "its script would come from xargs' input") }
                return []
            }
            return try script(name, text, WrapperContext(cwd: context.cwd, strict: context.strict, shell: context.shell))
        }
        if fromInput && (context.fromScript || context.open) {
            throw refused(name, "it reads its commands from its input")
        }
        if let file = operands.first, !fromInput {
            // A file's commands cannot be read here: with an allowlist that is a refusal; with only
            // a denylist (a speed bump) `sh FILE` runs, as it would typed at the top level.
            if context.strict || context.open {
                throw refused(name, "it runs the script file '\(file)', whose commands are not known here")
            }
            return []
        }
        if context.fromScript || context.open {
            throw refused(name, "it reads its commands from its input")
        }
        return []  // commands from standard input, which is /dev/null here
    }

    private static func fish(_ args: [String], _ context: WrapperContext) throws -> [InnerCommand] {
        var parser = Getopt("fish", OptionTable("+hPilNnvc:C:p:d:f:o:", [
            "command=/c", "init-command=/C", "debug=/d", "debug-output=/o", "features=/f", "interactive/i", "login/l",
            "no-config/N", "no-execute/n", "profile=/p", "profile-startup=", "private/P", "print-rusage-self",
            "print-debug-categories", "version/v", "help/h",
        ]), args)
        var scripts: [String] = []
        for option in try parser.all() {
            switch option.key {
            case "c", "C": scripts.append(option.value ?? "")
            case "h", "v": return []
            default: break
            }
        }
        if scripts.isEmpty {
            if let file = parser.operands.first, context.strict || context.open {
                throw refused("fish", "it runs the script file '\(file)', whose commands are not known here")
            }
            if parser.operands.isEmpty && (context.fromScript || context.open) {
                throw refused("fish", "it reads its commands from its input")
            }
            return []
        }
        let inner = WrapperContext(cwd: context.cwd, strict: context.strict, shell: context.shell)
        return try scripts.flatMap { try script("fish", $0, inner) }
    }
}
