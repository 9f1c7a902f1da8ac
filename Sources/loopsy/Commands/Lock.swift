import ArgumentParser
import Dispatch
import LoopsyAPI
import LoopsyClient
import LoopsyConfig
import LoopsyPOSIX
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

struct Lock: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lock",
        abstract: "Locks with leases: one holder at a time, across machines.",
        discussion: """
            A lock lives on the node that serves it (this one, or --peer). Taking it returns a \
            fencing token that grows with every acquisition on that node; the lease ends after \
            --ttl seconds unless renewed, so a crashed holder frees it. `loopsy lock run NAME -- \
            cmd` holds it (renewing) while cmd runs and exits with cmd's code.
            """,
        subcommands: [Acquire.self, Renew.self, Release.self, List.self, Run.self])

    struct Acquire: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "acquire", abstract: "Take a lock; prints its fencing token.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Take it on this peer (name, nodeId or address) instead of this machine.") var peer: String?
        @Argument(help: "The lock's name.") var name: String
        @Option(help: "Lease in seconds.") var ttl: Int = 30
        @Option(help: "Seconds to wait for it when someone else holds it (0: fail at once).") var wait: Int = 0
        @Option(help: "Who holds it, as others will see (default: this node).") var holder: String?
        @Flag(help: "Print JSON.") var json = false

        func validate() throws { try Lock.check(ttl: ttl, wait: wait) }

        func run() throws {
            try runReporting {
                let lock = try global.client(peer: peer, timeoutSeconds: wait + 30)
                    .lockAcquire(name, holder: holder ?? Lock.defaultHolder, ttl: ttl, wait: wait)
                if json { return print(try JSONLine.encode(lock, pretty: true)) }
                print("acquired \(lock.name): token \(lock.token), lease \(ttl) s")
            }
        }
    }

    struct Renew: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "renew", abstract: "Extend a lease you hold.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The lock is on this peer.") var peer: String?
        @Argument(help: "The lock's name.") var name: String
        @Option(help: "The fencing token `acquire` printed.") var token: Int64
        @Option(help: "New lease in seconds from now.") var ttl: Int = 30

        func validate() throws { try Lock.check(ttl: ttl, wait: 0) }

        func run() throws {
            try runReporting {
                let lock = try global.client(peer: peer).lockRenew(name, token: token, ttl: ttl)
                print("renewed \(lock.name) (token \(lock.token)) for \(ttl) s")
            }
        }
    }

    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "release", abstract: "Release a lock you hold.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The lock is on this peer.") var peer: String?
        @Argument(help: "The lock's name.") var name: String
        @Option(help: "The fencing token `acquire` printed.") var token: Int64

        func run() throws {
            try runReporting {
                try global.client(peer: peer).lockRelease(name, token: token)
                print("released \(name)")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Locks held now.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "List this peer's locks.") var peer: String?
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            try runReporting {
                let locks = try global.client(peer: peer).locks()
                if json { return print(try JSONLine.encode(LockListResponse(locks: locks), pretty: true)) }
                guard !locks.isEmpty else { return print("no locks are held") }
                let now = Context.List.nowMillis()
                for lock in locks {
                    print("\(lock.name)  held by \(lock.holder)  token \(lock.token)  "
                        + "\(max(0, (lock.expiresAt - now + 999) / 1000)) s left")
                }
            }
        }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run",
            abstract: "Run a command while holding a lock (renewed as it runs, released after).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Take it on this peer.") var peer: String?
        @Option(help: "Lease in seconds (renewed every third of it).") var ttl: Int = 30
        @Option(help: "Seconds to wait for the lock.") var wait: Int = 60
        @Option(help: "Who holds it (default: this node).") var holder: String?
        @Argument(help: "The lock's name.") var name: String
        @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.") var command: [String] = []

        func validate() throws {
            try Lock.check(ttl: ttl, wait: wait)
            guard !command.isEmpty else { throw ValidationError("give the command after --: loopsy lock run NAME -- cmd") }
        }

        func run() throws {
            let argv = command
            var status: Int32 = 0
            try runReporting {
                let client = try global.client(peer: peer, timeoutSeconds: wait + 30)
                let lock = try client.lockAcquire(name, holder: holder ?? Lock.defaultHolder, ttl: ttl, wait: wait)
                printError("holding \(lock.name) (token \(lock.token))")
                status = try Lock.runHolding(lock, argv: argv, client: client, ttl: ttl)
            }
            throw ExitCode(status)
        }
    }

    static var defaultHolder: String { "\(Programs.hostname()) pid \(getpid())" }

    static func check(ttl: Int, wait: Int) throws {
        guard LockLimits.ttlSeconds.contains(ttl) else {
            throw ValidationError("--ttl must be from 1 to \(LockLimits.ttlSeconds.upperBound) seconds")
        }
        guard (0...300).contains(wait) else { throw ValidationError("--wait must be from 0 to 300 seconds") }
    }

    /// Spawns `argv`, renews the lease every third of `ttl` while it runs, releases the lock
    /// when it ends. A lost lease stops the command (SIGTERM): it is no longer protected.
    static func runHolding(_ lock: LockInfo, argv: [String], client: LoopsyClient, ttl: Int) throws -> Int32 {
        var command = Subprocess(argv[0], Array(argv.dropFirst()))
        command.searchPath = true
        let child: Subprocess.Child
        do {
            child = try command.spawn()
        } catch {
            try? client.lockRelease(lock.name, token: lock.token)
            throw CLIFailure(message: "cannot run \(argv[0]): \(error)", code: CLIFailure.usage)
        }
        let lost = Atomic<Bool>(false)
        let renewer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "loopsy.lock.renew"))
        let period = max(1.0, Double(ttl) / 3)
        renewer.schedule(deadline: .now() + period, repeating: period)
        renewer.setEventHandler {
            guard !lost.load(ordering: .relaxed) else { return }
            do {
                _ = try client.lockRenew(lock.name, token: lock.token, ttl: ttl)
            } catch {
                lost.store(true, ordering: .relaxed)
                printError("lost \(lock.name): \(CLIFailure.from(error).message); stopping the command")
                child.signal(SIGTERM)
            }
        }
        renewer.resume()
        let status = child.wait()
        renewer.cancel()
        if !lost.load(ordering: .relaxed) {
            do {
                try client.lockRelease(lock.name, token: lock.token)
                printError("released \(lock.name)")
            } catch {
                printError("could not release \(lock.name): \(CLIFailure.from(error).message) (its lease ends by itself)")
            }
        }
        return status.code
    }
}
