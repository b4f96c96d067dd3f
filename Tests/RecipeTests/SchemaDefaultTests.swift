import GPTShape
import Recipe
import XCTest

/// Recipe defaults have one source, the schema's field table: a recipe that leaves every optional key out reads
/// back with each one at its field's default, and `Recipe`'s own starting values are the same.
final class SchemaDefaultTests: XCTestCase {
    /// The fields that may be left out.
    var defaulted: [Field] { Schema.fields.filter { $0.defaultValue != nil } }

    func testEveryDefaultIsWhatAnAbsentKeyReadsAs() throws {
        XCTAssertGreaterThan(defaulted.count, 15)
        var (recipe, _) = try plannedRecipe(flops: 1e18, vocab: 50257)
        // Set every optional key away from its default first, so that a default the loader failed to apply would
        // show as the written value (stability is absent in a planned recipe: present here, every key given).
        recipe.stability = Recipe.Stability()
        let full = RecipeWriter.write(recipe)
        // The recipe with every optional key's line deleted (section headers stay: [stability] is empty).
        var section = ""
        var removed: Set<String> = []
        let lines = full.split(separator: "\n", omittingEmptySubsequences: false).filter { line in
            if line.hasPrefix("[") { section = String(line.dropFirst().prefix { $0 != "]" }); return true }
            guard let equals = line.range(of: " = "), !line.hasPrefix("#") else { return true }
            let key = String(line[..<equals.lowerBound])
            let path = section.isEmpty ? key : "\(section).\(key)"
            guard Schema.field(path)?.defaultValue != nil else { return true }
            removed.insert(path)
            return false
        }
        XCTAssertEqual(removed, Set(defaulted.map(\.path)), "every optional key was written, and removed")
        let check = RecipeLoader.check(text: lines.joined(separator: "\n"), file: "defaults.toml")
        XCTAssertEqual(check.errors, [])
        let read = try XCTUnwrap(check.recipe)
        XCTAssertNotNil(read.stability)
        for field in defaulted {
            // n_kv_head's default 0 means "n_head" (multi-head attention), as its doc says: it reads as n_head.
            let expected = field.path == "model.n_kv_head" ? .integer(read.model.nHead) : field.defaultValue
            XCTAssertEqual(read.value(of: field), expected, field.path)
        }
        XCTAssertEqual(Schema.field("model.n_kv_head")?.defaultValue, .integer(0))
    }

    func testRecipesStartingValuesAreTheSchemasDefaults() {
        var recipe = Recipe()
        recipe.stability = Recipe.Stability()
        recipe.hardware = Recipe.Hardware()
        for field in defaulted {
            XCTAssertEqual(field.value(in: recipe), field.defaultValue, field.path)
        }
        let training = Recipe.Training()
        XCTAssertEqual(training.tensorParallel, Schema.defaultValue(\Recipe.training.tensorParallel))
        XCTAssertEqual(Recipe.Logging().healthInterval, -1)
        XCTAssertEqual(Schema.field(at: \Recipe.stability!.window)?.path, "stability.window")
    }
}

/// What changing a key does to a resumed run is a property of its field (`Field.resume`).
final class SchemaResumeTests: XCTestCase {
    func testEachKeysResumeEffect() {
        func paths(_ effect: Field.ResumeEffect) -> Set<String> {
            Set(Schema.fields.filter { $0.resume == effect }.map(\.path))
        }
        XCTAssertEqual(paths(.dataParallelLayout), ["training.devices", "training.grad_accum", "training.zero_stage"])
        XCTAssertEqual(paths(.precision), ["training.precision"])
        XCTAssertEqual(paths(.sameBits), ["training.recompute"])
        for field in Schema.fields where field.resume == .changesTheRun {
            XCTAssertTrue(["model", "data", "optimizer", "schedule", "training"].contains(field.section), field.path)
        }
        for path in ["model.n_layer", "data.path", "optimizer.lr", "schedule.warmup_steps", "training.steps",
                     "training.micro_batch", "training.seed", "training.dropout"] {
            XCTAssertEqual(Schema.field(path)?.resume, .changesTheRun, path)
        }
        for path in ["schema_version", "eval.interval", "checkpoint.keep", "logging.interval", "hardware.mfu",
                     "stability.window"] {
            XCTAssertEqual(Schema.field(path)?.resume, .free, path)
        }
    }

    func testResumeDifferencesLeaveOutFreeKeys() throws {
        let (recipe, _) = try plannedRecipe()
        var other = recipe
        other.eval.interval += 1
        other.logging.interval += 1
        other.stability = Recipe.Stability()
        XCTAssertTrue(recipe.resumeDifferences(from: other).isEmpty)
        other.optimizer.lr *= 2
        other.training.recompute = .full
        XCTAssertEqual(recipe.resumeDifferences(from: other).map(\.field.path), ["optimizer.lr", "training.recompute"])
    }
}
