import Checkpoint
import Foundation
import TestFixtures
import Runtime
import Trainer
import XCTest

/// gpt-train as a user meets it, including a run killed with SIGKILL and resumed.
final class TrainCommandTests: XCTestCase {
    func options(steps: Int) -> Fixtures.Options {
        var o = Fixtures.Options()
        o.steps = steps
        o.checkpointInterval = 10
        o.evalInterval = 20
        o.logInterval = 5
        o.dropout = 0.1
        return o
    }

    func testBadRecipeIsRefusedWithTheCheckMessagesAndNothingWritten() throws {
        let dir = try Fixtures.directory("cli-bad")
        let path = try Fixtures.recipe(in: dir)
        let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "n_head = 2", with: "n_head = 3")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let out = try Tool.run("gpt-train", [path, "--out", "\(dir)/run", "--no-mfu"])
        XCTAssertEqual(out.status, 1)
        XCTAssertTrue(out.stderr.contains("model.n_head: d_model 32 is not divisible by n_head 3"), out.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/run"))
        let missing = try Tool.run("gpt-train", ["\(dir)/none.toml", "--no-mfu"])
        XCTAssertEqual(missing.status, 2)
    }

    /// kill -9 after a checkpoint, resume, finish: the same weights, moments and logged losses as a run that was
    /// never interrupted (threads pinned to 2 in both).
    func testKilledRunResumesBitIdentically() throws {
        let steps = 1000
        let straightDir = try Fixtures.directory("cli-straight")
        let straightRecipe = try Fixtures.recipe(in: straightDir, options(steps: steps))
        let straight = try Tool.run("gpt-train", [straightRecipe, "--out", "\(straightDir)/run", "--threads", "2", "--no-mfu"])
        XCTAssertEqual(straight.status, 0, straight.stderr)

        let dir = try Fixtures.directory("cli-killed")
        let recipe = try Fixtures.recipe(in: dir, options(steps: steps))
        let process = try Tool.start("gpt-train", [recipe, "--out", "\(dir)/run", "--threads", "2", "--no-mfu"])
        let checkpoints = "\(dir)/run/checkpoints"
        let deadline = Date().addingTimeInterval(60)
        while Trainer.checkpoints(in: checkpoints).count < 2, Date() < deadline, process.isRunning { usleep(2000) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal, "the run must be killed before it finishes")
        let newest = Trainer.checkpoints(in: checkpoints).first!
        XCTAssertLessThan(newest.step, steps)

        let resumed = try Tool.run("gpt-train", [recipe, "--out", "\(dir)/run", "--threads", "2", "--resume", "--no-mfu"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resumed from"), resumed.stderr)

        let a = try CheckpointReader(path: "\(straightDir)/run/checkpoints/\(Trainer.checkpointName(step: steps))")
        let b = try CheckpointReader(path: "\(checkpoints)/\(Trainer.checkpointName(step: steps))")
        XCTAssertEqual(a.state.samplerRNG, b.state.samplerRNG)
        XCTAssertEqual(a.state.tokensSeen, b.state.tokensSeen)
        let tensors = try a.modelTensors()
        var offset = 0
        let list = tensors.map { t -> CheckpointTensor in
            defer { offset += t.shape.reduce(1, *) }
            return CheckpointTensor(name: t.name, shape: t.shape, offset: offset)
        }
        func load(_ r: CheckpointReader) throws -> [[Float]] {
            var p = [Float](repeating: 0, count: offset), m = p, v = p
            try p.withUnsafeMutableBufferPointer { pp in try m.withUnsafeMutableBufferPointer { mm in try v.withUnsafeMutableBufferPointer { vv in
                try r.read(tensors: list, parameters: pp.baseAddress!, m: mm.baseAddress!, v: vv.baseAddress!)
            } } }
            return [p, m, v]
        }
        XCTAssertEqual(try load(a), try load(b), "weights and moments")
        XCTAssertEqual(try Fixtures.metrics(runDirectory: "\(straightDir)/run"), try Fixtures.metrics(runDirectory: "\(dir)/run"))
    }

    func testEvalAndInspect() throws {
        let dir = try Fixtures.directory("cli-eval")
        var o = options(steps: 20)
        o.dropout = 0
        let recipe = try Fixtures.recipe(in: dir, o)
        XCTAssertEqual(try Tool.run("gpt-train", [recipe, "--out", "\(dir)/run", "--no-mfu"]).status, 0)
        let ckpt = "\(dir)/run/checkpoints/\(Trainer.checkpointName(step: 20))"
        let eval = try Tool.run("gpt-train", ["eval", ckpt, "--windows", "7", "--json"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(object["windows"] as? Int, 7)
        XCTAssertEqual(object["tokens"] as? Int, 7 * 16)
        // The same number from the library with the documented definition.
        let loaded = try LoadedCheckpoint(path: ckpt, threads: 1)
        let expected = try WindowEvaluation.evaluate(loaded.model, on: try loaded.trainingData().val, windows: 7, time: 16)
        XCTAssertEqual(object["loss"] as! Double, expected, accuracy: 1e-6)

        // --steps names the step to stop at: a run already past it says so.
        let behind = try Tool.run("gpt-train", [recipe, "--out", "\(dir)/run", "--resume", "--steps", "10", "--no-mfu"])
        XCTAssertEqual(behind.status, 1)
        XCTAssertTrue(behind.stderr.contains("complete") || behind.stderr.contains("already at step 20"), behind.stderr)
        XCTAssertEqual(try Tool.run("gpt-train", ["eval", ckpt, "--threads", "0"]).status, 2)

        // Data that moved: eval names the problem, and --data points at the new place.
        try FileManager.default.moveItem(atPath: "\(dir)/data.txt", toPath: "\(dir)/moved.txt")
        let lost = try Tool.run("gpt-train", ["eval", ckpt, "--windows", "7"])
        XCTAssertEqual(lost.status, 1)
        XCTAssertTrue(lost.stderr.contains("--data"), lost.stderr)
        let found = try Tool.run("gpt-train", ["eval", ckpt, "--windows", "7", "--json", "--data", "\(dir)/moved.txt"])
        XCTAssertEqual(found.status, 0, found.stderr)
        XCTAssertEqual((try JSONSerialization.jsonObject(with: Data(found.stdout.utf8)) as! [String: Any])["loss"] as! Double,
                       expected, accuracy: 1e-6)

        let inspect = try Tool.run("gpt-train", ["inspect", ckpt])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        for text in ["step 20 of 20", "transformer.h.1.mlp.c_fc.weight", "128 × 32", "char tokenizer"] {
            XCTAssertTrue(inspect.stdout.contains(text), "\(text) missing from\n\(inspect.stdout)")
        }
        let broken = "\(dir)/broken.h5"
        try Data(try Data(contentsOf: URL(fileURLWithPath: ckpt)).prefix(4096)).write(to: URL(fileURLWithPath: broken))
        let bad = try Tool.run("gpt-train", ["inspect", broken])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains(broken), bad.stderr)
    }
}
