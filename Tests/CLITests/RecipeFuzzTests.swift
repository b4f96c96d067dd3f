import Compute
import Foundation
import Recipe
import XCTest

/// Seeded mutations of the shipped recipes' text: every result is a pass, or problems that each name a
/// `section.key` or a line; never a crash. Hundreds go through `RecipeLoader` in this process (a trap would kill
/// the test run), and a sample through the real `gpt-plan check`, whose exit status must be 0, 1 or 2.
final class RecipeFuzzTests: XCTestCase {
    static let seed: UInt64 = 0x5EED_2026_1201
    static let perRecipe = 80

    /// The package's SplitMix64, with the picks the mutations need.
    struct Generator {
        var mix: SplitMix64
        init(state: UInt64) { mix = SplitMix64(seed: state) }
        mutating func below(_ n: Int) -> Int { Int(mix.next() % UInt64(n)) }
        mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
    }

    /// Values a hostile or careless user writes: wrong types, signs, zeros, extremes, non-numbers.
    static let values = [
        "0", "-1", "1", "2", "-5", "7", "3.5", "-0.5", "0.0", "1e-9", "1e300", "-1e300", "nan", "inf", "-inf",
        "9223372036854775807", "-9223372036854775808", "4294967296", "65536", "\"\"", "\"x\"", "\"cosine\"",
        "\"linear\"", "\"char\"", "true", "false", "[1, 2]", "{ a = 1 }", "1979-05-27", "\"../../../x\"", "\"/\"",
    ]

    /// One mutation of `text`, described for failure messages.
    static func mutate(_ text: String, _ g: inout Generator) -> (String, String) {
        var lines = text.components(separatedBy: "\n")
        let assignments = lines.indices.filter { lines[$0].contains("=") && !lines[$0].hasPrefix("#") }
        let headers = lines.indices.filter { lines[$0].hasPrefix("[") }
        switch g.below(8) {
        case 0, 1, 2:    // a key's value replaced
            let i = g.pick(assignments), value = g.pick(values)
            let key = lines[i].split(separator: "=", maxSplits: 1)[0]
            lines[i] = "\(key)= \(value)"
            return (lines.joined(separator: "\n"), "line \(i + 1): \(lines[i])")
        case 3:          // a line deleted
            let i = g.pick(assignments + headers)
            let removed = lines.remove(at: i)
            return (lines.joined(separator: "\n"), "line \(i + 1) deleted: \(removed)")
        case 4:          // a line duplicated
            let i = g.pick(assignments + headers)
            lines.insert(lines[i], at: i)
            return (lines.joined(separator: "\n"), "line \(i + 1) duplicated: \(lines[i])")
        case 5:          // a key or section renamed
            let i = g.pick(assignments + headers)
            if lines[i].hasPrefix("[") {
                lines[i] = "[" + lines[i].dropFirst().replacingOccurrences(of: "]", with: "s]")
            } else {
                lines[i] = lines[i].replacingOccurrences(of: " =", with: "_x =")
            }
            return (lines.joined(separator: "\n"), "line \(i + 1) renamed: \(lines[i])")
        case 6:          // the text cut short
            let scalars = Array(text.unicodeScalars)
            let cut = g.below(scalars.count)
            var out = String.UnicodeScalarView()
            out.append(contentsOf: scalars[..<cut])
            return (String(out), "cut at character \(cut)")
        default:         // junk inserted
            var scalars = Array(text.unicodeScalars)
            let at = g.below(scalars.count + 1)
            let junk = g.pick(["[", "]", "=", "\"", "'", "{", "}", ",", "#", "\n", "é", "\u{0}", "\\", "=="])
            scalars.insert(contentsOf: junk.unicodeScalars, at: at)
            var out = String.UnicodeScalarView()
            out.append(contentsOf: scalars)
            return (String(out), "\(junk.debugDescription) inserted at character \(at)")
        }
    }

    static func shippedRecipes() throws -> [(name: String, text: String)] {
        let directory = "\(Tool.repository)/recipes"
        return try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".toml") }.sorted()
            .map { ($0, try String(contentsOfFile: "\(directory)/\($0)", encoding: .utf8)) }
    }

    func testMutatedRecipesPassOrNameTheKeyOrLine() throws {
        var g = Generator(state: Self.seed)
        var counts = (passed: 0, refused: 0)
        let recipes = try Self.shippedRecipes()
        XCTAssertGreaterThanOrEqual(recipes.count, 4)
        for (name, text) in recipes {
            for _ in 0..<Self.perRecipe {
                let (mutated, what) = Self.mutate(text, &g)
                let check = RecipeLoader.check(text: mutated, file: name)
                if check.passed {
                    counts.passed += 1
                    continue
                }
                counts.refused += 1
                XCTAssertFalse(check.errors.isEmpty, "\(name), \(what): refused without an error")
                for problem in check.errors {
                    XCTAssertTrue(problem.key != nil || problem.line != nil,
                                  "\(name), \(what): the problem names neither a key nor a line: \(problem)")
                    XCTAssertFalse(problem.fix.isEmpty, "\(name), \(what): no fix in \(problem)")
                }
            }
        }
        XCTAssertEqual(counts.passed + counts.refused, recipes.count * Self.perRecipe)
        XCTAssertGreaterThan(counts.refused, counts.passed, "most mutations break a recipe")
    }

    /// A sample of the same mutations through the binary: exit status 0, 1 or 2 (a signal is none of these), and
    /// the output names a `section.key` or a `file:line`.
    func testMutatedRecipesThroughGptPlanCheck() throws {
        var g = Generator(state: Self.seed ^ 0xB1_0A_27)
        let dir = NSTemporaryDirectory() + "swift-gpt-tests/fuzz-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let place = try NSRegularExpression(pattern: #"([a-z_]+\.[a-z_]+)|(\.toml:[0-9]+)"#)
        for (name, text) in try Self.shippedRecipes() {
            for k in 0..<4 {
                let (mutated, what) = Self.mutate(text, &g)
                let path = "\(dir)/\(k)-\(name)"
                try mutated.write(toFile: path, atomically: true, encoding: .utf8)
                let out = try Tool.run("gpt-plan", ["check", path])
                XCTAssertTrue([0, 1, 2].contains(out.status), "\(name), \(what): status \(out.status)\n\(out.stderr)")
                if out.status != 0 {
                    let all = out.stdout + out.stderr
                    XCTAssertNotNil(place.firstMatch(in: all, range: NSRange(all.startIndex..., in: all)),
                                    "\(name), \(what): names no key or line:\n\(all)")
                }
            }
        }
    }
}
