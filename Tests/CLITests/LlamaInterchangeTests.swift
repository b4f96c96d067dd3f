import Checkpoint
import Corpus
import Foundation
import Interchange
import Runtime
import TestFixtures
import XCTest

/// `gpt-train import` and `export --to hf` of Llama-family models, checked against transformers'
/// `LlamaForCausalLM` itself (Tests/Python/hf_llama.py), and their refusals.
final class LlamaInterchangeTests: XCTestCase {
    /// Two random LlamaForCausalLM made by transformers (grouped-query attention with an untied head; multi-head
    /// with a tied one) and a folder of data prepared with their tokenizer, made once for the tests of this class
    /// (Python's start is most of their time). Returns the directory; tests leave its `rnd` and `data` alone.
    func randomModels() throws -> String {
        if let made = Self.madeModels { return made }
        let dir = try Fixtures.directory("llama-import")
        try InterchangeCommandTests.unicodeText(words: 5000, seed: 5).write(toFile: dir + "/text.txt", atomically: true, encoding: .utf8)
        let made = try PythonReference.run("hf_llama.py", ["make", "rnd", "text.txt"], in: dir)
        XCTAssertEqual((made["gqa"] as? [String: Any])?["tied"] as? Bool, false)
        XCTAssertEqual((made["tied"] as? [String: Any])?["tied"] as? Bool, true)
        let prepared = try Tool.run("gpt-data", ["prepare", "text.txt", "--tokenizer", "rnd/gqa/tokenizer.json", "-o", "data"], in: dir)
        XCTAssertEqual(prepared.status, 0, prepared.stderr)
        Self.madeModels = dir
        return dir
    }

    nonisolated(unsafe) static var madeModels: String?

    /// Import, then export of the import: every tensor back under its name with the same bits; the checkpoint's
    /// recipe is the config's model; gpt-train eval's loss is transformers' on the same windows.
    func testImportEvaluatesAsTransformersAndExportsBackBitIdentical() throws {
        try PythonReference.require(["torch", "transformers", "tokenizers", "safetensors"])
        let dir = try randomModels()
        var losses: [String: Double] = [:], windows = 0
        for name in ["gqa", "tied"] {
            let imported = try Tool.run("gpt-train", ["import", "rnd/\(name)", "-o", "\(name).h5", "--data", "data"], in: dir)
            XCTAssertEqual(imported.status, 0, imported.stderr)
            XCTAssertTrue(imported.stderr.contains("2 layers × 4 heads"), imported.stderr)
            let loaded = try LoadedCheckpoint(path: dir + "/\(name).h5", threads: 1, maxBatch: 1, maxTime: 1)
            let shape = loaded.model.shape
            XCTAssertEqual(shape.family, .llama)
            XCTAssertEqual(shape.nKVHead, name == "gqa" ? 2 : 4)
            XCTAssertEqual(shape.tieEmbeddings, name == "tied")
            XCTAssertEqual(shape.ropeTheta, 5000)
            XCTAssertEqual(shape.normEps, 1e-6)
            XCTAssertEqual(shape.dFF, 48)
            XCTAssertEqual(shape.seqLen, 64)
            XCTAssertFalse(shape.bias)

            let back = try Tool.run("gpt-train", ["export", "\(name).h5", "--to", "hf", "-o", "back-\(name)"], in: dir)
            XCTAssertEqual(back.status, 0, back.stderr)
            let original = try SafetensorsFile(contentsOf: dir + "/rnd/\(name)/model.safetensors")
            let again = try SafetensorsFile(contentsOf: dir + "/back-\(name)/model.safetensors")
            XCTAssertEqual(Set(again.entries.keys), Set(original.entries.keys), name)
            XCTAssertEqual(again.entries["lm_head.weight"] != nil, name == "gqa")
            for (tensor, entry) in again.entries {
                XCTAssertEqual(entry.shape, original.entries[tensor]?.shape, tensor)
                XCTAssertEqual(try again.floats(tensor).map(\.bitPattern), try original.floats(tensor).map(\.bitPattern), tensor)
            }
            let config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/back-\(name)/config.json"))) as? [String: Any])
            XCTAssertEqual(config["architectures"] as? [String], ["LlamaForCausalLM"])
            XCTAssertEqual(config["num_key_value_heads"] as? Int, name == "gqa" ? 2 : 4)
            XCTAssertEqual(config["tie_word_embeddings"] as? Bool, name == "tied")
            XCTAssertEqual(config["rope_theta"] as? Double, 5000)
            XCTAssertEqual(config["rms_norm_eps"] as? Double, 1e-6)

            let eval = try Tool.run("gpt-train", ["eval", "\(name).h5", "--json", "--threads", "1"], in: dir)
            XCTAssertEqual(eval.status, 0, eval.stderr)
            let evaluation = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])
            losses[name] = try XCTUnwrap(evaluation["loss"] as? Double)
            windows = try XCTUnwrap(evaluation["windows"] as? Int)
            let sample = try Tool.run("gpt-sample", ["\(name).h5", "--prompt", "the", "--tokens", "5", "--threads", "1"], in: dir)
            XCTAssertEqual(sample.status, 0, sample.stderr)
        }
        // A bfloat16 model (as the hub stores them) is imported widened exactly: its export holds the bf16 values.
        XCTAssertEqual(try Tool.run("gpt-train", ["import", "rnd/gqa-bf16", "-o", "bf16.h5"], in: dir).status, 0)
        XCTAssertEqual(try Tool.run("gpt-train", ["export", "bf16.h5", "--to", "hf", "-o", "back-bf16"], in: dir).status, 0)
        let half = try SafetensorsFile(contentsOf: dir + "/rnd/gqa-bf16/model.safetensors")
        let widened = try SafetensorsFile(contentsOf: dir + "/back-bf16/model.safetensors")
        XCTAssertEqual(half.entries["model.norm.weight"]?.dtype, .bf16)
        XCTAssertEqual(Set(widened.entries.keys), Set(half.entries.keys))
        for name in half.entries.keys {
            XCTAssertEqual(widened.entries[name]?.dtype, .f32, name)
            XCTAssertEqual(try widened.floats(name).map(\.bitPattern), try half.floats(name).map(\.bitPattern), name)
        }

        let val = try PreparedDataset(directory: dir + "/data").val
        var tokens = [Int32](repeating: 0, count: val.count)
        tokens.withUnsafeMutableBufferPointer { val.read(0, val.count, into: $0.baseAddress!) }
        try tokens.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: dir + "/val.i32")) }
        XCTAssertGreaterThan(windows, 0)
        let reference = try PythonReference.run("hf_llama.py", ["loss", "val.i32", "64", String(windows), "rnd/gqa", "rnd/tied"], in: dir)
        for name in ["gqa", "tied"] {
            let theirs = try XCTUnwrap(reference["rnd/\(name)"] as? Double), ours = try XCTUnwrap(losses[name])
            // The same function in float32 summed in another order (ours) and float32 logits with a float64
            // softmax (theirs): measured ~1e-7 apart; 1e-5 relative is the bound.
            XCTAssertEqual(ours, theirs, accuracy: 1e-5 * theirs, "\(name): ours \(ours), transformers \(theirs)")
            XCTAssertGreaterThan(theirs, 1, "a random model's loss is far from zero")
            print("llama import \(name): gpt-train eval \(ours), transformers \(theirs), relative difference \(abs(ours - theirs) / theirs)")
        }
    }

    /// A Llama checkpoint trained here loads with LlamaForCausalLM.from_pretrained, no key missing or unexpected,
    /// and computes our logits (float32 and float64).
    func testTrainedExportLoadsInTransformersWithTheSameLogits() throws {
        try PythonReference.require(["torch", "transformers", "safetensors"])
        let dir = try Fixtures.directory("llama-export")
        try InterchangeCommandTests.unicodeText(words: 6000, seed: 3).write(toFile: dir + "/text.txt", atomically: true, encoding: .utf8)
        let prepared = try Tool.run("gpt-data", ["prepare", "text.txt", "--tokenizer", "bpe", "--vocab-size", "300", "-o", "data"], in: dir)
        XCTAssertEqual(prepared.status, 0, prepared.stderr)
        var o = Fixtures.Options()
        o.steps = 12
        o.tokenizer = "bpe"
        o.vocabSize = 320
        o.dataPath = "data"
        o.checkpointInterval = 12
        o.evalInterval = 12
        let recipe = try LlamaFixture.recipe(in: dir, o, shape: LlamaFixture.shape(o, nKVHead: 2, tie: false))
        let run = try Tool.run("gpt-train", [recipe, "--out", dir + "/run", "--threads", "1", "--no-mfu"], in: dir)
        XCTAssertEqual(run.status, 0, run.stderr)
        let checkpoint = dir + "/run/checkpoints/ckpt-00000012.h5"
        let export = try Tool.run("gpt-train", ["export", checkpoint, "--to", "hf", "-o", "hf"], in: dir)
        XCTAssertEqual(export.status, 0, export.stderr)

        let loaded = try LoadedCheckpoint(path: checkpoint, threads: 1, maxBatch: 2, maxTime: 16)
        let val = try PreparedDataset(directory: dir + "/data").val
        let t = 16, windows = 2
        var tokens = [Int32](repeating: 0, count: windows * t)
        tokens.withUnsafeMutableBufferPointer { val.read(0, windows * t, into: $0.baseAddress!) }
        try tokens.withUnsafeBufferPointer { try loaded.model.forward(tokens: $0.baseAddress!, targets: nil, batch: windows, time: t) }
        let logits = Array(UnsafeBufferPointer(start: loaded.model.logits, count: windows * t * loaded.model.shape.vocabSize))
        try tokens.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: dir + "/tokens.i32")) }
        try logits.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: dir + "/logits.f32")) }

        let result = try PythonReference.run("hf_llama.py", ["check", "hf", "tokens.i32", "logits.f32", String(t)], in: dir)
        XCTAssertEqual(result["missing"] as? [String], [])
        XCTAssertEqual(result["unexpected"] as? [String], [])
        XCTAssertEqual(result["mismatched"] as? [[String]], [])
        XCTAssertEqual(result["tied"] as? Bool, false)
        XCTAssertEqual(result["num_key_value_heads"] as? Int, 2)
        XCTAssertEqual(result["rope_theta"] as? Double, 5000)
        XCTAssertEqual(result["rms_norm_eps"] as? Double, 1e-6)
        XCTAssertEqual(result["shape_theirs"] as? [Int], [windows, t, 320])
        let magnitude = try XCTUnwrap(result["max_magnitude"] as? Double)
        let difference = try XCTUnwrap(result["max_difference"] as? Double)
        let wide = try XCTUnwrap(result["max_difference_float64"] as? Double)
        XCTAssertGreaterThan(magnitude, 0.1)
        // float32 products summed in another order: ~1e-6 of the largest logit; the bound is 1e-4.
        XCTAssertLessThanOrEqual(difference, 1e-4, "logits differ by \(difference) (largest \(magnitude))")
        // Our float32 against their float64: the rounding of a float32 forward pass of two blocks, ~1e-6.
        XCTAssertLessThanOrEqual(wide, 1e-4, "logits differ from float64 by \(wide) (largest \(magnitude))")
        print("llama export: max |logit| \(magnitude), fp32 difference \(difference), float64 difference \(wide)")
    }

    /// What the model does not compute is refused naming config.json's field and the fix; llm.c's file refuses
    /// the family.
    func testUnsupportedConfigsAreRefusedNamingTheField() throws {
        try PythonReference.require(["torch", "transformers", "tokenizers", "safetensors"])
        let dir = try randomModels()
        func variant(_ name: String, from source: String = "gqa", config edit: ([String: Any]) -> [String: Any]) throws -> String {
            try FileManager.default.copyItem(atPath: dir + "/rnd/\(source)", toPath: dir + "/" + name)
            let path = dir + "/\(name)/config.json"
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
            try JSONSerialization.data(withJSONObject: edit(object)).write(to: URL(fileURLWithPath: path))
            return name
        }
        func with(_ key: String, _ value: Any) -> ([String: Any]) -> [String: Any] { { var o = $0; o[key] = value; return o } }
        let cases: [(String, [String])] = [
            (try variant("scaled", config: with("rope_scaling", ["rope_type": "llama3", "factor": 8.0])),
             ["rope_scaling", "\"llama3\"", "unscaled"]),
            (try variant("scaled5", config: with("rope_parameters", ["rope_type": "linear", "factor": 2.0, "rope_theta": 5000.0])),
             ["rope_parameters", "\"linear\""]),
            (try variant("head-dim", config: with("head_dim", 16)), ["head_dim", "is 16", "hidden_size / num_attention_heads = 8"]),
            (try variant("bias", config: with("attention_bias", true)), ["attention_bias", "no biases"]),
            (try variant("mlp-bias", config: with("mlp_bias", true)), ["mlp_bias"]),
            (try variant("gelu", config: with("hidden_act", "gelu")), ["hidden_act", "\"gelu\""]),
            (try variant("kv", config: with("num_key_value_heads", 3)), ["num_key_value_heads", "3 does not divide"]),
            (try variant("mistral", config: with("model_type", "mistral")), ["model_type", "\"mistral\""]),
        ]
        for (folder, phrases) in cases {
            let out = try Tool.run("gpt-train", ["import", folder, "-o", folder + ".h5"], in: dir)
            XCTAssertEqual(out.status, 1, "\(folder): \(out.stderr)")
            XCTAssertTrue(out.stderr.contains("\(folder)/config.json"), "\(folder): \(out.stderr)")
            for phrase in phrases { XCTAssertTrue(out.stderr.contains(phrase), "\(folder): \(phrase) not in \(out.stderr)") }
            XCTAssertTrue(out.stderr.contains("Fix:"), out.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/" + folder + ".h5"))
        }
        // An untied model said to be tied: its lm_head differs from the embedding. A tied one said untied: no lm_head.
        for (folder, source, tie, phrases) in [("said-tied", "gqa", true, ["lm_head.weight", "differs from model.embed_tokens.weight"]),
                                               ("said-untied", "tied", false, ["lm_head.weight", "is missing"])] {
            _ = try variant(folder, from: source, config: with("tie_word_embeddings", tie))
            let out = try Tool.run("gpt-train", ["import", folder, "-o", folder + ".h5"], in: dir)
            XCTAssertEqual(out.status, 1, "\(folder): \(out.stderr)")
            XCTAssertTrue(out.stderr.contains("\(folder)/model.safetensors"), "\(folder): \(out.stderr)")
            for phrase in phrases { XCTAssertTrue(out.stderr.contains(phrase), "\(folder): \(phrase) not in \(out.stderr)") }
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/" + folder + ".h5"))
        }
        // A long context (Llama 3.1's 131072 positions) is imported as the model's, evaluated and sampled in a
        // window of at most 1024 tokens (the recipe's training.seq_len), so nothing is sized for 131072 tokens.
        _ = try variant("long", config: with("max_position_embeddings", 131_072))
        XCTAssertEqual(try Tool.run("gpt-train", ["import", "long", "-o", "long.h5"], in: dir).status, 0)
        let long = try LoadedCheckpoint(path: dir + "/long.h5", threads: 1, maxBatch: 1, maxTime: 1)
        XCTAssertEqual(long.model.shape.seqLen, 131_072)
        XCTAssertEqual(long.recipe.training.seqLen, 1024)
        let sample = try Tool.run("gpt-sample", ["long.h5", "--prompt", "the", "--tokens", "5", "--threads", "1"], in: dir)
        XCTAssertEqual(sample.status, 0, sample.stderr)

        // llm.c's model file holds GPT-2 blocks.
        XCTAssertEqual(try Tool.run("gpt-train", ["import", "rnd/gqa", "-o", "for-llmc.h5"], in: dir).status, 0)
        let llmc = try Tool.run("gpt-train", ["export", "for-llmc.h5", "--to", "llmc", "-o", "model.bin"], in: dir)
        XCTAssertEqual(llmc.status, 1)
        XCTAssertTrue(llmc.stderr.contains("model.family") && llmc.stderr.contains("--to hf"), llmc.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/model.bin"))
    }
}
