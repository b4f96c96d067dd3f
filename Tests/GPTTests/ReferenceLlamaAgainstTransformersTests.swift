import Foundation
import XCTest

/// `ReferenceLlamaBlock` against Hugging Face's own `LlamaDecoderLayer` (transformers, float64, eager attention): a
/// one-layer `LlamaModel` fed `inputs_embeds`, whose final RMSNorm (gain 1) the reference applies too. This pins the
/// reference's conventions (weight names and layouts, rotate_half RoPE with float32 angles, repeat_kv's head order,
/// ε inside the square root) to the library the later export targets. Skips when torch or transformers is missing.
///
/// Tolerance: Hugging Face's `LlamaRMSNorm` computes in float32 even in a float64 model (`hidden_states.to(float32)`,
/// then back), so each normalised activation carries a float32 rounding (2⁻²⁴ ≈ 6e-8 relative) that the reference,
/// all double, does not; through the layer's products (sums of ≤ 48 terms of weights ~0.3) and the final norm that
/// stays a few 1e-7 of the outputs' size (measured: 1.0e-6 and 1.2e-6 absolute on these shapes, outputs of a few
/// units): asserted 2e-6 of the largest output. A convention error (interleaved RoPE pairs, another K/V head order,
/// ε outside the square root) moves outputs by far more. The float32 angles are pinned by
/// `RotaryTests.testTableAgainstPyTorch`, not here: at these positions they differ from exact angles by ~1e-6 rad.
final class ReferenceLlamaAgainstTransformersTests: XCTestCase {
    static let script = """
    import json, sys
    try:
        import torch
        from transformers import LlamaConfig, LlamaModel
    except ImportError as e:
        print(e, file=sys.stderr); sys.exit(3)

    def run(spec):
        c = spec["config"]
        config = LlamaConfig(vocab_size=8, hidden_size=c["dModel"], intermediate_size=c["dFF"], num_hidden_layers=1,
                             num_attention_heads=c["nHead"], num_key_value_heads=c["nKVHead"],
                             rope_theta=c["ropeTheta"], rms_norm_eps=c["normEps"], max_position_embeddings=64,
                             attention_bias=False, mlp_bias=False, attn_implementation="eager")
        model = LlamaModel(config).double().eval()
        shapes = model.state_dict()
        state = {"layers.0." + k: torch.tensor(v, dtype=torch.float64).reshape(shapes["layers.0." + k].shape)
                 for k, v in spec["params"].items()}
        state["norm.weight"] = torch.ones(c["dModel"], dtype=torch.float64)
        state["embed_tokens.weight"] = torch.zeros(8, c["dModel"], dtype=torch.float64)
        missing, unexpected = model.load_state_dict(state, strict=False)
        assert not unexpected, unexpected
        assert all("rotary" in m for m in missing), missing
        x = torch.tensor(spec["x"], dtype=torch.float64).reshape(spec["batch"], spec["time"], c["dModel"])
        with torch.no_grad():
            return model(inputs_embeds=x).last_hidden_state.flatten().tolist()

    print(json.dumps([run(spec) for spec in json.load(open(sys.argv[1]))]))
    """

    struct Case {
        var config: ReferenceLlamaBlock.Config
        var batch: Int, time: Int
    }

    func testBlockMatchesLlamaDecoderLayer() throws {
        let cases = [
            Case(config: .init(dModel: 32, nHead: 4, nKVHead: 2, dFF: 48, ropeTheta: 500_000, normEps: 1e-5), batch: 2, time: 7),
            Case(config: .init(dModel: 24, nHead: 3, nKVHead: 1, dFF: 40, ropeTheta: 10_000, normEps: 1e-6), batch: 1, time: 40),
        ]
        let blocks = cases.map { ReferenceLlamaBlock.random($0.config, seed: 3) }
        var rng = ReferenceGPT.SplitMix64(seed: 11)
        let inputs = cases.map { c in (0..<(c.batch * c.time * c.config.dModel)).map { _ in rng.nextNormal() } }
        let specs: [[String: Any]] = zip(cases, zip(blocks, inputs)).map { c, bx in
            ["config": ["dModel": c.config.dModel, "nHead": c.config.nHead, "nKVHead": c.config.nKVHead, "dFF": c.config.dFF,
                        "ropeTheta": c.config.ropeTheta, "normEps": c.config.normEps],
             "params": bx.0.params, "x": bx.1, "batch": c.batch, "time": c.time]
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("llama-ref-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let specFile = directory.appendingPathComponent("specs.json"), scriptFile = directory.appendingPathComponent("block.py")
        try JSONSerialization.data(withJSONObject: specs).write(to: specFile)
        try Self.script.write(to: scriptFile, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", scriptFile.path, specFile.path]
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        do { try process.run() } catch { throw XCTSkip("python3 is not available: \(error)") }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus == 3 { throw XCTSkip("the torch or transformers Python package is not installed: \(errorText)") }
        XCTAssertEqual(process.terminationStatus, 0, errorText)
        guard process.terminationStatus == 0 else { return }
        let results = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [[Double]])
        XCTAssertEqual(results.count, cases.count)
        for (i, theirs) in results.enumerated() {
            let c = cases[i]
            let out = blocks[i].forward(inputs[i], batch: c.batch, time: c.time)
            let ours = ReferenceLlamaBlock.rmsNorm(out, rows: c.batch * c.time, dim: c.config.dModel,
                                                   gain: [Double](repeating: 1, count: c.config.dModel), eps: c.config.normEps)
            XCTAssertEqual(theirs.count, ours.count)
            let scale = ours.map(abs).max()!
            var worst = 0.0
            for (a, b) in zip(ours, theirs) { worst = max(worst, abs(a - b)) }
            let label = "H \(c.config.nHead) Hkv \(c.config.nKVHead)"
            XCTAssertLessThanOrEqual(worst, 2e-6 * scale, "\(label): worst difference \(worst)")
            XCTAssertGreaterThan(worst, 0, "\(label): bit-identical to a model with float32 norms: suspicious")
        }
    }
}
