import Checkpoint
import Foundation
import GPT
import GPTShape
import Runtime
import TestFixtures
import Trainer
import XCTest

/// A Llama-family recipe through gpt-train as a user runs it: trains, checkpoints, resumes bit-exactly after
/// kill -9, evaluates, inspects and samples; recomputation is bit-identical; under mpirun see
/// `DistributedTrainingTests.testLlamaRanksMatchOneProcess`.
final class LlamaTrainingTests: XCTestCase {
    func options(steps: Int) -> Fixtures.Options {
        var o = Fixtures.Options()
        o.steps = steps
        o.checkpointInterval = 10
        o.evalInterval = 20
        o.logInterval = 5
        o.dropout = 0.1
        return o
    }

    /// Weights, first and second moments of a checkpoint, as flat arrays.
    static func state(_ path: String) throws -> [[Float]] {
        let reader = try CheckpointReader(path: path)
        var offset = 0
        let list = try reader.modelTensors().map { t -> CheckpointTensor in
            defer { offset += t.shape.reduce(1, *) }
            return CheckpointTensor(name: t.name, shape: t.shape, offset: offset)
        }
        var p = [Float](repeating: 0, count: offset), m = p, v = p
        try p.withUnsafeMutableBufferPointer { pp in try m.withUnsafeMutableBufferPointer { mm in try v.withUnsafeMutableBufferPointer { vv in
            try reader.read(tensors: list, parameters: pp.baseAddress!, m: mm.baseAddress!, v: vv.baseAddress!)
        } } }
        return [p, m, v]
    }

    /// kill -9 after a checkpoint, resume, finish: the same weights, moments and logged losses as a run never
    /// interrupted (2 threads in both); then eval, inspect and gpt-sample read the checkpoint.
    func testKilledLlamaRunResumesBitIdenticallyAndEvaluates() throws {
        let steps = 1000
        let o = options(steps: steps)
        let shape = LlamaFixture.shape(o, nKVHead: 2, tie: false)
        let straightDir = try Fixtures.directory("llama-straight")
        let straightRecipe = try LlamaFixture.recipe(in: straightDir, o, shape: shape)
        let straight = try Tool.run("gpt-train", [straightRecipe, "--out", "\(straightDir)/run", "--threads", "2", "--no-mfu"])
        XCTAssertEqual(straight.status, 0, straight.stderr)

        let dir = try Fixtures.directory("llama-killed")
        let recipe = try LlamaFixture.recipe(in: dir, o, shape: shape)
        let process = try Tool.start("gpt-train", [recipe, "--out", "\(dir)/run", "--threads", "2", "--no-mfu"])
        let checkpoints = "\(dir)/run/checkpoints"
        let deadline = Date().addingTimeInterval(60)
        while Trainer.checkpoints(in: checkpoints).count < 2, Date() < deadline, process.isRunning { usleep(2000) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal, "the run must be killed before it finishes")
        let newest = try XCTUnwrap(Trainer.checkpoints(in: checkpoints).first)
        XCTAssertLessThan(newest.step, steps)

        let resumed = try Tool.run("gpt-train", [recipe, "--out", "\(dir)/run", "--threads", "2", "--resume", "--no-mfu"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resumed from"), resumed.stderr)
        let final = Trainer.checkpointName(step: steps)
        let a = try Self.state("\(straightDir)/run/checkpoints/\(final)"), b = try Self.state("\(checkpoints)/\(final)")
        XCTAssertTrue(a == b, "weights and moments")
        let metrics = try Fixtures.metrics(runDirectory: "\(straightDir)/run")
        XCTAssertEqual(metrics, try Fixtures.metrics(runDirectory: "\(dir)/run"))
        // It learned: the character-level text's loss falls well below log(64) ≈ 4.16.
        let losses = metrics.compactMap { $0["train_loss"] }
        XCTAssertLessThan(try XCTUnwrap(losses.last), 2.5, "\(losses)")

        // Weight decay: every 2-D tensor (embedding, head, matrices) is in the decayed range, the RMSNorm gains
        // after it (AdamW decays 0..<decayedCount only).
        let loaded = try LoadedCheckpoint(path: "\(checkpoints)/\(final)", threads: 1)
        let layout = loaded.model.layout
        XCTAssertEqual(layout.shape, shape)
        for tensor in layout.tensors {
            XCTAssertEqual(tensor.offset + tensor.count <= layout.decayedCount, tensor.decays, tensor.name)
            XCTAssertEqual(tensor.offset >= layout.decayedCount, !tensor.decays, tensor.name)
        }
        XCTAssertEqual(layout.tensors.filter { !$0.decays }.count, 2 * shape.nLayer + 1, "two gains a block and model.norm")

        // eval: the documented definition, through the library.
        let eval = try Tool.run("gpt-train", ["eval", "\(checkpoints)/\(final)", "--windows", "7", "--json", "--threads", "1"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])
        let expected = try WindowEvaluation.evaluate(loaded.model, on: try loaded.trainingData().val, windows: 7, time: 16)
        XCTAssertEqual(try XCTUnwrap(object["loss"] as? Double), expected, accuracy: 1e-6)
        XCTAssertLessThan(expected, 2.5)

        let inspect = try Tool.run("gpt-train", ["inspect", "\(checkpoints)/\(final)"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        for text in ["step 1000 of 1000", "llama", "model.layers.1.self_attn.k_proj.weight", "16 × 32", "lm_head.weight"] {
            XCTAssertTrue(inspect.stdout.contains(text), "\(text) missing from\n\(inspect.stdout)")
        }
        let sample = try Tool.run("gpt-sample", ["\(checkpoints)/\(final)", "--prompt", "KING:\n", "--tokens", "40",
                                                 "--temperature", "0", "--threads", "1"])
        XCTAssertEqual(sample.status, 0, sample.stderr)
        let uncached = try Tool.run("gpt-sample", ["\(checkpoints)/\(final)", "--prompt", "KING:\n", "--tokens", "40",
                                                   "--temperature", "0", "--threads", "1", "--no-cache"])
        XCTAssertEqual(uncached.status, 0, uncached.stderr)
        XCTAssertEqual(sample.stdout, uncached.stdout, "greedy text with and without the KV cache")
        XCTAssertGreaterThan(sample.stdout.count, 20)
        // A window of 8 tokens slides every few tokens (the cache rebuilt from its newest half): still the same
        // greedy text as recomputing the window; a window past the model's context is a usage error.
        var short: [String] = []
        for cache in [[], ["--no-cache"]] {
            let out = try Tool.run("gpt-sample", ["\(checkpoints)/\(final)", "--prompt", "KING:\n", "--tokens", "40", "--context", "8",
                                                  "--temperature", "0", "--threads", "1"] + cache)
            XCTAssertEqual(out.status, 0, out.stderr)
            short.append(out.stdout)
        }
        XCTAssertEqual(short[0], short[1])
        let long = try Tool.run("gpt-sample", ["\(checkpoints)/\(final)", "--context", "17", "--tokens", "3"])
        XCTAssertEqual(long.status, 2, long.stderr)
        XCTAssertTrue(long.stderr.contains("--context 17 is longer than the model's context (model.seq_len = 16"), long.stderr)

        // --init-from a Llama checkpoint starts from its weights.
        let more = try Tool.run("gpt-train", [recipe, "--out", "\(dir)/more", "--steps", "1", "--threads", "1", "--no-mfu",
                                              "--init-from", "\(checkpoints)/\(final)"])
        XCTAssertEqual(more.status, 0, more.stderr)
        let first = try XCTUnwrap(try Fixtures.metrics(runDirectory: "\(dir)/more").first?["train_loss"])
        XCTAssertLessThan(first, 2.6, "the first step's loss is the trained model's, not a random one's (≈ 4.2)")
    }

    /// training.recompute "selective" and "full" train a Llama model to the same bits as "none".
    func testLlamaRecomputeModesAreBitIdentical() throws {
        let dir = try Fixtures.directory("llama-recompute")
        var states: [[[Float]]] = [], metrics: [[[String: Double]]] = []
        for mode in GPTShape.Recompute.allCases {
            var o = options(steps: 12)
            o.recompute = mode
            o.checkpointInterval = 12
            o.evalInterval = 6
            let recipe = try LlamaFixture.recipe(in: dir, name: "\(mode).toml", o, shape: LlamaFixture.shape(o, nKVHead: 1))
            XCTAssertTrue(try String(contentsOfFile: recipe, encoding: .utf8).contains("recompute = \"\(mode)\""))
            let run = try Tool.run("gpt-train", [recipe, "--out", "\(dir)/\(mode)", "--threads", "2", "--no-mfu"])
            XCTAssertEqual(run.status, 0, run.stderr)
            states.append(try Self.state("\(dir)/\(mode)/checkpoints/\(Trainer.checkpointName(step: 12))"))
            metrics.append(try Fixtures.metrics(runDirectory: "\(dir)/\(mode)"))
        }
        XCTAssertFalse(metrics[0].isEmpty)
        for i in 1..<states.count {
            XCTAssertEqual(metrics[i], metrics[0], "\(GPTShape.Recompute.allCases[i]) against none: metrics")
            XCTAssertTrue(states[i] == states[0], "\(GPTShape.Recompute.allCases[i]) against none: weights and moments")
        }
    }
}

extension DistributedTrainingTests {
    /// `mpirun -np 2` with ZeRO-1 on a Llama recipe: the losses and weights of one process computing both devices'
    /// micro-batches (the same effective batch), within the tolerances of `testRanksMatchOneProcessAndRepeatBitForBit`.
    func testLlamaRanksMatchOneProcess() throws {
        let dir = try Fixtures.directory("dp-llama")
        let o = options(devices: 2, steps: 30, zeroStage: 1)
        let recipe = try LlamaFixture.recipe(in: dir, o, shape: LlamaFixture.shape(o, nKVHead: 2))
        let single = try Tool.run("gpt-train", [recipe, "--out", "\(dir)/single", "--threads", "1", "--no-mfu"])
        XCTAssertEqual(single.status, 0, single.stderr)
        let job = try runJob(ranks: 2, [recipe, "--out", "\(dir)/job"])
        XCTAssertEqual(job.status, 0, job.output)
        assertClose(try Fixtures.metrics(runDirectory: "\(dir)/single"), try Fixtures.metrics(runDirectory: "\(dir)/job"),
                    tolerance: 2e-5, "2 ranks against one process")
        let one = try state(final("\(dir)/single", step: 30)), many = try state(final("\(dir)/job", step: 30))
        XCTAssertLessThan(maxDifference(one[0], many[0]), 1e-4, "2 ranks: weights")
        let losses = zip(try Fixtures.metrics(runDirectory: "\(dir)/single"), try Fixtures.metrics(runDirectory: "\(dir)/job"))
            .compactMap { a, b in a["train_loss"].flatMap { x in b["train_loss"].map { abs(x - $0) } } }
        print("llama, mpirun -np 2 with ZeRO-1 against one process: largest train-loss difference \(losses.max() ?? -1), "
              + "largest weight difference \(maxDifference(one[0], many[0]))")
        XCTAssertGreaterThan(maxDifference(one[0], try state(final("\(dir)/single", step: 10))[0]), 1e-3,
                             "the comparison is not vacuous: training moved the weights")
    }
}
