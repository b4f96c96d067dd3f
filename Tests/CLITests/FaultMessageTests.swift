import Foundation
import TestFixtures
import XCTest

/// Faults outside the recipe loader that used to end with a raw Foundation error or a silent success.
final class FaultMessageTests: XCTestCase {
    /// A `[checkpoint] dir` the file system cannot hold (a name over 255 bytes) is refused by the recipe check, naming
    /// the key and the fix; an `--out` that cannot be created names the option, instead of NSCocoaErrorDomain
    /// Code=514.
    func testAnUncreatableCheckpointDirNamesTheKey() throws {
        let dir = try Fixtures.directory("longdir")
        let recipe = try Fixtures.recipe(in: dir)
        let long = String(repeating: "d", count: 300)
        let original = try String(contentsOfFile: recipe, encoding: .utf8)
        let longRecipe = "\(dir)/long.toml"
        try original.replacingOccurrences(of: "dir = \"checkpoints\"", with: "dir = \"\(long)\"")
            .write(toFile: longRecipe, atomically: true, encoding: .utf8)
        let out = try Tool.run("gpt-train", [longRecipe, "--out", "\(dir)/run", "--no-mfu"])
        XCTAssertEqual(out.status, 1, out.stderr)
        XCTAssertTrue(out.stderr.contains("checkpoint.dir: has a component of 300 bytes, over the 255-byte limit of a file name"),
                      out.stderr)
        XCTAssertTrue(out.stderr.contains("Fix:"), out.stderr)
        XCTAssertFalse(out.stderr.contains("Code=514") || out.stderr.contains("NSCocoaErrorDomain"), out.stderr)

        let longOut = try Tool.run("gpt-train", [recipe, "--out", "\(dir)/\(long)", "--no-mfu"])
        XCTAssertEqual(longOut.status, 1, longOut.stderr)
        XCTAssertTrue(longOut.stderr.contains("--out: cannot create the run directory \(dir)/\(long): File name too long. Fix: give --out"),
                      longOut.stderr)
        XCTAssertFalse(longOut.stderr.contains("Code=514") || longOut.stderr.contains("NSCocoaErrorDomain"), longOut.stderr)
    }

    /// `gpt-data prepare` refuses text too short to leave tokens on both sides of the split, before writing
    /// anything, instead of exiting 0 with an empty train.bin that only gpt-train would refuse.
    func testPrepareRefusesAnEmptySplit() throws {
        let dir = try Fixtures.directory("emptysplit")
        try "a".write(toFile: "\(dir)/one.txt", atomically: true, encoding: .utf8)
        let out = try Tool.run("gpt-data", ["prepare", "\(dir)/one.txt", "--tokenizer", "char", "-o", "\(dir)/prepared"])
        XCTAssertEqual(out.status, 1, out.stderr)
        XCTAssertTrue(out.stderr.contains("the training part would hold no tokens"), out.stderr)
        XCTAssertTrue(out.stderr.contains("Fix: give more text, or a --val-fraction"), out.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/prepared"), "nothing is written")

        try "abc".write(toFile: "\(dir)/three.txt", atomically: true, encoding: .utf8)
        let tail = try Tool.run("gpt-data", ["prepare", "\(dir)/three.txt", "--tokenizer", "byte", "--val-fraction", "1e-17",
                                             "-o", "\(dir)/prepared"])
        XCTAssertEqual(tail.status, 1, tail.stderr)
        XCTAssertTrue(tail.stderr.contains("the validation part would hold no tokens"), tail.stderr)
    }

    /// `eval --json` never reaches JSONSerialization with a non-finite number: weights that are finite but
    /// overflow float32 in the forward pass give a clear refusal.
    func testEvalRefusesANonFiniteLossInsteadOfAFoundationError() throws {
        let dir = try Fixtures.directory("overflow")
        let recipe = try Fixtures.recipe(in: dir, .checkpointed(steps: 2, every: 2))
        XCTAssertEqual(try Tool.run("gpt-train", [recipe, "--out", "\(dir)/run", "--no-mfu"]).status, 0)
        let path = "\(dir)/run/checkpoints/ckpt-00000002.h5"
        // Huge but finite weights in the output head (the tied embedding): the logits overflow to ±inf.
        try HDF5Surgery.edit(path) { file in
            try HDF5Surgery.changeFloats(file, "/model/transformer.wte.weight") { values in
                for i in values.indices { values[i] = i % 2 == 0 ? 3e38 : -3e38 }
            }
            try HDF5Surgery.changeFloats(file, "/model/transformer.ln_f.weight") { values in
                for i in values.indices { values[i] = 3e38 }
            }
        }
        let out = try Tool.run("gpt-train", ["eval", path, "--windows", "2", "--json"])
        XCTAssertEqual(out.status, 1, out.stderr + out.stdout)
        XCTAssertTrue(out.stderr.contains("\(path): the val loss comes out"), out.stderr)
        XCTAssertTrue(out.stderr.contains("Fix:"), out.stderr)
        XCTAssertFalse(out.stderr.contains("JSON"), out.stderr)
        // gpt-sample shares the check (it printed "zzzz…" from NaN logits).
        let sample = try Tool.run("gpt-sample", [path, "--tokens", "5", "--threads", "1"])
        XCTAssertEqual(sample.status, 1, sample.stderr + sample.stdout)
        XCTAssertTrue(sample.stderr.contains("gpt-sample: \(path): the logits at position "), sample.stderr)
        XCTAssertTrue(sample.stderr.contains("the model's activations overflow float32"), sample.stderr)
        XCTAssertTrue(sample.stderr.contains("Fix: use an earlier checkpoint of the run"), sample.stderr)
        XCTAssertEqual(sample.stdout, "", "nothing sampled")
    }
}
