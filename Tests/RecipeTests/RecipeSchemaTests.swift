import Foundation
import GPTShape
import Planner
import Recipe
import XCTest

/// `text` with `section.key = value` replaced (nil removes it); a key the section lacks is added at its top, and a
/// missing section is appended.
func edited(_ text: String, _ path: String, _ value: String?) -> String {
    let parts = path.split(separator: ".").map(String.init)
    let section = parts.count == 2 ? parts[0] : "", key = parts.last!
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    var current = ""
    let present = lines.contains { line in
        if line.hasPrefix("[") { current = String(line.dropFirst().dropLast()) }
        return current == section && line.hasPrefix("\(key) = ")
    }
    current = ""
    var out: [String] = []
    var done = false
    for line in lines {
        if line.hasPrefix("[") { current = String(line.dropFirst().dropLast()) }
        if current == section, line.hasPrefix("\(key) = ") {
            if let value { out.append("\(key) = \(value)") }
            done = true
            continue
        }
        out.append(line)
        if !present, !done, let value, !section.isEmpty, line == "[\(section)]" {
            out.append("\(key) = \(value)")
            done = true
        }
    }
    if !done, let value { out += section.isEmpty ? ["\(key) = \(value)"] : ["[\(section)]", "\(key) = \(value)"] }
    return out.joined(separator: "\n")
}

/// A recipe as schema version 1 wrote it: dropout in [model], no layout keys, no allow_outside.
func versionOneText(_ recipe: Recipe, dropout: Double) -> String {
    var text = RecipeWriter.write(recipe)
    for path in ["training.dropout", "training.tensor_parallel", "training.pipeline_parallel", "training.zero_stage",
                 "training.recompute", "checkpoint.allow_outside"] {
        text = edited(text, path, nil)
    }
    text = edited(text, "schema_version", "1")
    return edited(text, "model.dropout", TOMLText.float(dropout))
}

final class RecipeKeyPathTests: XCTestCase {
    /// A value of `field`'s kind that differs from `index`'s other values, inside the range.
    func sample(_ field: Field, _ index: Int) -> RecipeValue {
        switch field.kind {
        case .integer(_, let range): return .integer(min(range.upperBound, range.lowerBound + 1 + index))
        case .number(_, let range): return .float(range.min + (range.max - range.min) / Double(100 + index))
        case .string(_, let choices?): return .string(choices[index % choices.count])
        case .string(_, nil), .path: return .string("value-\(index)")
        case .choice(let choice): return .string(choice.names[(index + 1) % choice.names.count])
        case .bool: return .bool(index % 2 == 0)
        }
    }

    /// Each key reads and writes its own storage: set every key to a distinct value, then read them all back.
    func testEveryKeyReadsBackWhatWasWrittenAndNoOtherKeyMoves() {
        var recipe = Recipe()
        recipe.hardware = Recipe.Hardware()
        recipe.stability = Recipe.Stability()
        for (i, field) in Schema.fields.enumerated() {
            XCTAssertNil(field.assign(sample(field, i), to: &recipe), field.path)
        }
        for (i, field) in Schema.fields.enumerated() {
            XCTAssertEqual(recipe.value(of: field), sample(field, i), field.path)
        }
        // And the writer and loader agree with the key paths.
        let text = RecipeWriter.write(recipe)
        let back = RecipeLoader.check(text: text, file: "all.toml", tolerance: .infinity)
        XCTAssertTrue(back.problems.allSatisfy { $0.kind != .wrongType && $0.kind != .outOfRange && $0.kind != .missing },
                      "\(back.problems)")
    }

    /// A value of another type is a problem, never a zero, and leaves the recipe as it was.
    func testTypeMismatchesAreRefusedNotZeroed() {
        let wrong: [RecipeValue] = [.integer(7), .float(0.5), .string("x"), .bool(true)]
        var recipe = Recipe()
        recipe.hardware = Recipe.Hardware(name: "h", deviceMemory: 1 << 30, deviceFlops: 1e12, mfu: 0.5)
        recipe.stability = Recipe.Stability()
        let before = recipe
        for field in Schema.fields {
            for value in wrong {
                let acceptable: Bool
                switch (field.kind, value) {
                case (.integer, .integer), (.number, .integer), (.number, .float), (.string, .string), (.path, .string),
                     (.choice, .string), (.bool, .bool): acceptable = true
                default: acceptable = false
                }
                guard !acceptable else { continue }
                var copy = recipe
                let refusal = field.assign(value, to: &copy)
                XCTAssertEqual(refusal?.kind, .wrongType, "\(field.path) = \(value)")
                XCTAssertEqual(copy, before, "\(field.path) = \(value) changed the recipe")
            }
        }
    }

    /// A planned recipe with `path = value`, checked.
    func checkPlanned(_ path: String, _ value: String) throws -> RecipeCheck {
        RecipeLoader.check(text: edited(RecipeWriter.write(try plannedRecipe().0), path, value), file: "r.toml")
    }

    func testSchemaVersionGivenAsAStringIsAProblem() throws {
        let found = try checkPlanned("schema_version", "\"1\"")
        XCTAssertNil(found.recipe)
        XCTAssertEqual(found.errors.map(\.kind), [.wrongType])
        XCTAssertEqual(found.errors.first?.message, "must be an integer in 1...2, got the string \"1\"")
    }

    func testUnknownDecayIsRefusedNotCosine() throws {
        let (recipe, _) = try plannedRecipe()
        let found = try checkPlanned("schedule.decay", "\"step\"")
        XCTAssertNil(found.recipe)
        XCTAssertEqual(found.errors.map(\.kind), [.outOfRange])
        XCTAssertEqual(found.errors.first?.key, "schedule.decay")
        XCTAssertEqual(found.errors.first?.message, "must be one of \"cosine\", \"linear\", \"constant\", got \"step\"")
        var copy = recipe
        XCTAssertNotNil(Schema.field("schedule.decay")!.assign(.string("Cosine"), to: &copy))
        for decay in Recipe.Decay.allCases where decay != recipe.schedule.decay {
            let back = RecipeLoader.check(text: edited(RecipeWriter.write(recipe), "schedule.decay", "\"\(decay.rawValue)\""),
                                          file: "r.toml")
            XCTAssertEqual(back.recipe?.schedule.decay, decay)
        }
    }

    /// The recipe's model is the planner's shape: the counts are the planner's.
    func testTheModelIsTheModelShape() throws {
        let (recipe, _) = try plannedRecipe(flops: 1e18, vocab: 50257)
        let shape: ModelShape = recipe.model
        XCTAssertEqual(shape.parameterCount.total, recipe.plan.params)
    }
}

final class RecipeOptionalKeyTests: XCTestCase {
    func testNewKeysHaveDefaultsAndTheWriterWritesThem() throws {
        let stability = Schema.fields(in: "stability")
        XCTAssertTrue(stability.allSatisfy(\.isOptional), "every [stability] key has a default")
        XCTAssertEqual(Schema.fields.filter { $0.isOptional && $0.section != "stability" }.map(\.path),
                       ["model.family", "model.n_kv_head", "model.rope_theta", "model.norm_eps", "model.tie_embeddings",
                        "training.tensor_parallel", "training.pipeline_parallel", "training.zero_stage",
                        "training.recompute", "training.precision", "checkpoint.allow_outside", "logging.health_interval"])
        XCTAssertEqual(Schema.fields.filter { $0.isOptional && $0.section != "stability" }.map { $0.defaultValue! },
                       [.string("gpt2"), .integer(0), .float(10_000), .float(1e-5), .bool(true),
                        .integer(1), .integer(1), .integer(0), .string("none"), .string("fp32"), .bool(false), .integer(-1)])
        var (recipe, _) = try plannedRecipe()
        recipe.hardware = nil
        let text = RecipeWriter.write(recipe)
        for line in ["tensor_parallel = 1\n", "pipeline_parallel = 1\n", "zero_stage = 0\n", "recompute = \"none\"\n",
                     "allow_outside = false\n", "health_interval = -1\n", "dropout = 0.0\n", "schema_version = 2\n",
                     "precision = \"fp32\"\n"] {
            XCTAssertTrue(text.contains(line), line)
        }
        XCTAssertFalse(text.contains("[hardware]"), "no [hardware] for a recipe without hardware")
        XCTAssertFalse(text.contains("[stability]"), "no [stability] for a recipe without it")
    }

    /// A recipe as version 1 wrote it (as stored in old checkpoints) loads as the same run, with one warning that
    /// says how to move dropout.
    func testVersionOneRecipeLoadsWithDefaultsAndADropoutWarning() throws {
        var (recipe, _) = try plannedRecipe()
        recipe.training.dropout = 0.1
        recipe.hardware = nil  // [hardware] came with version 2
        let text = versionOneText(recipe, dropout: 0.1)
        XCTAssertFalse(text.contains("tensor_parallel ="))
        let check = RecipeLoader.check(text: text, file: "old.toml")
        XCTAssertEqual(check.errors, [])
        var expected = recipe
        expected.schemaVersion = 1
        XCTAssertEqual(check.recipe, expected)
        XCTAssertEqual(check.warnings.count, 1)
        let warning = try XCTUnwrap(check.warnings.first)
        XCTAssertEqual(warning.kind, .deprecated)
        XCTAssertEqual(warning.key, "model.dropout")
        XCTAssertEqual(warning.message, "is deprecated: it is training.dropout since schema version 2")
        XCTAssertEqual(warning.fix, "move it: delete `dropout = 0.1` from [model] and write `dropout = 0.1` in [training]")
        let line = try XCTUnwrap(warning.line)
        XCTAssertEqual(text.split(separator: "\n", omittingEmptySubsequences: false)[line - 1], "dropout = 0.1")
        // The old recipe and the new one are the same run: no differences that would stop a resume.
        XCTAssertTrue(check.recipe!.differences(from: recipe, in: ["", "model", "training", "optimizer"]).isEmpty)
    }

    func testDropoutInBothPlacesIsAnError() throws {
        let (recipe, _) = try plannedRecipe()
        let text = edited(RecipeWriter.write(recipe), "model.dropout", "0.0")
        let check = RecipeLoader.check(text: text, file: "r.toml")
        XCTAssertNil(check.recipe)
        XCTAssertEqual(check.errors.map(\.kind), [.deprecated])
        XCTAssertEqual(check.errors.map(\.key), ["model.dropout"])
        XCTAssertEqual(check.errors.first?.fix, "delete `dropout = ...` from [model]; keep training.dropout")
    }

    func testTheOldDropoutIsRangeCheckedUnderItsOwnName() throws {
        let (recipe, _) = try plannedRecipe()
        let check = RecipeLoader.check(text: versionOneText(recipe, dropout: 1.5), file: "old.toml")
        XCTAssertEqual(check.errors.map(\.key), ["model.dropout"])
        XCTAssertEqual(check.errors.map(\.kind), [.outOfRange])
    }

    func testHardwareSectionIsOptionalAndWholeWhenGiven() throws {
        var (recipe, _) = try plannedRecipe()
        recipe.hardware = Recipe.Hardware(name: "h100-sxm-80gb", deviceMemory: 80 << 30, deviceFlops: 989e12, mfu: 0.4)
        let text = RecipeWriter.write(recipe)
        let section = try XCTUnwrap(text.components(separatedBy: "\n[hardware]\n").last)
        XCTAssertEqual(section.split(separator: "\n").filter { !$0.hasPrefix("#") },
                       ["name = \"h100-sxm-80gb\"", "device_memory = 85899345920", "device_flops = 989000000000000.0", "mfu = 0.4"])
        XCTAssertTrue(text.hasSuffix("mfu = 0.4\n"), "[hardware] is the last section")
        XCTAssertEqual(RecipeLoader.check(text: text, file: "r.toml").recipe, recipe)
        let partial = RecipeLoader.check(text: edited(text, "hardware.mfu", nil), file: "r.toml")
        XCTAssertEqual(partial.errors.map(\.key), ["hardware.mfu"])
        XCTAssertEqual(partial.errors.map(\.kind), [.missing])
        for (value, ok) in [("0.0", false), ("1.0", true), ("1.5", false), ("1", true)] {
            XCTAssertEqual(RecipeLoader.check(text: edited(text, "hardware.mfu", value), file: "r.toml").passed, ok, value)
        }
        XCTAssertEqual(RecipeLoader.check(text: edited(text, "hardware.device_memory", "1000"), file: "r.toml").errors.map(\.key),
                       ["hardware.device_memory"])
        // Absent: nil, and differences treat it as absent rather than crashing.
        var without = recipe
        without.hardware = nil
        XCTAssertEqual(without.value(of: Schema.field("hardware.name")!), nil)
        XCTAssertEqual(recipe.differences(from: without, in: ["hardware"]).map(\.other),
                       ["(absent)", "(absent)", "(absent)", "(absent)"])
    }
}

final class RecipeLayoutTests: XCTestCase {
    var text = ""

    override func setUpWithError() throws {
        var (recipe, _) = try plannedRecipe()
        // 16 devices, 4 data-parallel ranks × t 2 × p 2; the batch stays micro × accum × d.
        recipe.model.nHead = 4
        recipe.model.dFF = 4 * recipe.model.dModel
        recipe.model.nLayer = max(2, recipe.model.nLayer)
        recipe.training.microBatch = 2
        recipe.training.gradAccum = 3
        recipe.training.devices = 16
        recipe.training.tensorParallel = 2
        recipe.training.pipelineParallel = 2
        recipe.training.batchSize = 2 * 3 * 4
        text = RecipeWriter.write(recipe)
    }

    func errors(_ text: String) -> [Problem] { RecipeLoader.check(text: text, file: "r.toml", tolerance: .infinity).errors }

    func testDevicesAreTheTotalCountAndTheBatchUsesDataParallelRanks() throws {
        XCTAssertEqual(errors(text), [])
        let recipe = try XCTUnwrap(RecipeLoader.check(text: text, file: "r.toml", tolerance: .infinity).recipe)
        XCTAssertEqual(recipe.training.dataParallel, 4)
        // The old reading (batch = micro × accum × devices) is now wrong for t·p > 1.
        let found = errors(edited(text, "training.batch_size", "96"))
        XCTAssertEqual(found.map(\.key), ["training.batch_size"])
        XCTAssertEqual(found.first?.message, "batch_size 96 is not micro_batch × grad_accum × d (devices / (t·p) = 16 / 4) = 2 × 3 × 4 = 24")
    }

    func testModelParallelGroupsMustDivideDevices() {
        let found = errors(edited(text, "training.devices", "18"))
        XCTAssertEqual(found.map(\.key), ["training.devices"])
        XCTAssertEqual(found.map(\.kind), [.inconsistent])
        XCTAssertTrue(found[0].fix.hasPrefix("set training.devices to a multiple of 4, such as 16"), found[0].fix)
    }

    func testTensorParallelMustSplitHeadsAndMLP() {
        let found = errors(edited(edited(text, "training.tensor_parallel", "8"), "training.devices", "64"))
        XCTAssertEqual(found.map(\.key), ["training.tensor_parallel"])
        XCTAssertTrue(found[0].fix.hasSuffix("such as 4"), found[0].fix)
    }

    func testPipelineStagesAreWholeLayers() throws {
        let layers = try XCTUnwrap(RecipeLoader.check(text: text, file: "r.toml", tolerance: .infinity).recipe).model.nLayer
        let p = layers + 1
        let found = errors(edited(edited(text, "training.pipeline_parallel", "\(p)"), "training.devices", "\(8 * p)"))
        XCTAssertEqual(found.map(\.key), ["training.pipeline_parallel"])
    }

    func testLayoutRanges() {
        for (path, value) in [("training.tensor_parallel", "0"), ("training.tensor_parallel", "65"),
                              ("training.pipeline_parallel", "1025"), ("training.zero_stage", "4"),
                              ("training.zero_stage", "-1"), ("training.recompute", "\"some\""),
                              ("training.recompute", "true")] {
            let found = errors(edited(text, path, value))
            XCTAssertEqual(found.map(\.key), [path], "\(path) = \(value)")
        }
        for mode in ["none", "selective", "full"] {
            XCTAssertEqual(errors(edited(text, "training.recompute", "\"\(mode)\"")), [])
        }
        XCTAssertEqual(errors(edited(text, "training.zero_stage", "3")), [])
    }
}
