import Compute
import Foundation
import GPT
import GPTShape
import Recipe
import TestFixtures
import Runtime
import Trainer
import XCTest

final class ScheduleTests: XCTestCase {
    func testWarmupThenCosineToTheMinimumAtTheLastStep() {
        let s = LearningRateSchedule(peak: 1e-3, minimum: 1e-4, warmupSteps: 100, totalSteps: 2000, decay: .cosine)
        XCTAssertEqual(s.rate(at: 0), 1e-3 / 101, accuracy: 1e-18)       // nanoGPT: lr·(it+1)/(warmup+1)
        XCTAssertEqual(s.rate(at: 99), 1e-3 * 100 / 101, accuracy: 1e-18)
        XCTAssertEqual(s.rate(at: 100), 1e-3, accuracy: 1e-18)            // peak where decay starts
        XCTAssertEqual(s.rate(at: 1999), 1e-4, accuracy: 1e-18)           // minimum at the last step
        // Half way through the decay the cosine is at the midpoint.
        let mid = 100 + 1899 / 2
        XCTAssertEqual(s.rate(at: mid), 1e-4 + 0.5 * (1 + cos(Double.pi * Double(mid - 100) / 1899)) * 9e-4, accuracy: 1e-18)
        XCTAssertEqual(s.rate(at: 5000), 1e-4, accuracy: 1e-18)           // past the end: stays at the minimum
    }

    func testLinearAndConstantDecay() {
        let linear = LearningRateSchedule(peak: 1, minimum: 0.1, warmupSteps: 0, totalSteps: 11, decay: .linear)
        let expected = [1, 0.91, 0.82, 0.73, 0.64, 0.55, 0.46, 0.37, 0.28, 0.19, 0.1]  // 1 → 0.1 over 10 intervals
        for (step, rate) in expected.enumerated() { XCTAssertEqual(linear.rate(at: step), rate, accuracy: 1e-15) }
        let constant = LearningRateSchedule(peak: 0.5, minimum: 0.1, warmupSteps: 2, totalSteps: 10, decay: .constant)
        XCTAssertEqual((0..<10).map { constant.rate(at: $0) }, [0.5 / 3, 1.0 / 3, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
        // Warmup that ends at the last step: decay has no room and the rate is the minimum there.
        let short = LearningRateSchedule(peak: 1, minimum: 0.1, warmupSteps: 4, totalSteps: 5, decay: .cosine)
        XCTAssertEqual(short.rate(at: 4), 0.1)
    }
}

final class AdamWTests: XCTestCase {
    /// Two AdamW steps on a tiny model, against numbers worked out by hand. One matrix element (decayed) and one
    /// LayerNorm weight (not decayed) are followed; lr = 0.01, β = (0.9, 0.95), ε = 1e-8, weight decay 0.1.
    /// The update runs in float32, where 1 − 0.9 is 0.100000024: tolerances are a few float32 roundings of each
    /// value (relative 6e-8 each).
    func testTwoStepsByHand() throws {
        let cfg = ModelShape(nLayer: 1, nHead: 1, dModel: 4, dFF: 8, seqLen: 2, vocabSize: 3, bias: false)
        let model = try GPT(shape: cfg, maxBatch: 1, maxTime: 2, pool: ThreadPool(threads: 1))
        let opt = AdamW(parameterCount: model.layout.count, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 0)
        let matrix = model.layout.tensor(named: "transformer.h.0.attn.c_attn.weight")!.offset
        let norm = model.layout.tensor(named: "transformer.h.0.ln_1.weight")!.offset
        model.parameters.zero()
        model.parameters.base[matrix] = 0.5
        model.parameters.base[norm] = 1.0

        // Step 1: g = 0.1 for the matrix element, -0.2 for the LayerNorm weight.
        model.gradients.zero()
        model.gradients.base[matrix] = 0.1
        model.gradients.base[norm] = -0.2
        opt.step(model, lr: 0.01, norm: opt.gradientNorm(model))
        // matrix: m = 0.1·0.1 = 0.01, v = 0.05·0.01 = 5e-4; m̂ = 0.01/0.1 = 0.1, v̂ = 5e-4/0.05 = 0.01, √v̂ = 0.1;
        //   p = 0.5·(1 − 0.01·0.1) − 0.01·0.1/(0.1 + 1e-8) = 0.4995 − 0.0099999999 = 0.4895000001
        XCTAssertEqual(Double(model.parameters.base[matrix]), 0.4895000001, accuracy: 3e-8)
        XCTAssertEqual(Double(opt.m.base[matrix]), 0.01, accuracy: 5e-9)
        XCTAssertEqual(Double(opt.v.base[matrix]), 5e-4, accuracy: 3e-10)
        // LayerNorm weight, no decay: m = -0.02, v = 0.05·0.04 = 0.002; m̂ = -0.2, √v̂ = 0.2;
        //   p = 1 + 0.01·0.2/(0.2 + 1e-8) = 1.00999999995
        XCTAssertEqual(Double(model.parameters.base[norm]), 1.01, accuracy: 1e-7)

        // Step 2: g = 0.3 and 0.2.
        model.gradients.base[matrix] = 0.3
        model.gradients.base[norm] = 0.2
        opt.step(model, lr: 0.01, norm: opt.gradientNorm(model))
        // matrix: m = 0.9·0.01 + 0.1·0.3 = 0.039; v = 0.95·5e-4 + 0.05·0.09 = 0.004975;
        //   bc1 = 1 − 0.81 = 0.19, bc2 = 1 − 0.9025 = 0.0975; m̂ = 0.2052631579, v̂ = 0.0510256410, √v̂ = 0.2258886473;
        //   p = 0.4895000001·0.999 − 0.01·0.2052631579/0.2258886573 = 0.4890105001 − 0.0090869172 = 0.4799235829
        XCTAssertEqual(Double(model.parameters.base[matrix]), 0.4799235829, accuracy: 1e-7)
        XCTAssertEqual(Double(opt.m.base[matrix]), 0.039, accuracy: 2e-8)
        XCTAssertEqual(Double(opt.v.base[matrix]), 0.004975, accuracy: 3e-9)
        // LayerNorm weight: m = -0.018 + 0.02 = 0.002; v = 0.0019 + 0.002 = 0.0039; m̂ = 0.002/0.19 = 0.0105263158,
        //   v̂ = 0.0039/0.0975 = 0.04, √v̂ = 0.2; p = 1.00999999995 − 0.01·0.0105263158/0.20000001 = 1.0094736842
        XCTAssertEqual(Double(model.parameters.base[norm]), 1.0094736842, accuracy: 1e-7)
        XCTAssertEqual(opt.stepsTaken, 2)
    }

    func testClippingScalesEveryGradientByClipOverNorm() {
        let opt = AdamW(parameterCount: 1, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, gradClip: 1.0)
        XCTAssertEqual(opt.clipScale(norm: 4), Float(1.0 / (4 + 1e-6)))
        XCTAssertEqual(opt.clipScale(norm: 0.5), 1)
        let off = AdamW(parameterCount: 1, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, gradClip: 0)
        XCTAssertEqual(off.clipScale(norm: 1e9), 1)
    }
}

final class TrainingTests: XCTestCase {
    func run(_ directory: String, _ options: Fixtures.Options, threads: Int = 2, stopAfter: Int? = nil,
             resume: Bool = false, out: String = "run") throws -> (Trainer, RunSummary) {
        let recipe = try Fixtures.recipe(in: directory, options)
        var o = TrainingOptions(runDirectory: (directory as NSString).appendingPathComponent(out), threads: threads)
        o.stopAfter = stopAfter
        o.resume = resume
        let trainer = try Trainer(recipePath: recipe, options: o)
        return (trainer, try trainer.run())
    }

    /// A small model memorises a small text: the loss falls far below where it starts.
    func testMemorisesASmallText() throws {
        let dir = try Fixtures.directory("memorise")
        var o = Fixtures.Options()
        o.steps = 1000
        o.dModel = 64
        o.microBatch = 8
        o.lr = 3e-3
        o.warmup = 10
        o.evalInterval = 1000
        o.checkpointInterval = 1000
        // 400 random letters: every 16-character context occurs once, so the next letter is determined by it,
        // and a model that memorised the text predicts it almost surely; character frequencies alone are worth
        // ln 26 ≈ 3.26 nats.
        var rng = Xoshiro256(seed: 3)
        let letters = (0..<400).map { _ in Character(Unicode.Scalar(UInt8(97 + rng.next(below: 26)))) }
        try String(letters).write(toFile: "\(dir)/data.txt", atomically: true, encoding: .utf8)
        let (_, summary) = try run(dir, o)
        let first = try Fixtures.metrics(runDirectory: "\(dir)/run").first { $0["train_loss"] != nil }!["train_loss"]!
        XCTAssertGreaterThan(first, 3.0)
        XCTAssertLessThan(Double(summary.finalTrainLoss), 0.5)
        // Memorised, not learned: held-out letters are no more predictable than chance.
        XCTAssertGreaterThan(summary.finalValLoss!, 3.0)
    }

    func testSameRecipeAndThreadsGiveBitIdenticalRuns() throws {
        var o = Fixtures.Options()
        o.dropout = 0.1
        o.steps = 12
        let a = try Fixtures.directory("det-a"), b = try Fixtures.directory("det-b")
        let (ta, _) = try run(a, o), (tb, _) = try run(b, o)
        XCTAssertEqual(try Fixtures.metrics(runDirectory: "\(a)/run"), try Fixtures.metrics(runDirectory: "\(b)/run"))
        XCTAssertEqual(Array(ta.model.parameters.buffer), Array(tb.model.parameters.buffer))
        XCTAssertEqual(Array(ta.optimizer.v.buffer), Array(tb.optimizer.v.buffer))
    }

    /// Every `training.recompute` mode trains the same bits: losses, weights and both moments, with dropout and
    /// gradient accumulation, in fp32 and bf16.
    func testRecomputeModesTrainBitIdentically() throws {
        for precision in Precision.allCases {
            var o = Fixtures.Options()
            o.dropout = 0.1
            o.steps = 6
            o.gradAccum = 2
            o.precision = precision
            var runs: [(Trainer, [[String: Double]])] = []
            for mode in Recompute.allCases {
                o.recompute = mode
                let dir = try Fixtures.directory("recompute-\(precision)-\(mode)")
                let (trainer, _) = try run(dir, o)
                XCTAssertEqual(trainer.model.recompute, mode)
                runs.append((trainer, try Fixtures.metrics(runDirectory: "\(dir)/run")))
            }
            for (trainer, metrics) in runs.dropFirst() {
                let label = "\(precision) \(trainer.model.recompute)"
                XCTAssertEqual(metrics, runs[0].1, label)
                XCTAssertEqual(Array(trainer.model.parameters.buffer), Array(runs[0].0.model.parameters.buffer), label)
                XCTAssertEqual(Array(trainer.optimizer.m.buffer), Array(runs[0].0.optimizer.m.buffer), label)
                XCTAssertEqual(Array(trainer.optimizer.v.buffer), Array(runs[0].0.optimizer.v.buffer), label)
            }
        }
    }

    /// A run stopped without recomputation resumes with full recomputation (no recipe mismatch: the same run) and
    /// ends bit-identical to an uninterrupted run without it.
    func testARunResumesExactlyInAnotherRecomputeMode() throws {
        var o = Fixtures.Options()
        o.steps = 12
        o.dropout = 0.1
        o.checkpointInterval = 10
        let dir = try Fixtures.directory("recompute-resume"), straightDir = try Fixtures.directory("recompute-straight")
        let (straight, _) = try run(straightDir, o)
        _ = try run(dir, o, stopAfter: 6)
        o.recompute = .full
        let recipe = try Fixtures.recipe(in: dir, o)
        var options = TrainingOptions(runDirectory: "\(dir)/run", threads: 2)
        options.resume = true
        var startStep: Int?
        let resumed = try Trainer(recipePath: recipe, options: options, handler: TrainingEventHandler { event in
            if case .started(let info) = event { startStep = info.startStep }
            return .proceed
        })
        try resumed.run()
        XCTAssertEqual(startStep, 6, "resumed from the step-6 checkpoint")
        XCTAssertEqual(resumed.model.recompute, .full)
        XCTAssertEqual(resumed.state, straight.state)
        XCTAssertEqual(Array(resumed.model.parameters.buffer), Array(straight.model.parameters.buffer))
        XCTAssertEqual(Array(resumed.optimizer.v.buffer), Array(straight.optimizer.v.buffer))
        XCTAssertEqual(try Fixtures.metrics(runDirectory: "\(dir)/run"), try Fixtures.metrics(runDirectory: "\(straightDir)/run"))
    }

    func testAccumulationMatchesALargerMicroBatch() throws {
        var whole = Fixtures.Options()
        whole.steps = 8
        whole.microBatch = 4
        var split = whole
        split.microBatch = 2
        split.gradAccum = 2
        var devices = split
        devices.gradAccum = 1
        devices.devices = 2
        let (a, _) = try run(try Fixtures.directory("acc-whole"), whole)
        let (b, _) = try run(try Fixtures.directory("acc-split"), split)
        let (c, _) = try run(try Fixtures.directory("acc-devices"), devices)
        // The same windows in the same order; the sums differ only in float rounding order.
        let pa = Array(a.model.parameters.buffer), pb = Array(b.model.parameters.buffer)
        for i in 0..<pa.count { XCTAssertEqual(pa[i], pb[i], accuracy: 2e-5) }
        // Two devices' micro-batches accumulated here are exactly two accumulation steps.
        XCTAssertEqual(pb, Array(c.model.parameters.buffer))
    }

    func testMetricsLinesHaveTheDocumentedKeys() throws {
        let dir = try Fixtures.directory("metrics")
        var o = Fixtures.Options()
        o.steps = 20
        o.logInterval = 5
        o.evalInterval = 10
        _ = try run(dir, o)
        let text = try String(contentsOfFile: "\(dir)/run/metrics.jsonl", encoding: .utf8)
        let lines = try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let training = lines.filter { $0["train_loss"] != nil }, validation = lines.filter { $0["val_loss"] != nil }
        XCTAssertEqual(training.map { $0["step"] as! Int }, [1, 5, 10, 15, 20])
        XCTAssertEqual(validation.map { $0["step"] as! Int }, [10, 20])
        XCTAssertEqual(Set(training[0].keys), ["step", "train_loss", "lr", "grad_norm", "tokens_per_sec", "mfu"])
        XCTAssertEqual(Set(validation[0].keys), ["step", "val_loss"])
    }

    func testNonFiniteLossStopsTheRunNamingTheStep() throws {
        let dir = try Fixtures.directory("nan")
        var o = Fixtures.Options()
        o.steps = 10
        let recipe = try Fixtures.recipe(in: dir, o)
        let trainer = try Trainer(recipePath: recipe, options: TrainingOptions(runDirectory: "\(dir)/run", threads: 2))
        trainer.model.parameters.base[trainer.model.layout.tensor(named: "transformer.ln_f.weight")!.offset] = .nan
        XCTAssertThrowsError(try trainer.run()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("step 1: the training loss (nan) is not finite"), text)
            XCTAssertTrue(text.contains("no step before it finished"), text)
        }
        // After three good steps (and a checkpoint), a resumed run whose weights go bad fails at step 4.
        let dir2 = try Fixtures.directory("nan-later")
        let recipe2 = try Fixtures.recipe(in: dir2, o)
        var options = TrainingOptions(runDirectory: "\(dir2)/run", threads: 2)
        options.stopAfter = 3
        try Trainer(recipePath: recipe2, options: options).run()
        options.resume = true
        options.stopAfter = nil
        var resumed: Trainer?
        let t3 = try Trainer(recipePath: recipe2, options: options) { event in
            // Poison the weights once the checkpoint is loaded.
            if case .started = event, let model = resumed?.model {
                model.parameters.base[model.layout.tensor(named: "transformer.ln_f.weight")!.offset] = .nan
            }
        }
        resumed = t3
        XCTAssertThrowsError(try t3.run()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("step 4: the training loss (nan) is not finite"), text)
            // Issue 27: the first step after a resume overflows because of the checkpoint's weights, not the
            // learning rate: the message names the checkpoint.
            XCTAssertTrue(text.contains("the first step after resuming from \(dir2)/run/checkpoints/\(Trainer.checkpointName(step: 3))"), text)
            XCTAssertTrue(text.contains("Fix: resume from an earlier checkpoint of the run"), text)
            XCTAssertFalse(text.contains("optimizer.lr"), text)
        }
        XCTAssertEqual(t3.state.step, 3, "the bad step is not applied")
    }

    /// A caller that answers an event with `.stop` ends the run after that step, checkpointed; resumed, the run
    /// ends bit-identical to one that was never stopped.
    func testAnAnswerToAnEventStopsTheRunAndItResumesExactly() throws {
        var o = Fixtures.Options()
        o.steps = 12
        o.checkpointInterval = 10
        let dir = try Fixtures.directory("answer-stop"), straightDir = try Fixtures.directory("answer-straight")
        let recipe = try Fixtures.recipe(in: dir, o), straightRecipe = try Fixtures.recipe(in: straightDir, o)
        var options = TrainingOptions(runDirectory: "\(dir)/run", threads: 2)
        let stopped = try Trainer(recipePath: recipe, options: options, handler: TrainingEventHandler { event in
            if case .step(let m) = event, m.step == 5 { return .stop }
            return .proceed
        })
        XCTAssertEqual(try stopped.run().steps, 5)
        XCTAssertEqual(Trainer.checkpoints(in: stopped.checkpointDirectory).map(\.step), [5])
        options.resume = true
        let resumed = try Trainer(recipePath: recipe, options: options)
        try resumed.run()
        let straight = try Trainer(recipePath: straightRecipe, options: TrainingOptions(runDirectory: "\(straightDir)/run", threads: 2))
        try straight.run()
        XCTAssertEqual(resumed.state, straight.state)
        XCTAssertTrue(Array(resumed.model.parameters.buffer) == Array(straight.model.parameters.buffer))
        XCTAssertEqual(try Fixtures.metrics(runDirectory: "\(dir)/run"), try Fixtures.metrics(runDirectory: "\(straightDir)/run"))
    }

    func testABadRecipeIsRefusedWithEveryProblem() throws {
        let dir = try Fixtures.directory("bad")
        let path = try Fixtures.recipe(in: dir)
        var text = try String(contentsOfFile: path, encoding: .utf8)
        text = text.replacingOccurrences(of: "lr = 0.003", with: "lr = -1.0")
        text = text.replacingOccurrences(of: "n_head = 2", with: "n_head = 2\nheads = 3")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Trainer(recipePath: path, options: TrainingOptions(runDirectory: "\(dir)/run", threads: 1))) { error in
            guard let rejected = error as? RecipeRejected else { return XCTFail("\(error)") }
            XCTAssertEqual(Set(rejected.problems.compactMap(\.key)), ["optimizer.lr", "model.heads"])
            XCTAssertEqual(rejected.problems, RecipeLoader.check(text: text, file: path).errors)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/run"), "nothing is written for a refused recipe")
    }

    func testVocabularyLargerThanTheModelIsRefused() throws {
        let dir = try Fixtures.directory("vocab")
        var o = Fixtures.Options()
        o.vocabSize = 10
        let path = try Fixtures.recipe(in: dir, o)
        XCTAssertThrowsError(try Trainer(recipePath: path, options: TrainingOptions(runDirectory: "\(dir)/run", threads: 1))) { error in
            XCTAssertTrue("\(error)".hasPrefix("model.vocab_size: the char tokenizer"), "\(error)")
        }
    }

    /// Evaluation is the mean loss over `eval.iters` micro-batches drawn by a validation generator seeded afresh
    /// (seed, stream 3): computed here from that definition, before and after a training step (which moves the
    /// weights and the training sampler, not the validation windows).
    func testEvaluationSeesTheSameWindowsEveryTime() throws {
        let dir = try Fixtures.directory("eval")
        let path = try Fixtures.recipe(in: dir)
        let trainer = try Trainer(recipePath: path, options: TrainingOptions(runDirectory: "\(dir)/run", threads: 2))
        let batch = trainer.recipe.training.microBatch, time = trainer.recipe.training.seqLen
        func expected() throws -> Double {
            var sampler = BatchSampler(rng: Xoshiro256(seed: UInt64(trainer.recipe.training.seed), stream: 3), windowsDrawn: 0)
            var tokens = [Int32](repeating: 0, count: batch * time), targets = tokens
            var total = 0.0
            for _ in 0..<trainer.recipe.eval.iters {
                try tokens.withUnsafeMutableBufferPointer { t in
                    try targets.withUnsafeMutableBufferPointer { y in
                        sampler.fill(from: trainer.data.val, batch: batch, time: time, tokens: t.baseAddress!, targets: y.baseAddress!)
                        total += Double(try trainer.model.forward(tokens: t.baseAddress!, targets: y.baseAddress!,
                                                                  batch: batch, time: time))
                    }
                }
            }
            return total / Double(trainer.recipe.eval.iters)
        }
        XCTAssertGreaterThan(trainer.recipe.eval.iters, 1)
        let before = try trainer.evaluate()
        XCTAssertEqual(before, try expected())
        try trainer.trainStep()
        let after = try trainer.evaluate()
        XCTAssertEqual(after, try expected())
        XCTAssertNotEqual(after, before, "a training step must change the validation loss")
    }
}

import AllocationCounter

final class AllocationTests: XCTestCase {
    /// A training step allocates nothing: parameters, gradients, moments, activations and scratch are allocated
    /// when the trainer is built, and parallel regions hand their work to the threads without boxing it. Checked
    /// with dropout on, gradient accumulation, and the BPE-sized path through the data sampler.
    func testTrainingStepsAllocateNothing() throws {
        try XCTSkipUnless(gpt_allocation_counting() == 1, "allocations are not counted under AddressSanitizer")
        let dir = try Fixtures.directory("allocations")
        var o = Fixtures.Options()
        o.dropout = 0.1
        o.gradAccum = 2
        o.steps = 10
        let recipe = try Fixtures.recipe(in: dir, o)
        let trainer = try Trainer(recipePath: recipe, options: TrainingOptions(runDirectory: "\(dir)/run", threads: 2))
        try trainer.trainStep()   // the first step may warm up OpenBLAS's per-thread buffers
        let before = gpt_allocation_count()
        for _ in 0..<3 { try trainer.trainStep() }
        XCTAssertEqual(gpt_allocation_count() - before, 0, "heap allocations in three training steps")
        // The counter does count: an array allocates.
        let probe = gpt_allocation_count()
        let array = [Int](repeating: 1, count: 1000 + Int(trainer.state.step))
        XCTAssertGreaterThan(gpt_allocation_count() - probe, 0)
        XCTAssertEqual(array.count, 1000 + trainer.state.step)
    }

    /// Recomputation runs kernels again over the same buffers: still nothing allocated.
    func testRecomputingStepsAllocateNothing() throws {
        try XCTSkipUnless(gpt_allocation_counting() == 1, "allocations are not counted under AddressSanitizer")
        for mode in [Recompute.selective, .full] {
            let dir = try Fixtures.directory("allocations-\(mode)")
            var o = Fixtures.Options()
            o.dropout = 0.1
            o.gradAccum = 2
            o.steps = 10
            o.recompute = mode
            let recipe = try Fixtures.recipe(in: dir, o)
            let trainer = try Trainer(recipePath: recipe, options: TrainingOptions(runDirectory: "\(dir)/run", threads: 2))
            try trainer.trainStep()
            let before = gpt_allocation_count()
            for _ in 0..<3 { try trainer.trainStep() }
            XCTAssertEqual(gpt_allocation_count() - before, 0, "heap allocations in three training steps, recompute \(mode)")
        }
    }

    /// The same with native bf16 products: the trainer allocates nothing either, and oneDNN makes exactly its
    /// `allocationsPerExecution` inside each execution (its execution context, out of our reach), nothing more.
    func testNativeBF16StepsAllocateOnlyInsideOneDNN() throws {
        try XCTSkipUnless(gpt_allocation_counting() == 1, "allocations are not counted under AddressSanitizer")
        try XCTSkipUnless(BF16Matmul.isAvailable, "\(CPU.modelName) has no native bf16 products")
        let dir = try Fixtures.directory("allocations-bf16")
        var o = Fixtures.Options()
        o.dropout = 0.1
        o.gradAccum = 2
        o.steps = 10
        o.precision = .bf16
        let recipe = try Fixtures.recipe(in: dir, o)
        let trainer = try Trainer(recipePath: recipe, options: TrainingOptions(runDirectory: "\(dir)/run", threads: 2))
        try trainer.trainStep()   // creates every product's primitive
        let before = gpt_allocation_count()
        let executions = BF16Matmul.executionCount, accumulating = BF16Matmul.accumulatingExecutionCount
        let insideOneDNN = BF16Matmul.executionAllocationCount, unmeasured = BF16Matmul.unmeasuredExecutionCount
        for _ in 0..<3 { try trainer.trainStep() }
        let added = BF16Matmul.accumulatingExecutionCount - accumulating
        let written = BF16Matmul.executionCount - executions - added
        let expected = BF16Matmul.executionAllocationCount - insideOneDNN
        XCTAssertGreaterThan(written, 0, "the products ran natively")
        XCTAssertGreaterThan(added, 0, "gradient accumulation adds")
        try XCTSkipIf(BF16Matmul.unmeasuredExecutionCount > unmeasured,
                      "oneDNN runs \(BF16Matmul.implementationsInUse.sorted()) here, not all of them measured: count "
                          + "their allocations per execution and add them to BF16Matmul.allocationsPerExecution")
        XCTAssertEqual(gpt_allocation_count() - before, expected,
                       "heap allocations in three training steps of \(written) + \(added) oneDNN executions")
    }
}
