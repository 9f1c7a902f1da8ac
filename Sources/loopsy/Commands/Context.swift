import ArgumentParser
import LoopsyAPI
import LoopsyClient

struct Context: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "context",
        abstract: "Read and write the shared key-value context store.",
        subcommands: [Set.self, Get.self, List.self, Delete.self, Broadcast.self, Watch.self])

    struct Watch: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "watch",
            abstract: "Print changes of a key, or of every key starting with --prefix, as they happen.",
            discussion: "Runs until interrupted. It follows the node's change log by cursor, so a daemon restart "
                + "loses or repeats nothing (a key watch without --prefix reports the key's state instead).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Watch this peer's store.") var peer: String?
        @Argument(help: "The key (or use --prefix).") var key: String?
        @Option(help: "Every key starting with this.") var prefix: String?
        @Flag(help: "One JSON object per line.") var json = false

        func validate() throws {
            guard (key == nil) != (prefix == nil) else { throw ValidationError("give a key or --prefix, not both") }
        }

        func run() throws {
            try runReporting {
                let client = try global.client(peer: peer, timeoutSeconds: 60)
                var waiting = false
                /// One long wait; a daemon that is away is waited for (said once).
                func attempt<T>(_ body: () throws -> T) throws -> T? {
                    do {
                        let value = try body()
                        if waiting { printError("loopsyd is back"); waiting = false }
                        return value
                    } catch ClientError.daemonUnreachable, ClientError.network {
                        if !waiting { printError("loopsyd is not answering; waiting for it…"); waiting = true }
                        sleep(1)
                        return nil
                    }
                }
                if let prefix {
                    var cursor: Int64?
                    while true {
                        guard let page = try attempt({ try client.contextChanges(prefix: prefix, after: cursor, wait: 30) })
                        else { continue }
                        for change in page.changes { try Self.print(change, json: json) }
                        cursor = page.cursor
                    }
                }
                let key = key ?? ""
                // Where it stands now: the first change printed is the next one.
                var revision: Int64 = 0
                do {
                    revision = try client.contextGet(key).revision
                } catch ClientError.api(let error) where error.status == 404 {
                    revision = 0
                }
                while true {
                    guard let entry = try attempt({ try client.contextWatch(key, afterRevision: revision, wait: 30) })
                    else { continue }
                    let now = entry?.revision ?? 0
                    guard now != revision else { continue }
                    revision = now
                    let change = ContextChange(seq: 0, key: key, kind: entry == nil ? "delete" : "put", revision: now,
                                               at: entry?.updatedAt ?? 0, value: entry?.value)
                    try Self.print(change, json: json)
                }
            }
        }

        static func print(_ change: ContextChange, json: Bool) throws {
            if json {
                Swift.print(try JSONLine.encode(change, pretty: false))
            } else if change.kind == "put" {
                Swift.print("\(change.key) = \(change.value?.replacingNewlines ?? "(changed again since)") (revision \(change.revision))")
            } else {
                Swift.print("\(change.key) \(change.kind == "delete" ? "deleted" : "expired")")
            }
            fflush(nil)
        }
    }

    struct Broadcast: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "broadcast",
            abstract: "Set a key here and on every known peer, reporting each.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The key.") var key: String
        @Argument(help: "The value.") var value: String
        @Option(help: "Seconds until the entries expire.") var ttl: Int?
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            try runReporting {
                let result = try global.client(timeoutSeconds: 60)
                    .broadcastContext(ContextBroadcastRequest(key: key, value: value, ttl: ttl))
                print("set \(key) here")
                try printOutcomes(result, json: json)
            }
        }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", abstract: "Set a value (optionally expiring).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Use this peer's store (name, nodeId or address) instead of this machine's.") var peer: String?
        @Argument(help: "The key.") var key: String
        @Argument(help: "The value.") var value: String
        @Option(help: "Seconds until the entry expires.") var ttl: Int?
        @Option(name: .customLong("if-revision"),
                help: "Compare-and-set: write only if the key is at this revision (as `context get` shows it).")
        var ifRevision: Int64?
        @Flag(name: .customLong("if-absent"), help: "Write only if the key does not exist (same as --if-revision 0).")
        var ifAbsent = false
        @Flag(help: "Print the stored entry as JSON.") var json = false

        func validate() throws {
            if let ttl, ttl <= 0 { throw ValidationError("--ttl must be a positive number of seconds") }
            if let ifRevision, ifRevision < 0 { throw ValidationError("--if-revision must be 0 or more") }
            if ifAbsent && ifRevision != nil { throw ValidationError("give --if-revision or --if-absent, not both") }
        }

        func run() throws {
            try runReporting {
                let entry = try global.client(peer: peer).contextSet(key, value: value, ttl: ttl,
                                                                     ifRevision: ifAbsent ? 0 : ifRevision)
                if json {
                    print(try JSONLine.encode(entry, pretty: true))
                } else {
                    print("set \(entry.key) (revision \(entry.revision)\(entry.ttl.map { ", expires in \($0) s" } ?? ""))")
                }
            }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "get", abstract: "Print a value.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Use this peer's store (name, nodeId or address) instead of this machine's.") var peer: String?
        @Argument(help: "The key.") var key: String
        @Flag(help: "Print the whole entry as JSON.") var json = false

        func run() throws {
            try runReporting {
                let entry = try global.client(peer: peer).contextGet(key)
                print(json ? try JSONLine.encode(entry, pretty: true) : entry.value)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List entries.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Use this peer's store (name, nodeId or address) instead of this machine's.") var peer: String?
        @Option(help: "Only keys starting with this.") var prefix: String?
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            try runReporting {
                let entries = try global.client(peer: peer).contextList(prefix: prefix)
                if json {
                    print(try JSONLine.encode(ContextListResponse(entries: entries), pretty: true))
                    return
                }
                if entries.isEmpty {
                    print(prefix.map { "no entries with prefix '\($0)'" } ?? "the context store is empty")
                }
                for entry in entries {
                    let ttl = entry.expiresAt.map { " (expires in \(max(0, ($0 - Self.nowMillis()) / 1000)) s)" } ?? ""
                    print("\(entry.key) = \(Self.preview(entry.value))\(ttl)")
                }
            }
        }

        static func preview(_ value: String) -> String {
            let line = value.replacingNewlines
            return line.count > 60 ? String(line.prefix(57)) + "..." : line
        }

        static func nowMillis() -> Int64 {
            var spec = timespec()
            clock_gettime(CLOCK_REALTIME, &spec)
            return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete an entry.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Use this peer's store (name, nodeId or address) instead of this machine's.") var peer: String?
        @Argument(help: "The key.") var key: String
        @Option(name: .customLong("if-revision"), help: "Delete only if the key is at this revision.")
        var ifRevision: Int64?

        func run() throws {
            try runReporting {
                try global.client(peer: peer).contextDelete(key, ifRevision: ifRevision)
                print("deleted \(key)")
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

extension String {
    var replacingNewlines: String { String(map { $0 == "\n" ? " " : $0 }) }
}
