import Checkpoint
import Compute
import Corpus
import Foundation
import Interchange
import TestFixtures
import Runtime
import XCTest

/// `gpt-train export --to hf|llmc`, `gpt-train import`, `--init-from` and `gpt-data prepare --tokenizer FILE`,
/// checked against transformers, tokenizers and safetensors themselves (Tests/Python/*.py), and their refusals.
final class InterchangeCommandTests: XCTestCase {
    /// Skips unless python3 imports every module in `modules`.
    func requirePython(_ modules: [String]) throws { try PythonReference.require(modules) }

    /// Runs a script of Tests/Python and returns its standard output.
    func python(_ script: String, _ arguments: [String], in directory: String) throws -> String {
        try PythonReference.output(script, arguments, in: directory)
    }

    /// Text with what tokenizers get wrong: accents, CJK, emoji, CRLF, tabs, digits, contractions.
    static func unicodeText(words count: Int, seed: UInt64) -> String {
        let words = ["the", "quick", "brown", "fox", "über", "naïve", "café", "東京", "タワー", "😀", "👍🏽", "data", "123",
                     "4567", "don't", "it's", "we'll", "¿Qué?", "x=1.5e-3", "Ελληνικά"]
        let gaps = [" ", " ", " ", "\n", "\r\n", "\t", "  ", "\n\n"]
        var state = seed | 1
        func next(_ n: Int) -> Int {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Int(state % UInt64(n))
        }
        var out = ""
        for _ in 0..<count { out += words[next(words.count)] + gaps[next(gaps.count)] }
        return out
    }

    static let heldOutText = "Café naïve über — 東京タワー 😀👍🏽 don't it's\r\n\ttabs\t\there  123 4567890 ¿Qué? Ünïcödé  \n\n end"

    /// gpt-data encode's ids.
    func encode(_ tokenizer: String, file: String, in directory: String) throws -> [Int] {
        let out = try Tool.run("gpt-data", ["encode", "--tokenizer", tokenizer, "--file", file], in: directory)
        XCTAssertEqual(out.status, 0, out.stderr)
        return out.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int($0) }
    }

    /// A small trained checkpoint on BPE data: vocabulary 300 padded to 320, no biases (so export writes zero
    /// biases and keeps padded rows). Returns (directory, checkpoint).
    func trainedCheckpoint() throws -> (String, String) {
        let dir = try Fixtures.directory("interchange")
        try Self.unicodeText(words: 6000, seed: 3).write(toFile: dir + "/text.txt", atomically: true, encoding: .utf8)
        let prepared = try Tool.run("gpt-data", ["prepare", "text.txt", "--tokenizer", "bpe", "--vocab-size", "300", "-o", "data"], in: dir)
        XCTAssertEqual(prepared.status, 0, prepared.stderr)
        var options = Fixtures.Options()
        options.steps = 12
        options.tokenizer = "bpe"
        options.vocabSize = 320
        options.dataPath = "data"
        options.bias = false
        options.checkpointInterval = 12
        options.evalInterval = 12
        let recipe = try Fixtures.recipe(in: dir, options)
        let run = try Tool.run("gpt-train", [recipe, "--out", dir + "/run", "--threads", "1", "--no-mfu"], in: dir)
        XCTAssertEqual(run.status, 0, run.stderr)
        return (dir, dir + "/run/checkpoints/ckpt-00000012.h5")
    }

    func testExportLoadsInTransformersWithTheSameLogitsAndTokens() throws {
        try requirePython(["torch", "transformers", "tokenizers", "safetensors"])
        let (dir, checkpoint) = try trainedCheckpoint()
        let export = try Tool.run("gpt-train", ["export", checkpoint, "--to", "hf", "-o", "hf"], in: dir)
        XCTAssertEqual(export.status, 0, export.stderr)

        // gpt-train's logits on two held-out windows.
        let loaded = try LoadedCheckpoint(path: checkpoint, threads: 1, maxBatch: 2, maxTime: 16)
        let val = try PreparedDataset(directory: dir + "/data").val
        let t = 16, windows = 2
        var tokens = [Int32](repeating: 0, count: windows * t)
        tokens.withUnsafeMutableBufferPointer { val.read(0, windows * t, into: $0.baseAddress!) }
        try tokens.withUnsafeBufferPointer { try loaded.model.forward(tokens: $0.baseAddress!, targets: nil, batch: windows, time: t) }
        let logits = Array(UnsafeBufferPointer(start: loaded.model.logits, count: windows * t * loaded.model.shape.vocabSize))
        try tokens.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: dir + "/tokens.i32")) }
        try logits.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: dir + "/logits.f32")) }
        try Self.heldOutText.write(toFile: dir + "/held.txt", atomically: true, encoding: .utf8)

        let report = try python("hf_check_export.py", ["hf", "tokens.i32", "logits.f32", String(t), "held.txt"], in: dir)
        let result = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(report.utf8)) as? [String: Any], report)
        XCTAssertEqual(result["missing"] as? [String], [])
        XCTAssertEqual(result["unexpected"] as? [String], [])
        XCTAssertEqual(result["shape_theirs"] as? [Int], [windows, t, 320])
        let difference = try XCTUnwrap(result["max_difference"] as? Double), magnitude = try XCTUnwrap(result["max_magnitude"] as? Double)
        // fp32 products summed in another order: ~1e-6 of the largest logit; 1e-4 relative is the bound.
        XCTAssertLessThanOrEqual(difference, 1e-4 * magnitude, "logits differ by \(difference) (largest \(magnitude))")
        XCTAssertGreaterThan(magnitude, 0.1)
        XCTAssertEqual(result["ids"] as? [Int], try encode("data", file: "held.txt", in: dir))
        XCTAssertEqual(result["decoded_equal"] as? Bool, true)
    }

    func testImportFromTransformersEvaluatesTrainsAndExportsBack() throws {
        try requirePython(["torch", "transformers", "tokenizers", "safetensors"])
        let dir = try Fixtures.directory("interchange-import")
        try Self.unicodeText(words: 4000, seed: 11).write(toFile: dir + "/text.txt", atomically: true, encoding: .utf8)
        _ = try python("hf_make_random.py", ["rnd", "text.txt"], in: dir)

        // The tokenizer, from tokenizer.json and from GPT-2's vocab.json + merges.txt: the same tokens, and the ids
        // AutoTokenizer gives.
        for (source, output) in [("rnd/tokenizer.json", "data"), ("rnd/gpt2-files", "data-gpt2")] {
            let prepared = try Tool.run("gpt-data", ["prepare", "text.txt", "--tokenizer", source, "-o", output], in: dir)
            XCTAssertEqual(prepared.status, 0, prepared.stderr)
        }
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/data/train.bin"), FileManager.default.contents(atPath: dir + "/data-gpt2/train.bin"))
        // Import, and gpt-train eval equals transformers' loss on the same windows.
        let imported = try Tool.run("gpt-train", ["import", "rnd", "-o", "imported.h5", "--data", "data"], in: dir)
        XCTAssertEqual(imported.status, 0, imported.stderr)
        let eval = try Tool.run("gpt-train", ["eval", "imported.h5", "--json", "--threads", "1"], in: dir)
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let evaluation = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])
        let ours = try XCTUnwrap(evaluation["loss"] as? Double), windows = try XCTUnwrap(evaluation["windows"] as? Int)
        let val = try PreparedDataset(directory: dir + "/data").val
        var tokens = [Int32](repeating: 0, count: val.count)
        tokens.withUnsafeMutableBufferPointer { val.read(0, val.count, into: $0.baseAddress!) }
        try tokens.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: dir + "/val.i32")) }
        try Self.heldOutText.write(toFile: dir + "/held.txt", atomically: true, encoding: .utf8)
        let theirs = try python("hf_loss.py", ["rnd", "held.txt", "val.i32", "32", String(windows)], in: dir)
        let reference = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(theirs.utf8)) as? [String: Any], theirs)
        let loss = try XCTUnwrap(reference["loss"] as? Double)
        // The same function in float32 (ours) and float64 softmax over float32 logits (theirs): ~1e-7 apart.
        XCTAssertEqual(ours, loss, accuracy: 1e-4 * loss)
        XCTAssertEqual(reference["ids"] as? [Int], try encode("rnd/tokenizer.json", file: "held.txt", in: dir))
        XCTAssertEqual(reference["decoded_equal"] as? Bool, true)

        // gpt-sample and inspect take it as any checkpoint.
        let sample = try Tool.run("gpt-sample", ["imported.h5", "--prompt", "the", "--tokens", "5", "--threads", "1"], in: dir)
        XCTAssertEqual(sample.status, 0, sample.stderr)
        let inspect = try Tool.run("gpt-train", ["inspect", "imported.h5"], in: dir)
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("bias true"), inspect.stdout)

        // Export gives back the same tensors, bit for bit (read with our reader; the original came from safetensors).
        let back = try Tool.run("gpt-train", ["export", "imported.h5", "--to", "hf", "-o", "back"], in: dir)
        XCTAssertEqual(back.status, 0, back.stderr)
        let original = try SafetensorsFile(contentsOf: dir + "/rnd/model.safetensors")
        let again = try SafetensorsFile(contentsOf: dir + "/back/model.safetensors")
        func canonical(_ name: String) -> String { name.hasPrefix("transformer.") || name.hasPrefix("lm_head") ? name : "transformer." + name }
        let originalNames = Dictionary(uniqueKeysWithValues: original.entries.keys.map { (canonical($0), $0) })
        XCTAssertEqual(Set(again.entries.keys), Set(originalNames.keys).subtracting(["lm_head.weight"]))
        for (name, entry) in again.entries {
            let source = try XCTUnwrap(originalNames[name])
            XCTAssertEqual(entry.shape, original.entries[source]?.shape, name)
            XCTAssertEqual(try again.floats(name).map(\.bitPattern), try original.floats(source).map(\.bitPattern), name)
        }

        // Training continues from the imported weights, and resumes bit-exact as any run does.
        var options = Fixtures.Options()
        options.steps = 6
        options.seqLen = 32
        options.tokenizer = "bpe"
        // The vocabulary padded to a multiple of 64 as gpt-plan writes it (to 384): the extra rows start random.
        options.vocabSize = 384
        options.dataPath = "data"
        options.checkpointInterval = 3
        options.evalInterval = 3
        options.keep = 2
        let recipe = try Fixtures.recipe(in: dir, name: "more.toml", options)
        let whole = try Tool.run("gpt-train", [recipe, "--out", "whole", "--threads", "1", "--no-mfu", "--init-from", "imported.h5"], in: dir)
        XCTAssertEqual(whole.status, 0, whole.stderr)
        let first = try Fixtures.metrics(runDirectory: dir + "/whole")[0]["train_loss"]
        XCTAssertEqual(try XCTUnwrap(first), ours, accuracy: 0.3)
        // After 3 steps every weight is within 3 AdamW updates (each at most about lr = 3e-3) of the imported one:
        // the run started from it, not from a random initialisation (which differs by ~0.05 and more).
        let start = try LoadedCheckpoint(path: dir + "/imported.h5", threads: 1, maxBatch: 1, maxTime: 1)
        let third = try LoadedCheckpoint(path: dir + "/whole/checkpoints/ckpt-00000003.h5", threads: 1, maxBatch: 1, maxTime: 1)
        XCTAssertEqual(third.model.shape.vocabSize, 384)
        for tensor in start.model.layout.tensors {
            let there = try XCTUnwrap(third.model.layout.tensor(named: tensor.name))
            var largest: Float = 0
            for i in 0..<tensor.count {
                largest = max(largest, abs(start.model.parameters.base[tensor.offset + i] - third.model.parameters.base[there.offset + i]))
            }
            XCTAssertLessThan(largest, 0.012, tensor.name)
        }
        let part = try Tool.run("gpt-train", [recipe, "--out", "parts", "--threads", "1", "--no-mfu", "--init-from", "imported.h5", "--steps", "3"], in: dir)
        XCTAssertEqual(part.status, 0, part.stderr)
        let rest = try Tool.run("gpt-train", [recipe, "--out", "parts", "--threads", "1", "--no-mfu", "--resume"], in: dir)
        XCTAssertEqual(rest.status, 0, rest.stderr)
        XCTAssertEqual(try Fixtures.metrics(runDirectory: dir + "/parts"), try Fixtures.metrics(runDirectory: dir + "/whole"))
        let a = try LoadedCheckpoint(path: dir + "/whole/checkpoints/ckpt-00000006.h5", threads: 1, maxBatch: 1, maxTime: 1)
        let b = try LoadedCheckpoint(path: dir + "/parts/checkpoints/ckpt-00000006.h5", threads: 1, maxBatch: 1, maxTime: 1)
        XCTAssertEqual(a.model.parameters.buffer.map(\.bitPattern), b.model.parameters.buffer.map(\.bitPattern))

        // A recipe whose model differs is refused, naming the field.
        options.dModel = 64
        let other = try Fixtures.recipe(in: dir, name: "other.toml", options)
        let refused = try Tool.run("gpt-train", [other, "--out", "other", "--threads", "1", "--no-mfu", "--init-from", "imported.h5"], in: dir)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("model.d_model is 32 there and 64 here"), refused.stderr)
    }

    func testLLMCModelFile() throws {
        let (dir, checkpoint) = try trainedCheckpoint()
        let export = try Tool.run("gpt-train", ["export", checkpoint, "--to", "llmc", "-o", "model.bin"], in: dir)
        XCTAssertEqual(export.status, 0, export.stderr)
        let data = try XCTUnwrap(FileManager.default.contents(atPath: dir + "/model.bin"))
        let header = data.withUnsafeBytes { Array($0.bindMemory(to: Int32.self).prefix(256)) }
        // magic, version, maxT, V (the tokenizer's), L, NH, C, Vp (320 padded to a multiple of 128)
        XCTAssertEqual(Array(header[0..<8]), [20240326, 3, 16, 300, 2, 2, 32, 384])
        XCTAssertEqual(header[8...].filter { $0 != 0 }, [])
        let c = 32, l = 2, vp = 384, t = 16
        let floats = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)[256...]) }
        XCTAssertEqual(floats.count, vp * c + t * c + l * (12 * c * c + 13 * c) + 2 * c)
        let loaded = try LoadedCheckpoint(path: checkpoint, threads: 1, maxBatch: 1, maxTime: 1)
        let layout = loaded.model.layout, p = loaded.model.parameters.base
        func ours(_ offset: Int, _ count: Int) -> [UInt32] { (0..<count).map { p[offset + $0].bitPattern } }
        func theirs(_ offset: Int, _ count: Int) -> [UInt32] { floats[offset ..< offset + count].map(\.bitPattern) }
        XCTAssertEqual(theirs(0, 320 * c), ours(layout.wte, 320 * c))
        XCTAssertEqual(theirs(320 * c, (vp - 320) * c), [UInt32](repeating: 0, count: (vp - 320) * c))
        var at = vp * c
        XCTAssertEqual(theirs(at, t * c), ours(layout.wpe, t * c)); at += t * c
        XCTAssertEqual(theirs(at, c), ours(layout.layers[0].ln1Weight, c)); at += l * c
        XCTAssertEqual(theirs(at, l * c), [UInt32](repeating: 0, count: l * c), "ln1b: zeros for a bias-free model"); at += l * c
        XCTAssertEqual(theirs(at + 3 * c * c, 3 * c * c), ours(layout.layers[1].qkvWeight, 3 * c * c), "qkvw of layer 1")
        let lnf = floats.count - 2 * c
        XCTAssertEqual(theirs(lnf, c), ours(layout.lnfWeight, c))
    }

    func testCorruptAndMismatchedInputAreClearErrors() throws {
        let (dir, checkpoint) = try trainedCheckpoint()
        XCTAssertEqual(try Tool.run("gpt-train", ["export", checkpoint, "--to", "hf", "-o", "good"], in: dir).status, 0)
        let good = try XCTUnwrap(FileManager.default.contents(atPath: dir + "/good/model.safetensors"))
        let headerLength = Int(good.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = String(decoding: good[8 ..< 8 + headerLength], as: UTF8.self)

        func variant(_ name: String, safetensors: Data? = nil, config: (String) -> String = { $0 }) throws -> String {
            let path = dir + "/" + name
            try FileManager.default.copyItem(atPath: dir + "/good", toPath: path)
            if let safetensors { try safetensors.write(to: URL(fileURLWithPath: path + "/model.safetensors")) }
            let text = try String(contentsOfFile: path + "/config.json", encoding: .utf8)
            try config(text).write(toFile: path + "/config.json", atomically: true, encoding: .utf8)
            return name
        }
        func withHeader(_ edit: (String) -> String) -> Data {
            var bytes = Array(edit(header).utf8)
            while bytes.count < headerLength { bytes.append(0x20) }
            XCTAssertEqual(bytes.count, headerLength, "the edit keeps the header's length")
            var data = good
            data.replaceSubrange(8 ..< 8 + headerLength, with: bytes)
            return data
        }
        // The last tensor's end offset moved far past the data, with as many digits (so the header keeps its length).
        let entries = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(header.utf8)) as? [String: Any])
        let (lastName, lastOffsets) = try XCTUnwrap(entries.compactMap { name, value -> (String, [Int])? in
            guard let offsets = (value as? [String: Any])?["data_offsets"] as? [Int] else { return nil }
            return (name, offsets)
        }.max { $0.1[1] < $1.1[1] })
        let end = String(lastOffsets[1]), farEnd = "9" + end.dropFirst()
        let cases: [(String, String, [String])] = [
            (try variant("truncated", safetensors: good.prefix(good.count - 100)), "model.safetensors",
             ["ends past the data", "truncated"]),
            (try variant("past-end", safetensors: withHeader {
                $0.replacingOccurrences(of: "[\(lastOffsets[0]),\(end)]", with: "[\(lastOffsets[0]),\(farEnd)]")
            }), "model.safetensors", ["\(lastName).data_offsets", "[\(lastOffsets[0]), \(farEnd)] ends past the data"]),
            (try variant("dtype", safetensors: withHeader {
                $0.replacingOccurrences(of: "\"transformer.wpe.weight\":{\"dtype\":\"F32\"", with: "\"transformer.wpe.weight\":{\"dtype\":\"I32\"")
            }), "model.safetensors", ["transformer.wpe.weight.dtype", "is I32"]),
            (try variant("shape", config: { $0.replacingOccurrences(of: "\"vocab_size\": 320", with: "\"vocab_size\": 384") }),
             "model.safetensors", ["transformer.wte.weight", "has shape [320, 32]", "config.json", "gives [384, 32]"]),
            (try variant("activation", config: { $0.replacingOccurrences(of: "gelu_new", with: "relu") }),
             "config.json", ["activation_function", "\"relu\""]),
        ]
        for (folder, file, phrases) in cases {
            let out = try Tool.run("gpt-train", ["import", folder, "-o", folder + ".h5"], in: dir)
            XCTAssertEqual(out.status, 1, "\(folder): \(out.stderr)")
            XCTAssertTrue(out.stderr.contains("\(folder)/\(file)"), "\(folder): \(out.stderr)")
            for phrase in phrases { XCTAssertTrue(out.stderr.contains(phrase), "\(folder): \(phrase) not in \(out.stderr)") }
            XCTAssertTrue(out.stderr.contains("Fix:"), out.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/" + folder + ".h5"))
        }

        // A merges line naming a token the vocabulary lacks.
        try FileManager.default.createDirectory(atPath: dir + "/bad-merges", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: dir + "/good/vocab.json", toPath: dir + "/bad-merges/vocab.json")
        let merges = try String(contentsOfFile: dir + "/good/merges.txt", encoding: .utf8)
        try (merges + "Ġzz qq\n").write(toFile: dir + "/bad-merges/merges.txt", atomically: true, encoding: .utf8)
        let line = merges.split(separator: "\n").count + 1
        let prepared = try Tool.run("gpt-data", ["prepare", "text.txt", "--tokenizer", "bad-merges", "-o", "never"], in: dir)
        XCTAssertEqual(prepared.status, 1, prepared.stderr)
        XCTAssertTrue(prepared.stderr.contains("bad-merges/merges.txt: line \(line) names \"Ġzz\", which is not in the vocabulary"), prepared.stderr)

        // Export targets that cannot be used.
        FileManager.default.createFile(atPath: dir + "/a-file", contents: Data("x".utf8))
        let onFile = try Tool.run("gpt-train", ["export", checkpoint, "--to", "hf", "-o", "a-file"], in: dir)
        XCTAssertEqual(onFile.status, 1)
        XCTAssertTrue(onFile.stderr.contains("a-file: exists and is not a folder"), onFile.stderr)
        let nonEmpty = try Tool.run("gpt-train", ["export", checkpoint, "--to", "hf", "-o", "good"], in: dir)
        XCTAssertEqual(nonEmpty.status, 1)
        XCTAssertTrue(nonEmpty.stderr.contains("good: is not empty") && nonEmpty.stderr.contains("--force"), nonEmpty.stderr)
        XCTAssertEqual(try Tool.run("gpt-train", ["export", checkpoint, "--to", "hf", "-o", "good", "--force"], in: dir).status, 0)
        let llmcOnFolder = try Tool.run("gpt-train", ["export", checkpoint, "--to", "llmc", "-o", "good"], in: dir)
        XCTAssertEqual(llmcOnFolder.status, 1)
        XCTAssertTrue(llmcOnFolder.stderr.contains("good: is a folder"), llmcOnFolder.stderr)
        if geteuid() != 0 {
            try FileManager.default.createDirectory(atPath: dir + "/locked", withIntermediateDirectories: true)
            chmod(dir + "/locked", 0o555)
            defer { chmod(dir + "/locked", 0o755) }
            let locked = try Tool.run("gpt-train", ["export", checkpoint, "--to", "hf", "-o", "locked"], in: dir)
            XCTAssertEqual(locked.status, 1)
            XCTAssertTrue(locked.stderr.contains("locked: is not writable"), locked.stderr)
        }
    }
}
