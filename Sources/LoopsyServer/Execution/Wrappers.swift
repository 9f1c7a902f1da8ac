/// Programs that run another program given in their arguments, and how to find it.
enum Wrappers {
    /// The commands `argv` runs through its program (`env rm x` → [["rm", "x"]]).
    static func innerCommands(of argv: [String], programName: String) -> [[String]] {
        let args = Array(argv.dropFirst())
        switch programName {
        case "env": return env(args)
        case "nice": return afterOptions(args, withValue: ["-n", "--adjustment"])
        case "nohup", "exec", "command", "builtin", "time", "chroot", "setsid", "unbuffer", "ionice", "chrt", "taskset",
             "flock", "doas", "runuser", "su":
            return special(programName, args)
        case "timeout": return timeout(args)
        case "stdbuf": return afterOptions(args, withValue: ["-i", "-o", "-e", "--input", "--output", "--error"])
        case "xargs": return xargs(args)
        case "sudo": return sudo(args)
        case "busybox": return args.isEmpty ? [] : [args]
        case "find": return find(args)
        case "sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "yash", "fish": return shell(args)
        case "eval": return ShellWords.commands(in: args.joined(separator: " "))
        default: return []
        }
    }

    /// Skips leading options (those in `withValue` take the next word) and returns the rest.
    private static func afterOptions(_ args: [String], withValue: Set<String>) -> [[String]] {
        var index = 0
        while index < args.count, args[index].hasPrefix("-") {
            let option = args[index]
            if option == "--" { index += 1; break }
            let name = option.split(separator: "=").first.map(String.init) ?? option
            if withValue.contains(name) && !option.contains("=") { index += 1 }
            index += 1
        }
        return index < args.count ? [Array(args[index...])] : []
    }

    private static func env(_ args: [String]) -> [[String]] {
        var index = 0
        var commands: [[String]] = []
        while index < args.count {
            let word = args[index]
            if word == "--" { index += 1; break }
            if word == "-S" || word == "--split-string" {
                // env -S 'prog args' splits its argument into a command line.
                if index + 1 < args.count { commands += ShellWords.commands(in: args[index + 1]) }
                index += 2
                continue
            }
            if word.hasPrefix("--split-string=") || (word.hasPrefix("-S") && word.count > 2) {
                commands += ShellWords.commands(in: String(word.drop { $0 != "=" && $0 != "S" }.dropFirst()))
                index += 1
                continue
            }
            if ["-u", "--unset", "-C", "--chdir"].contains(word) { index += 2; continue }
            if word.hasPrefix("-") || (word.contains("=") && !word.hasPrefix("=")) { index += 1; continue }
            break
        }
        if index < args.count { commands.append(Array(args[index...])) }
        return commands
    }

    private static func timeout(_ args: [String]) -> [[String]] {
        var index = 0
        while index < args.count, args[index].hasPrefix("-") {
            if ["-s", "--signal", "-k", "--kill-after"].contains(args[index]) { index += 1 }
            index += 1
        }
        index += 1  // the duration
        return index < args.count ? [Array(args[index...])] : []
    }

    private static func xargs(_ args: [String]) -> [[String]] {
        let withValue: Set<String> = ["-a", "-d", "-E", "-e", "-I", "-i", "-L", "-l", "-n", "-P", "-s", "--arg-file",
                                      "--delimiter", "--eof", "--replace", "--max-lines", "--max-args", "--max-procs",
                                      "--max-chars", "--process-slot-var"]
        let rest = afterOptions(args, withValue: withValue)
        return rest.isEmpty ? [["echo"]] : rest
    }

    private static func sudo(_ args: [String]) -> [[String]] {
        let withValue: Set<String> = ["-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-T", "-U", "--user", "--group",
                                      "--chdir", "--prompt", "--role", "--type", "--close-from", "--host",
                                      "--other-user", "--command-timeout"]
        let rest = afterOptions(args, withValue: withValue)
        if rest.isEmpty && args.contains(where: { $0 == "-s" || $0 == "-i" || $0 == "--shell" || $0 == "--login" }) {
            return [["sh"]]
        }
        return rest
    }

    private static func special(_ name: String, _ args: [String]) -> [[String]] {
        switch name {
        case "chroot": return args.count > 1 ? [Array(args.dropFirst())] : []  // chroot DIR cmd
        case "flock": return afterOptions(args, withValue: ["-w", "--timeout", "-E", "--conflict-exit-code"])
            .map { Array($0.dropFirst()) }.filter { !$0.isEmpty }  // flock [opts] FILE cmd
        case "su", "runuser":
            // su/runuser -c 'command' run a shell string.
            if let index = args.firstIndex(where: { $0 == "-c" || $0 == "--command" }), index + 1 < args.count {
                return ShellWords.commands(in: args[index + 1])
            }
            return []
        case "ionice": return afterOptions(args, withValue: ["-c", "-n", "-p", "-P", "-u", "--class", "--classdata"])
        case "taskset", "chrt": return args.count > 1 ? [Array(args.drop { $0.hasPrefix("-") }.dropFirst())] : []
        default: return afterOptions(args, withValue: [])
        }
    }

    private static func find(_ args: [String]) -> [[String]] {
        var commands: [[String]] = []
        var index = 0
        while index < args.count {
            if ["-exec", "-execdir", "-ok", "-okdir"].contains(args[index]) {
                var command: [String] = []
                index += 1
                while index < args.count, args[index] != ";", args[index] != "+" {
                    command.append(args[index])
                    index += 1
                }
                if !command.isEmpty { commands.append(command) }
            }
            index += 1
        }
        return commands
    }

    private static func shell(_ args: [String]) -> [[String]] {
        // The script follows the option cluster holding `c` (sh -c, bash -lc, sh -ec …).
        for (index, word) in args.enumerated() where word.hasPrefix("-") && !word.hasPrefix("--") && word.contains("c") {
            if index + 1 < args.count { return ShellWords.commands(in: args[index + 1]) }
        }
        return []
    }
}
