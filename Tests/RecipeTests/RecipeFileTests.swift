import Foundation
import Recipe
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Real files on disk: what cannot be a recipe is refused by kind, before it is read.
final class RecipeFileTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "recipe-file-tests-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func loadError(_ path: String) -> RecipeFileError? {
        do {
            _ = try RecipeLoader.load(path: path)
            return nil
        } catch {
            return error
        }
    }

    func testADirectoryIsNamedAsOne() {
        XCTAssertEqual(loadError(directory), .isDirectory(file: directory))
        XCTAssertEqual(loadError(directory)?.description,
                       "\(directory): cannot read the recipe: it is a directory. Fix: give a recipe file inside it (*.toml)")
        XCTAssertEqual(loadError(directory)?.exitCode, 2)
    }

    func testDevicesAndPipesAreRefusedUnread() throws {
        XCTAssertEqual(loadError("/dev/zero"), .notRegularFile(file: "/dev/zero", type: "a character device"))
        XCTAssertEqual(loadError("/dev/zero")?.description,
                       "/dev/zero: cannot read the recipe: it is a character device, not a regular file. Fix: give a recipe file (*.toml)")
        let fifo = directory + "/pipe.toml"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        // No writer: a reader that opened it blocking would hang here.
        XCTAssertEqual(loadError(fifo), .notRegularFile(file: fifo, type: "a FIFO (named pipe)"))
    }

    func testMissingFile() {
        let path = directory + "/absent.toml"
        XCTAssertEqual(loadError(path), .notFound(file: path))
    }

    func testFilesOverTheCapAreRefusedBeforeReading() throws {
        let path = directory + "/big.toml"
        let atCap = String(repeating: "#", count: RecipeLoader.maximumBytes - 1) + "\n"
        try atCap.write(toFile: path, atomically: false, encoding: .utf8)
        XCTAssertNil(loadError(path), "exactly the cap is read (and is a recipe with problems)")
        try (atCap + "\n").write(toFile: path, atomically: false, encoding: .utf8)
        XCTAssertEqual(loadError(path), .tooLarge(file: path, bytes: RecipeLoader.maximumBytes + 1, limit: RecipeLoader.maximumBytes))
        // A sparse 1 TiB file is refused from its size alone.
        let sparse = directory + "/sparse.toml"
        XCTAssertTrue(FileManager.default.createFile(atPath: sparse, contents: nil))
        XCTAssertEqual(truncate(sparse, 1 << 40), 0)
        XCTAssertEqual(loadError(sparse), .tooLarge(file: sparse, bytes: 1 << 40, limit: RecipeLoader.maximumBytes))
    }

    func testAFileThatLoadsIsCheckedAsText() throws {
        let path = directory + "/r.toml"
        try RecipeWriter.write(try plannedRecipe().0).write(toFile: path, atomically: false, encoding: .utf8)
        let check = try RecipeLoader.load(path: path)
        XCTAssertTrue(check.passed, "\(check.problems)")
    }

    /// The first byte that is not UTF-8, by offset, line and column (bytes, from 1).
    func testNonUTF8IsLocatedToTheByte() throws {
        let valid = RecipeWriter.write(try plannedRecipe().0)
        let lines = valid.split(separator: "\n", omittingEmptySubsequences: false)
        let lineIndex = lines.firstIndex { $0.hasPrefix("path = ") }!
        let prefix = lines[..<lineIndex].joined(separator: "\n") + "\n" + "path = \"caf"
        for (bad, name) in [([0xE9], "Latin-1 é"), ([0xC0, 0x80], "overlong NUL"), ([0xED, 0xA0, 0x80], "surrogate"),
                            ([0xFF], "0xFF"), ([0xE2, 0x82], "cut short"), ([0x80], "stray continuation")] as [([UInt8], String)] {
            let bytes = Array(prefix.utf8) + bad + Array("\"\n".utf8)
            let check = RecipeLoader.check(data: bytes, file: "r.toml")
            XCTAssertNil(check.recipe, name)
            let problem = try XCTUnwrap(check.problems.first, name)
            XCTAssertEqual(check.problems.count, 1)
            XCTAssertEqual(problem.kind, .encoding, name)
            XCTAssertEqual(problem.line, lineIndex + 1, name)
            XCTAssertEqual(problem.column, 12, name)
            let offset = prefix.utf8.count
            XCTAssertEqual(problem.message, "is not UTF-8 text: byte 0x\(String(bad[0], radix: 16, uppercase: true)) at byte offset \(offset) (line \(lineIndex + 1), column 12, counting bytes from 1) is not part of a valid UTF-8 character", name)
            XCTAssertTrue(problem.description.hasPrefix("r.toml:\(lineIndex + 1):12: error: "), problem.description)
        }
        // Valid multi-byte text of every length passes the byte check.
        XCTAssertNil(UTF8Check.firstInvalidByte(in: Array("é€𝄞\u{10FFFF}".utf8)))
        XCTAssertEqual(UTF8Check.firstInvalidByte(in: [0xF4, 0x90, 0x80, 0x80]), 0, "above U+10FFFF")
    }

    func testNonUTF8OnDiskGoesThroughLoad() throws {
        let path = directory + "/latin1.toml"
        try Data([0x23, 0x0A, 0x61, 0xE9, 0x0A]).write(to: URL(fileURLWithPath: path))
        let check = try RecipeLoader.load(path: path)
        XCTAssertEqual(check.problems.map(\.kind), [.encoding])
        XCTAssertEqual(check.problems.first?.line, 2)
        XCTAssertEqual(check.problems.first?.column, 2)
        XCTAssertEqual(check.problems.first?.file, path)
    }
}

/// Messages stay short and specific whatever the input.
final class RecipeMessageTests: XCTestCase {
    func testAHugeUnknownKeyIsCutWhenEchoed() throws {
        let valid = RecipeWriter.write(try plannedRecipe().0)
        let key = String(repeating: "k", count: 900_000)
        let text = valid.replacingOccurrences(of: "[optimizer]\n", with: "[optimizer]\n\(key) = 1\n")
        let found = RecipeLoader.check(text: text, file: "r.toml").errors
        XCTAssertEqual(found.map(\.kind), [.unknownKey])
        XCTAssertEqual(found.first?.key, "optimizer." + String(repeating: "k", count: 70) + "… (900010 bytes)")
        XCTAssertNotNil(found.first?.line)
        XCTAssertLessThan(found.first!.description.count, 400, "the key is not echoed whole")
        XCTAssertEqual(RecipeLoader.closest(key, among: Schema.fields.map(\.key)), nil)
    }

    func testLongValuesAreCutWhenEchoed() throws {
        let valid = RecipeWriter.write(try plannedRecipe().0)
        let value = String(repeating: "w", count: 100_000)
        let found = RecipeLoader.check(text: edited(valid, "data.tokenizer", "\"\(value)\""), file: "r.toml").errors
        XCTAssertEqual(found.map(\.key), ["data.tokenizer"])
        XCTAssertEqual(found.first?.message,
                       "must be one of \"char\", \"byte\", \"bpe\", got \"" + String(repeating: "w", count: 79) + "… (100002 bytes)")
    }

    func testEchoCutsAtCharactersNotBytes() {
        XCTAssertEqual(RecipeText.echo("short"), "short")
        XCTAssertEqual(RecipeText.echo(String(repeating: "é", count: 80)), String(repeating: "é", count: 80))
        XCTAssertEqual(RecipeText.echo(String(repeating: "é", count: 81)), String(repeating: "é", count: 80) + "… (162 bytes)")
    }

    func testTypoSuggestionsStillWork() {
        XCTAssertEqual(RecipeLoader.closest("zero_stag", among: Schema.fields(in: "training").map(\.key)), "zero_stage")
        XCTAssertEqual(RecipeLoader.editDistance("kitten", "sitting"), 3)
        XCTAssertEqual(RecipeLoader.editDistance("", "abc"), 3)
        XCTAssertEqual(RecipeLoader.editDistance("abc", "abc"), 0)
    }

    /// Table headers that made TOMLKit's parser abort the process (SIGABRT from a failed assertion in toml++).
    func testHeadersThatCrashedTheTOMLParserAreSyntaxErrors() throws {
        let valid = RecipeWriter.write(try plannedRecipe().0)
        for (header, column) in [("[.checkpoint]", 2), ("[ .a]", 3), ("[[.a]]", 3), ("[=]", 2), ("[#]", 2), ("[[ +]]", 4),
                                 ("[*]", 2), ("[é]", 2), ("[ \t.a]", 4), ("[", 2), ("  [  ", 6), ("[\r", 2)] {
            let text = valid + header + "\n[x]\n"
            let line = valid.split(separator: "\n", omittingEmptySubsequences: false).count
            let found = RecipeLoader.check(text: text, file: "r.toml").problems
            XCTAssertEqual(found.map(\.kind), [.syntax], header)
            XCTAssertEqual(found.first?.line, line, header)
            XCTAssertEqual(found.first?.column, column, header)
        }
        // Found after comments and strings that contain quotes (a fuzzer's find: `"""` in a comment).
        for text in ["# version\"\"\"x\n[\\logging]\n", "a = \"x#\\\"y\"\n[.b]\n", "a = '#'\n[.b]\n",
                     "a = \"\"\"\n]\"\"\"\n[.b]\n", "a = '''x'''\n[.b]\n"] {
            let found = RecipeLoader.check(text: text, file: "r.toml").problems
            XCTAssertEqual(found.map(\.kind), [.syntax], text)
            XCTAssertEqual(found.first?.line, text.split(separator: "\n").count, text)
            XCTAssertEqual(found.first?.column, 2, text)
        }
        // Not headers: text inside multi-line strings, and valid headers.
        for text in ["a = \"\"\"\n[.x]\n\"\"\"\n", "a = '''\n[.x]'''\n", "[a]\n[ \"b\" ]\n['c']\n[[d]]\n[a.e]\n[_f]\n[-g]\n[0]\n"] {
            XCTAssertTrue(RecipeLoader.check(text: text, file: "r.toml").problems.allSatisfy { $0.kind != .syntax }, text)
        }
    }

    /// Seeded mutations of a valid recipe: whatever comes in, each error names a key or a line, and nothing traps.
    func testMutatedRecipesGiveLocatedProblems() throws {
        let valid = Array(RecipeWriter.write(try plannedRecipe().0).utf8)
        var state: UInt64 = 0x9E3779B97F4A7C15
        func next(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
        let inserts: [[UInt8]] = [Array("=".utf8), Array("[".utf8), Array("\"".utf8), [0xFF], Array("9".utf8),
                                  Array("-".utf8), Array("\n".utf8), Array("e999".utf8), Array(".".utf8), [0]]
        var counts: [Problem.Kind: Int] = [:]
        for _ in 0..<300 {
            var bytes = valid
            for _ in 0..<(1 + next(3)) {
                let at = next(bytes.count)
                switch next(3) {
                case 0: bytes.remove(at: at)
                case 1: bytes.insert(contentsOf: inserts[next(inserts.count)], at: at)
                default: bytes[at] = inserts[next(inserts.count)][0]
                }
            }
            let check = RecipeLoader.check(data: bytes, file: "m.toml")
            for problem in check.problems {
                XCTAssertTrue(problem.key != nil || problem.line != nil, "\(problem)")
                XCTAssertFalse(problem.fix.isEmpty)
                counts[problem.kind, default: 0] += 1
            }
            XCTAssertEqual(check.passed, check.errors.isEmpty && check.recipe != nil)
        }
        XCTAssertGreaterThan(counts[.syntax] ?? 0, 0, "\(counts)")
        XCTAssertGreaterThan(counts[.encoding] ?? 0, 0, "\(counts)")
    }
}
