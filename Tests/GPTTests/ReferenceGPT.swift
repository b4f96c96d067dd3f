import Foundation

/// Plain Double-precision GPT-2 (nanoGPT layout), forward and backward by hand, no BLAS: the reference the
/// real model is tested against.
///
/// This is nanoGPT's `GPT` module with dropout 0 and the output head tied to the token embedding. Every tensor is
/// a flat row-major `[Double]`; activations are `[N, features]` with N = B·T rows (row n is sequence n / T,
/// position n % T). Linear weights are in nn.Linear's (out, in) layout: y = x·Wᵀ + b.
///
/// Written for clarity, not speed: plain loops, no SIMD, no BLAS, nothing shared with the real model's code.
struct ReferenceGPT {
    struct Config { var nLayer, nHead, dModel, dFF, seqLen, vocabSize: Int; var bias: Bool }

    let config: Config
    /// Every parameter by its nanoGPT state_dict name (see `parameterShapes`); bias entries only when `config.bias`.
    var params: [String: [Double]]

    /// nn.LayerNorm's default epsilon, as nanoGPT uses.
    static let layerNormEpsilon = 1e-5

    // MARK: - Parameter layout

    /// (name, shape) in nanoGPT's state_dict order, for this config.
    static func parameterShapes(_ c: Config) -> [(name: String, shape: [Int])] {
        let C = c.dModel, F = c.dFF
        var shapes: [(name: String, shape: [Int])] = [
            (Names.wte, [c.vocabSize, C]),
            (Names.wpe, [c.seqLen, C]),
        ]
        // Bias tensors exist only when the config has biases (nanoGPT's `bias=False` drops them all, LayerNorm too).
        func bias(_ name: String, _ shape: [Int]) { if c.bias { shapes.append((name, shape)) } }
        for l in 0..<c.nLayer {
            let n = BlockNames(l)
            shapes.append((n.ln1Weight, [C]));         bias(n.ln1Bias, [C])
            shapes.append((n.attnWeight, [3 * C, C])); bias(n.attnBias, [3 * C])
            shapes.append((n.attnProjWeight, [C, C])); bias(n.attnProjBias, [C])
            shapes.append((n.ln2Weight, [C]));         bias(n.ln2Bias, [C])
            shapes.append((n.fcWeight, [F, C]));       bias(n.fcBias, [F])
            shapes.append((n.mlpProjWeight, [C, F]));  bias(n.mlpProjBias, [C])
        }
        shapes.append((Names.lnfWeight, [C])); bias(Names.lnfBias, [C])
        return shapes
    }

    /// Random parameters, deterministic in `seed`: normal(0, 0.02) for embeddings and linear weights (nanoGPT's init),
    /// 1 + normal(0, 0.1) for LayerNorm weights and normal(0, 0.02) for every bias, so that no parameter sits at a
    /// special value (zero bias, unit gain) and every gradient, bias gradients included, is exercised.
    static func random(_ c: Config, seed: UInt64) -> ReferenceGPT {
        var rng = SplitMix64(seed: seed)
        var params: [String: [Double]] = [:]
        for (name, shape) in parameterShapes(c) {
            let count = shape.reduce(1, *)
            let isLayerNormWeight = name.hasSuffix("ln_1.weight") || name.hasSuffix("ln_2.weight")
                || name == Names.lnfWeight
            params[name] = (0..<count).map { _ in
                isLayerNormWeight ? 1 + 0.1 * rng.nextNormal() : 0.02 * rng.nextNormal()
            }
        }
        return ReferenceGPT(config: c, params: params)
    }

    // MARK: - Public entry points

    /// Logits [B][T][V] for B sequences of the same length T ≤ seqLen.
    func logits(tokens: [[Int]]) -> [[[Double]]] {
        let f = forward(tokens)
        let V = config.vocabSize
        return (0..<f.batch).map { b in
            (0..<f.time).map { t in
                let n = b * f.time + t
                return Array(f.logits[n * V..<(n + 1) * V])
            }
        }
    }

    /// Mean cross-entropy and its gradient w.r.t. every parameter (same names and shapes).
    func lossAndGradients(tokens: [[Int]], targets: [[Int]]) -> (loss: Double, gradients: [String: [Double]]) {
        let c = config, C = c.dModel, F = c.dFF, V = c.vocabSize
        let f = forward(tokens)
        let N = f.batch * f.time
        precondition(targets.count == f.batch && targets.allSatisfy { $0.count == f.time },
                     "targets must have the shape of tokens")
        let flatTargets = targets.flatMap { $0 }
        precondition(flatTargets.allSatisfy { (0..<V).contains($0) }, "target out of vocabulary")

        // Loss: mean over the N positions of −log softmax(logits)[target] = logsumexp(logits) − logits[target].
        // Its gradient w.r.t. the logits is (softmax − onehot(target)) / N.
        var loss = 0.0
        var dLogits = [Double](repeating: 0, count: N * V)
        for n in 0..<N {
            let row = f.logits[n * V..<(n + 1) * V]
            let maxLogit = row.max()!
            var sumExp = 0.0
            for z in row { sumExp += exp(z - maxLogit) }
            loss += maxLogit + log(sumExp) - f.logits[n * V + flatTargets[n]]
            for v in 0..<V { dLogits[n * V + v] = exp(f.logits[n * V + v] - maxLogit) / sumExp / Double(N) }
            dLogits[n * V + flatTargets[n]] -= 1 / Double(N)
        }
        loss /= Double(N)

        var grads: [String: [Double]] = [:]
        /// Stores a bias gradient only for configs that have biases.
        func setBias(_ name: String, _ g: [Double]) { if c.bias { grads[name] = g } }

        // Tied head: logits = xf·wteᵀ, i.e. a bias-free linear layer whose weight is wte.
        let wte = weight(Names.wte)
        let head = Ops.linearBackward(dLogits, input: f.lnfOut, rows: N, inFeatures: C, weight: wte, outFeatures: V)
        var dWte = head.dWeight  // the embedding lookup adds its part below

        // Final LayerNorm.
        let lnf = Ops.layerNormBackward(head.dInput, f.lnfCache, rows: N, dim: C, weight: weight(Names.lnfWeight))
        grads[Names.lnfWeight] = lnf.dWeight
        setBias(Names.lnfBias, lnf.dBias)

        // dx is dLoss/d(residual stream) at the current depth, walked from the top block down.
        var dx = lnf.dInput
        for l in (0..<c.nLayer).reversed() {
            let n = BlockNames(l), k = f.blocks[l]

            // x_out = x_mid + mlp_proj(GELU(c_fc(ln_2(x_mid)))): dx reaches x_mid directly and through the MLP.
            let proj = Ops.linearBackward(dx, input: k.geluOut, rows: N, inFeatures: F,
                                          weight: weight(n.mlpProjWeight), outFeatures: C)
            grads[n.mlpProjWeight] = proj.dWeight
            setBias(n.mlpProjBias, proj.dBias)
            var dPreGelu = proj.dInput
            for i in dPreGelu.indices { dPreGelu[i] *= Ops.geluDerivative(k.preGelu[i]) }
            let fc = Ops.linearBackward(dPreGelu, input: k.ln2Out, rows: N, inFeatures: C,
                                        weight: weight(n.fcWeight), outFeatures: F)
            grads[n.fcWeight] = fc.dWeight
            setBias(n.fcBias, fc.dBias)
            let ln2 = Ops.layerNormBackward(fc.dInput, k.ln2Cache, rows: N, dim: C, weight: weight(n.ln2Weight))
            grads[n.ln2Weight] = ln2.dWeight
            setBias(n.ln2Bias, ln2.dBias)
            for i in dx.indices { dx[i] += ln2.dInput[i] }  // now dLoss/dx_mid

            // x_mid = x_in + c_proj(attention(c_attn(ln_1(x_in)))).
            let attnProj = Ops.linearBackward(dx, input: k.attnOut, rows: N, inFeatures: C,
                                              weight: weight(n.attnProjWeight), outFeatures: C)
            grads[n.attnProjWeight] = attnProj.dWeight
            setBias(n.attnProjBias, attnProj.dBias)
            let dQKV = Ops.causalSelfAttentionBackward(attnProj.dInput, qkv: k.qkv, probs: k.probs,
                                                       batch: f.batch, time: f.time, dim: C, heads: c.nHead)
            let attn = Ops.linearBackward(dQKV, input: k.ln1Out, rows: N, inFeatures: C,
                                          weight: weight(n.attnWeight), outFeatures: 3 * C)
            grads[n.attnWeight] = attn.dWeight
            setBias(n.attnBias, attn.dBias)
            let ln1 = Ops.layerNormBackward(attn.dInput, k.ln1Cache, rows: N, dim: C, weight: weight(n.ln1Weight))
            grads[n.ln1Weight] = ln1.dWeight
            setBias(n.ln1Bias, ln1.dBias)
            for i in dx.indices { dx[i] += ln1.dInput[i] }  // now dLoss/dx_in
        }

        // Embeddings: x[n] = wte[token[n]] + wpe[n % T]; rows of positions ≥ T get zero gradient.
        var dWpe = [Double](repeating: 0, count: c.seqLen * C)
        for n in 0..<N {
            let token = f.tokens[n], t = n % f.time
            for i in 0..<C {
                dWte[token * C + i] += dx[n * C + i]
                dWpe[t * C + i] += dx[n * C + i]
            }
        }
        grads[Names.wte] = dWte
        grads[Names.wpe] = dWpe
        return (loss, grads)
    }

    // MARK: - Forward pass, keeping what the backward pass needs

    /// What one block's backward pass reads: the input of every linear layer, the LayerNorm statistics, the
    /// attention probabilities and the GELU pre-activation.
    private struct BlockCache {
        var ln1Cache: Ops.LayerNormCache
        var ln1Out: [Double]   // [N, C], input of c_attn
        var qkv: [Double]      // [N, 3C]
        var probs: [Double]    // [B, H, T, T] softmax probabilities, zero above the diagonal
        var attnOut: [Double]  // [N, C] heads concatenated, input of attn.c_proj
        var ln2Cache: Ops.LayerNormCache
        var ln2Out: [Double]   // [N, C], input of c_fc
        var preGelu: [Double]  // [N, F]
        var geluOut: [Double]  // [N, F], input of mlp.c_proj
    }

    private struct ForwardPass {
        var batch: Int, time: Int
        var tokens: [Int]      // [N]
        var blocks: [BlockCache]
        var lnfCache: Ops.LayerNormCache
        var lnfOut: [Double]   // [N, C], input of the tied head
        var logits: [Double]   // [N, V]
    }

    private func forward(_ tokens: [[Int]]) -> ForwardPass {
        let c = config, C = c.dModel, F = c.dFF, V = c.vocabSize
        checkParameters()
        precondition(!tokens.isEmpty, "need at least one sequence")
        let B = tokens.count, T = tokens[0].count
        precondition(T >= 1 && T <= c.seqLen, "sequence length \(T) must be in 1...\(c.seqLen)")
        precondition(tokens.allSatisfy { $0.count == T }, "all sequences must have the same length")
        let N = B * T
        let flatTokens = tokens.flatMap { $0 }
        precondition(flatTokens.allSatisfy { (0..<V).contains($0) }, "token out of vocabulary")

        // x = wte[token] + wpe[position]
        let wte = weight(Names.wte), wpe = weight(Names.wpe)
        var x = [Double](repeating: 0, count: N * C)
        for n in 0..<N {
            let token = flatTokens[n], t = n % T
            for i in 0..<C { x[n * C + i] = wte[token * C + i] + wpe[t * C + i] }
        }

        var blocks: [BlockCache] = []
        for l in 0..<c.nLayer {
            let n = BlockNames(l)
            // x = x + attn(ln_1(x))
            let (ln1Out, ln1Cache) = Ops.layerNorm(x, rows: N, dim: C, weight: weight(n.ln1Weight), bias: bias(n.ln1Bias))
            let qkv = Ops.linear(ln1Out, rows: N, inFeatures: C, weight: weight(n.attnWeight), outFeatures: 3 * C,
                                 bias: bias(n.attnBias))
            let (attnOut, probs) = Ops.causalSelfAttention(qkv, batch: B, time: T, dim: C, heads: c.nHead)
            let attnProj = Ops.linear(attnOut, rows: N, inFeatures: C, weight: weight(n.attnProjWeight),
                                      outFeatures: C, bias: bias(n.attnProjBias))
            for i in x.indices { x[i] += attnProj[i] }

            // x = x + mlp(ln_2(x))
            let (ln2Out, ln2Cache) = Ops.layerNorm(x, rows: N, dim: C, weight: weight(n.ln2Weight), bias: bias(n.ln2Bias))
            let preGelu = Ops.linear(ln2Out, rows: N, inFeatures: C, weight: weight(n.fcWeight), outFeatures: F,
                                     bias: bias(n.fcBias))
            let geluOut = preGelu.map(Ops.gelu)
            let mlpProj = Ops.linear(geluOut, rows: N, inFeatures: F, weight: weight(n.mlpProjWeight),
                                     outFeatures: C, bias: bias(n.mlpProjBias))
            for i in x.indices { x[i] += mlpProj[i] }

            blocks.append(BlockCache(ln1Cache: ln1Cache, ln1Out: ln1Out, qkv: qkv, probs: probs, attnOut: attnOut,
                                     ln2Cache: ln2Cache, ln2Out: ln2Out, preGelu: preGelu, geluOut: geluOut))
        }

        let (lnfOut, lnfCache) = Ops.layerNorm(x, rows: N, dim: C, weight: weight(Names.lnfWeight),
                                               bias: bias(Names.lnfBias))
        // Tied head: logits = lnfOut·wteᵀ, no bias.
        let logits = Ops.linear(lnfOut, rows: N, inFeatures: C, weight: wte, outFeatures: V, bias: nil)
        return ForwardPass(batch: B, time: T, tokens: flatTokens, blocks: blocks, lnfCache: lnfCache, lnfOut: lnfOut,
                           logits: logits)
    }

    // MARK: - Parameter access

    private func weight(_ name: String) -> [Double] {
        guard let w = params[name] else { preconditionFailure("missing parameter \(name)") }
        return w
    }

    /// The bias tensor, or nil for a bias-free config (whatever `params` holds under that name).
    private func bias(_ name: String) -> [Double]? { config.bias ? weight(name) : nil }

    private func checkParameters() {
        precondition(config.dModel % config.nHead == 0, "d_model must be a multiple of n_head")
        for (name, shape) in Self.parameterShapes(config) {
            precondition(params[name]?.count == shape.reduce(1, *), "parameter \(name) must have shape \(shape)")
        }
    }
}

// MARK: - Names

private enum Names {
    static let wte = "transformer.wte.weight"
    static let wpe = "transformer.wpe.weight"
    static let lnfWeight = "transformer.ln_f.weight"
    static let lnfBias = "transformer.ln_f.bias"
}

/// The state_dict names of block l's parameters.
private struct BlockNames {
    let ln1Weight, ln1Bias, attnWeight, attnBias, attnProjWeight, attnProjBias: String
    let ln2Weight, ln2Bias, fcWeight, fcBias, mlpProjWeight, mlpProjBias: String

    init(_ l: Int) {
        let p = "transformer.h.\(l)."
        ln1Weight = p + "ln_1.weight"; ln1Bias = p + "ln_1.bias"
        attnWeight = p + "attn.c_attn.weight"; attnBias = p + "attn.c_attn.bias"
        attnProjWeight = p + "attn.c_proj.weight"; attnProjBias = p + "attn.c_proj.bias"
        ln2Weight = p + "ln_2.weight"; ln2Bias = p + "ln_2.bias"
        fcWeight = p + "mlp.c_fc.weight"; fcBias = p + "mlp.c_fc.bias"
        mlpProjWeight = p + "mlp.c_proj.weight"; mlpProjBias = p + "mlp.c_proj.bias"
    }
}

// MARK: - Operations and their derivatives

private enum Ops {
    // Linear: y[n, o] = Σ_i x[n, i]·W[o, i] + b[o], W in (out, in) layout.

    static func linear(_ x: [Double], rows: Int, inFeatures: Int, weight w: [Double], outFeatures: Int,
                       bias b: [Double]?) -> [Double] {
        var y = [Double](repeating: 0, count: rows * outFeatures)
        for n in 0..<rows {
            for o in 0..<outFeatures {
                var sum = b?[o] ?? 0
                for i in 0..<inFeatures { sum += x[n * inFeatures + i] * w[o * inFeatures + i] }
                y[n * outFeatures + o] = sum
            }
        }
        return y
    }

    /// dx[n, i] = Σ_o dy[n, o]·W[o, i];  dW[o, i] = Σ_n dy[n, o]·x[n, i];  db[o] = Σ_n dy[n, o].
    static func linearBackward(_ dy: [Double], input x: [Double], rows: Int, inFeatures: Int, weight w: [Double],
                               outFeatures: Int) -> (dInput: [Double], dWeight: [Double], dBias: [Double]) {
        var dx = [Double](repeating: 0, count: rows * inFeatures)
        var dw = [Double](repeating: 0, count: outFeatures * inFeatures)
        var db = [Double](repeating: 0, count: outFeatures)
        for n in 0..<rows {
            for o in 0..<outFeatures {
                let g = dy[n * outFeatures + o]
                db[o] += g
                for i in 0..<inFeatures {
                    dx[n * inFeatures + i] += g * w[o * inFeatures + i]
                    dw[o * inFeatures + i] += g * x[n * inFeatures + i]
                }
            }
        }
        return (dx, dw, db)
    }

    // LayerNorm over the last dimension: x̂ = (x − mean)·rstd with rstd = 1/sqrt(var + ε), var biased;
    // y = x̂·w + b.

    struct LayerNormCache {
        var normalized: [Double]  // x̂ [rows, dim]
        var rstd: [Double]        // [rows]
    }

    static func layerNorm(_ x: [Double], rows: Int, dim: Int, weight w: [Double], bias b: [Double]?)
        -> (y: [Double], cache: LayerNormCache)
    {
        var y = [Double](repeating: 0, count: rows * dim)
        var xhat = [Double](repeating: 0, count: rows * dim)
        var rstd = [Double](repeating: 0, count: rows)
        for n in 0..<rows {
            var mean = 0.0
            for i in 0..<dim { mean += x[n * dim + i] }
            mean /= Double(dim)
            var variance = 0.0
            for i in 0..<dim { variance += (x[n * dim + i] - mean) * (x[n * dim + i] - mean) }
            variance /= Double(dim)
            rstd[n] = 1 / (variance + ReferenceGPT.layerNormEpsilon).squareRoot()
            for i in 0..<dim {
                xhat[n * dim + i] = (x[n * dim + i] - mean) * rstd[n]
                y[n * dim + i] = xhat[n * dim + i] * w[i] + (b?[i] ?? 0)
            }
        }
        return (y, LayerNormCache(normalized: xhat, rstd: rstd))
    }

    /// With g = dy·w (the gradient w.r.t. x̂), dx = rstd·(g − mean(g) − x̂·mean(g·x̂)): the two means remove the
    /// components along the directions that the mean subtraction and the variance normalisation take out.
    /// dw = Σ_rows dy·x̂, db = Σ_rows dy.
    static func layerNormBackward(_ dy: [Double], _ cache: LayerNormCache, rows: Int, dim: Int, weight w: [Double])
        -> (dInput: [Double], dWeight: [Double], dBias: [Double])
    {
        var dx = [Double](repeating: 0, count: rows * dim)
        var dw = [Double](repeating: 0, count: dim)
        var db = [Double](repeating: 0, count: dim)
        for n in 0..<rows {
            var meanG = 0.0, meanGXhat = 0.0
            for i in 0..<dim {
                let g = dy[n * dim + i] * w[i], xhat = cache.normalized[n * dim + i]
                meanG += g
                meanGXhat += g * xhat
                dw[i] += dy[n * dim + i] * xhat
                db[i] += dy[n * dim + i]
            }
            meanG /= Double(dim)
            meanGXhat /= Double(dim)
            for i in 0..<dim {
                let g = dy[n * dim + i] * w[i], xhat = cache.normalized[n * dim + i]
                dx[n * dim + i] = cache.rstd[n] * (g - meanG - xhat * meanGXhat)
            }
        }
        return (dx, dw, db)
    }

    // Causal self-attention on qkv [N, 3C] = (q | k | v); head h uses features h·hs..<(h+1)·hs of each.
    // For sequence b, head h, query position t and key position s ≤ t:
    //   score[t, s] = q_t·k_s / sqrt(hs),  p[t, ·] = softmax over s ≤ t,  y_t = Σ_s p[t, s]·v_s.

    static func causalSelfAttention(_ qkv: [Double], batch: Int, time: Int, dim: Int, heads: Int)
        -> (y: [Double], probs: [Double])
    {
        let T = time, C = dim, hs = dim / heads, scale = 1 / Double(hs).squareRoot()
        var y = [Double](repeating: 0, count: batch * T * C)
        var probs = [Double](repeating: 0, count: batch * heads * T * T)
        for b in 0..<batch {
            for h in 0..<heads {
                let qOff = h * hs, kOff = C + h * hs, vOff = 2 * C + h * hs
                for t in 0..<T {
                    let qRow = (b * T + t) * 3 * C
                    let pRow = ((b * heads + h) * T + t) * T
                    // Scores for keys 0...t only: later positions are masked out (probability exactly 0).
                    var scores = [Double](repeating: 0, count: t + 1)
                    for s in 0...t {
                        let kRow = (b * T + s) * 3 * C
                        var dot = 0.0
                        for d in 0..<hs { dot += qkv[qRow + qOff + d] * qkv[kRow + kOff + d] }
                        scores[s] = dot * scale
                    }
                    let maxScore = scores.max()!
                    var sumExp = 0.0
                    for s in 0...t { sumExp += exp(scores[s] - maxScore) }
                    for s in 0...t { probs[pRow + s] = exp(scores[s] - maxScore) / sumExp }
                    for d in 0..<hs {
                        var sum = 0.0
                        for s in 0...t { sum += probs[pRow + s] * qkv[(b * T + s) * 3 * C + vOff + d] }
                        y[(b * T + t) * C + h * hs + d] = sum
                    }
                }
            }
        }
        return (y, probs)
    }

    /// dp[t, s] = dy_t·v_s;  dv_s += p[t, s]·dy_t;
    /// dscore[t, s] = p[t, s]·(dp[t, s] − Σ_s' p[t, s']·dp[t, s'])   (softmax Jacobian);
    /// dq_t += dscore[t, s]·k_s / sqrt(hs);  dk_s += dscore[t, s]·q_t / sqrt(hs).
    static func causalSelfAttentionBackward(_ dy: [Double], qkv: [Double], probs: [Double], batch: Int, time: Int,
                                            dim: Int, heads: Int) -> [Double] {
        let T = time, C = dim, hs = dim / heads, scale = 1 / Double(hs).squareRoot()
        var dqkv = [Double](repeating: 0, count: batch * T * 3 * C)
        for b in 0..<batch {
            for h in 0..<heads {
                let qOff = h * hs, kOff = C + h * hs, vOff = 2 * C + h * hs
                for t in 0..<T {
                    let qRow = (b * T + t) * 3 * C
                    let pRow = ((b * heads + h) * T + t) * T
                    let dyRow = (b * T + t) * C + h * hs
                    var dp = [Double](repeating: 0, count: t + 1)
                    for s in 0...t {
                        let vRow = (b * T + s) * 3 * C
                        for d in 0..<hs {
                            dp[s] += dy[dyRow + d] * qkv[vRow + vOff + d]
                            dqkv[vRow + vOff + d] += probs[pRow + s] * dy[dyRow + d]
                        }
                    }
                    var weighted = 0.0
                    for s in 0...t { weighted += probs[pRow + s] * dp[s] }
                    for s in 0...t {
                        let dScore = probs[pRow + s] * (dp[s] - weighted) * scale
                        let kRow = (b * T + s) * 3 * C
                        for d in 0..<hs {
                            dqkv[qRow + qOff + d] += dScore * qkv[kRow + kOff + d]
                            dqkv[kRow + kOff + d] += dScore * qkv[qRow + qOff + d]
                        }
                    }
                }
            }
        }
        return dqkv
    }

    // GELU, tanh approximation: GELU(u) = ½·u·(1 + tanh(a)), a = sqrt(2/π)·(u + 0.044715·u³).

    static let geluScale = (2 / Double.pi).squareRoot()

    static func gelu(_ u: Double) -> Double {
        0.5 * u * (1 + tanh(geluScale * (u + 0.044715 * u * u * u)))
    }

    /// d/du = ½·(1 + tanh a) + ½·u·(1 − tanh² a)·sqrt(2/π)·(1 + 3·0.044715·u²).
    static func geluDerivative(_ u: Double) -> Double {
        let th = tanh(geluScale * (u + 0.044715 * u * u * u))
        return 0.5 * (1 + th) + 0.5 * u * (1 - th * th) * geluScale * (1 + 3 * 0.044715 * u * u)
    }
}

// MARK: - Seeded random numbers

extension ReferenceGPT {
    /// SplitMix64 (Steele, Lea & Flood 2014): small, fast and fully determined by its seed on every platform.
    /// Nested so that it cannot clash with another test file's generator.
    struct SplitMix64: RandomNumberGenerator {
        private var state: UInt64
        init(seed: UInt64) { state = seed }

        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }

        /// Uniform in [0, 1) with 53 random bits.
        mutating func nextUniform() -> Double { Double(next() >> 11) * 0x1p-53 }

        /// Standard normal by Box–Muller (one of the pair; clarity over throughput).
        mutating func nextNormal() -> Double {
            let u1 = 1 - nextUniform()  // in (0, 1], so log is finite
            let u2 = nextUniform()
            return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
        }
    }
}
