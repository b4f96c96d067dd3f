import Foundation
import TestFixtures
import Trainer
import XCTest

/// gpt-data and gpt-sample as a user meets them.
final class DataAndSampleCommandTests: XCTestCase {
    func testPrepareEncodeDecodeAndTrainOnTheResult() throws {
        let dir = try Fixtures.directory("cli-data")
        try FileManager.default.createDirectory(atPath: "\(dir)/texts", withIntermediateDirectories: true)
        try Fixtures.text(bytes: 40_000, seed: 1).write(toFile: "\(dir)/texts/a.txt", atomically: true, encoding: .utf8)
        try Fixtures.text(bytes: 10_000, seed: 2).write(toFile: "\(dir)/texts/b.txt", atomically: true, encoding: .utf8)
        let prepared = try Tool.run("gpt-data", ["prepare", "texts", "--tokenizer", "bpe", "--vocab-size", "300", "-o", "bpe"], in: dir)
        XCTAssertEqual(prepared.status, 0, prepared.stderr)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/bpe")),
                       ["train.bin", "val.bin", "tokenizer.json", "meta.json"])

        let text = "KING:\nmy lord, 日本 ✓ naïve\n"
        let encoded = try Tool.run("gpt-data", ["encode", "--tokenizer", "bpe", text], in: dir)
        XCTAssertEqual(encoded.status, 0, encoded.stderr)
        let decoded = try Tool.run("gpt-data", ["decode", "--tokenizer", "bpe"] + encoded.stdout.split(separator: " ").map {
            $0.trimmingCharacters(in: .whitespacesAndNewlines) }, in: dir)
        XCTAssertEqual(decoded.stdout, text)
        let info = try Tool.run("gpt-data", ["info", "bpe"], in: dir)
        XCTAssertTrue(info.stdout.contains("bpe tokenizer, 300 tokens"), info.stdout)

        // A planned recipe on the prepared directory trains.
        let plan = try Tool.run("gpt-plan", ["--flops", "2e11", "--data", "bpe", "-o", "runs/r.toml",
                                             "--device-flops", "4e11", "--device-memory", "8GiB"], in: dir)
        XCTAssertEqual(plan.status, 0, plan.stderr)
        let recipe = try String(contentsOfFile: "\(dir)/runs/r.toml", encoding: .utf8)
        XCTAssertTrue(recipe.contains("path = \"../bpe\""), "data.path is relative to the recipe")
        XCTAssertTrue(recipe.contains("tokenizer = \"bpe\""))
        XCTAssertTrue(recipe.contains("vocab_size = 320"), "300 padded to a multiple of 64")
        let train = try Tool.run("gpt-train", ["runs/r.toml", "--out", "runs/r", "--steps", "5", "--no-mfu"], in: dir)
        XCTAssertEqual(train.status, 0, train.stderr)

        let bad = try Tool.run("gpt-data", ["prepare", "missing", "--tokenizer", "bpe", "-o", "x"], in: dir)
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("missing: no such file or directory"), bad.stderr)
        let usage = try Tool.run("gpt-data", ["prepare", "texts", "--tokenizer", "words", "-o", "x"], in: dir)
        XCTAssertEqual(usage.status, 2)
        XCTAssertTrue(usage.stderr.contains("'words' is invalid for '--tokenizer <tokenizer>'. Please provide one of "
                                            + "'char', 'byte', 'bpe', 'TOKENIZER.json' or 'TOKENIZER_DIR'."), usage.stderr)
    }

    func testSameSeedSameTextAndTheCacheChangesNothing() throws {
        let dir = try Fixtures.directory("cli-sample")
        var o = Fixtures.Options()
        o.steps = 40
        o.checkpointInterval = 40
        let recipe = try Fixtures.recipe(in: dir, o)
        XCTAssertEqual(try Tool.run("gpt-train", [recipe, "--out", "\(dir)/run", "--no-mfu"]).status, 0)
        let ckpt = "\(dir)/run/checkpoints/\(Trainer.checkpointName(step: 40))"
        // 60 tokens past a 16-token context: the window slides several times.
        let args = [ckpt, "--prompt", "KING:\n", "--tokens", "60", "--seed", "5", "--temperature", "1.0"]
        let a = try Tool.run("gpt-sample", args), b = try Tool.run("gpt-sample", args)
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertEqual(a.stdout, b.stdout)
        XCTAssertTrue(a.stdout.hasPrefix("KING:\n"))
        // The model's vocabulary is padded to 64 rows; only the tokenizer's characters are ever sampled.
        XCTAssertFalse(a.stdout.contains("\u{FFFD}"), a.stdout)
        XCTAssertEqual(try Tool.run("gpt-sample", args + ["--no-cache"]).stdout, a.stdout)
        XCTAssertNotEqual(try Tool.run("gpt-sample", [ckpt, "--prompt", "KING:\n", "--tokens", "60", "--seed", "6",
                                                      "--temperature", "1.0"]).stdout, a.stdout)
        let unknown = try Tool.run("gpt-sample", [ckpt, "--prompt", "Ω"])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("U+03A9"), unknown.stderr)
    }
}
