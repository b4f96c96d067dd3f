import Foundation
import Formatting
import Planner
import Recipe
import XCTest

final class RecipeRangeTests: XCTestCase {
    var valid = ""

    override func setUpWithError() throws {
        valid = RecipeWriter.write(try plannedRecipe().0)
    }

    func errors(_ text: String) -> [Problem] { RecipeLoader.check(text: text, file: "r.toml").errors }

    /// Every key has both bounds, the values at the bounds are accepted and the next values beyond them refused.
    func testEveryKeyHasBothBoundsAndTheyAreExact() {
        var recipe = Recipe()
        recipe.hardware = Recipe.Hardware()
        recipe.stability = Recipe.Stability()
        for field in Schema.fields {
            XCTAssertFalse(field.bounds.isEmpty, "\(field.path) says why its range is what it is")
            var copy = recipe
            switch field.kind {
            case .integer(_, let range):
                XCTAssertNil(field.assign(.integer(range.lowerBound), to: &copy), field.path)
                XCTAssertNil(field.assign(.integer(range.upperBound), to: &copy), field.path)
                XCTAssertEqual(field.assign(.integer(range.lowerBound - 1), to: &copy)?.kind, .outOfRange, field.path)
                if range.upperBound < Int.max {
                    XCTAssertEqual(field.assign(.integer(range.upperBound + 1), to: &copy)?.kind, .outOfRange, field.path)
                }
            case .number(_, let range):
                XCTAssertTrue(range.max.isFinite && range.min.isFinite, field.path)
                XCTAssertEqual(field.assign(.float(range.min), to: &copy) == nil, !range.openMin, field.path)
                XCTAssertEqual(field.assign(.float(range.max), to: &copy) == nil, !range.openMax, field.path)
                XCTAssertNil(field.assign(.float((range.min + range.max) / 2), to: &copy), field.path)
                XCTAssertEqual(field.assign(.float(range.min.nextDown), to: &copy)?.kind, .outOfRange, field.path)
                XCTAssertEqual(field.assign(.float(range.max.nextUp), to: &copy)?.kind, .outOfRange, field.path)
                for x in [Double.nan, .infinity, -.infinity] {
                    XCTAssertEqual(field.assign(.float(x), to: &copy)?.kind, .outOfRange, "\(field.path) = \(x)")
                }
            case .string, .path, .choice:
                XCTAssertEqual(field.assign(.string(""), to: &copy)?.kind, .outOfRange, field.path)
            case .bool:
                break
            }
        }
    }

    /// The values the fault probe found accepted (issue 14, item 5), each refused with its key and range.
    func testNonsenseValuesAreRefused() {
        let cases: [(String, String, String)] = [
            ("eval.iters", "4294967296", "must be an integer in 1...10000, got 4294967296"),
            ("optimizer.eps", "1e6", "must be a number in (0.0, 0.001], got 1000000.0"),
            ("optimizer.lr", "9223372036854775807", "must be a number in (0.0, 1.0], got 9223372036854775807"),
            ("plan.predicted_loss", "9e18", "must be a number in [0.0, 100.0], got 9e+18"),
            ("plan.flops_budget", "1e-320", "must be a number in [1.0, 1e+30], got 1e-320"),
            ("optimizer.weight_decay", "2.0", "must be a number in [0.0, 1.0], got 2.0"),
            ("optimizer.grad_clip", "1e9", "must be a number in [0.0, 1000.0], got 1000000000.0"),
            ("optimizer.min_lr", "5.0", "must be a number in [0.0, 1.0], got 5.0"),
            ("data.val_fraction", "0.9", "must be a number in (0.0, 0.5], got 0.9"),
            ("checkpoint.keep", "1000000", "must be an integer in 1...1000, got 1000000"),
            ("training.seed", "-1", "must be an integer in 0...9223372036854775807, got -1"),
            ("training.dropout", "1.0", "must be a number in [0.0, 1.0), got 1.0"),
            ("optimizer.beta1", "nan", "must be a number in [0.0, 1.0), got nan"),
            ("optimizer.lr", "inf", "must be a number in (0.0, 1.0], got inf"),
        ]
        for (path, value, message) in cases {
            let found = errors(edited(valid, path, value))
            XCTAssertEqual(found.map(\.key), [path], "\(path) = \(value)")
            XCTAssertEqual(found.map(\.kind), [.outOfRange], "\(path) = \(value)")
            XCTAssertEqual(found.first?.message, message, "\(path) = \(value)")
            XCTAssertNotNil(found.first?.line, "\(path) = \(value)")
        }
    }

    /// A budget far from what the recipe spends is said as a ratio, never as "inf%".
    func testBudgetFarOffIsAFiniteRatio() throws {
        let recipe = try XCTUnwrap(RecipeLoader.check(text: valid, file: "r.toml").recipe)
        let spent = 6 * Double(recipe.model.parameterCount.total) * recipe.trainingTokens
        let found = errors(edited(valid, "plan.flops_budget", "1.0"))
        XCTAssertEqual(found.map(\.kind), [.budget])
        XCTAssertTrue(found[0].message.contains("FLOPs is \(sig(spent, 3)) times the declared budget 1 "), found[0].message)
        XCTAssertFalse(found[0].message.contains("inf"), found[0].message)
        let below = errors(edited(valid, "plan.flops_budget", "1e30"))
        XCTAssertTrue(below[0].message.contains("FLOPs is \(sig(spent / 1e30, 3)) times the declared budget 1e+30"),
                      below[0].message)
        // Near the budget it stays a percentage.
        let near = errors(edited(valid, "plan.flops_budget", TOMLText.float(spent / 1.5)))
        XCTAssertTrue(near[0].message.contains("is 50% above the declared budget"), near[0].message)
    }

    func testIntervalsPastTheLastStepAreWarnings() throws {
        let recipe = try XCTUnwrap(RecipeLoader.check(text: valid, file: "r.toml").recipe)
        let steps = recipe.training.steps
        for path in ["eval.interval", "checkpoint.interval", "logging.interval"] {
            let check = RecipeLoader.check(text: edited(valid, path, "\(steps + 1)"), file: "r.toml")
            XCTAssertTrue(check.passed, path)
            XCTAssertEqual(check.warnings.map(\.key), [path])
            XCTAssertEqual(check.warnings.map(\.kind), [.unusual])
            XCTAssertTrue(check.warnings[0].message.hasPrefix("\(steps + 1) is more than training.steps = \(steps), so "),
                          check.warnings[0].message)
        }
    }

    func testAValidationLongerThanTheTrainingBetweenTwoIsAWarning() throws {
        let recipe = try XCTUnwrap(RecipeLoader.check(text: valid, file: "r.toml").recipe)
        let limit = min(recipe.eval.interval, recipe.training.steps) * recipe.training.batchSize / recipe.training.microBatch
        XCTAssertTrue(RecipeLoader.check(text: edited(valid, "eval.iters", "\(limit)"), file: "r.toml").warnings.isEmpty)
        let check = RecipeLoader.check(text: edited(valid, "eval.iters", "\(limit + 1)"), file: "r.toml")
        XCTAssertTrue(check.passed)
        XCTAssertEqual(check.warnings.map(\.key), ["eval.iters"])
        XCTAssertTrue(check.warnings[0].fix.hasPrefix("lower eval.iters to at most \(limit),"), check.warnings[0].fix)
    }
}

final class CheckpointDirectoryTests: XCTestCase {
    var valid = ""

    override func setUpWithError() throws {
        valid = RecipeWriter.write(try plannedRecipe().0)
    }

    func check(_ dir: String, allowOutside: Bool = false) -> RecipeCheck {
        RecipeLoader.check(text: edited(edited(valid, "checkpoint.dir", TOMLText.string(dir)),
                                        "checkpoint.allow_outside", allowOutside ? "true" : "false"), file: "r.toml")
    }

    func testPathsInsideTheRunDirectoryAreAccepted() {
        for dir in ["checkpoints", "a/b/c", "./ckpt", "a/../b", ".", "a/./b/../../c"] {
            let result = check(dir)
            XCTAssertTrue(result.passed, "\(dir): \(result.problems)")
            XCTAssertEqual(result.recipe?.checkpoint.dir, dir)
        }
    }

    func testPathsThatClimbOutAreRefusedEvenWhenAllowed() {
        for dir in ["../../../x", "..", "a/../../b", "./../x"] {
            for allow in [false, true] {
                let result = check(dir, allowOutside: allow)
                XCTAssertEqual(result.errors.map(\.kind), [.unsafePath], "\(dir) allow \(allow)")
                XCTAssertEqual(result.errors.map(\.key), ["checkpoint.dir"])
                XCTAssertEqual(result.errors.first?.message, "\"\(dir)\" leaves the run directory (--out) through \"..\"")
            }
        }
    }

    func testRootIsNeverAccepted() {
        for dir in ["/", "//", "/.", "/tmp/..", "/../..", "/a/b/../../"] {
            for allow in [false, true] {
                let result = check(dir, allowOutside: allow)
                XCTAssertEqual(result.errors.map(\.kind), [.unsafePath], "\(dir) allow \(allow)")
                XCTAssertEqual(result.errors.first?.message, "\"\(dir)\" is the root directory: checkpoints would be written into /")
            }
        }
    }

    func testAbsolutePathsNeedAllowOutside() {
        let refused = check("/mnt/disk/ckpt")
        XCTAssertEqual(refused.errors.map(\.kind), [.unsafePath])
        XCTAssertEqual(refused.errors.first?.fix, "give a path relative to the run directory, such as \"checkpoints\", or set checkpoint.allow_outside = true to write checkpoints to /mnt/disk/ckpt on purpose")
        let allowed = check("/mnt/disk/ckpt", allowOutside: true)
        XCTAssertTrue(allowed.passed)
        XCTAssertEqual(allowed.warnings, [])
        XCTAssertEqual(allowed.recipe?.checkpoint.allowOutside, true)
    }

    func testAllowOutsideWithARelativePathIsAWarning() {
        let result = check("checkpoints", allowOutside: true)
        XCTAssertTrue(result.passed)
        XCTAssertEqual(result.warnings.map(\.key), ["checkpoint.allow_outside"])
    }

    func testPathsTheFileSystemCannotHoldAreRangeErrors() {
        let long = check(String(repeating: "a/", count: 2500))
        XCTAssertEqual(long.errors.map(\.kind), [.outOfRange])
        XCTAssertTrue(long.errors[0].message.hasPrefix("is 5000 bytes long, over the 4095-byte limit of a path: "), long.errors[0].message)
        XCTAssertLessThan(long.errors[0].description.count, 400, "the path is not echoed whole")
        let name = check("ckpt/" + String(repeating: "n", count: 256))
        XCTAssertEqual(name.errors.map(\.kind), [.outOfRange])
        XCTAssertTrue(name.errors[0].message.hasPrefix("has a component of 256 bytes, over the 255-byte limit of a file name"),
                      name.errors[0].message)
        // TOMLKit cuts a string at an escaped NUL, so only a caller of the schema can pass one.
        XCTAssertEqual(RecipeText.pathProblem("ck\u{0}pt"), "contains a NUL character, which no path can hold")
    }
}
