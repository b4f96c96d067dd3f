import CHDF5
import Checkpoint
import Foundation
import TestFixtures
import Runtime
import Trainer
import XCTest

/// One damaged checkpoint per class of damage, each given to every reader: `gpt-train eval`, `gpt-train inspect`,
/// `gpt-sample` and `gpt-train --resume`. A reader that uses the damaged part refuses the file with exit status 1,
/// naming the file, the dataset and the fix; `--resume` skips it with a note and continues from the older valid
/// checkpoint. `eval` and `gpt-sample` use only the weights, so damage confined to the AdamW moments is theirs to
/// ignore (their structure is still checked); `inspect` reads every byte.
final class CorruptCheckpointTests: XCTestCase {
    struct Damage {
        var name: String
        /// Text the refusal must contain (the dataset and the problem).
        var expected: String
        /// Whether the weights' readers (eval, gpt-sample) must refuse it too.
        var usesWeights = true
        var apply: (String) throws -> Void
    }

    static let wte = "/model/transformer.wte.weight"

    static func rewrite(_ name: String, as fileType: @escaping () -> hid_t, checksum: Bool = true) -> (String) throws -> Void {
        { path in
            try HDF5Surgery.edit(path) { file in
                let values = try HDF5Surgery.readFloats(file, name)
                let shape = try HDF5Surgery.shape(file, name)
                let type = fileType()
                try HDF5Surgery.replace(file, name, fileType: type, memoryType: gpt_H5T_NATIVE_FLOAT(), shape: shape,
                                        data: values, checksum: checksum)
            }
        }
    }

    let damages: [Damage] = [
        Damage(name: "int32-weight", expected: "\(wte) is stored as int32; this format writes float32",
               apply: rewrite(wte, as: { H5Tcopy(gpt_H5T_STD_I32LE()) })),
        Damage(name: "float16-weight", expected: "\(wte) is stored as float16; this format writes float32",
               apply: rewrite(wte, as: HDF5Surgery.float16)),
        Damage(name: "nan-weight", expected: "/model/transformer.h.0.attn.c_attn.weight holds a non-finite value (nan) at element 5") { path in
            try HDF5Surgery.edit(path) { try HDF5Surgery.changeFloats($0, "/model/transformer.h.0.attn.c_attn.weight") { $0[5] = .nan } }
        },
        Damage(name: "inf-moment", expected: "/optimizer/v/transformer.wpe.weight holds a non-finite value (inf) at element 3",
               usesWeights: false) { path in
            try HDF5Surgery.edit(path) { try HDF5Surgery.changeFloats($0, "/optimizer/v/transformer.wpe.weight") { $0[3] = .infinity } }
        },
        Damage(name: "negative-step", expected: "/state/step is -5; a step count is at least 0") { path in
            try HDF5Surgery.edit(path) { try HDF5Surgery.writeInt64($0, "/state/step", -5) }
        },
        Damage(name: "step-past-the-end", expected: "/state/step is 7, past its recipe's training.steps 6") { path in
            try HDF5Surgery.edit(path) { file in
                try HDF5Surgery.writeInt64(file, "/state/step", 7)
                try HDF5Surgery.writeInt64(file, "/state/optimizer_steps", 7)
                try HDF5Surgery.writeInt64(file, "/state/windows_drawn", 28)
                try HDF5Surgery.writeInt64(file, "/state/tokens_seen", 448)
            }
        },
        Damage(name: "tokens-past-the-windows", expected: "/state/tokens_seen 100000 is more than /state/windows_drawn 16 windows of at most model.seq_len 16 tokens hold") { path in
            try HDF5Surgery.edit(path) { try HDF5Surgery.writeInt64($0, "/state/tokens_seen", 100_000) }
        },
        Damage(name: "extra-tensor", expected: "unexpected /model/extra.weight") { path in
            try HDF5Surgery.edit(path) { file in
                let values: [Float] = [1, 2, 3, 4]
                try HDF5Surgery.replace(file, "/model/extra.weight", fileType: gpt_H5T_IEEE_F32LE(),
                                        memoryType: gpt_H5T_NATIVE_FLOAT(), shape: [4], data: values)
            }
        },
        Damage(name: "missing-tensor", expected: "missing /model/transformer.ln_f.weight") { path in
            try HDF5Surgery.edit(path) { try HDF5Surgery.delete($0, "/model/transformer.ln_f.weight") }
        },
        Damage(name: "no-checksum", expected: "/model/transformer.wpe.weight is stored without the Fletcher-32 checksum",
               apply: rewrite("/model/transformer.wpe.weight", as: { H5Tcopy(gpt_H5T_IEEE_F32LE()) }, checksum: false)),
        Damage(name: "damaged-optimizer", expected: "/optimizer/m/transformer.wte.weight: its checksum does not match",
               usesWeights: false) { path in
            try HDF5Surgery.flipByte(path, at: try HDF5Surgery.firstChunkAddress(path, "/optimizer/m/transformer.wte.weight") + 64)
        },
    ]

    func testEveryReaderRefusesEveryClassOfDamage() throws {
        let dir = try Fixtures.directory("corrupt")
        var o = Fixtures.Options.checkpointed(steps: 6, every: 2)
        o.evalInterval = 2
        let recipe = try Fixtures.recipe(in: dir, o)
        let first = try Tool.run("gpt-train", [recipe, "--out", "\(dir)/run", "--steps", "4", "--threads", "2", "--no-mfu"])
        XCTAssertEqual(first.status, 0, first.stderr)
        let good = "\(dir)/run/checkpoints/\(Trainer.checkpointName(step: 4))"
        let older = "\(dir)/run/checkpoints/\(Trainer.checkpointName(step: 2))"
        let clean = try Tool.run("gpt-train", ["inspect", good])
        XCTAssertEqual(clean.status, 0, "the undamaged file passes: \(clean.stderr)")
        XCTAssertTrue(clean.stdout.contains("verified: every weight and AdamW moment read back"), clean.stdout)
        XCTAssertEqual(try Tool.run("gpt-train", ["eval", good, "--windows", "2", "--json"]).status, 0)

        for damage in damages {
            let file = "\(dir)/\(damage.name).h5"
            try FileManager.default.copyItem(atPath: good, toPath: file)
            try damage.apply(file)
            XCTAssertThrowsError(try CheckpointReader.openValidated(file).reader.verifyTensors(
                CheckpointExpectation(try CheckpointReader.parseRecipe(try String(contentsOfFile: recipe, encoding: .utf8),
                                                                       of: recipe)).tensors),
                                 damage.name) { error in
                XCTAssertTrue("\(error)".contains(damage.expected), "\(damage.name): \(error)")
            }

            let inspect = try Tool.run("gpt-train", ["inspect", file])
            assertRefused(inspect, file: file, damage, "inspect")
            let eval = try Tool.run("gpt-train", ["eval", file, "--windows", "2", "--json"])
            let sample = try Tool.run("gpt-sample", [file, "--tokens", "3"])
            if damage.usesWeights {
                assertRefused(eval, file: file, damage, "eval")
                assertRefused(sample, file: file, damage, "gpt-sample")
            } else {
                XCTAssertEqual(eval.status, 0, "\(damage.name): eval reads only the weights\n\(eval.stderr)")
                XCTAssertEqual(sample.status, 0, "\(damage.name): gpt-sample reads only the weights\n\(sample.stderr)")
            }

            // --resume: the damaged file is the newest checkpoint of a copy of the run.
            let run = "\(dir)/resume-\(damage.name)"
            try FileManager.default.copyItem(atPath: "\(dir)/run", toPath: run)
            let newest = "\(run)/checkpoints/\(Trainer.checkpointName(step: 4))"
            try FileManager.default.removeItem(atPath: newest)
            try FileManager.default.copyItem(atPath: file, toPath: newest)
            let resumed = try Tool.run("gpt-train", [recipe, "--out", run, "--resume", "--steps", "5", "--threads", "2", "--no-mfu"])
            XCTAssertEqual(resumed.status, 0, "\(damage.name): \(resumed.stderr)")
            XCTAssertTrue(resumed.stderr.contains("note: skipping \(newest): \(newest): "), "\(damage.name): \(resumed.stderr)")
            XCTAssertTrue(resumed.stderr.contains(damage.expected), "\(damage.name): \(resumed.stderr)")
            XCTAssertTrue(resumed.stderr.contains("resuming from \(run)/checkpoints/\(Trainer.checkpointName(step: 2))"),
                          "\(damage.name): \(resumed.stderr)")
            XCTAssertTrue(resumed.stderr.contains("steps 3...5 of 6"), "\(damage.name): \(resumed.stderr)")
            let written = "\(run)/checkpoints/\(Trainer.checkpointName(step: 5))"
            XCTAssertNoThrow(try CheckpointReader.openValidated(written), damage.name)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(run)/checkpoints/\(Trainer.checkpointName(step: 2))")),
                           try Data(contentsOf: URL(fileURLWithPath: older)), "\(damage.name): the older checkpoint is untouched")
        }
    }

    func assertRefused(_ out: Tool.Output, file: String, _ damage: Damage, _ reader: String,
                       line: UInt = #line) {
        XCTAssertEqual(out.status, 1, "\(damage.name) through \(reader): \(out.stderr)", line: line)
        XCTAssertTrue(out.stderr.contains(file), "\(damage.name) through \(reader): \(out.stderr)", line: line)
        XCTAssertTrue(out.stderr.contains(damage.expected), "\(damage.name) through \(reader): \(out.stderr)", line: line)
        XCTAssertTrue(out.stderr.contains(CheckpointError.damagedFix), "\(damage.name) through \(reader): \(out.stderr)", line: line)
        XCTAssertFalse(out.stderr.contains("Fatal error") || out.stderr.contains("Program crashed"), out.stderr, line: line)
    }

    /// Temporary files of checkpoint writes that were killed are removed when the run resumes; files of a live
    /// process, files of other names and non-files are left alone.
    func testAbandonedTemporaryFilesAreRemovedOnResume() throws {
        let dir = try Fixtures.directory("temporaries")
        let recipe = try Fixtures.recipe(in: dir, .checkpointed(steps: 4, every: 2))
        XCTAssertEqual(try Tool.run("gpt-train", [recipe, "--out", "\(dir)/run", "--steps", "2", "--no-mfu"]).status, 0)
        let checkpoints = "\(dir)/run/checkpoints"
        let finished = Process()
        finished.executableURL = URL(fileURLWithPath: "/bin/true")
        try finished.run()
        finished.waitUntilExit()
        let dead = finished.processIdentifier
        let abandoned = "\(checkpoints)/.\(Trainer.checkpointName(step: 4)).tmp-\(dead)"
        let live = "\(checkpoints)/.\(Trainer.checkpointName(step: 4)).tmp-\(getpid())"
        let other = "\(checkpoints)/.notes.txt.tmp-\(dead)"
        let notAFile = "\(checkpoints)/.\(Trainer.checkpointName(step: 6)).tmp-\(dead)"
        for path in [abandoned, live, other] { try Data(repeating: 7, count: 1000).write(to: URL(fileURLWithPath: path)) }
        try FileManager.default.createDirectory(atPath: notAFile, withIntermediateDirectories: false)

        let resumed = try Tool.run("gpt-train", [recipe, "--out", "\(dir)/run", "--resume", "--no-mfu"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("note: removed \(abandoned), left by a checkpoint write that was interrupted"),
                      resumed.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: abandoned))
        for kept in [live, other, notAFile] { XCTAssertTrue(FileManager.default.fileExists(atPath: kept), kept) }
        XCTAssertEqual(Trainer.checkpoints(in: checkpoints).map(\.step), [4, 2])
    }
}
