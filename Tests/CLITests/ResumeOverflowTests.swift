import CHDF5
import Foundation
import TestFixtures
import XCTest

/// Issue 27: a run resumed from a checkpoint whose weights overflow in the first step is told that the checkpoint
/// is the cause (it was told to lower optimizer.lr, which plays no part before an update).
final class ResumeOverflowTests: XCTestCase {
    func testAnOverflowingCheckpointIsNamedOnResume() throws {
        let dir = try Fixtures.directory("cli-resume-overflow")
        let recipe = try Fixtures.recipe(in: dir, .checkpointed(steps: 6, every: 3))
        let first = try Tool.run("gpt-train", [recipe, "--out", "\(dir)/run", "--steps", "3", "--threads", "1", "--no-mfu"])
        XCTAssertEqual(first.status, 0, first.stderr)
        let checkpoint = "\(dir)/run/checkpoints/ckpt-00000003.h5"
        // Finite weights (the checkpoint validates) whose products overflow float32: the final LayerNorm's gain.
        try HDF5Surgery.edit(checkpoint) { file in
            try HDF5Surgery.changeFloats(file, "/model/transformer.ln_f.weight") { values in
                for i in values.indices { values[i] = 3e38 }
            }
        }
        let resumed = try Tool.run("gpt-train", [recipe, "--out", "\(dir)/run", "--resume", "--threads", "1", "--no-mfu"])
        XCTAssertEqual(resumed.status, 1, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("step 4: the training loss"), resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("the first step after resuming from \(checkpoint)"), resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("Fix: resume from an earlier checkpoint of the run"), resumed.stderr)
        XCTAssertFalse(resumed.stderr.contains("optimizer.lr"), resumed.stderr)
    }
}
