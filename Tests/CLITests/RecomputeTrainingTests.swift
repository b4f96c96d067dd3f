import Foundation
import GPTShape
import TestFixtures
import XCTest

extension DistributedTrainingTests {
    /// `mpirun -np 2 gpt-train` with ZeRO-1 and dropout, once per `training.recompute` mode: the same bits in every
    /// logged loss and in every weight and moment of the final checkpoint.
    func testRecomputeModesTrainBitIdenticallyUnderZeroOne() throws {
        let dir = try Fixtures.directory("dp-recompute")
        var states: [[[Float]]] = [], metrics: [[[String: Double]]] = []
        for mode in GPTShape.Recompute.allCases {
            var o = options(devices: 2, steps: 10, zeroStage: 1)
            o.recompute = mode
            let recipe = try Fixtures.recipe(in: dir, name: "\(mode).toml", o)
            XCTAssertTrue(try String(contentsOfFile: recipe, encoding: .utf8).contains("recompute = \"\(mode)\""))
            let job = try runJob(ranks: 2, [recipe, "--out", "\(dir)/\(mode)"])
            XCTAssertEqual(job.status, 0, job.output)
            states.append(try state(final("\(dir)/\(mode)", step: 10)))
            metrics.append(try Fixtures.metrics(runDirectory: "\(dir)/\(mode)"))
        }
        XCTAssertFalse(metrics[0].isEmpty)
        for i in 1..<states.count {
            XCTAssertEqual(metrics[i], metrics[0], "\(GPTShape.Recompute.allCases[i]) against none: metrics")
            XCTAssertTrue(states[i] == states[0], "\(GPTShape.Recompute.allCases[i]) against none: weights and moments")
        }
    }
}
