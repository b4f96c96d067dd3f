import Foundation

/// One Llama decoder layer (Hugging Face's `LlamaDecoderLayer`, no biases, no dropout) in plain double precision:
/// the independent reference the Llama-style kernels are composed against (LlamaBlockTests), and the block the later
/// whole-model reference repeats.
///
///     h   = x + o_proj(attention(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1)))   n1 = RMSNorm(x; input_layernorm)
///     out = h + down_proj(silu(gate_proj(n2)) ⊙ up_proj(n2))                         n2 = RMSNorm(h; post_attention_layernorm)
///
/// Conventions, all Hugging Face's `LlamaForCausalLM`: RMSNorm is x·rsqrt(mean(x²) + ε)·gain; RoPE pairs feature i
/// with i + d/2 ("rotate_half"), angles position·inv_freq computed in float32 as `LlamaRotaryEmbedding` does; query
/// head h uses key/value head h / (n_head/n_kv_head) (`repeat_kv`); scores scaled by 1/√d, causal. Tensors are flat
/// row-major `[Double]`, activations [N, features] with N = B·T (row n at position n % T); weights in nn.Linear's
/// (out, in) layout under their Hugging Face names (without the `model.layers.N.` prefix).
///
/// Written for clarity: plain loops, nothing shared with the kernels. Forward only: tests take its gradients by
/// central differences.
struct ReferenceLlamaBlock {
    struct Config {
        var dModel, nHead, nKVHead, dFF: Int
        var ropeTheta: Double
        var normEps: Double
        var headSize: Int { dModel / nHead }
    }

    static let names = ["input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                        "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
                        "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"]

    let config: Config
    var params: [String: [Double]]

    static func shapes(_ c: Config) -> [String: [Int]] {
        let C = c.dModel, Ckv = c.nKVHead * c.headSize, F = c.dFF
        return ["input_layernorm.weight": [C], "self_attn.q_proj.weight": [C, C], "self_attn.k_proj.weight": [Ckv, C],
                "self_attn.v_proj.weight": [Ckv, C], "self_attn.o_proj.weight": [C, C],
                "post_attention_layernorm.weight": [C], "mlp.gate_proj.weight": [F, C], "mlp.up_proj.weight": [F, C],
                "mlp.down_proj.weight": [C, F]]
    }

    /// Weights normal(0, 0.1·scale), gains 1 + normal(0, 0.1): no parameter at a special value.
    static func random(_ c: Config, seed: UInt64) -> ReferenceLlamaBlock {
        var rng = ReferenceGPT.SplitMix64(seed: seed)
        var params: [String: [Double]] = [:]
        for name in names {
            let count = shapes(c)[name]!.reduce(1, *)
            let gain = name.hasSuffix("layernorm.weight")
            params[name] = (0..<count).map { _ in gain ? 1 + 0.1 * rng.nextNormal() : 0.3 * rng.nextNormal() }
        }
        return ReferenceLlamaBlock(config: c, params: params)
    }

    func forward(_ x: [Double], batch: Int, time: Int) -> [Double] {
        let c = config, C = c.dModel, N = batch * time, hs = c.headSize, Ckv = c.nKVHead * hs
        let n1 = Self.rmsNorm(x, rows: N, dim: C, gain: params["input_layernorm.weight"]!, eps: c.normEps)
        var q = Self.linear(n1, rows: N, inFeatures: C, weight: params["self_attn.q_proj.weight"]!, outFeatures: C)
        var k = Self.linear(n1, rows: N, inFeatures: C, weight: params["self_attn.k_proj.weight"]!, outFeatures: Ckv)
        let v = Self.linear(n1, rows: N, inFeatures: C, weight: params["self_attn.v_proj.weight"]!, outFeatures: Ckv)
        q = Self.rope(q, rows: N, time: time, heads: c.nHead, headSize: hs, theta: c.ropeTheta)
        k = Self.rope(k, rows: N, time: time, heads: c.nKVHead, headSize: hs, theta: c.ropeTheta)
        let y = Self.attention(q: q, k: k, v: v, batch: batch, time: time, heads: c.nHead, kvHeads: c.nKVHead, headSize: hs)
        let o = Self.linear(y, rows: N, inFeatures: C, weight: params["self_attn.o_proj.weight"]!, outFeatures: C)
        let h = zip(x, o).map(+)
        let n2 = Self.rmsNorm(h, rows: N, dim: C, gain: params["post_attention_layernorm.weight"]!, eps: c.normEps)
        let gate = Self.linear(n2, rows: N, inFeatures: C, weight: params["mlp.gate_proj.weight"]!, outFeatures: c.dFF)
        let up = Self.linear(n2, rows: N, inFeatures: C, weight: params["mlp.up_proj.weight"]!, outFeatures: c.dFF)
        let m = zip(gate, up).map { $0 / (1 + exp(-$0)) * $1 }
        let down = Self.linear(m, rows: N, inFeatures: c.dFF, weight: params["mlp.down_proj.weight"]!, outFeatures: C)
        return zip(h, down).map(+)
    }

    // MARK: - Operations

    static func linear(_ x: [Double], rows: Int, inFeatures: Int, weight w: [Double], outFeatures: Int) -> [Double] {
        var y = [Double](repeating: 0, count: rows * outFeatures)
        for r in 0..<rows { for o in 0..<outFeatures {
            var s = 0.0
            for i in 0..<inFeatures { s += x[r * inFeatures + i] * w[o * inFeatures + i] }
            y[r * outFeatures + o] = s
        } }
        return y
    }

    static func rmsNorm(_ x: [Double], rows: Int, dim: Int, gain: [Double], eps: Double) -> [Double] {
        var y = x
        for r in 0..<rows {
            var sq = 0.0
            for j in 0..<dim { sq += x[r * dim + j] * x[r * dim + j] }
            let rstd = 1 / (sq / Double(dim) + eps).squareRoot()
            for j in 0..<dim { y[r * dim + j] = x[r * dim + j] * rstd * gain[j] }
        }
        return y
    }

    /// `LlamaRotaryEmbedding` + `apply_rotary_pos_emb`: float32 inv_freq and angles, cos/sin of those, then
    /// x·cos + rotate_half(x)·sin in double.
    static func rope(_ x: [Double], rows: Int, time: Int, heads: Int, headSize d: Int, theta: Double) -> [Double] {
        var y = x
        let half = d / 2
        for r in 0..<rows {
            let position = Float(r % time)
            for h in 0..<heads { for i in 0..<half {
                let inverse: Float = 1 / Float(pow(Double(Float(theta)), Double(Float(2 * i) / Float(d))))
                let angle = Double(inverse * position)
                let c = Double(Float(cos(angle))), s = Double(Float(sin(angle)))
                let a = r * heads * d + h * d + i
                y[a] = x[a] * c - x[a + half] * s
                y[a + half] = x[a + half] * c + x[a] * s
            } }
        }
        return y
    }

    /// Causal softmax attention; query head h reads key/value head h / (heads/kvHeads).
    static func attention(q: [Double], k: [Double], v: [Double], batch: Int, time: Int, heads: Int, kvHeads: Int,
                          headSize d: Int) -> [Double] {
        let C = heads * d, Ckv = kvHeads * d
        var y = [Double](repeating: 0, count: batch * time * C)
        for b in 0..<batch { for h in 0..<heads {
            let g = h / (heads / kvHeads)
            for i in 0..<time {
                var scores = [Double](repeating: 0, count: i + 1)
                for j in 0...i {
                    var s = 0.0
                    for e in 0..<d { s += q[(b * time + i) * C + h * d + e] * k[(b * time + j) * Ckv + g * d + e] }
                    scores[j] = s / Double(d).squareRoot()
                }
                let m = scores.max()!
                let e = scores.map { exp($0 - m) }
                let sum = e.reduce(0, +)
                for j in 0...i { for f in 0..<d {
                    y[(b * time + i) * C + h * d + f] += e[j] / sum * v[(b * time + j) * Ckv + g * d + f]
                } }
            }
        } }
        return y
    }
}

/// A whole Llama model (Hugging Face's `LlamaForCausalLM`, no biases, no dropout) in plain double precision:
/// token embedding (no position table), `nLayer` × `ReferenceLlamaBlock`, the final RMSNorm `model.norm`, the head
/// (`lm_head`, or the token embedding when `tieEmbeddings`), and the mean cross-entropy over every position. The
/// independent reference the Swift model is compared against (LlamaModelTests): forward only, gradients by central
/// differences. Parameters under their Hugging Face names, in nn.Linear's (out, in) layout.
struct ReferenceLlama {
    struct Config {
        var nLayer, dModel, nHead, nKVHead, dFF, vocabSize: Int
        var ropeTheta: Double = 10_000
        var normEps: Double = 1e-5
        var tieEmbeddings: Bool
        var block: ReferenceLlamaBlock.Config {
            .init(dModel: dModel, nHead: nHead, nKVHead: nKVHead, dFF: dFF, ropeTheta: ropeTheta, normEps: normEps)
        }
    }

    let config: Config
    var params: [String: [Double]]

    /// (name, shape) in `LlamaForCausalLM.state_dict()` order (lm_head only when untied).
    static func parameterShapes(_ c: Config) -> [(name: String, shape: [Int])] {
        var list: [(name: String, shape: [Int])] = [("model.embed_tokens.weight", [c.vocabSize, c.dModel])]
        let block = ReferenceLlamaBlock.shapes(c.block)
        let order = ["self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                     "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
                     "input_layernorm.weight", "post_attention_layernorm.weight"]
        for l in 0..<c.nLayer { for name in order { list.append(("model.layers.\(l).\(name)", block[name]!)) } }
        list.append(("model.norm.weight", [c.dModel]))
        if !c.tieEmbeddings { list.append(("lm_head.weight", [c.vocabSize, c.dModel])) }
        return list
    }

    static func isGain(_ name: String) -> Bool { name.hasSuffix("layernorm.weight") || name == "model.norm.weight" }

    /// Matrices normal(0, `std`), gains 1 + normal(0, 0.1): no parameter at a special value, and at std 0.3 every
    /// path far from linear (the residual stream O(1), attention not uniform).
    static func random(_ c: Config, seed: UInt64, std: Double = 0.3) -> ReferenceLlama {
        var rng = ReferenceGPT.SplitMix64(seed: seed)
        var params: [String: [Double]] = [:]
        for (name, shape) in parameterShapes(c) {
            let gain = isGain(name)
            params[name] = (0..<shape.reduce(1, *)).map { _ in gain ? 1 + 0.1 * rng.nextNormal() : std * rng.nextNormal() }
        }
        return ReferenceLlama(config: c, params: params)
    }

    func block(_ l: Int) -> ReferenceLlamaBlock {
        var p: [String: [Double]] = [:]
        for name in ReferenceLlamaBlock.names { p[name] = params["model.layers.\(l).\(name)"]! }
        return ReferenceLlamaBlock(config: config.block, params: p)
    }

    /// Logits [B·T, V] (row b·T + t) for B sequences of T tokens.
    func logits(tokens: [[Int]]) -> [Double] {
        let batch = tokens.count, time = tokens[0].count, C = config.dModel, V = config.vocabSize
        let wte = params["model.embed_tokens.weight"]!
        var x = [Double]()
        x.reserveCapacity(batch * time * C)
        for sequence in tokens { for token in sequence { x += wte[(token * C)..<((token + 1) * C)] } }
        for l in 0..<config.nLayer { x = block(l).forward(x, batch: batch, time: time) }
        let n = ReferenceLlamaBlock.rmsNorm(x, rows: batch * time, dim: C, gain: params["model.norm.weight"]!,
                                            eps: config.normEps)
        let head = config.tieEmbeddings ? wte : params["lm_head.weight"]!
        return ReferenceLlamaBlock.linear(n, rows: batch * time, inFeatures: C, weight: head, outFeatures: V)
    }

    /// Mean cross-entropy of `targets` under the logits, over all B·T positions.
    func loss(tokens: [[Int]], targets: [[Int]]) -> Double {
        let z = logits(tokens: tokens), V = config.vocabSize
        let flat = targets.flatMap { $0 }
        var total = 0.0
        for (n, target) in flat.enumerated() {
            let row = z[(n * V)..<((n + 1) * V)]
            let m = row.max()!
            total += m + log(row.map { exp($0 - m) }.reduce(0, +)) - z[n * V + target]
        }
        return total / Double(flat.count)
    }

    /// Central differences (h = 1e-5) of the loss for the elements `indices` of parameter `name`.
    func centralDifferences(_ name: String, indices: [Int], tokens: [[Int]], targets: [[Int]]) -> [Double] {
        var probe = self
        let h = 1e-5
        return indices.map { i in
            let original = params[name]![i]
            probe.params[name]![i] = original + h
            let up = probe.loss(tokens: tokens, targets: targets)
            probe.params[name]![i] = original - h
            let down = probe.loss(tokens: tokens, targets: targets)
            probe.params[name]![i] = original
            return (up - down) / (2 * h)
        }
    }
}
