import Foundation
import TestFixtures
import XCTest

/// Llama-style recipes: gpt-plan checks them by gpt-train's rule, and gpt-train starts them (issue 24); one with
/// biases is refused by both with the reason, before anything is read or allocated.
final class PlanFamilyCommandTests: XCTestCase {
    func testALlamaRecipeIsCheckedByGPTPlanAndStartedByGPTTrain() throws {
        let dir = try Fixtures.directory("llama-recipe")
        var options = Fixtures.Options()
        options.bias = false
        let path = try Fixtures.recipe(in: dir, options)
        var text = try String(contentsOfFile: path, encoding: .utf8)
        // The fixture's 2-layer, 32-wide model as a Llama (SwiGLU MLP, tied head kept, one KV head): recount N.
        text = text.replacingOccurrences(of: "family = \"gpt2\"", with: "family = \"llama\"")
        text = text.replacingOccurrences(of: "n_kv_head = 2", with: "n_kv_head = 1")
        XCTAssertTrue(text.contains("family = \"llama\"") && text.contains("n_kv_head = 1"))
        // N = 64·32 (tied embedding) + 2 × (2·32² + 2·32·16 + 3·32·128 + 2·32) + 32 = 32,928 (no biases);
        // D = 30 steps × 4 × 16 tokens.
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.hasPrefix("flops_budget = ") ? "flops_budget = \(6.0 * 32_928 * 1920)" : String(line)
        }
        text = lines.joined(separator: "\n")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        // Without [hardware] the recipe is for gpt-train here: check passes it, and so does gpt-train --check-only.
        let check = try Tool.run("gpt-plan", ["check", path])
        XCTAssertEqual(check.status, 0, check.stdout + check.stderr)
        let start = try Tool.run("gpt-train", [path, "--out", "\(dir)/run", "--check-only"])
        XCTAssertEqual(start.status, 0, start.stdout + start.stderr)
        XCTAssertTrue(start.stdout.contains("can start here"), start.stdout)

        // With biases (Llama has none) both refuse it with the same reason, and nothing is written.
        let biased = "\(dir)/biased.toml"
        try text.replacingOccurrences(of: "bias = false", with: "bias = true").write(toFile: biased, atomically: true, encoding: .utf8)
        let biasCheck = try Tool.run("gpt-plan", ["check", biased])
        XCTAssertEqual(biasCheck.status, 1, biasCheck.stdout + biasCheck.stderr)
        XCTAssertTrue(biasCheck.stdout.contains("\(biased): error: model.bias = true: gpt-train's Llama model has no biases"),
                      biasCheck.stdout)
        let gpuPath = "\(dir)/gpu.toml"
        try (text.replacingOccurrences(of: "bias = false", with: "bias = true")
             + "\n[hardware]\nname = \"h100-sxm-80gb\"\ndevice_memory = 80000000000\ndevice_flops = 989e12\nmfu = 0.4\n")
            .write(toFile: gpuPath, atomically: true, encoding: .utf8)
        let gpuCheck = try Tool.run("gpt-plan", ["check", gpuPath])
        XCTAssertEqual(gpuCheck.status, 0, gpuCheck.stdout + gpuCheck.stderr)
        XCTAssertTrue(gpuCheck.stdout.contains("\(gpuPath): gpt-train: could not start this recipe here: model.bias = true"),
                      gpuCheck.stdout)
        let train = try Tool.run("gpt-train", [biased, "--out", "\(dir)/biased-run"])
        XCTAssertEqual(train.status, 1, train.stdout + train.stderr)
        XCTAssertTrue(train.stderr.contains("model.bias = true") && train.stderr.contains("set model.bias = false"), train.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/biased-run"), "nothing is written for a refused recipe")
    }

    /// `gpt-plan --family llama` plans a Llama-style model and writes its recipe, which check passes (for its GPU).
    func testALlamaPlanIsWrittenAndChecked() throws {
        let dir = try Fixtures.directory("llama-plan")
        let plan = try Tool.run("gpt-plan", ["--flops", "1e20", "--family", "llama", "--gpu", "h100-sxm-80gb",
                                             "-o", "\(dir)/r.toml", "--json"])
        XCTAssertEqual(plan.status, 0, plan.stderr)
        let text = try String(contentsOfFile: "\(dir)/r.toml", encoding: .utf8)
        for line in ["family = \"llama\"", "n_kv_head = 8", "tie_embeddings = false", "rope_theta = 500000.0"] {
            XCTAssertTrue(text.contains(line + "\n"), line)
        }
        let check = try Tool.run("gpt-plan", ["check", "\(dir)/r.toml"])
        XCTAssertEqual(check.status, 0, check.stdout)
        let bad = try Tool.run("gpt-plan", ["--flops", "1e20", "--family", "mamba"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("The value 'mamba' is invalid for '--family <family>'")
                      && bad.stderr.contains("'gpt2' and 'llama'"), bad.stderr)
    }
}
