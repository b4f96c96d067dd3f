import Foundation
import GPTShape
import Recipe
import TestFixtures
import XCTest

/// Llama-family recipes for the command-line tests, and the Python references they compare with.
enum LlamaFixture {
    /// The Llama shape of the tests: d_model 32 in 4 heads of 8, `nKVHead` key/value heads, SwiGLU of 48,
    /// rope_theta 5000 and norm_eps 1e-6 (not the defaults, so that both reach the kernels).
    static func shape(_ o: Fixtures.Options, nKVHead: Int = 2, tie: Bool = false) -> ModelShape {
        ModelShape(nLayer: o.nLayer, nHead: 4, dModel: o.dModel, dFF: 48, seqLen: o.seqLen, vocabSize: o.vocabSize,
                   bias: false, family: .llama, nKVHead: nKVHead, ropeTheta: 5000, normEps: 1e-6, tieEmbeddings: tie)
    }

    /// A recipe as `Fixtures.recipe(in:name:_:)` writes it (the same training settings and data), with the Llama
    /// model `shape`. Returns its path.
    @discardableResult
    static func recipe(in directory: String, name: String = "llama.toml", _ o: Fixtures.Options, shape: ModelShape) throws -> String {
        let path = try Fixtures.recipe(in: directory, name: name, o)
        var (recipe, _) = try RecipeLoader.loadValid(path: path)
        recipe.model = shape
        let n = recipe.shape.parameterCount.total
        recipe.plan = .init(flopsBudget: 6 * Double(n) * recipe.trainingTokens, fit: "manual", params: n,
                            tokens: Int(recipe.trainingTokens), predictedLoss: 0)
        try RecipeWriter.write(recipe, header: ["test recipe (Llama family)"]).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

enum PythonReference {
    static let scripts = (Tool.repository as NSString).appendingPathComponent("Tests/Python")

    /// Skips unless python3 imports every module in `modules`.
    static func require(_ modules: [String]) throws {
        for module in modules {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-c", "import \(module)"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            do { try process.run() } catch { throw XCTSkip("python3 is not installed: this test needs it with \(module)") }
            process.waitUntilExit()
            if process.terminationStatus != 0 {
                throw XCTSkip("the Python package \(module) is missing (scripts/setup.sh installs it with pip): this test compares with it")
            }
        }
    }

    /// Runs a script of Tests/Python in `directory` and returns its standard output, trimmed.
    static func output(_ script: String, _ arguments: [String], in directory: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", (scripts as NSString).appendingPathComponent(script)] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment
        environment["HF_HUB_OFFLINE"] = "1"
        environment["TRANSFORMERS_VERBOSITY"] = "error"
        environment["TOKENIZERS_PARALLELISM"] = "false"
        environment["OMP_NUM_THREADS"] = "1"
        process.environment = environment
        let out = (directory as NSString).appendingPathComponent("python-\(UUID().uuidString).out")
        let err = out + ".err"
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: err, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle(forWritingAtPath: err)
        try process.run()
        process.waitUntilExit()
        let stdout = try String(contentsOfFile: out, encoding: .utf8)
        let stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        XCTAssertEqual(process.terminationStatus, 0, "\(script) failed:\n\(stderr)")
        return stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs a script of Tests/Python in `directory` and returns the last line of its standard output parsed as a
    /// JSON object.
    static func run(_ script: String, _ arguments: [String], in directory: String) throws -> [String: Any] {
        let stdout = try output(script, arguments, in: directory)
        let line = stdout.split(separator: "\n").last.map(String.init) ?? ""
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(script): \(stdout)")
    }
}
