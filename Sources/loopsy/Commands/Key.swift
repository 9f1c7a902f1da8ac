import ArgumentParser
import LoopsyClient
import LoopsyConfig
#if canImport(Glibc)
import Glibc
#endif

struct Key: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "key",
        abstract: "Show or rotate the node's API key.", subcommands: [Show.self, Generate.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Print the current API key.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try runReporting {
                print(try ConfigFile.load(global.resolvedDataDir).config.auth.apiKey)
            }
        }
    }

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "generate",
            abstract: "Replace the API key; a running daemon accepts the new one at once and refuses the old.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try runReporting {
                let dataDir = global.resolvedDataDir
                let text = try SecureFile.read(dataDir.configFile)
                let newKey = Secrets.apiKey()
                try SecureFile.write(dataDir.configFile, contents: try ConfigFile.replacingAPIKey(in: text, with: newKey))
                print("new API key written to \(dataDir.configFile)")
                guard dataDir.runningDaemonPid() != nil else { return }
                // The daemon notices the changed file within half a second; confirm it did.
                let client = try global.client(timeoutSeconds: 5)
                for _ in 0..<40 {
                    if (try? client.status()) != nil {
                        print("the running daemon now accepts the new key")
                        return
                    }
                    usleep(100_000)
                }
                throw CLIFailure(message: "the running daemon has not picked up the new key; restart it with "
                    + "`loopsy stop && loopsy start`", code: CLIFailure.apiError)
            }
        }
    }
}
