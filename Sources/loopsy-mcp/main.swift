import LoopsyAPI

// The MCP stdio server arrives with its own issue; until then this binary only says what it is.
let arguments = CommandLine.arguments.dropFirst()
if arguments.contains("--version") || arguments.isEmpty {
    print("loopsy-mcp \(LoopsyVersion.current)")
} else {
    print("usage: loopsy-mcp [--version]")
}
