import Checkpoint
import Compute
import Foundation
import TestFixtures
import Runtime
import Trainer
import XCTest

final class CheckpointTests: XCTestCase {
    func trainer(_ directory: String, _ o: Fixtures.Options = Fixtures.Options(), threads: Int = 2,
                 stopAfter: Int? = nil, resume: Bool = false, force: Bool = false, recipeName: String = "tiny.toml") throws -> Trainer {
        let recipe = try Fixtures.recipe(in: directory, name: recipeName, o)
        var options = TrainingOptions(runDirectory: "\(directory)/run", threads: threads)
        options.stopAfter = stopAfter
        options.resume = resume
        options.force = force
        return try Trainer(recipePath: recipe, options: options)
    }

    func testSaveAndLoadAreBitExact() throws {
        let dir = try Fixtures.directory("roundtrip")
        var o = Fixtures.Options()
        o.steps = 5
        o.checkpointInterval = 5
        let a = try trainer(dir, o)
        try a.run()
        let path = "\(a.checkpointDirectory)/\(Trainer.checkpointName(step: 5))"
        let b = try trainer(dir, o)
        try b.load(checkpoint: path)
        XCTAssertEqual(Array(a.model.parameters.buffer), Array(b.model.parameters.buffer))
        XCTAssertEqual(Array(a.optimizer.m.buffer), Array(b.optimizer.m.buffer))
        XCTAssertEqual(Array(a.optimizer.v.buffer), Array(b.optimizer.v.buffer))
        XCTAssertEqual(a.state, b.state)
        XCTAssertEqual(a.optimizer.stepsTaken, b.optimizer.stepsTaken)
        // The file holds nanoGPT's names and shapes, and the recipe and tokenizer.
        let reader = try CheckpointReader(path: path)
        let saved = Dictionary(uniqueKeysWithValues: try reader.modelTensors().map { ($0.name, $0.shape) })
        XCTAssertEqual(saved["transformer.h.1.attn.c_attn.weight"], [96, 32])
        XCTAssertEqual(saved["transformer.wte.weight"], [64, 32])
        XCTAssertNil(saved["lm_head.weight"])
        XCTAssertEqual(saved.count, a.model.layout.tensors.count)
        XCTAssertEqual(reader.recipe, a.directory.recipeText)
        XCTAssertTrue(reader.tokenizer.contains("\"char\""))
    }

    /// Training N steps straight and training k, stopping, resuming and training N − k give the same bits:
    /// weights, moments and every logged loss.
    func testInterruptedAndResumedRunIsBitIdentical() throws {
        var o = Fixtures.Options()
        o.steps = 24
        o.dropout = 0.1
        o.checkpointInterval = 8
        o.evalInterval = 6
        let straightDir = try Fixtures.directory("straight")
        let straight = try trainer(straightDir, o)
        try straight.run()

        let splitDir = try Fixtures.directory("split")
        try trainer(splitDir, o, stopAfter: 11).run()       // checkpoints at 8 and 11
        let resumed = try trainer(splitDir, o, resume: true)
        try resumed.run()

        XCTAssertEqual(Array(straight.model.parameters.buffer), Array(resumed.model.parameters.buffer))
        XCTAssertEqual(Array(straight.optimizer.m.buffer), Array(resumed.optimizer.m.buffer))
        XCTAssertEqual(Array(straight.optimizer.v.buffer), Array(resumed.optimizer.v.buffer))
        XCTAssertEqual(straight.state, resumed.state)
        XCTAssertEqual(try Fixtures.metrics(runDirectory: "\(straightDir)/run"), try Fixtures.metrics(runDirectory: "\(splitDir)/run"))
    }

    /// A run that wrote metrics past its last checkpoint (it died later) resumes from the checkpoint, and the
    /// later lines are dropped: the log reads as one run.
    func testResumeDropsMetricsPastTheCheckpoint() throws {
        var o = Fixtures.Options()
        o.steps = 12
        o.checkpointInterval = 4
        let dir = try Fixtures.directory("tail")
        try trainer(dir, o, stopAfter: 6).run()               // checkpoints 4 and 6
        try FileManager.default.removeItem(atPath: "\(dir)/run/checkpoints/\(Trainer.checkpointName(step: 6))")
        let resumed = try trainer(dir, o, resume: true)
        XCTAssertNoThrow(try resumed.run())
        let steps = try Fixtures.metrics(runDirectory: "\(dir)/run").filter { $0["train_loss"] != nil }.map { Int($0["step"]!) }
        XCTAssertEqual(steps, Array(1...12))
    }

    func testTruncatedFlippedAndWrongVersionFilesGiveClearErrors() throws {
        var o = Fixtures.Options()
        o.steps = 2
        o.warmup = 1
        o.checkpointInterval = 2
        let dir = try Fixtures.directory("damaged")
        let t = try trainer(dir, o)
        try t.run()
        let good = "\(t.checkpointDirectory)/\(Trainer.checkpointName(step: 2))"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))

        let truncated = "\(dir)/truncated.h5"
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: truncated))
        XCTAssertThrowsError(try t.load(checkpoint: truncated)) { error in
            XCTAssertTrue("\(error)".hasPrefix(truncated), "\(error)")
            XCTAssertTrue("\(error)".contains("truncated") || "\(error)".contains("damaged"), "\(error)")
        }

        // Flip one byte inside the largest tensor's data (the token embedding, 8 KB of the file).
        let flipped = "\(dir)/flipped.h5"
        var damaged = bytes
        let needle = Data(bytes: t.model.parameters.base + t.model.layout.wte + 100, count: 16)
        let at = damaged.range(of: needle)!.lowerBound + 3
        damaged[at] ^= 0x10
        try damaged.write(to: URL(fileURLWithPath: flipped))
        XCTAssertThrowsError(try t.load(checkpoint: flipped)) { error in
            XCTAssertTrue("\(error)".hasPrefix(flipped), "\(error)")
            XCTAssertTrue("\(error)".contains("checksum"), "\(error)")
        }

        let future = "\(dir)/future.h5"
        let reader = try CheckpointReader(path: good)
        try CheckpointWriter.write(to: future, tensors: t.model.layout.tensors.map { CheckpointTensor(name: $0.name, shape: $0.shape, offset: $0.offset) },
                                   parameters: t.model.parameters.base, m: t.optimizer.m.base, v: t.optimizer.v.base,
                                   state: reader.state, recipe: reader.recipe, tokenizer: reader.tokenizer, formatVersion: 2)
        XCTAssertThrowsError(try t.load(checkpoint: future)) { error in
            XCTAssertTrue("\(error)".contains("format version 2"), "\(error)")
        }
    }

    func testResumeFallsBackToTheNewestValidCheckpoint() throws {
        var o = Fixtures.Options()
        o.steps = 9
        o.checkpointInterval = 3
        let dir = try Fixtures.directory("fallback")
        try trainer(dir, o, stopAfter: 6).run()   // checkpoints 3 and 6
        let newest = "\(dir)/run/checkpoints/\(Trainer.checkpointName(step: 6))"
        let data = try Data(contentsOf: URL(fileURLWithPath: newest))
        try data.prefix(1000).write(to: URL(fileURLWithPath: newest))
        var notes: [String] = []
        let recipe = "\(dir)/tiny.toml"
        var options = TrainingOptions(runDirectory: "\(dir)/run", threads: 2)
        options.resume = true
        let t = try Trainer(recipePath: recipe, options: options) { event in
            if case .note(let text) = event { notes.append(text) }
        }
        try t.run()
        XCTAssertTrue(notes.contains { $0.hasPrefix("skipping \(newest)") }, "\(notes)")
        XCTAssertTrue(notes.contains { $0.contains(Trainer.checkpointName(step: 3)) }, "\(notes)")
        XCTAssertEqual(t.state.step, 9)
    }

    func testADifferentRecipeIsRefusedUnlessForced() throws {
        var o = Fixtures.Options()
        o.steps = 6
        o.checkpointInterval = 3
        let dir = try Fixtures.directory("mismatch")
        try trainer(dir, o, stopAfter: 3).run()
        var changed = o
        changed.lr = 1e-3
        changed.evalInterval = 2      // evaluation settings may change freely
        XCTAssertThrowsError(try trainer(dir, changed, resume: true).run()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("optimizer.lr: 0.003 in the checkpoint, 0.001 here"), text)
            XCTAssertTrue(text.contains("optimizer.min_lr"), text)
            XCTAssertFalse(text.contains("eval.interval"), text)
            XCTAssertTrue(text.contains("--force"), text)
        }
        XCTAssertNoThrow(try trainer(dir, changed, resume: true, force: true).run())
    }

    /// The validation's state checks are bounds, not an exact step × batch product: a run resumed with --force
    /// across a change of batch size writes checkpoints that every reader still accepts.
    func testAForcedResumeAcrossABatchChangeWritesValidCheckpoints() throws {
        var o = Fixtures.Options()
        o.steps = 6
        o.checkpointInterval = 3
        let dir = try Fixtures.directory("forcedbatch")
        try trainer(dir, o, stopAfter: 3).run()
        var smaller = o
        smaller.microBatch = 2
        XCTAssertThrowsError(try trainer(dir, smaller, resume: true).run())
        try trainer(dir, smaller, resume: true, force: true).run()
        let (reader, _) = try CheckpointReader.openValidated("\(dir)/run/checkpoints/\(Trainer.checkpointName(step: 6))")
        XCTAssertEqual(reader.state.windowsDrawn, 3 * 4 + 3 * 2)
        XCTAssertNoThrow(try LoadedCheckpoint(path: "\(dir)/run/checkpoints/\(Trainer.checkpointName(step: 6))", threads: 1,
                                              verifyMoments: true))
    }

    func testAFreshRunRefusesADirectoryWithCheckpoints() throws {
        var o = Fixtures.Options()
        o.steps = 2
        o.checkpointInterval = 2
        let dir = try Fixtures.directory("occupied")
        try trainer(dir, o).run()
        XCTAssertThrowsError(try trainer(dir, o).run()) { error in
            XCTAssertTrue("\(error)".contains("--resume"), "\(error)")
        }
    }

    /// A checkpoint that cannot be written stops the run with an error and leaves the older ones intact. The
    /// directory is made read-only after the first checkpoint; root ignores permissions, so as root the write is
    /// made to fail by putting a directory where the temporary file must go.
    func testAFailedWriteStopsTheRunAndKeepsOlderCheckpoints() throws {
        var o = Fixtures.Options()
        o.steps = 6
        o.checkpointInterval = 2
        let dir = try Fixtures.directory("failwrite")
        let checkpoints = "\(dir)/run/checkpoints"
        let root = geteuid() == 0
        var trainer: Trainer?
        let recipe = try Fixtures.recipe(in: dir, o)
        trainer = try Trainer(recipePath: recipe, options: TrainingOptions(runDirectory: "\(dir)/run", threads: 2)) { event in
            guard case .checkpointSaved(_, 2) = event else { return }
            if root {
                let blocker = "\(checkpoints)/.\(Trainer.checkpointName(step: 4)).tmp-\(getpid())"
                try? FileManager.default.createDirectory(atPath: blocker, withIntermediateDirectories: true)
            } else {
                chmod(checkpoints, 0o555)
            }
        }
        defer { chmod(checkpoints, 0o755) }
        XCTAssertThrowsError(try trainer!.run()) { error in
            XCTAssertTrue("\(error)".contains(Trainer.checkpointName(step: 4)), "\(error)")
            XCTAssertTrue("\(error)".contains("could not be written"), "\(error)")
        }
        XCTAssertEqual(trainer!.state.step, 4, "the run stops at the failed checkpoint")
        XCTAssertEqual(Trainer.checkpoints(in: checkpoints).map(\.step), [2])
        XCTAssertNoThrow(try CheckpointReader(path: "\(checkpoints)/\(Trainer.checkpointName(step: 2))"))
    }

    func testKeepRemovesOnlyTheOldest() throws {
        var o = Fixtures.Options()
        o.steps = 10
        o.checkpointInterval = 2
        o.keep = 2
        let dir = try Fixtures.directory("keep")
        try trainer(dir, o).run()
        XCTAssertEqual(Trainer.checkpoints(in: "\(dir)/run/checkpoints").map(\.step), [10, 8])
    }
}
