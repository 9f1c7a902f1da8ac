import LoopsyAPI

// The MCP stdio server arrives with its own issue; until then this binary only says what it is.
let arguments = CommandLine.arguments.dropFirst()
if arguments.contains("--help") || arguments.contains("-h") {
    print("""
        usage: loopsy-mcp [--version] [--help]

        The MCP (Model Context Protocol) stdio server Claude Code starts to reach the local loopsyd.
        This build only reports its version; the tools arrive with the MCP server.
          --version  print the version
          --help     print this help
        """)
} else {
    print("loopsy-mcp \(LoopsyVersion.current)")
}
