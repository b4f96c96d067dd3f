import Foundation
import TestFixtures
import XCTest

/// gpt-train ablate: variants of a recipe run one after the other, a table and the curves, and a rerun that skips
/// what is finished.
final class AblationCommandTests: XCTestCase {
    func testGridRunsEveryVariantWritesTheTableAndResumes() throws {
        let dir = try Fixtures.directory("cli-ablate")
        var o = Fixtures.Options()
        o.steps = 12
        o.evalInterval = 6
        o.checkpointInterval = 6
        o.logInterval = 3
        let recipe = try Fixtures.recipe(in: dir, o)
        let arguments = [recipe, "--vary", "schedule.warmup_steps=0,3", "--vary", "schedule.decay=cosine,constant",
                         "--out", "\(dir)/ablation", "--threads", "2"]
        let first = try Tool.run("gpt-train", ["ablate"] + arguments)
        XCTAssertEqual(first.status, 0, first.stderr)
        let names = ["warmup_steps=0,decay=cosine", "warmup_steps=0,decay=constant",
                     "warmup_steps=3,decay=cosine", "warmup_steps=3,decay=constant"]
        let table = try String(contentsOfFile: "\(dir)/ablation/ablation.md", encoding: .utf8)
        let rows = table.split(separator: "\n").filter { $0.hasPrefix("| warmup_steps=") }
        XCTAssertEqual(rows.map { String($0.split(separator: "|")[0].trimmingCharacters(in: .whitespaces)) }, names)
        for name in names {
            // Each variant is a complete run of 12 steps with the varied keys in its recipe.
            let metrics = try Fixtures.metrics(runDirectory: "\(dir)/ablation/\(name)")
            XCTAssertEqual(metrics.last?["step"], 12, name)
            let variant = try String(contentsOfFile: "\(dir)/ablation/\(name)/recipe.toml", encoding: .utf8)
            XCTAssertTrue(variant.contains("warmup_steps = \(name.contains("=0,") ? 0 : 3)\n"), name)
            XCTAssertTrue(variant.contains("decay = \"\(name.hasSuffix("cosine") ? "cosine" : "constant")\"\n"), name)
        }
        // The same seed and data: with warmup 0 the two decays share their first step exactly.
        let a = try Fixtures.metrics(runDirectory: "\(dir)/ablation/\(names[0])")
        let b = try Fixtures.metrics(runDirectory: "\(dir)/ablation/\(names[1])")
        XCTAssertEqual(a[0]["train_loss"], b[0]["train_loss"])
        let svg = try String(contentsOfFile: "\(dir)/ablation/curves.svg", encoding: .utf8)
        for name in names { XCTAssertTrue(svg.contains(name), name) }

        let again = try Tool.run("gpt-train", ["ablate"] + arguments)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(again.stderr.components(separatedBy: "finished before, skipped").count - 1, 4, again.stderr)
    }

    func testBadVariationsAreRefusedWithTheFix() throws {
        let dir = try Fixtures.directory("cli-ablate-bad")
        let recipe = try Fixtures.recipe(in: dir)
        let unknown = try Tool.run("gpt-train", ["ablate", recipe, "--vary", "schedule.warmup=0,3", "--out", "\(dir)/x"])
        XCTAssertEqual(unknown.status, 2)
        XCTAssertTrue(unknown.stderr.contains("did you mean schedule.warmup_steps?"), unknown.stderr)
        let wrongType = try Tool.run("gpt-train", ["ablate", recipe, "--vary", "optimizer.lr=1e-3,fast", "--out", "\(dir)/x"])
        XCTAssertEqual(wrongType.status, 2)
        XCTAssertTrue(wrongType.stderr.contains("\"fast\" is not a number"), wrongType.stderr)
        let uneven = try Tool.run("gpt-train", ["ablate", recipe, "--list", "--vary", "schedule.warmup_steps=0,3",
                                                "--vary", "schedule.decay=cosine", "--out", "\(dir)/x"])
        XCTAssertEqual(uneven.status, 2)
        XCTAssertTrue(uneven.stderr.contains("with --list every --vary needs as many values"), uneven.stderr)
        let outOfRange = try Tool.run("gpt-train", ["ablate", recipe, "--vary", "optimizer.lr=2.0", "--out", "\(dir)/x"])
        XCTAssertEqual(outOfRange.status, 1)
        XCTAssertTrue(outOfRange.stderr.contains("optimizer.lr"), outOfRange.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/x/ablation.md"))
    }
}
