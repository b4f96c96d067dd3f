import Foundation
import GPTShape
import Planner
import Recipe
import RecipeCompiler
import XCTest

/// A small valid recipe, written by the writer from a real plan.
func plannedRecipe(flops: Double = 1e15, vocab: Int = 65) throws -> (Recipe, [String: String]) {
    var request = PlanRequest(target: .flops(flops), deviceMemoryBytes: 80 * 1024 * 1024 * 1024,
                              deviceFlops: 4e11, deviceDescription: "test")
    request.vocabSize = vocab
    let plan = try Plan.make(request)
    var settings = RunSettings()
    settings.dataPath = "data/shakespeare.txt"
    settings.tokenizer = "char"
    return Recipe.from(plan: plan, settings: settings)
}

final class RecipeRoundTripTests: XCTestCase {
    func testWriterOutputReadsBackAsTheSameRecipe() throws {
        for flops in [1e15, 1e18, 1e20] {
            let (recipe, notes) = try plannedRecipe(flops: flops, vocab: 50257)
            let text = RecipeWriter.write(recipe, notes: notes, header: ["test"])
            let check = RecipeLoader.check(text: text, file: "planned.toml")
            XCTAssertEqual(check.errors, [], "\(flops)")
            XCTAssertEqual(check.recipe, recipe)
        }
    }

    func testEveryValueHasACommentAndTheOrderIsFixed() throws {
        let (recipe, notes) = try plannedRecipe()
        let text = RecipeWriter.write(recipe, notes: notes)
        let lines = text.split(separator: "\n").map(String.init)
        var order: [String] = []
        var section = ""
        for (i, line) in lines.enumerated() {
            if line.hasPrefix("[") { section = String(line.dropFirst().dropLast()); continue }
            if line.hasPrefix("#") { continue }
            let key = String(line.split(separator: " ")[0])
            order.append(section.isEmpty ? key : "\(section).\(key)")
            XCTAssertTrue(lines[i - 1].hasPrefix("#"), "no comment above \(line)")
        }
        // [stability] is optional and a plan leaves it out.
        XCTAssertEqual(order, Schema.fields.filter { $0.section != "stability" }.map(\.path),
                       "every key, [hardware] included: a plan names its hardware")
        XCTAssertTrue(text.contains("[hardware]\n"), "the planned hardware is written")
        XCTAssertTrue(text.contains("# from: DeepSeek LLM"), "provenance of lr and batch is written")
    }

    func testStringsAndFloatsSurviveTheRoundTrip() throws {
        var (recipe, _) = try plannedRecipe()
        recipe.data.path = "dir with \"quotes\"/back\\slash/naïve – 日本.txt"
        recipe.optimizer.lr = 6e-4
        recipe.optimizer.minLR = 0
        recipe.optimizer.eps = 1e-8
        recipe.plan.flopsBudget = 1.2345678901234567e15
        let check = RecipeLoader.check(text: RecipeWriter.write(recipe), file: "x.toml", tolerance: 1)
        XCTAssertEqual(check.recipe?.data.path, recipe.data.path)
        XCTAssertEqual(check.recipe?.optimizer, recipe.optimizer)
        XCTAssertEqual(check.recipe?.plan.flopsBudget, recipe.plan.flopsBudget)
    }

    func testIntegersAreAcceptedForNumbers() throws {
        let (recipe, _) = try plannedRecipe()
        let text = RecipeWriter.write(recipe).replacingOccurrences(of: "grad_clip = 1.0", with: "grad_clip = 1")
        XCTAssertTrue(text.contains("grad_clip = 1\n"))
        let check = RecipeLoader.check(text: text, file: "x.toml")
        XCTAssertEqual(check.errors, [])
        XCTAssertEqual(check.recipe?.optimizer.gradClip, 1.0)
    }

    /// docs/recipe-reference.md is generated from the schema; this keeps it in step.
    func testReferenceDocumentIsCurrent() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let doc = try String(contentsOf: root.appendingPathComponent("docs/recipe-reference.md"), encoding: .utf8)
        XCTAssertEqual(doc, RecipeWriter.referenceMarkdown(),
                       "regenerate docs/recipe-reference.md: swift run gpt-plan reference > docs/recipe-reference.md")
    }

    /// CI runs `gpt-plan check recipes/*.toml`; this runs the same check in-process.
    func testShippedRecipesPass() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let recipes = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("recipes").path)
            .filter { $0.hasSuffix(".toml") }
        XCTAssertGreaterThanOrEqual(recipes.count, 3)
        for name in recipes {
            let check = try RecipeLoader.load(path: root.appendingPathComponent("recipes/\(name)").path)
            XCTAssertEqual(check.errors, [], name)
            XCTAssertNotNil(check.recipe, name)
            XCTAssertEqual(check.problems.filter { $0.kind == .deprecated }, [], "\(name) is in the current format")
            XCTAssertEqual(check.recipe?.schemaVersion, Schema.version, name)
        }
    }
}

final class RecipeProblemTests: XCTestCase {
    var valid = ""

    override func setUpWithError() throws {
        let (recipe, notes) = try plannedRecipe()
        valid = RecipeWriter.write(recipe, notes: notes)
    }

    /// The text with `key = ...` in `section` replaced by `key = value` (or removed when value is nil).
    func edit(_ path: String, _ value: String?) -> String {
        let parts = path.split(separator: ".").map(String.init)
        let section = parts.count == 2 ? parts[0] : "", key = parts.last!
        var current = ""
        var out: [String] = []
        for line in valid.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("[") { current = String(line.dropFirst().dropLast()) }
            if current == section, line.hasPrefix("\(key) = ") {
                if let value { out.append("\(key) = \(value)") }
                continue
            }
            out.append(line)
        }
        return out.joined(separator: "\n")
    }

    func problems(_ text: String, tolerance: Double = 0.05) -> [Problem] {
        RecipeLoader.check(text: text, file: "r.toml", tolerance: tolerance).errors
    }

    func testValidRecipeHasNoErrors() {
        XCTAssertEqual(problems(valid), [])
    }

    func testSyntaxErrorHasLineAndColumn() {
        let text = "schema_version = 1\n[plan]\nflops_budget = = 3\n"
        let found = problems(text)
        XCTAssertEqual(found.count, 1)
        XCTAssertEqual(found.first?.line, 3)
        XCTAssertNotNil(found.first?.column)
        XCTAssertTrue(found.first!.description.hasPrefix("r.toml:3:"), found.first!.description)
    }

    func testUnknownKeyIsNamedWithASuggestion() {
        let text = valid.replacingOccurrences(of: "[optimizer]\n", with: "[optimizer]\nlearning_rat = 3.0\nbeta_1 = 0.9\n")
        let found = problems(text)
        XCTAssertEqual(found.map(\.key), ["optimizer.beta_1", "optimizer.learning_rat"])
        XCTAssertTrue(found[0].fix.contains("did you mean optimizer.beta1?"), found[0].fix)
        XCTAssertNotNil(found[0].line)
    }

    func testUnknownSection() {
        let found = problems(valid + "\n[trainer]\nsteps = 3\n")
        XCTAssertEqual(found.map(\.key), ["trainer"])
        XCTAssertTrue(found[0].fix.contains("did you mean training?"), found[0].fix)
    }

    func testWrongTypes() {
        XCTAssertEqual(problems(edit("training.steps", "\"many\"")).map(\.key), ["training.steps"])
        let float = problems(edit("training.steps", "2000.0"))
        XCTAssertEqual(float.map(\.key), ["training.steps"])
        XCTAssertTrue(float[0].message.contains("without a decimal point"), float[0].message)
        XCTAssertEqual(problems(edit("model.bias", "1")).map(\.key), ["model.bias"])
        XCTAssertEqual(problems(edit("optimizer.lr", "[1, 2]")).map(\.key), ["optimizer.lr"])
    }

    func testValuesOutOfRange() {
        XCTAssertEqual(problems(edit("optimizer.lr", "-1.0")).map(\.key), ["optimizer.lr"])
        XCTAssertEqual(problems(edit("training.dropout", "1.0")).map(\.key), ["training.dropout"])
        XCTAssertEqual(problems(edit("optimizer.beta2", "1.0")).map(\.key), ["optimizer.beta2"])
        XCTAssertEqual(problems(edit("data.tokenizer", "\"words\"")).map(\.key), ["data.tokenizer"])
        XCTAssertEqual(problems(edit("schedule.decay", "\"step\"")).map(\.key), ["schedule.decay"])
        XCTAssertEqual(problems(edit("schema_version", "3")).map(\.key), ["schema_version"])
    }

    func testMissingKey() {
        let found = problems(edit("optimizer.eps", nil))
        XCTAssertEqual(found.map(\.key), ["optimizer.eps"])
        XCTAssertTrue(found[0].fix.contains("add `eps = "), found[0].fix)
    }

    func testEveryProblemIsReportedAtOnce() {
        var text = valid
        for (path, value) in [("optimizer.lr", "-1.0"), ("model.bias", "\"yes\""), ("training.seed", "-3")] {
            valid = text
            text = edit(path, value)
        }
        text += "\n[extra]\n"
        XCTAssertEqual(Set(problems(text).compactMap(\.key)), ["optimizer.lr", "model.bias", "training.seed", "extra"])
    }

    func testUnknownKeysDoNotHideOtherProblems() {
        valid = edit("training.grad_accum", "7")
        let found = problems(valid.replacingOccurrences(of: "[logging]\n", with: "[logging]\nintervall = 3\n"))
        XCTAssertEqual(Set(found.compactMap(\.key)), ["logging.intervall", "training.batch_size"])
    }

    func testAbsurdSizesAreRangeErrorsNotCrashes() {
        let found = problems(edit("model.d_model", "1000000000"))
        XCTAssertEqual(found.map(\.key), ["model.d_model"])
        XCTAssertTrue(found[0].message.contains("an integer in 1...65536"), found[0].message)
        valid = edit("training.steps", "1099511627776")
        XCTAssertEqual(problems(edit("training.batch_size", "16777216")).map(\.key).contains("plan.flops_budget"), true)
    }

    func testHeadsMustDivideWidth() {
        let found = problems(edit("model.n_head", "5"))
        XCTAssertTrue(found.map(\.key).contains("model.n_head"))
    }

    func testTrainingSequencesMustFitTheContext() {
        let found = problems(edit("training.seq_len", "100000"))
        XCTAssertTrue(found.map(\.key).contains("training.seq_len"))
    }

    func testWarmupMustBeShorterThanTheRun() {
        let found = problems(edit("schedule.warmup_steps", "100000000"))
        XCTAssertEqual(found.map(\.key), ["schedule.warmup_steps"])
    }

    func testMinimumLearningRateAbovePeak() {
        let found = problems(edit("optimizer.min_lr", "1.0"))
        XCTAssertEqual(found.map(\.key), ["optimizer.min_lr"])
    }

    func testEffectiveBatchMustBeTheProduct() {
        let found = problems(edit("training.grad_accum", "7"))
        XCTAssertTrue(found.map(\.key).contains("training.batch_size"), "\(found)")
    }

    func testBudgetMustBeSpent() throws {
        let recipe = RecipeLoader.check(text: valid, file: "r.toml").recipe!
        // 10% more steps spends 10% more than the budget: outside ±5%, inside ±20%.
        let more = Int((Double(recipe.training.steps) * 1.1).rounded())
        let found = problems(edit("training.steps", "\(more)"))
        XCTAssertEqual(found.map(\.key), ["plan.flops_budget"])
        XCTAssertTrue(found[0].fix.contains("training.steps = "), found[0].fix)
        XCTAssertEqual(problems(edit("training.steps", "\(more)"), tolerance: 0.2), [])
        // A bigger model than the plan said spends more too, whatever plan.params claims.
        XCTAssertTrue(problems(edit("model.n_layer", "\(recipe.model.nLayer * 2)")).map(\.key).contains("plan.flops_budget"))
    }

    func testDescriptionNamesFileLineKeyAndFix() {
        let found = problems(edit("optimizer.lr", "-1.0"))
        let text = found[0].description
        XCTAssertTrue(text.hasPrefix("r.toml:"), text)
        XCTAssertTrue(text.contains("optimizer.lr: must be a number in (0.0, 1.0], got -1.0"), text)
        XCTAssertTrue(text.contains("Fix: "), text)
        let line = found[0].line!
        XCTAssertTrue(valid.split(separator: "\n", omittingEmptySubsequences: false)[line - 1].hasPrefix("lr = "))
    }
}

/// The planner's precision decision is written as `training.precision`, with the rule and its numbers as the note.
final class RecipePrecisionTests: XCTestCase {
    func recipe(_ hardware: Hardware) throws -> (Recipe, [String: String]) {
        var request = PlanRequest(target: .flops(1e15), hardware: .given(hardware))
        request.vocabSize = 65
        return Recipe.from(plan: try Plan.make(request))
    }

    func testNativeBF16IsWrittenWithTheMeasuredRates() throws {
        let (r, notes) = try recipe(.cpu(memoryBytes: 0x1p36, products: CPUProducts(fp32Flops: 215e9, bf16Flops: 430e9),
                                         source: "test"))
        XCTAssertEqual(r.training.precision, .bf16)
        XCTAssertEqual(r.hardware?.deviceFlops, 430e9)
        XCTAssertEqual(notes["training.precision"], "bf16: native bf16 products measured at 430 GFLOP/s vs 215 GFLOP/s "
                       + "for the fp32 sgemm (gpt-bench ceiling); fp32 master weights and AdamW moments")
        // It reads back as written.
        let text = RecipeWriter.write(r, notes: notes)
        XCTAssertTrue(text.contains("precision = \"bf16\""))
        let check = RecipeLoader.check(text: text, file: "r.toml")
        XCTAssertTrue(check.passed, "\(check.problems)")
        XCTAssertEqual(check.recipe?.training.precision, .bf16)
    }

    func testWithoutNativeBF16FP32IsWrittenAndSaysWhy() throws {
        let (r, notes) = try recipe(.cpu(memoryBytes: 0x1p36, products: CPUProducts(fp32Flops: 215e9), source: "test"))
        XCTAssertEqual(r.training.precision, .fp32)
        XCTAssertEqual(r.hardware?.deviceFlops, 215e9)
        XCTAssertEqual(notes["training.precision"], "fp32: no native bf16 products on this CPU (bf16 would be emulated "
                       + "on the fp32 sgemm, 215 GFLOP/s at best, no faster than fp32)")
    }

    func testGPUPresetsAreWrittenInBF16() throws {
        let (r, notes) = try recipe(.h100_sxm_80gb)
        XCTAssertEqual(r.training.precision, .bf16)
        XCTAssertEqual(r.hardware?.deviceFlops, 989e12)
        XCTAssertEqual(notes["training.precision"]?.hasPrefix("bf16: the device's peak is its dense bf16 tensor-core rate"), true)
    }
}

/// `[model] family` and the Llama keys: defaults for recipes written before them, a Llama recipe's round trip,
/// the checks across keys, and gpt-train's refusal.
final class RecipeFamilyTests: XCTestCase {
    func testRecipesWithoutTheNewKeysAreGPT2() throws {
        let (recipe, _) = try plannedRecipe()
        var text = RecipeWriter.write(recipe)
        for key in ["family", "n_kv_head", "rope_theta", "norm_eps", "tie_embeddings"] {
            text = text.split(separator: "\n", omittingEmptySubsequences: false)
                .filter { !$0.hasPrefix("\(key) = ") }.joined(separator: "\n")
        }
        let check = RecipeLoader.check(text: text, file: "old.toml")
        XCTAssertEqual(check.errors, [])
        let m = try XCTUnwrap(check.recipe).model
        XCTAssertEqual(m.family, .gpt2)
        XCTAssertEqual(m.nKVHead, m.nHead)
        XCTAssertTrue(m.tieEmbeddings)
        XCTAssertEqual(check.recipe, recipe)
        XCTAssertNil(recipe.cpuTrainerRefusal)
        // gpt-train's LayerNorm has ε = 1e-5: another norm_eps is refused, not trained as 1e-5.
        var eps = recipe
        eps.model.normEps = 1e-6
        XCTAssertEqual(eps.cpuTrainerRefusal, "model.norm_eps = 1e-06: gpt-train's GPT-2 LayerNorm uses ε = 1e-5. Fix: set model.norm_eps = 1e-5")
    }

    /// A Llama-style recipe (Llama 3 8B's shape) reads back, counts its parameters as Meta does in the budget
    /// check, and is a model gpt-train builds (its memory is another question); with biases it is refused.
    func testALlamaRecipeRoundTripsAndIsBuiltByTheCPUTrainer() throws {
        var (recipe, _) = try plannedRecipe()
        recipe.model = ModelShape(nLayer: 32, nHead: 32, dModel: 4096, dFF: 14336, seqLen: 8192, vocabSize: 128_256,
                                  bias: false, family: .llama, nKVHead: 8, ropeTheta: 500_000, normEps: 1e-5)
        recipe.training.seqLen = 8192
        recipe.plan.params = 8_030_261_248
        let tokens = Double(recipe.training.steps * recipe.training.batchSize * 8192)
        recipe.plan.flopsBudget = 6 * 8_030_261_248 * tokens
        let text = RecipeWriter.write(recipe)
        XCTAssertTrue(text.contains("family = \"llama\"\n"))
        XCTAssertTrue(text.contains("n_kv_head = 8\n"))
        XCTAssertTrue(text.contains("tie_embeddings = false\n"))
        let check = RecipeLoader.check(text: text, file: "llama.toml")
        XCTAssertEqual(check.errors, [])
        XCTAssertEqual(check.recipe, recipe)
        // Absent, tie_embeddings follows the family.
        let untold = RecipeLoader.check(text: text.replacingOccurrences(of: "tie_embeddings = false\n", with: ""),
                                        file: "llama.toml")
        XCTAssertEqual(untold.recipe?.model.tieEmbeddings, false)
        XCTAssertNil(recipe.cpuTrainerRefusal)
        var biased = recipe
        biased.model.bias = true
        XCTAssertEqual(biased.cpuTrainerRefusal, "model.bias = true: gpt-train's Llama model has no biases (as Llama: its "
                       + "linear layers are bias-free and RMSNorm has a gain only). Fix: set model.bias = false")
        var odd = recipe
        odd.model.nHead = 512
        odd.model.nKVHead = 1
        odd.model.dModel = 4096 - 512  // 3584 / 512 = 7, an odd head size
        XCTAssertEqual(odd.cpuTrainerRefusal?.hasPrefix("model.n_head = 512: d_model 3584 / n_head 512 gives an odd head size 7"), true,
                       odd.cpuTrainerRefusal ?? "nil")
    }

    func testKeyValueHeadsAreCheckedAcrossKeys() throws {
        let (recipe, _) = try plannedRecipe()
        let heads = recipe.model.nHead
        var gpt2 = recipe
        gpt2.model.nKVHead = 1
        let g = RecipeLoader.check(text: RecipeWriter.write(gpt2), file: "g.toml", tolerance: .infinity)
        XCTAssertEqual(g.errors.map(\.key), ["model.n_kv_head"])
        XCTAssertTrue(g.errors[0].fix.contains("family = \"llama\""), g.errors[0].fix)
        var llama = recipe
        llama.model.family = .llama
        llama.model.nKVHead = heads + 1
        let l = RecipeLoader.check(text: RecipeWriter.write(llama), file: "l.toml", tolerance: .infinity)
        XCTAssertEqual(l.errors.map(\.key), ["model.n_kv_head"])
    }
}
