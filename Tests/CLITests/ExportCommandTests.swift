import Foundation
import Recipe
import TestFixtures
import Runtime
import XCTest

/// `gpt-plan export`: the command's files, its refusals and its exit statuses.
final class ExportCommandTests: XCTestCase {
    func tokens(_ path: String, header: Int = 0) throws -> [Int32] {
        let b = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        return stride(from: header, to: b.count, by: 2).map { Int32(UInt16(b[$0]) | UInt16(b[$0 + 1]) << 8) }
    }

    /// A char recipe to nanoGPT: config.py, README.md and the data, with gpt-train's split.
    func testNanoGPTExportWritesConfigAndGptTrainsSplit() throws {
        let dir = try Fixtures.directory("export-nanogpt")
        var options = Fixtures.Options()
        options.bias = false
        let recipe = try Fixtures.recipe(in: dir, options)
        let out = try Tool.run("gpt-plan", ["export", recipe, "--to", "nanogpt", "-o", "nano"], in: dir)
        XCTAssertEqual(out.status, 0, out.stderr)
        XCTAssertTrue(out.stdout.contains("wrote data/meta.pkl"), out.stdout)
        for file in ["config.py", "README.md", "data/train.bin", "data/val.bin", "data/meta.pkl"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/nano/\(file)"), file)
        }
        let config = try String(contentsOfFile: "\(dir)/nano/config.py", encoding: .utf8)
        XCTAssertTrue(config.contains("dataset = '\(URL(fileURLWithPath: dir).standardized.path)/nano/data'"), config)
        let data = try TrainingData.load(try RecipeLoader.loadValid(path: recipe).0, relativeTo: dir)
        var train = [Int32](repeating: 0, count: data.train.count)
        train.withUnsafeMutableBufferPointer { data.train.read(0, data.train.count, into: $0.baseAddress!) }
        XCTAssertEqual(try tokens("\(dir)/nano/data/train.bin"), train)
        XCTAssertEqual(try tokens("\(dir)/nano/data/val.bin").count, data.val.count)
    }

    /// A prepared BPE directory to Megatron-LM: the indexed dataset and GPT-2 style vocab.json + merges.txt.
    func testMegatronExportOfAPreparedBPE() throws {
        let dir = try Fixtures.directory("export-megatron")
        try Fixtures.text(bytes: 30_000).write(toFile: "\(dir)/corpus.txt", atomically: true, encoding: .utf8)
        let prepared = try Tool.run("gpt-data", ["prepare", "corpus.txt", "--tokenizer", "bpe", "--vocab-size", "300", "-o", "bpe"], in: dir)
        XCTAssertEqual(prepared.status, 0, prepared.stderr)
        var options = Fixtures.Options()
        options.tokenizer = "bpe"
        options.dataPath = "bpe"
        options.vocabSize = 384
        let recipe = try Fixtures.recipe(in: dir, options)
        let out = try Tool.run("gpt-plan", ["export", recipe, "--to", "megatron", "-o", "\(dir)/m"], in: dir)
        XCTAssertEqual(out.status, 0, out.stderr)
        for file in ["train.sh", "README.md", "data/train.bin", "data/train.idx", "data/val.bin", "data/val.idx", "data/vocab.json", "data/merges.txt"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/m/\(file)"), file)
        }
        let vocab = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/m/data/vocab.json"))) as! [String: Int]
        XCTAssertEqual(vocab.count, 300)
        XCTAssertEqual(vocab["<|endoftext|>"], 299)
        let script = try String(contentsOfFile: "\(dir)/m/train.sh", encoding: .utf8)
        XCTAssertTrue(script.contains("--tokenizer-type GPT2BPETokenizer"))
        XCTAssertTrue(script.contains("--vocab-file \(dir)/m/data/vocab.json"))
        XCTAssertTrue(script.contains("--make-vocab-size-divisible-by 128"), "ceil(300 / 128) × 128 = 384")
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: "\(dir)/m/train.sh")[.posixPermissions] as? Int, 0o755)
        // The .bin holds the prepared split's training tokens, uint16.
        let shard = try tokens("\(dir)/bpe/train.bin", header: 64)
        XCTAssertEqual(try tokens("\(dir)/m/data/train.bin"), shard)
    }

    /// What an engine cannot express: exit status 1, the key and the fix, nothing written.
    func testRefusalNamesTheKeyAndWritesNothing() throws {
        let dir = try Fixtures.directory("export-refused")
        let recipe = try Fixtures.recipe(in: dir)
        let out = try Tool.run("gpt-plan", ["export", recipe, "--to", "llmc", "-o", "l"], in: dir)
        XCTAssertEqual(out.status, 1)
        XCTAssertTrue(out.stderr.contains("llm.c cannot run this recipe as written: model.n_layer:"), out.stderr)
        XCTAssertTrue(out.stderr.contains("Fix:"), out.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/l"))
        let engine = try Tool.run("gpt-plan", ["export", recipe, "--to", "deepspeed", "-o", "l"], in: dir)
        XCTAssertEqual(engine.status, 2)
        // argument-parser's refusal, naming the flag and every engine.
        XCTAssertTrue(engine.stderr.contains("'deepspeed' is invalid for '--to <to>'"), engine.stderr)
        XCTAssertTrue(engine.stderr.contains("'megatron', 'nanogpt' or 'llmc'"), engine.stderr)
    }

    /// --no-data: the configuration only, even when the data are not there. Without it, a recipe whose data is not
    /// there yet (a fresh plan's placeholder) still compiles, with a warning naming data.path and the fix.
    func testNoDataWritesTheConfigurationOnly() throws {
        let shipped = "\(Tool.repository)/recipes/chinchilla-1e20.toml"
        let dir = try Fixtures.directory("export-nodata")
        let missing = try Tool.run("gpt-plan", ["export", shipped, "--to", "megatron", "-o", "m"], in: dir)
        XCTAssertEqual(missing.status, 0, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("warning: data.path:") && missing.stderr.contains("does not exist")
                      && missing.stderr.contains("--no-data"), missing.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/m").sorted(), ["README.md", "train.sh"])
        let out = try Tool.run("gpt-plan", ["export", shipped, "--to", "megatron", "-o", "m2", "--no-data"], in: dir)
        XCTAssertEqual(out.status, 0, out.stderr)
        XCTAssertFalse(out.stderr.contains("warning"), out.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/m2").sorted(), ["README.md", "train.sh"])
    }
}
