import Foundation
import TestFixtures
import XCTest

/// gpt-train with [stability]: a spike with action "stop" ends the process with an error naming the step.
final class StabilityCommandTests: XCTestCase {
    /// A 30-step tiny recipe in a new directory with `action`, its data making step 20 a spike
    /// (`Fixtures.spikeData`: the batches of that step are all a character never seen before).
    func recipe(_ name: String, action: String) throws -> (dir: String, path: String) {
        let dir = try Fixtures.directory(name)
        var o = Fixtures.Options()
        o.steps = 30
        try Fixtures.spikeData(in: dir, o, atStep: 20)
        let path = try Fixtures.recipe(in: dir, o)
        let text = try String(contentsOfFile: path, encoding: .utf8)
            + "\n[stability]\naction = \"\(action)\"\nwindow = 10\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return (dir, path)
    }

    func testStopExitsNonZeroNamingTheStep() throws {
        let (dir, path) = try recipe("cli-spike-stop", action: "stop")
        let out = try Tool.run("gpt-train", [path, "--out", "\(dir)/run", "--threads", "2", "--no-mfu"])
        XCTAssertEqual(out.status, 1, out.stderr)
        XCTAssertTrue(out.stderr.contains("step 20: loss spike"), out.stderr)
        XCTAssertTrue(out.stderr.contains("stability.action = \"stop\""), out.stderr)
        // What was logged before the spike is on disk, in metrics.jsonl and in TensorBoard's files.
        let metrics = try String(contentsOfFile: "\(dir)/run/metrics.jsonl", encoding: .utf8)
        XCTAssertTrue(metrics.contains("{\"step\":19,"), metrics)
        XCTAssertFalse(metrics.contains("{\"step\":20,\"train_loss\""), metrics)
        XCTAssertTrue(metrics.contains("{\"step\":20,\"event\":\"spike\",\"loss\":"), metrics)
        XCTAssertTrue(metrics.contains("\"action\":\"stop\",\"reason\":\"loss_sigmas\"}"), metrics)
        XCTAssertFalse((try FileManager.default.contentsOfDirectory(atPath: "\(dir)/run/tb")).isEmpty)
    }

    func testSkipRunsToTheEndWithASpikeLine() throws {
        let (dir, path) = try recipe("cli-spike-skip", action: "skip")
        let check = try Tool.run("gpt-plan", ["check", path])
        XCTAssertEqual(check.status, 0, check.stdout + check.stderr)
        let out = try Tool.run("gpt-train", [path, "--out", "\(dir)/run", "--threads", "2", "--no-mfu"])
        XCTAssertEqual(out.status, 0, out.stderr)
        XCTAssertTrue((out.stdout + out.stderr).contains("step 20: loss spike"), out.stdout + out.stderr)
        let metrics = try String(contentsOfFile: "\(dir)/run/metrics.jsonl", encoding: .utf8)
        XCTAssertTrue(metrics.contains("{\"step\":20,\"event\":\"spike\",\"loss\":"), metrics)
        XCTAssertTrue(metrics.contains("\"action\":\"skip\",\"reason\":\"loss_sigmas\"}"), metrics)
    }
}
