import Foundation
import LoopsyAPI
import Testing

/// The typed vocabulary keeps the wire's spelling: snake_case codes and states, one each.
@Suite struct VocabularyTests {
    @Test func errorCodesAreDistinctSnakeCaseWords() {
        let raw = ErrorCode.allCases.map(\.rawValue)
        #expect(Set(raw).count == raw.count)
        for code in raw {
            #expect(code.allSatisfy { $0.isLowercase || $0 == "_" }, "\(code)")
        }
        #expect(ErrorCode.internalError.rawValue == "internal")
        // An error from a newer peer keeps a code this build does not know.
        let decoded = APIError(status: 418, code: "teapot_busy", message: "later")
        #expect(decoded.code == "teapot_busy" && !decoded.is(.notFound))
        #expect(APIError.notFound("x").is(.notFound))
    }

    @Test func statesDecodeFromAndEncodeToTheirWireNames() throws {
        let encoded = try JSONEncoder().encode([TaskState.waitingApproval, .completed])
        #expect(String(decoding: encoded, as: UTF8.self) == #"["waiting_approval","completed"]"#)
        #expect(try JSONDecoder().decode(ApprovalState.self, from: Data(#""expired""#.utf8)) == .expired)
        #expect(TaskState.allCases.filter(\.isFinished) == [.completed, .failed, .cancelled])
        // A state from a newer build decodes and prints as itself; interpolation shows wire names.
        #expect(try JSONDecoder().decode(TaskState.self, from: Data(#""paused""#.utf8)).rawValue == "paused")
        #expect("\(TaskState.waitingApproval)" == "waiting_approval")
        #expect(ChangeTopic(path: "/api/v1/ai-tasks/t1") == .aiTasks)
        #expect(ChangeTopic(path: "/api/v1/health") == nil && ChangeTopic(path: "/dashboard/api/x") == nil)
        // Empty segments are skipped, as in the router's split.
        #expect(ChangeTopic(path: "/api/v1/context") == .context && ChangeTopic(path: "//api//v1//locks/x") == .locks)
        for path in ["", "/", "/api", "/api/v1", "/api/v1/", "/api/v2/context", "/api/v1x/context", "/apii/v1/context",
                     "/api/v1/contexts", "/api/v1/cont", "/api/v1/contéxt/k", "api"] {
            #expect(ChangeTopic(path: path) == nil, "\(path)")
        }
    }
}
