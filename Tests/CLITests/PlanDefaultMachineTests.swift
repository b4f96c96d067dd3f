import Foundation
import XCTest

/// With no hardware named, gpt-plan plans for this machine only when the run finishes here within 7 days
/// (`--days` moves the line); otherwise for the default GPU on as many devices as it takes, saying how long the run
/// would take here.
final class PlanDefaultMachineTests: XCTestCase {
    func testLargeBudgetsGoToTheGPUAndSmallOnesStayHere() throws {
        let big = try Tool.run("gpt-plan", ["--flops", "1e20", "--json"])
        XCTAssertEqual(big.status, 0, big.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(big.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((object["hardware"] as? [String: Any])?["name"] as? String, "h100-sxm-80gb")
        let seconds = try XCTUnwrap(object["time_seconds"] as? Double)
        XCTAssertLessThan(seconds, 30 * 86400, "a GPU plan of days, not years")
        let rationale = try XCTUnwrap(object["rationale"] as? [String])
        XCTAssertTrue(rationale.contains { $0.contains("would take") && $0.contains("days") && $0.contains("--days") },
                      "\(rationale)")
        // A budget this machine finishes within minutes stays here.
        let small = try Tool.run("gpt-plan", ["--flops", "2e14", "--json"])
        XCTAssertEqual(small.status, 0, small.stderr)
        let local = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(small.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((local["hardware"] as? [String: Any])?["name"] as? String, "cpu")
        // --days 1e5 lets this machine take the 1e20 run (it holds it in memory).
        let patient = try Tool.run("gpt-plan", ["--flops", "1e20", "--days", "100000", "--json"])
        XCTAssertEqual(patient.status, 0, patient.stderr)
        let here = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(patient.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((here["hardware"] as? [String: Any])?["name"] as? String, "cpu")
    }
}
