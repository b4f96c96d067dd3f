import Foundation
import TensorBoard
import TestFixtures
import XCTest

/// Every run mirrors metrics.jsonl into TensorBoard event files under tb/.
final class TrainingTensorBoardTests: XCTestCase {
    /// A tiny run (with a resume in the middle): the scalars in tb/ are exactly metrics.jsonl's, read back with the
    /// event-file reader (the format itself is proved against the tensorboard Python package in TensorBoardTests).
    func testRunWritesTheMetricsAsTensorBoardScalars() throws {
        let dir = try Fixtures.directory("cli-tb")
        var o = Fixtures.Options()
        o.steps = 30
        o.checkpointInterval = 10
        o.evalInterval = 10
        o.logInterval = 5
        let recipe = try Fixtures.recipe(in: dir, o)
        let first = try Tool.run("gpt-train", [recipe, "--out", "\(dir)/run", "--steps", "20", "--threads", "2", "--no-mfu"])
        XCTAssertEqual(first.status, 0, first.stderr)
        let second = try Tool.run("gpt-train", [recipe, "--out", "\(dir)/run", "--resume", "--threads", "2", "--no-mfu"])
        XCTAssertEqual(second.status, 0, second.stderr)

        // metrics.jsonl: step → (key → value), the keys TensorBoard gets.
        let tags = ["train_loss": "loss/train", "val_loss": "loss/val", "lr": "train/lr", "grad_norm": "train/grad_norm",
                    "tokens_per_sec": "train/tokens_per_sec"]
        var expected: [Int: [String: Float]] = [:]
        let text = try String(contentsOfFile: "\(dir)/run/metrics.jsonl", encoding: .utf8)
        for line in text.split(separator: "\n") {
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let step = try XCTUnwrap(object["step"] as? Int)
            for (key, tag) in tags {
                if let value = object[key] as? NSNumber { expected[step, default: [:]][tag] = value.floatValue }
            }
        }
        XCTAssertEqual(expected.keys.sorted(), [1, 5, 10, 15, 20, 25, 30])

        let files = EventFile.paths(in: "\(dir)/run/tb")
        XCTAssertEqual(files.count, 2, "one event file for each process that wrote the run")
        // The first process logged steps 1…20; the resumed one 25 and 30 (it resumed from step 20's checkpoint).
        var seen: [Int: [String: Float]] = [:]
        var healthTags: Set<String> = []
        for file in files {
            let events = try EventFile.read(path: file)
            XCTAssertEqual(events.first?.fileVersion, "brain.Event:2")
            for event in events.dropFirst() {
                for scalar in event.scalars {
                    if scalar.tag.hasPrefix("health/") { healthTags.insert(scalar.tag); continue }
                    seen[Int(event.step), default: [:]][scalar.tag] = scalar.value
                }
            }
        }
        XCTAssertEqual(seen, expected)
        // The health lines (logging.health_interval defaults to logging.interval) are there too, nested keys as paths.
        XCTAssertTrue(healthTags.contains("health/max_abs_logit"), "\(healthTags.sorted().prefix(5))")
        XCTAssertTrue(healthTags.contains("health/grad_norm/transformer.wte.weight"), "\(healthTags.sorted().prefix(5))")
        XCTAssertTrue(healthTags.contains("health/block_input_max_abs/1"), "\(healthTags.sorted().prefix(5))")
    }
}
