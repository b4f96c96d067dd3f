import Foundation
import XCTest

/// Proves the Double-precision reference itself, before anything is compared against it.
final class ReferenceGPTTests: XCTestCase {
    typealias Config = ReferenceGPT.Config

    /// Random token ids (and targets) in 0..<vocab, deterministic in the generator's seed.
    func randomTokens(batch: Int, time: Int, vocab: Int, _ rng: inout ReferenceGPT.SplitMix64) -> [[Int]] {
        (0..<batch).map { _ in (0..<time).map { _ in Int(rng.next() % UInt64(vocab)) } }
    }

    func isLayerNormWeight(_ name: String) -> Bool {
        name.hasSuffix(".ln_1.weight") || name.hasSuffix(".ln_2.weight") || name == "transformer.ln_f.weight"
    }

    // MARK: - Gradients against central finite differences, every parameter element

    /// Central differences of the loss for every element of every parameter, against `lossAndGradients`.
    ///
    /// Tolerance. The central difference (L(θ+h) − L(θ−h)) / 2h, h = 1e-5, differs from L'(θ) by
    ///   truncation  h²/6·|L‴| ≈ 1.7e-11·|L‴|   (the O(h²) Taylor term), and
    ///   rounding    ≲ ε·|L|/h ≈ 2.2e-16 · 2 / 1e-5 ≈ 4e-11   (ε the Double epsilon, L ≈ log V ≈ 2: each loss carries
    ///               a relative rounding error of a few ε, and dividing the difference by 2h amplifies it by 1/h).
    /// So with third derivatives of order 1 the finite difference is good to ~1e-10 absolute: ≤ 1e-6 relative for
    /// every gradient above 1e-4. For smaller gradients (some exactly 0, e.g. wpe rows past T) relative error is
    /// meaningless, so an element passes when |fd − g| ≤ max(1e-6·max(|fd|, |g|), 1e-9); the 1e-9 floor is ~20×
    /// the expected absolute error and still ~1e6× below the typical gradient, so no wrong formula slips through.
    ///
    /// Conditioning. At nanoGPT's own init (std 0.02) the residual stream is ~0.03 in size, LayerNorm multiplies
    /// by 1/σ ≈ 30, and third derivatives w.r.t. the embeddings reach ~1e2..1e3: the truncation term alone is then
    /// up to ~2e-8 (measured: the error shrinks 4× per halving of h, i.e. it is the h² term, not a wrong gradient).
    /// The check therefore runs at 10× the random init for every non-LayerNorm tensor (std 0.2, residual stream
    /// O(1)). There the worst measured errors are 5e-11 absolute on gradients below 1e-3 and 4e-8 relative above
    /// (20× inside the tolerance), while dropping one term of a backward formula (the variance term of LayerNorm's,
    /// the 1/sqrt(hs) of attention's, the factor 3 in GELU's derivative) fails hundreds of elements by 1e-1..1e0.
    func checkGradientsByFiniteDifferences(
        _ config: Config, batch: Int, time: Int, seed: UInt64, file: StaticString = #filePath, line: UInt = #line
    ) {
        var model = ReferenceGPT.random(config, seed: seed)
        for (name, values) in model.params where !isLayerNormWeight(name) {
            model.params[name] = values.map { 10 * $0 }
        }
        var rng = ReferenceGPT.SplitMix64(seed: seed &+ 1)
        let tokens = randomTokens(batch: batch, time: time, vocab: config.vocabSize, &rng)
        let targets = randomTokens(batch: batch, time: time, vocab: config.vocabSize, &rng)
        let (loss, gradients) = model.lossAndGradients(tokens: tokens, targets: targets)
        XCTAssert(loss.isFinite, file: file, line: line)

        let shapes = ReferenceGPT.parameterShapes(config)
        XCTAssertEqual(Set(gradients.keys), Set(shapes.map(\.name)), "one gradient per parameter, no more",
                       file: file, line: line)

        let h = 1e-5
        var checked = 0, worstRelative = 0.0, worstAbsoluteSmall = 0.0, failures = 0
        for (name, shape) in shapes {
            let count = shape.reduce(1, *)
            guard let g = gradients[name], g.count == count else {
                XCTFail("gradient \(name) missing or not of shape \(shape)", file: file, line: line)
                continue
            }
            for i in 0..<count {
                let original = model.params[name]![i]
                model.params[name]![i] = original + h
                let lossPlus = model.lossAndGradients(tokens: tokens, targets: targets).loss
                model.params[name]![i] = original - h
                let lossMinus = model.lossAndGradients(tokens: tokens, targets: targets).loss
                model.params[name]![i] = original
                let numeric = (lossPlus - lossMinus) / (2 * h)

                let error = abs(numeric - g[i])
                let magnitude = max(abs(numeric), abs(g[i]))
                if magnitude > 1e-3 {
                    worstRelative = max(worstRelative, error / magnitude)
                } else {
                    worstAbsoluteSmall = max(worstAbsoluteSmall, error)
                }
                checked += 1
                if error > max(1e-6 * magnitude, 1e-9) {
                    failures += 1
                    if failures <= 20 {
                        XCTFail("\(name)[\(i)]: analytic \(g[i]) vs finite difference \(numeric)",
                                file: file, line: line)
                    }
                }
            }
        }
        XCTAssertEqual(failures, 0, "elements outside tolerance", file: file, line: line)
        XCTAssertEqual(checked, shapes.reduce(0) { $0 + $1.shape.reduce(1, *) }, file: file, line: line)
        print("finite differences (bias \(config.bias), T \(time)/\(config.seqLen)): \(checked) elements, "
              + "worst relative error \(worstRelative) where |g| > 1e-3, worst absolute error \(worstAbsoluteSmall) elsewhere")
    }

    func testGradientsWithBiasFullContext() {
        let config = Config(nLayer: 2, nHead: 2, dModel: 8, dFF: 12, seqLen: 5, vocabSize: 7, bias: true)
        checkGradientsByFiniteDifferences(config, batch: 2, time: 5, seed: 1)
    }

    func testGradientsWithoutBiasShortSequences() {
        // T = 3 < seqLen = 5: wpe rows 3 and 4 are unused, their gradient must be exactly 0 (and is checked so).
        let config = Config(nLayer: 2, nHead: 2, dModel: 8, dFF: 12, seqLen: 5, vocabSize: 7, bias: false)
        checkGradientsByFiniteDifferences(config, batch: 2, time: 3, seed: 2)

        let model = ReferenceGPT.random(config, seed: 3)
        var rng = ReferenceGPT.SplitMix64(seed: 4)
        let tokens = randomTokens(batch: 2, time: 3, vocab: 7, &rng)
        let grads = model.lossAndGradients(tokens: tokens, targets: tokens).gradients
        XCTAssertEqual(Array(grads["transformer.wpe.weight"]![(3 * 8)...]), [Double](repeating: 0, count: 2 * 8))
    }

    // MARK: - Structure

    func testLogitsShape() {
        let config = Config(nLayer: 1, nHead: 2, dModel: 8, dFF: 32, seqLen: 6, vocabSize: 13, bias: true)
        let model = ReferenceGPT.random(config, seed: 5)
        var rng = ReferenceGPT.SplitMix64(seed: 6)
        for (batch, time) in [(1, 1), (3, 4), (2, 6)] {
            let logits = model.logits(tokens: randomTokens(batch: batch, time: time, vocab: 13, &rng))
            XCTAssertEqual(logits.count, batch)
            for sequence in logits {
                XCTAssertEqual(sequence.count, time)
                for position in sequence {
                    XCTAssertEqual(position.count, 13)
                    XCTAssert(position.allSatisfy(\.isFinite))
                }
            }
        }
    }

    /// Changing the token at position t0 of one sequence leaves every logit before t0 bit-identical (causal mask),
    /// leaves the other sequences bit-identical (no mixing across the batch), and does change logits at t ≥ t0.
    func testAttentionIsCausal() {
        for bias in [true, false] {
            let config = Config(nLayer: 2, nHead: 2, dModel: 8, dFF: 16, seqLen: 6, vocabSize: 9, bias: bias)
            let model = ReferenceGPT.random(config, seed: 7)
            var rng = ReferenceGPT.SplitMix64(seed: 8)
            let tokens = randomTokens(batch: 2, time: 6, vocab: 9, &rng)
            let before = model.logits(tokens: tokens)
            for t0 in 0..<6 {
                var changed = tokens
                changed[1][t0] = (tokens[1][t0] + 1) % 9
                let after = model.logits(tokens: changed)
                XCTAssertEqual(after[0], before[0], "sequence 0 must not see sequence 1")
                for t in 0..<t0 { XCTAssertEqual(after[1][t], before[1][t], "position \(t) saw token \(t0)") }
                for t in t0..<6 { XCTAssertNotEqual(after[1][t], before[1][t], "position \(t) ignores token \(t0)") }
            }
        }
    }

    /// Uniform logits give exactly log V.
    ///
    /// With every parameter 0 except the LayerNorm weights (= 1): the embeddings are 0 so the residual stream x
    /// starts at exactly 0. LayerNorm of a zero row has mean 0 and variance 0, so x̂ = 0·(1/sqrt(0 + 1e-5)) = 0
    /// and the output is 0·1 + 0 = 0. Attention then has q = k = v = 0 (zero weights and biases): the scores
    /// are 0, the softmax is uniform over the visible keys, and y = Σ p·0 = 0; c_proj of 0 is 0. The MLP gives
    /// GELU(0) = ½·0·(1 + tanh 0) = 0 and c_proj of 0 is 0. So x stays exactly 0 through every block, ln_f(0) = 0,
    /// and the logits 0·wteᵀ are exactly 0 (here wte is 0 too). Every position's loss is then
    /// logsumexp(0, …, 0) − 0 = log(Σ e⁰) = log V, computed from the exact integer sum V. All of this is exact in
    /// floating point (only zeros and ones are involved), so each position's loss is bit-identical to log(V); the
    /// mean of N equal terms is exact for N = 1 and 2 (a + a = 2a exactly) and within N ulps otherwise.
    func testZeroModelGivesLogV() {
        for bias in [true, false] {
            let config = Config(nLayer: 2, nHead: 2, dModel: 8, dFF: 16, seqLen: 4, vocabSize: 11, bias: bias)
            var params: [String: [Double]] = [:]
            for (name, shape) in ReferenceGPT.parameterShapes(config) {
                params[name] = [Double](repeating: isLayerNormWeight(name) ? 1 : 0, count: shape.reduce(1, *))
            }
            let model = ReferenceGPT(config: config, params: params)
            var rng = ReferenceGPT.SplitMix64(seed: 9)
            for (batch, time) in [(1, 1), (1, 2), (2, 1), (3, 4)] {
                let tokens = randomTokens(batch: batch, time: time, vocab: 11, &rng)
                let targets = randomTokens(batch: batch, time: time, vocab: 11, &rng)
                for sequence in model.logits(tokens: tokens) {
                    for position in sequence { XCTAssertEqual(position, [Double](repeating: 0, count: 11)) }
                }
                let loss = model.lossAndGradients(tokens: tokens, targets: targets).loss
                if batch * time <= 2 {
                    XCTAssertEqual(loss, log(11.0), "bias \(bias), B \(batch), T \(time)")
                } else {
                    XCTAssertEqual(loss, log(11.0), accuracy: Double(batch * time) * log(11.0).ulp)
                }
            }
        }
    }

    /// The state_dict layout: nanoGPT's names and order, biases only with bias=true, and GPT-2 small's well-known
    /// 124,439,808 parameters (tied head, wpe included).
    func testParameterShapes() {
        let small = Config(nLayer: 1, nHead: 2, dModel: 4, dFF: 6, seqLen: 3, vocabSize: 5, bias: true)
        let shapes = ReferenceGPT.parameterShapes(small)
        XCTAssertEqual(shapes.map(\.name), [
            "transformer.wte.weight", "transformer.wpe.weight",
            "transformer.h.0.ln_1.weight", "transformer.h.0.ln_1.bias",
            "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_attn.bias",
            "transformer.h.0.attn.c_proj.weight", "transformer.h.0.attn.c_proj.bias",
            "transformer.h.0.ln_2.weight", "transformer.h.0.ln_2.bias",
            "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_fc.bias",
            "transformer.h.0.mlp.c_proj.weight", "transformer.h.0.mlp.c_proj.bias",
            "transformer.ln_f.weight", "transformer.ln_f.bias",
        ])
        XCTAssertEqual(shapes.map(\.shape), [[5, 4], [3, 4], [4], [4], [12, 4], [12], [4, 4], [4], [4], [4],
                                             [6, 4], [6], [4, 6], [4], [4], [4]])
        var noBias = small
        noBias.bias = false
        XCTAssertEqual(ReferenceGPT.parameterShapes(noBias).map(\.name),
                       shapes.map(\.name).filter { !$0.hasSuffix(".bias") })

        let gpt2 = Config(nLayer: 12, nHead: 12, dModel: 768, dFF: 3072, seqLen: 1024, vocabSize: 50257, bias: true)
        XCTAssertEqual(ReferenceGPT.parameterShapes(gpt2).reduce(0) { $0 + $1.shape.reduce(1, *) }, 124_439_808)
    }

    /// Same seed, same parameters; different seed, different ones; near-uniform predictions at initialisation.
    func testRandomInitIsSeededAndNearUniform() throws {
        let config = Config(nLayer: 2, nHead: 2, dModel: 16, dFF: 64, seqLen: 8, vocabSize: 11, bias: true)
        let a = ReferenceGPT.random(config, seed: 42), b = ReferenceGPT.random(config, seed: 42)
        let c = ReferenceGPT.random(config, seed: 43)
        XCTAssertEqual(a.params, b.params)
        XCTAssertNotEqual(a.params, c.params)

        var rng = ReferenceGPT.SplitMix64(seed: 10)
        let tokens = randomTokens(batch: 3, time: 8, vocab: 11, &rng)
        let targets = randomTokens(batch: 3, time: 8, vocab: 11, &rng)
        let (loss, gradients) = a.lossAndGradients(tokens: tokens, targets: targets)
        // Near-uniform predictions at initialisation: the loss is close to log V.
        XCTAssertEqual(loss, log(11.0), accuracy: 0.1)
        XCTAssertEqual(gradients.count, ReferenceGPT.parameterShapes(config).count)
    }
}
