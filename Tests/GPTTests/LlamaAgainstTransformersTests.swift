import Compute
import Foundation
import GPT
import GPTShape
import XCTest

/// The float32 Llama model against Hugging Face's own `LlamaForCausalLM` in float64 (transformers, eager attention),
/// fed the model's parameters by their `ParameterLayout` names (so this also pins the names, shapes and the q/k/v
/// stacking to Hugging Face's state_dict): logits, the mean cross-entropy and its gradient with respect to every
/// parameter (PyTorch autograd), grouped-query with an untied head and multi-head with a tied one. Skips when
/// torch or transformers is missing. (An extension of LlamaModelTests, whose helpers it uses.)
///
/// Tolerance: the model's own float32 error is a few 1e-7 of the logits' scale and ≤ 2.1e-6 of each gradient
/// tensor's scale (LlamaModelTests, against the float64 reference by central differences); Hugging Face's
/// `LlamaRMSNorm` computes in float32 even in a float64 model, which adds ~1e-7 relative per norm
/// (ReferenceLlamaAgainstTransformersTests). The 1e-5 of the largest logit and of each tensor's largest
/// gradient holds with a margin of 3× or more; the loss within 1e-6 relative.
extension LlamaModelTests {
    static let transformersScript = """
    import json, sys
    try:
        import torch
        import torch.nn.functional as F
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError as e:
        print(e, file=sys.stderr); sys.exit(3)

    def run(spec):
        c = spec["config"]
        config = LlamaConfig(vocab_size=c["vocab"], hidden_size=c["dModel"], intermediate_size=c["dFF"],
                             num_hidden_layers=c["nLayer"], num_attention_heads=c["nHead"],
                             num_key_value_heads=c["nKVHead"], rope_theta=c["ropeTheta"], rms_norm_eps=c["normEps"],
                             max_position_embeddings=c["seqLen"], tie_word_embeddings=c["tie"],
                             attention_bias=False, mlp_bias=False, attn_implementation="eager")
        model = LlamaForCausalLM(config).double()
        model.train(False)
        shapes = model.state_dict()
        state = {k: torch.tensor(v, dtype=torch.float64).reshape(shapes[k].shape) for k, v in spec["params"].items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        assert not unexpected, unexpected
        assert all("rotary" in m or (c["tie"] and m == "lm_head.weight") for m in missing), missing
        tokens = torch.tensor(spec["tokens"]).reshape(spec["batch"], spec["time"])
        targets = torch.tensor(spec["targets"]).reshape(-1)
        logits = model(input_ids=tokens).logits
        loss = F.cross_entropy(logits.reshape(-1, c["vocab"]), targets)
        loss.backward()
        grads = {name: p.grad.flatten().tolist() for name, p in model.named_parameters()}
        return {"logits": logits.flatten().tolist(), "loss": loss.item(), "grads": grads}

    print(json.dumps([run(spec) for spec in json.load(open(sys.argv[1]))]))
    """

    struct TransformersCase {
        var config: ReferenceLlama.Config
        var batch: Int, time: Int, seed: UInt64
    }

    func testModelMatchesLlamaForCausalLM() throws {
        let cases = [TransformersCase(config: Self.grouped, batch: 2, time: 8, seed: 1),
                     TransformersCase(config: Self.multiHeadTied, batch: 2, time: 7, seed: 2)]
        var models: [GPT] = [], batches: [(tokens: [[Int]], targets: [[Int]])] = [], losses: [Float] = []
        var logits: [[Float]] = []
        var specs: [[String: Any]] = []
        for c in cases {
            let model = try GPT(shape: modelShape(c.config), maxBatch: c.batch, maxTime: 8, pool: ThreadPool(threads: 2))
            load(reference(c.config, seed: c.seed), into: model)
            let batch = randomBatch(c.seed &+ 50, batch: c.batch, time: c.time, vocab: c.config.vocabSize)
            let loss = try model.forward(tokens: flat(batch.tokens), targets: flat(batch.targets), batch: c.batch,
                                         time: c.time, gradientScale: 1 / Float(c.batch * c.time))
            // The forward pass turned the logits into their gradient: run it again without targets for the logits.
            let flatTokens = flat(batch.tokens)
            try flatTokens.withUnsafeBufferPointer {
                _ = try model.forward(tokens: $0.baseAddress!, targets: nil, batch: c.batch, time: c.time)
            }
            logits.append(Array(UnsafeBufferPointer(start: model.logits, count: c.batch * c.time * c.config.vocabSize)))
            try model.forward(tokens: flat(batch.tokens), targets: flat(batch.targets), batch: c.batch,
                              time: c.time, gradientScale: 1 / Float(c.batch * c.time))
            model.backward(accumulate: false)
            var params: [String: [Double]] = [:]
            for tensor in model.layout.tensors {
                params[tensor.name] = (0..<tensor.count).map { Double(model.parameters.base[tensor.offset + $0]) }
            }
            let k = c.config
            specs.append(["config": ["vocab": k.vocabSize, "dModel": k.dModel, "dFF": k.dFF, "nLayer": k.nLayer,
                                     "nHead": k.nHead, "nKVHead": k.nKVHead, "ropeTheta": k.ropeTheta, "normEps": k.normEps,
                                     "seqLen": 8, "tie": k.tieEmbeddings],
                          "params": params, "tokens": batch.tokens.flatMap { $0 }, "targets": batch.targets.flatMap { $0 },
                          "batch": c.batch, "time": c.time])
            models.append(model)
            batches.append(batch)
            losses.append(loss)
        }

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("llama-hf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let specFile = directory.appendingPathComponent("specs.json"), scriptFile = directory.appendingPathComponent("model.py")
        try JSONSerialization.data(withJSONObject: specs).write(to: specFile)
        try Self.transformersScript.write(to: scriptFile, atomically: true, encoding: .utf8)
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
        let results = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        XCTAssertEqual(results.count, cases.count)

        for (i, result) in results.enumerated() {
            let c = cases[i], model = models[i]
            let label = "n_kv_head \(c.config.nKVHead)/\(c.config.nHead), tied \(c.config.tieEmbeddings)"
            let theirLoss = try XCTUnwrap(result["loss"] as? Double)
            XCTAssertEqual(Double(losses[i]), theirLoss, accuracy: 1e-6 * theirLoss, label)
            let theirLogits = try XCTUnwrap(result["logits"] as? [Double])
            XCTAssertEqual(theirLogits.count, logits[i].count)
            let logitScale = theirLogits.map(abs).max()!
            let worstLogit = zip(logits[i], theirLogits).map { abs(Double($0) - $1) }.max()! / logitScale
            XCTAssertLessThanOrEqual(worstLogit, 1e-5, "\(label): logits")
            let grads = try XCTUnwrap(result["grads"] as? [String: [Double]])
            // Every parameter Hugging Face trains has a tensor here, and the other way round.
            XCTAssertEqual(Set(grads.keys), Set(model.layout.tensors.map(\.name)), label)
            var worstGradient = 0.0
            for tensor in model.layout.tensors {
                let theirs = try XCTUnwrap(grads[tensor.name], tensor.name)
                XCTAssertEqual(theirs.count, tensor.count, tensor.name)
                let scale = theirs.map(abs).max()!
                XCTAssertGreaterThan(scale, 0, tensor.name)
                var worst = 0.0
                for j in 0..<tensor.count {
                    worst = max(worst, abs(Double(model.gradients.base[tensor.offset + j]) - theirs[j]) / scale)
                }
                XCTAssertLessThanOrEqual(worst, 1e-5, "\(label): \(tensor.name), worst error \(worst) of its largest gradient")
                worstGradient = max(worstGradient, worst)
            }
            print("llama vs transformers LlamaForCausalLM float64 (\(label)): loss \(losses[i]) vs \(theirLoss), "
                  + "worst logit error \(worstLogit), worst gradient error \(worstGradient) of the tensor's largest")
        }
    }
}
