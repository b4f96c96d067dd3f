import Checkpoint
import Foundation
import Recipe
import TestFixtures
import Runtime
import Trainer
import XCTest

/// Loss-spike detection and recovery ([stability]): a spike injected at step 25 of a 40-step tiny run, with each
/// action. The test injects it through the trainer's events (`SpikeInjector`): nothing in the recipe or the step
/// knows about it.
final class StabilityTests: XCTestCase {
    static let steps = 40, spikeStep = 25
    /// Micro-batches (windows of 4 sequences) a step draws: micro_batch 4 × grad_accum 1.
    static let windowsPerStep = 4

    var options: Fixtures.Options {
        var o = Fixtures.Options()
        o.steps = Self.steps
        o.evalInterval = 20
        o.evalIters = 8
        o.checkpointInterval = 10
        o.keep = 10
        return o
    }

    /// The fixture recipe with a [stability] section.
    func recipe(in dir: String, _ stability: String) throws -> String {
        let path = try Fixtures.recipe(in: dir, options)
        let text = try String(contentsOfFile: path, encoding: .utf8) + "\n[stability]\n" + stability + "\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A trainer of `recipe`; with `spikeAt`, a spike is injected at that step.
    func trainer(_ recipe: String, _ dir: String, stopAfter: Int? = nil, resume: Bool = false,
                 notes: UnsafeMutablePointer<[String]>? = nil, spikeAt: Int? = nil) throws -> Trainer {
        var o = TrainingOptions(runDirectory: "\(dir)/run", threads: 2)
        o.stopAfter = stopAfter
        o.resume = resume
        let injector = SpikeInjector(step: spikeAt)
        let t = try Trainer(recipePath: recipe, options: o) { event in
            if case .note(let text) = event { notes?.pointee.append(text) }
            injector.handle(event)
        }
        injector.trainer = t
        return t
    }

    /// Makes step `step` a loss spike from the trainer's events: once step `step − 1` is done (the first time), the
    /// final LayerNorm's weight and bias are multiplied by 10⁴, so the next step's logits are 10⁴ times larger and
    /// its loss about 10⁴ times the gap between the largest logit and the target's (thousands of nats). A rollback
    /// restores the weights of its snapshot; after a skip the injector restores them itself. Either way the run
    /// goes on as if the step's batches alone had been bad, and the weights it returns to are bit-identical.
    final class SpikeInjector {
        let step: Int?
        weak var trainer: Trainer?
        private var saved: (offset: Int, values: [Float])?
        private var injected = false

        init(step: Int?) { self.step = step }

        func handle(_ event: TrainingEvent) {
            guard let step, let model = trainer?.model else { return }
            switch event {
            case .step(let m) where m.step == step - 1 && !injected:
                injected = true
                let weight = model.layout.tensor(named: "transformer.ln_f.weight")!
                let bias = model.layout.tensor(named: "transformer.ln_f.bias")!
                precondition(bias.offset == weight.offset + weight.count, "ln_f's weight and bias are adjacent")
                let p = model.parameters.base + weight.offset
                saved = (weight.offset, Array(UnsafeBufferPointer(start: p, count: weight.count + bias.count)))
                for i in 0..<(weight.count + bias.count) { p[i] *= 1e4 }
            case .note(let text) where text.hasPrefix("step \(step): loss spike") && text.contains("skipped the update"):
                if let (offset, values) = saved {
                    values.withUnsafeBufferPointer { (model.parameters.base + offset).update(from: $0.baseAddress!, count: $0.count) }
                }
                saved = nil
            default:
                break
            }
        }
    }

    func spikeLines(_ dir: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: "\(dir)/run/metrics.jsonl", encoding: .utf8)
        return try text.split(separator: "\n")
            .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
            .filter { $0["event"] as? String == "spike" }
    }

    func weights(_ t: Trainer) -> [Float] { Array(t.model.parameters.buffer) }
    func moments(_ t: Trainer) -> [Float] { Array(t.optimizer.m.buffer) + Array(t.optimizer.v.buffer) }

    /// A clean run (the same [stability] rules, nothing injected) never fires: the rules do not trip on a healthy run.
    func cleanRun() throws -> Trainer {
        let dir = try Fixtures.directory("stability-clean")
        let t = try trainer(try recipe(in: dir, "action = \"rollback\"\nwindow = 10\nloss_sigmas = 6.0\ngrad_norm_factor = 10.0"), dir)
        try t.run()
        XCTAssertEqual(try spikeLines(dir).count, 0)
        XCTAssertEqual(t.state.recoveries, 0)
        return t
    }

    /// `gpt-plan check`'s checks of the section: ranges, and what does not fit together.
    func testTheSectionIsChecked() throws {
        let dir = try Fixtures.directory("stability-check")
        func problems(_ body: String) throws -> [String] {
            let check = RecipeLoader.check(text: try String(contentsOfFile: try recipe(in: dir, body), encoding: .utf8),
                                           file: "r.toml")
            // The fixture's short run has a long warmup, which check notes; that is not this section's business.
            return check.problems.filter { $0.key != "schedule.warmup_steps" }
                .map { "\($0.severity == .error ? "error" : "warning") \($0.key ?? "")" }
        }
        XCTAssertEqual(try problems(""), [], "every key has a default")
        XCTAssertEqual(try problems("action = \"undo\""), ["error stability.action"])
        XCTAssertEqual(try problems("window = 1"), ["error stability.window"])
        XCTAssertEqual(try problems("lr_factor = 0.0"), ["error stability.lr_factor"])
        // The test hook the section once had is gone: tests inject spikes through the trainer's events.
        XCTAssertEqual(try problems("inject_spike_at = 25"), ["error stability.inject_spike_at"])
        XCTAssertEqual(try problems("action = \"skip\"\nloss_sigmas = 0.0"), ["warning stability.action"])
        XCTAssertEqual(try problems("action = \"rollback\"\nlr_factor = 0.5"), ["warning stability.lr_factor"])
        XCTAssertEqual(try problems("unknown = 1"), ["error stability.unknown"])
    }

    func testSkipDiscardsTheUpdateAndConsumesTheData() throws {
        let clean = try cleanRun()
        let dir = try Fixtures.directory("stability-skip")
        var notes: [String] = []
        let t = try trainer(try recipe(in: dir, "action = \"skip\"\nwindow = 10"), dir, notes: &notes,
                            spikeAt: Self.spikeStep)
        let summary = try t.run()
        let spikes = try spikeLines(dir)
        XCTAssertEqual(spikes.count, 1)
        XCTAssertEqual(spikes[0]["step"] as? Int, Self.spikeStep)
        XCTAssertEqual(spikes[0]["action"] as? String, "skip")
        XCTAssertEqual(spikes[0]["reason"] as? String, "loss_sigmas")
        XCTAssertGreaterThan(try XCTUnwrap(spikes[0]["loss"] as? Double), 1000)   // logits × 10⁴
        XCTAssertTrue(notes.contains { $0.hasPrefix("step 25: loss spike") && $0.contains("skipped the update") }, "\(notes)")
        // 40 steps, one of them without an update; every step's data was drawn, as in the clean run.
        XCTAssertEqual(t.state.step, Self.steps)
        XCTAssertEqual(t.state.skippedSteps, 1)
        XCTAssertEqual(t.optimizer.stepsTaken, Self.steps - 1)
        XCTAssertEqual(t.state.sampler.windowsDrawn, clean.state.sampler.windowsDrawn)
        XCTAssertEqual(t.state.sampler, clean.state.sampler)
        // No train line for the skipped step.
        let lines = try Fixtures.metrics(runDirectory: "\(dir)/run")
        XCTAssertFalse(lines.contains { $0["step"] == 25 && $0["train_loss"] != nil })
        // One update fewer, on the same data: the validation loss is that of the clean run to within 0.05 nats
        // (measured: 2.9892 against 2.9909; the margin is three times the rollback test's larger difference).
        XCTAssertEqual(try XCTUnwrap(summary.finalValLoss), try XCTUnwrap(clean.state.lastValLoss), accuracy: 0.05)
    }

    /// Rollback returns to the snapshot of step 20 and passes over the 5 steps' batches drawn since (steps 21-25):
    /// the result is bit-identical to a run that trains 20 steps, draws 20 micro-batches without training on them,
    /// and trains 20 more.
    func testRollbackRestoresTheSnapshotAndPassesOverTheBatches() throws {
        let clean = try cleanRun()
        let dir = try Fixtures.directory("stability-rollback")
        var notes: [String] = []
        let t = try trainer(try recipe(in: dir, "action = \"rollback\"\nwindow = 10\nsnapshot_interval = 20"),
                            dir, notes: &notes, spikeAt: Self.spikeStep)
        let summary = try t.run()
        let spikes = try spikeLines(dir)
        XCTAssertEqual(spikes.count, 1)
        XCTAssertEqual(spikes[0]["step"] as? Int, 25)
        XCTAssertEqual(spikes[0]["action"] as? String, "rollback")
        XCTAssertEqual(spikes[0]["rolled_back_to"] as? Int, 20)
        XCTAssertEqual(spikes[0]["batches_passed_over"] as? Int, 5)
        XCTAssertTrue(notes.contains { $0.contains("rolled back to step 20, passing over the 5 micro-batches") }, "\(notes)")
        XCTAssertEqual(t.state.step, Self.steps)
        XCTAssertEqual(t.state.recoveries, 1)
        XCTAssertEqual(t.optimizer.stepsTaken, Self.steps)
        XCTAssertEqual(t.state.sampler.windowsDrawn, clean.state.sampler.windowsDrawn + 5 * Self.windowsPerStep)

        // The reference, by hand.
        let refDir = try Fixtures.directory("stability-rollback-ref")
        let reference = try trainer(try recipe(in: refDir, "action = \"stop\""), refDir)
        for _ in 0..<20 { try reference.trainStep() }
        reference.passOver(microBatches: 5)   // one micro-batch a step (grad_accum 1)
        for _ in 20..<Self.steps { try reference.trainStep() }
        XCTAssertEqual(reference.state.sampler, t.state.sampler)
        XCTAssertTrue(weights(reference) == weights(t), "weights differ from the reference")
        XCTAssertTrue(moments(reference) == moments(t), "AdamW moments differ from the reference")
        // Training on other batches than the clean run for 20 steps: the validation loss agrees to 0.05 nats
        // (measured: 3.0063 against 2.9909, a difference of 0.015 from the batch order alone).
        XCTAssertEqual(try XCTUnwrap(summary.finalValLoss), try XCTUnwrap(clean.state.lastValLoss), accuracy: 0.05)
        // The train lines of steps 21-24 were written twice (before the spike and after the rollback).
        let trainSteps = try Fixtures.metrics(runDirectory: "\(dir)/run").filter { $0["train_loss"] != nil }.map { Int($0["step"]!) }
        XCTAssertEqual(trainSteps, Array(1...24) + Array(21...40))
    }

    func testRollbackLowersTheLearningRateForTheGivenSteps() throws {
        let dir = try Fixtures.directory("stability-lr")
        let t = try trainer(try recipe(in: dir, "action = \"rollback\"\nwindow = 10\nsnapshot_interval = 20\n"
                                       + "lr_factor = 0.5\nlr_factor_steps = 3"), dir, spikeAt: Self.spikeStep)
        try t.run()
        let lines = try Fixtures.metrics(runDirectory: "\(dir)/run").filter { $0["train_loss"] != nil }
        let after = Array(lines.drop { Int($0["step"]!) != 24 }.dropFirst())   // the lines after the rollback
        XCTAssertEqual(after.map { Int($0["step"]!) }, Array(21...40))
        for line in after {
            let step = Int(line["step"]!)
            let expected = t.schedule.rate(at: step - 1) * (step <= 23 ? 0.5 : 1)
            // metrics.jsonl has the shortest exact form; Foundation's JSON parser may be off in the last bit.
            XCTAssertEqual(line["lr"]!, expected, accuracy: expected * 1e-15, "step \(step)")
        }
        XCTAssertEqual(t.state.lrFactorUntil, 23)
    }

    func testStopEndsTheRunNamingTheStep() throws {
        let dir = try Fixtures.directory("stability-stop")
        let t = try trainer(try recipe(in: dir, "window = 10"), dir, spikeAt: Self.spikeStep)
        XCTAssertThrowsError(try t.run()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("step 25: loss spike"), text)
            XCTAssertTrue(text.contains("σ above the mean"), text)
            XCTAssertTrue(text.contains("stability.action = \"stop\""), text)
        }
        XCTAssertEqual(t.state.step, 24, "the spike's update is not applied")
    }

    func testTheRunStopsAfterMaxRecoveries() throws {
        let dir = try Fixtures.directory("stability-max")
        let t = try trainer(try recipe(in: dir, "action = \"skip\"\nwindow = 10\nmax_recoveries = 0"), dir,
                            spikeAt: Self.spikeStep)
        XCTAssertThrowsError(try t.run()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("step 25: loss spike"), text)
            XCTAssertTrue(text.contains("0 spikes were already recovered from, stability.max_recoveries"), text)
        }
    }

    func testNonFiniteLossIsRecoveredFromWhenAsked() throws {
        let dir = try Fixtures.directory("stability-nan")
        let t = try trainer(try recipe(in: dir, "action = \"skip\"\nwindow = 10"), dir)
        for _ in 0..<3 { try t.trainStep() }
        let offset = t.model.layout.tensor(named: "transformer.ln_f.weight")!.offset
        let saved = t.model.parameters.base[offset]
        t.model.parameters.base[offset] = .nan
        let spike = try t.trainStep().spike
        XCTAssertEqual(spike?.reason, .nonFiniteLoss)
        XCTAssertEqual(spike?.step, 4)
        XCTAssertEqual(t.state.skippedSteps, 1)
        t.model.parameters.base[offset] = saved
        let outcome = try t.trainStep()
        XCTAssertNil(outcome.spike)
        XCTAssertTrue(outcome.loss.isFinite)
        XCTAssertEqual(t.optimizer.stepsTaken, 4)
    }

    func testRecoveryIsDeterministicAndSurvivesResume() throws {
        let body = "action = \"rollback\"\nwindow = 10\nsnapshot_interval = 20\nlr_factor = 0.5\nlr_factor_steps = 12"
        let spike = Self.spikeStep
        let a = try Fixtures.directory("stability-det-a"), b = try Fixtures.directory("stability-det-b")
        let ta = try trainer(try recipe(in: a, body), a, spikeAt: spike), tb = try trainer(try recipe(in: b, body), b, spikeAt: spike)
        try ta.run()
        try tb.run()
        XCTAssertTrue(weights(ta) == weights(tb), "repeated runs differ")
        XCTAssertEqual(try Fixtures.metrics(runDirectory: "\(a)/run"), try Fixtures.metrics(runDirectory: "\(b)/run"))

        // Stopped before the spike (the detector's window must come back from the checkpoint for it to fire) and
        // after it (the recovery count and the lowered learning rate must come back), then resumed.
        for stop in [20, 30] {
            let dir = try Fixtures.directory("stability-resume-\(stop)")
            let path = try recipe(in: dir, body)
            try trainer(path, dir, stopAfter: stop, spikeAt: spike).run()
            let resumed = try trainer(path, dir, resume: true, spikeAt: spike)
            try resumed.run()
            XCTAssertEqual(resumed.state.recoveries, 1, "stopped at \(stop)")
            XCTAssertEqual(resumed.state.sampler, ta.state.sampler, "stopped at \(stop)")
            XCTAssertTrue(weights(resumed) == weights(ta), "weights differ, stopped at \(stop)")
            XCTAssertTrue(moments(resumed) == moments(ta), "moments differ, stopped at \(stop)")
            let reader = try CheckpointReader(path: "\(dir)/run/checkpoints/\(Trainer.checkpointName(step: 40))")
            XCTAssertEqual(reader.state.stability?.recoveries, 1)
            XCTAssertEqual(reader.state.stability?.losses.count, 10)
            XCTAssertEqual(reader.state.stability?.lrFactorUntil, 32)
        }

        // A skipping run resumes too: its checkpoints have AdamW one step behind the step count.
        let skipBody = "action = \"skip\"\nwindow = 10"
        let s = try Fixtures.directory("stability-skip-straight"), r = try Fixtures.directory("stability-skip-resumed")
        let straight = try trainer(try recipe(in: s, skipBody), s, spikeAt: spike)
        try straight.run()
        let rPath = try recipe(in: r, skipBody)
        try trainer(rPath, r, stopAfter: 30, spikeAt: spike).run()
        let reader = try CheckpointReader(path: "\(r)/run/checkpoints/\(Trainer.checkpointName(step: 30))")
        XCTAssertEqual(reader.state.optimizerSteps, 29)
        XCTAssertEqual(reader.state.stability?.skippedSteps, 1)
        let resumed = try trainer(rPath, r, resume: true, spikeAt: spike)
        try resumed.run()
        XCTAssertTrue(weights(resumed) == weights(straight), "the resumed skipping run differs")
        XCTAssertEqual(resumed.state.skippedSteps, 1)
    }
}
