import Foundation
import TestFixtures
import XCTest

extension DistributedTrainingTests {
    /// A spike at step 25 of a 2-rank ZeRO-1 job (its batches are all a character never seen before:
    /// `Fixtures.spikeData`; one rank reads them): both ranks detect it from the summed loss, roll back to the
    /// snapshot of step 20 (each its own shard of the moments) and pass over the same batches, exactly as one
    /// process does; the tolerances are the data-parallel ones above.
    func testSpikeRollbackIsTheSameOnEveryRankAsInOneProcess() throws {
        let dir = try Fixtures.directory("dp-spike")
        var o = options(devices: 2, steps: 40, zeroStage: 1)
        o.seed = 9   // seeds 7 and 8 draw a window of another step next to one of step 25's
        try Fixtures.spikeData(in: dir, o, atStep: 25)
        let recipe = try Fixtures.recipe(in: dir, o)
        let text = try String(contentsOfFile: recipe, encoding: .utf8) + "\n[stability]\naction = \"rollback\"\n"
            + "window = 10\nsnapshot_interval = 10\nlr_factor = 0.5\nlr_factor_steps = 3\n"
        try text.write(toFile: recipe, atomically: true, encoding: .utf8)
        let single = try Tool.run("gpt-train", [recipe, "--out", "\(dir)/single", "--threads", "1", "--no-mfu"])
        XCTAssertEqual(single.status, 0, single.stderr)
        let job = try runJob(ranks: 2, [recipe, "--out", "\(dir)/job"])
        XCTAssertEqual(job.status, 0, job.output)
        XCTAssertEqual(job.output.components(separatedBy: "step 25: loss spike").count - 1, 1, "rank 0 alone notes it: \(job.output)")
        for run in ["single", "job"] {
            let lines = try String(contentsOfFile: "\(dir)/\(run)/metrics.jsonl", encoding: .utf8)
            XCTAssertTrue(lines.contains("\"action\":\"rollback\",\"reason\":\"loss_sigmas\",\"rolled_back_to\":20,\"batches_passed_over\":"),
                          "\(run): \(lines)")
        }
        assertClose(try Fixtures.metrics(runDirectory: "\(dir)/single"), try Fixtures.metrics(runDirectory: "\(dir)/job"),
                    tolerance: 2e-5, "2 ranks against one process")
        let one = try state(final("\(dir)/single", step: 40)), many = try state(final("\(dir)/job", step: 40))
        XCTAssertLessThan(maxDifference(one[0], many[0]), 1e-4, "weights")
        XCTAssertLessThan(maxDifference(one[1], many[1]), 1e-4, "first moments")
    }
}
