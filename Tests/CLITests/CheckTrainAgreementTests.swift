import Foundation
import TestFixtures
import XCTest

/// `gpt-plan check` and `gpt-train` ask one type (`CPUTrainer`) whether the CPU trainer can run a recipe here, so
/// they cannot disagree: this feeds both the same recipes and compares their verdicts, recipe by recipe.
///
/// The recipes: the shipped ones, plans `gpt-plan -o` writes for this machine (1e12 to 1e16 FLOPs) and for GPU presets
/// (1e18 to 1e20, one Llama-style), and each of those mutated in the keys the rule reads (tensor and pipeline
/// parallelism, ZeRO stage, recompute, a micro-batch as large as the batch, family, tied head, precision, devices).
///
/// The verdicts: gpt-train's is whether `gpt-train RECIPE --check-only` exits 0, which runs everything gpt-train does
/// before it reads the data (the recipe's checks, the model it can build, the bf16 path from the cached ceilings as
/// `--no-mfu` decides it, the layout and the memory on this machine); the data is the recipe's one input check cannot
/// judge, so none is read and none is needed. Check's is, for a recipe whose `[hardware]` is cpu or absent, whether it
/// prints `ok` (exit 0 for that file); for a GPU recipe (valid or not for its hardware) the line it prints,
/// "gpt-train: could start this recipe here" or "could not start".
final class CheckTrainAgreementTests: XCTestCase {
    /// The keys a mutation sets, by section, and what it sets them to; `batch` stands for the recipe's batch over its
    /// devices (a micro-batch as large as a rank's whole share, one accumulation step).
    static let mutations: [(name: String, edits: [(section: String, key: String, value: String)])] = [
        ("as written", []),
        ("tensor_parallel 2", [("training", "tensor_parallel", "2")]),
        ("pipeline_parallel 2", [("training", "pipeline_parallel", "2")]),
        ("zero_stage 2", [("training", "zero_stage", "2")]),
        ("zero_stage 1", [("training", "zero_stage", "1")]),
        ("recompute full", [("training", "recompute", "\"full\"")]),
        ("recompute selective", [("training", "recompute", "\"selective\"")]),
        ("micro-batch of the whole batch", [("training", "micro_batch", "batch"), ("training", "grad_accum", "1")]),
        ("micro-batch of the whole batch, bf16",
         [("training", "micro_batch", "batch"), ("training", "grad_accum", "1"), ("training", "precision", "\"bf16\"")]),
        ("family llama", [("model", "family", "\"llama\"")]),
        ("untied head", [("model", "tie_embeddings", "false")]),
        ("precision bf16", [("training", "precision", "\"bf16\"")]),
        ("devices 2", [("training", "devices", "2")]),
    ]

    func testGptPlanCheckAcceptsExactlyTheRecipesGptTrainWouldStart() throws {
        let dir = try Fixtures.directory("check-train-agreement")
        var bases: [(name: String, text: String)] = []
        let shipped = "\(Tool.repository)/recipes"
        for file in try FileManager.default.contentsOfDirectory(atPath: shipped).sorted() where file.hasSuffix(".toml") {
            bases.append((file, try String(contentsOfFile: "\(shipped)/\(file)", encoding: .utf8)))
        }
        let plans: [[String]] = [
            ["--flops", "1e12", "--vocab", "65"], ["--flops", "1e14", "--vocab", "256"], ["--flops", "1e15"], ["--flops", "1e16"],
            ["--flops", "1e18", "--gpu", "h100-sxm-80gb"], ["--flops", "1e19", "--gpu", "a100-40gb"],
            ["--flops", "1e20", "--gpu", "mi300x"], ["--flops", "1e19", "--gpu", "h100-sxm-80gb", "--family", "llama"],
        ]
        for (k, arguments) in plans.enumerated() {
            let path = "\(dir)/plan-\(k).toml"
            let plan = try Tool.run("gpt-plan", arguments + ["-o", path])
            XCTAssertEqual(plan.status, 0, "gpt-plan \(arguments): \(plan.stderr)")
            bases.append(("plan \(arguments.joined(separator: " "))", try String(contentsOfFile: path, encoding: .utf8)))
        }

        var recipes: [(path: String, what: String)] = []
        for (b, base) in bases.enumerated() {
            for (m, mutation) in Self.mutations.enumerated() {
                let path = "\(dir)/r-\(b)-\(m).toml"
                try Self.apply(mutation.edits, to: base.text).write(toFile: path, atomically: true, encoding: .utf8)
                recipes.append((path, "\(base.name), \(mutation.name)"))
            }
        }

        // One check over all the recipes; each file's verdict is in its own lines.
        let check = try Tool.run("gpt-plan", ["check"] + recipes.map(\.path))
        XCTAssertTrue([0, 1].contains(check.status), check.stderr)
        let lines = check.stdout.split(separator: "\n").map(String.init)
        // gpt-train once a recipe, a batch at a time (each run takes milliseconds; waiting for one takes longer).
        var trains: [Tool.Output] = []
        for batch in stride(from: 0, to: recipes.count, by: 32) {
            let processes = try recipes[batch..<min(batch + 32, recipes.count)].enumerated().map { k, recipe in
                try Tool.start("gpt-train", [recipe.path, "--check-only", "--out", "\(dir)/run-\(batch + k)"])
            }
            for process in processes {
                process.waitUntilExit()
                trains.append(Tool.output(of: process))
            }
        }
        var started = 0, refused = 0, gpuLines = 0, memoryRefusals = 0
        for (recipe, train) in zip(recipes, trains) {
            let gpuLine = lines.first { $0.hasPrefix("\(recipe.path): gpt-train: ") }
            let accepted: Bool
            if let gpuLine {
                gpuLines += 1
                accepted = gpuLine == "\(recipe.path): gpt-train: could start this recipe here"
                XCTAssertTrue(accepted || gpuLine.hasPrefix("\(recipe.path): gpt-train: could not start this recipe here: "),
                              gpuLine)
            } else {
                accepted = lines.contains { $0.hasPrefix("\(recipe.path): ok (") }
            }
            XCTAssertTrue([0, 1].contains(train.status), "\(recipe.what): gpt-train exit \(train.status)\n\(train.stderr)")
            let starts = train.status == 0
            XCTAssertEqual(accepted, starts, """
                \(recipe.what): gpt-plan check \(accepted ? "accepts" : "refuses"), gpt-train \(starts ? "starts" : "refuses")
                check: \(lines.filter { $0.hasPrefix(recipe.path) }.joined(separator: "\n"))
                train: \(train.stdout)\(train.stderr)
                """)
            // A refusal by the CPU trainer's rule is the same refusal, word for word, in both.
            let reason = gpuLine.flatMap { $0.components(separatedBy: "could not start this recipe here: ").dropFirst().first }
                ?? (gpuLine == nil ? lines.first { $0.hasPrefix("\(recipe.path): error: ") }?
                    .dropFirst("\(recipe.path): error: ".count).description : nil)
            if let reason {
                XCTAssertTrue(train.stderr.contains(reason), "\(recipe.what): check says \(reason)\ngpt-train: \(train.stderr)")
                if reason.hasPrefix("training.micro_batch: the run needs ") { memoryRefusals += 1 }
            }
            if starts {
                started += 1
                XCTAssertEqual(train.stdout, "gpt-train: \(recipe.path): can start here\n")
            } else {
                refused += 1
            }
        }
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: dir).contains { $0.hasPrefix("run-") },
                       "--check-only writes nothing")
        // Both verdicts occur, and GPU recipes get their line.
        XCTAssertGreaterThan(started, 10)
        XCTAssertGreaterThan(refused, 10)
        XCTAssertGreaterThan(gpuLines, 2 * Self.mutations.count)
        XCTAssertGreaterThan(memoryRefusals, 2, "some recipes are refused for this machine's memory")
    }

    /// `text` with each `section.key` set to `value` (the line replaced, or added under the section's header).
    static func apply(_ edits: [(section: String, key: String, value: String)], to text: String) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        func range(of section: String) -> Range<Int>? {
            guard let start = lines.firstIndex(of: "[\(section)]") else { return nil }
            let end = lines[(start + 1)...].firstIndex { $0.hasPrefix("[") } ?? lines.count
            return (start + 1)..<end
        }
        func integer(_ section: String, _ key: String) -> Int? {
            guard let r = range(of: section),
                  let line = lines[r].first(where: { $0.hasPrefix("\(key) = ") }) else { return nil }
            return Int(line.dropFirst(key.count + 3).split(separator: " ").first ?? "")
        }
        for edit in edits {
            guard let r = range(of: edit.section) else { continue }
            var value = edit.value
            if value == "batch" { value = String((integer("training", "batch_size") ?? 1) / (integer("training", "devices") ?? 1)) }
            let line = "\(edit.key) = \(value)"
            if let i = lines[r].firstIndex(where: { $0.hasPrefix("\(edit.key) = ") }) { lines[i] = line } else { lines.insert(line, at: r.lowerBound) }
        }
        return lines.joined(separator: "\n")
    }
}
