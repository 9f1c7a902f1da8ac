import Dispatch
import Foundation
import LoopsyAPI
import LoopsyClient
import LoopsyConfig
import MCP
import Synchronization

/// A tool call that failed in a way the model should read (isError), phrased to say what to do.
struct ToolFailure: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// Set when the client cancels the call; blocking work polls it.
final class CancelFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isCancelled: Bool { flag.load(ordering: .relaxed) }
    func cancel() { flag.store(true, ordering: .relaxed) }
}

/// Runs blocking client calls (libcurl) on a dispatch thread, never on the cooperative pool,
/// and raises the flag when the task is cancelled.
func blocking<T: Sendable>(_ work: @escaping @Sendable (CancelFlag) throws -> T) async throws -> T {
    let flag = CancelFlag()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work(flag) }) }
        }
    } onCancel: {
        flag.cancel()
    }
}

/// Typed access to a tool's arguments.
struct Arguments {
    let values: [String: Value]

    func string(_ name: String) throws -> String {
        guard let value = optionalString(name), !value.isEmpty else {
            throw ToolFailure("missing argument '\(name)' (a non-empty string)")
        }
        return value
    }

    func optionalString(_ name: String) -> String? {
        values[name]?.stringValue
    }

    func int(_ name: String, default fallback: Int? = nil, range: ClosedRange<Int>) throws -> Int? {
        guard let value = values[name], !value.isNull else { return fallback }
        // Int(exactly:): nil for 2.5, and for 1e300 too, which Int(_:) would stop the server on.
        let number = value.intValue ?? value.doubleValue.flatMap { Int(exactly: $0) }
        guard let number, range.contains(number) else {
            throw ToolFailure("argument '\(name)' must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    func bool(_ name: String, default fallback: Bool) throws -> Bool {
        guard let value = values[name], !value.isNull else { return fallback }
        guard let flag = value.boolValue else { throw ToolFailure("argument '\(name)' must be true or false") }
        return flag
    }

    func strings(_ name: String) throws -> [String] {
        guard let value = values[name], !value.isNull else { return [] }
        guard let array = value.arrayValue, array.allSatisfy({ $0.stringValue != nil }) else {
            throw ToolFailure("argument '\(name)' must be an array of strings")
        }
        return array.compactMap(\.stringValue)
    }
}

/// JSON Schema helpers for tool inputs.
enum Schema {
    static func object(_ properties: [String: Value], required: [String] = []) -> Value {
        .object(["type": "object", "properties": .object(properties), "required": .array(required.map { .string($0) }),
                 "additionalProperties": false])
    }
    static func string(_ description: String) -> Value { .object(["type": "string", "description": .string(description)]) }
    static func integer(_ description: String, minimum: Int, maximum: Int) -> Value {
        .object(["type": "integer", "description": .string(description), "minimum": .int(minimum),
                 "maximum": .int(maximum)])
    }
    static func boolean(_ description: String) -> Value {
        .object(["type": "boolean", "description": .string(description)])
    }
    static func enumeration(_ values: [String], _ description: String) -> Value {
        .object(["type": "string", "enum": .array(values.map { .string($0) }), "description": .string(description)])
    }
    static let peer = string("Which machine: a peer's name, nodeId (or unique prefix) or address as "
        + "loopsy_list_peers shows them, or \"local\" for this machine.")
}

/// Any Encodable as an MCP Value (for structuredContent).
func value<T: Encodable>(_ encodable: T) -> Value? {
    guard let data = try? JSONEncoder().encode(encodable) else { return nil }
    return try? SafeJSON.decode(Value.self, from: data)
}

func json<T: Encodable>(_ encodable: T) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return (try? encoder.encode(encodable)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
}

/// Writes a line to stderr (stdout carries only the protocol).
func log(_ text: String) {
    FileHandle.standardError.write(Data("loopsy-mcp: \(text)\n".utf8))
}
