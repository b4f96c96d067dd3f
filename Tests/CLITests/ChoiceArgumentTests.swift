import Foundation
import TestFixtures
import XCTest

/// Options that take a name from a closed set are parsed by argument-parser: an unknown name is a usage error
/// (status 2) naming the option, the value and every choice, before any file is opened.
final class ChoiceArgumentTests: XCTestCase {
    func testUnknownNamesListTheChoices() throws {
        let cases: [(String, [String], String)] = [
            ("gpt-train", ["plot", "runs/a", "--x", "time"],
             "The value 'time' is invalid for '--x <x>'. Please provide one of 'steps' and 'tokens'."),
            ("gpt-train", ["eval", "none.h5", "--split", "test"],
             "The value 'test' is invalid for '--split <split>'. Please provide one of 'val' and 'train'."),
            ("gpt-train", ["export", "none.h5", "--to", "onnx", "-o", "out"],
             "The value 'onnx' is invalid for '--to <to>'. Please provide one of 'hf' and 'llmc'."),
            ("gpt-bench", ["train", "--config", "z"],
             "The value 'z' is invalid for '--config <config>'. Please provide one of the following:"),
            ("gpt-plan", ["export", "none.toml", "--to", "deepspeed", "-o", "out"],
             "The value 'deepspeed' is invalid for '--to <to>'. Please provide one of 'megatron', 'nanogpt' or 'llmc'."),
        ]
        let dir = try Fixtures.directory("choice-arguments")
        for (tool, arguments, message) in cases {
            let out = try Tool.run(tool, arguments, in: dir)
            XCTAssertEqual(out.status, 2, "\(tool) \(arguments): \(out.stderr)")
            XCTAssertTrue(out.stderr.contains(message), "\(tool) \(arguments): \(out.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/out"))
        }
        // Six or more values are listed one a line.
        let bench = try Tool.run("gpt-bench", ["train", "--config", "z"], in: dir)
        for value in ["a", "b", "c", "d", "l", "all"] {
            XCTAssertTrue(bench.stderr.contains("  - \(value)\n"), "gpt-bench --config \(value): \(bench.stderr)")
        }
    }

    /// --help lists every value of such an option.
    func testHelpListsTheValues() throws {
        let plan = try Tool.run("gpt-plan", ["estimate", "--help"])
        XCTAssertEqual(plan.status, 0)
        let help = plan.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        XCTAssertTrue(help.contains("(values: a100-40gb, a100-80gb, h100-sxm-80gb, h200-141gb, mi300x, cpu)"), help)
        XCTAssertTrue(help.contains("(values: 2, 4)"), help)
    }
}
