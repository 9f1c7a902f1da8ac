import FoundationEssentials
import LoopsyAPI
import Testing

/// Numbers in answers are checked where `SafeJSON.decode` decodes them, as those in requests are.
@Suite struct WireRangeTests {
    private func decodeFailure<T: Decodable>(_ type: T.Type, _ json: String) -> String? {
        do {
            _ = try SafeJSON.decode(type, from: Array(json.utf8))
            return nil
        } catch let error as OutOfRange {
            return error.description
        } catch {
            return "not OutOfRange: \(error)"
        }
    }

    @Test func fractionalNumbersOutsideTheirRangeAreRefused() throws {
        let health = #"{"status":"ok","nodeId":"n","version":"0.1.0","uptime":UPTIME}"#
        for bad in ["1e300", "-1", "31557600000.5", "1e400"] {
            let failure = decodeFailure(HealthResponse.self, health.replacing("UPTIME", with: bad))
            // 1e400 is past Double: the decoder refuses it itself or reads infinity, which the range refuses.
            if bad == "1e400" {
                #expect(failure != nil)
            } else {
                #expect(failure?.hasPrefix("field 'uptime' must be from 0.0 to 31557600000.0") == true, "\(bad): \(String(describing: failure))")
            }
        }
        for good in ["0", "12.5", "31557600000"] {
            let decoded = try SafeJSON.decode(HealthResponse.self,
                                              from: Array(health.replacing("UPTIME", with: good).utf8))
            #expect(decoded.uptime == Double(good))
        }
        // NaN is in no range (no JSON carries it, but a value built in code can).
        #expect(throws: OutOfRange.self) { try WireRange.check(Double.nan, WireRange.costUsd, "costUsd") }
        #expect(throws: OutOfRange.self) { try WireRange.check(Double.infinity, WireRange.durationMillis, "durationMs") }
        try WireRange.check(nil as Double?, WireRange.costUsd, "costUsd")
    }

    @Test func listAnswersNameTheItemThatIsOutOfRange() throws {
        let good = LockInfo(name: "a", holder: "h", token: 1, acquiredAt: 1, expiresAt: 2)
        let bad = LockInfo(name: "b", holder: "h", token: 1, acquiredAt: 1, expiresAt: -5)
        let encoded = String(decoding: try JSONEncoder().encode(LockListResponse(locks: [good, good, bad])), as: UTF8.self)
        #expect(decodeFailure(LockListResponse.self, encoded)?.hasPrefix("field 'locks[2].expiresAt' must be from 0") == true)
        let fine = String(decoding: try JSONEncoder().encode(LockListResponse(locks: [good])), as: UTF8.self)
        #expect(try SafeJSON.decode(LockListResponse.self, from: Array(fine.utf8)).locks == [good])

        let task = AITaskInfo(id: "t", state: .completed, prompt: "p", cwd: "/", caller: "c", createdAt: 1, startedAt: nil,
                              finishedAt: nil, exitCode: nil, sessionId: nil, costUsd: 2e9, error: nil, lastEvent: 0,
                              pendingApprovals: [])
        let tasks = String(decoding: try JSONEncoder().encode(AITaskListResponse(tasks: [task])), as: UTF8.self)
        #expect(decodeFailure(AITaskListResponse.self, tasks)?.hasPrefix("field 'tasks[0].costUsd'") == true)
        let entry = AuditEntry(id: 1, time: 1, requestId: "r", caller: "c", method: "GET", path: "/", status: 200,
                               durationMs: 1, remote: "", count: 0)
        let audit = String(decoding: try JSONEncoder().encode(AuditListResponse(entries: [entry])), as: UTF8.self)
        #expect(decodeFailure(AuditListResponse.self, audit)?.hasPrefix("field 'entries[0].count'") == true)
    }

    @Test func saturatingConversionHoldsEveryDouble() {
        #expect(Int64(saturating: .nan) == 0)
        #expect(Int64(saturating: .infinity) == .max)
        #expect(Int64(saturating: -.infinity) == .min)
        #expect(Int64(saturating: 1e300) == .max)
        #expect(Int64(saturating: -1e300) == .min)
        #expect(Int64(saturating: 9_223_372_036_854_775_807) == .max)  // rounds to 2^63 as a Double
        #expect(Int64(saturating: -9_223_372_036_854_775_808) == .min)
        #expect(Int64(saturating: 9_223_372_036_854_774_784) == 9_223_372_036_854_774_784)  // the largest below 2^63
        #expect(Int64(saturating: -2.9) == -2)
        #expect(Int64(saturating: 41.99) == 41)
    }
}
