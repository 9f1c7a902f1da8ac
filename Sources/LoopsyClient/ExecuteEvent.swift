import FoundationEssentials
import LoopsyAPI

/// One event of `/execute/stream`, decoded: what both the CLI and the MCP server act on.
public enum ExecuteEvent: Sendable, Equatable {
    case started(ExecuteStreamEvent.Start)
    /// The program's bytes as it wrote them (UTF-8 or not).
    case output(OutputStreamName, [UInt8])
    /// How it ended (its stdout and stderr fields are empty: the output came as events).
    case exited(ExecuteResult)

    /// nil for an event name this client does not know or a payload it cannot read.
    public init?(_ event: SSEEvent) {
        guard let name = ExecuteStreamEvent.Name(rawValue: event.event) else { return nil }
        let data = Array(event.data.utf8)
        switch name {
        case .start:
            guard let start = try? SafeJSON.decode(ExecuteStreamEvent.Start.self, from: data) else { return nil }
            self = .started(start)
        case .stdout, .stderr:
            guard let output = try? SafeJSON.decode(ExecuteStreamEvent.Output.self, from: data),
                  let bytes = output.text.map({ Array($0.utf8) })
                    ?? output.base64.flatMap({ Data(base64Encoded: $0) }).map({ Array($0) }) else { return nil }
            self = .output(name == .stdout ? .stdout : .stderr, bytes)
        case .exit:
            guard let result = try? SafeJSON.decode(ExecuteResult.self, from: data) else { return nil }
            self = .exited(result)
        }
    }
}
