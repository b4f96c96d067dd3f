import Compute
import Foundation
import GPT
import GPTShape
import TestFixtures
import Runtime
import Trainer
import XCTest

/// A checkpoint holds fp32 master weights and AdamW moments whatever the products' precision, so a run written in
/// one precision resumes in the other, with a note naming both (`Trainer.checkRecipe`).
final class PrecisionResumeTests: XCTestCase {
    struct Resumed {
        var notes: [String]
        /// Weights and moments as the resumed run starts, and the trainer after it finished.
        var weights: [Float], m: [Float], v: [Float]
        var trainer: Trainer
    }

    /// Trains `first` to step 10 (one checkpoint), then resumes the same run directory with the recipe rewritten
    /// in `second`'s precision and trains to step 20.
    func run(_ first: Precision, then second: Precision, name: String) throws -> (stopped: Trainer, resumed: Resumed) {
        let dir = try Fixtures.directory(name)
        var o = Fixtures.Options()
        o.steps = 20
        o.checkpointInterval = 10
        o.precision = first
        let recipe = try Fixtures.recipe(in: dir, o)
        var options = TrainingOptions(runDirectory: "\(dir)/run", threads: 2)
        options.stopAfter = 10
        let stopped = try Trainer(recipePath: recipe, options: options)
        try stopped.run()
        XCTAssertEqual(stopped.model.precision, first)

        o.precision = second
        try Fixtures.recipe(in: dir, o)
        options.stopAfter = nil
        options.resume = true
        var notes: [String] = []
        var start: (weights: [Float], m: [Float], v: [Float])?
        var resumed: Trainer?
        let trainer = try Trainer(recipePath: recipe, options: options) { event in
            switch event {
            case .note(let text): notes.append(text)
            case .started:
                if let t = resumed {
                    start = (Array(t.model.parameters.buffer), Array(t.optimizer.m.buffer), Array(t.optimizer.v.buffer))
                }
            default: break
            }
        }
        resumed = trainer
        try trainer.run()
        XCTAssertEqual(trainer.model.precision, second)
        let s = try XCTUnwrap(start)
        return (stopped, Resumed(notes: notes, weights: s.weights, m: s.m, v: s.v, trainer: trainer))
    }

    func check(_ first: Precision, then second: Precision, name: String) throws {
        let (stopped, resumed) = try run(first, then: second, name: name)
        // The note names both precisions, in the order of the run's history.
        let note = resumed.notes.first { $0.hasPrefix("resuming in ") }
        XCTAssertEqual(note?.hasPrefix("resuming in \(second.rawValue) from a checkpoint written in \(first.rawValue) "
                                       + "(training.precision \"\(first.rawValue)\" → \"\(second.rawValue)\")"), true,
                       "\(resumed.notes)")
        XCTAssertEqual(note?.contains("fp32 master weights and AdamW moments"), true)
        // It continues from exactly the state the first run checkpointed at step 10 (the state it stopped in).
        XCTAssertEqual(resumed.weights, Array(stopped.model.parameters.buffer))
        XCTAssertEqual(resumed.m, Array(stopped.optimizer.m.buffer))
        XCTAssertEqual(resumed.v, Array(stopped.optimizer.v.buffer))
        XCTAssertEqual(resumed.trainer.state.step, 20)
        let losses = try Fixtures.metrics(runDirectory: resumed.trainer.directory.path).compactMap { $0["train_loss"] }
        XCTAssertEqual(losses.count, 20)
        XCTAssertTrue(losses.allSatisfy(\.isFinite))
    }

    func testAnFP32CheckpointResumesInBF16WithANote() throws {
        try check(.fp32, then: .bf16, name: "resume-fp32-bf16")
    }

    func testABF16CheckpointResumesInFP32WithANote() throws {
        try check(.bf16, then: .fp32, name: "resume-bf16-fp32")
    }

    /// The same precision on both sides: no note about it (the note is about a change, not about resuming).
    func testTheSamePrecisionResumesWithoutThatNote() throws {
        let (_, resumed) = try run(.bf16, then: .bf16, name: "resume-bf16-bf16")
        XCTAssertFalse(resumed.notes.contains { $0.hasPrefix("resuming in ") }, "\(resumed.notes)")
    }
}
