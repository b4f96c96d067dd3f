import Compute
import Foundation
import GPT
import GPTShape
import Kernels
import XCTest

/// The model with either attention kernel, and in bf16.
extension ModelTests {
    func testMaterializedAttentionModelMatchesTheReferenceToo() throws {
        let ref = reference(bias: true, seed: 1)
        let model = try GPT(shape: modelShape(ref.config), maxBatch: 3, maxTime: 8, pool: ThreadPool(threads: 2),
                            attention: .materialized)
        load(ref, into: model)
        let (tokens, targets) = randomBatch(7, batch: 3, time: 8, vocab: 11)
        let (expectedLoss, expectedGradients) = ref.lossAndGradients(tokens: tokens, targets: targets)
        let loss = try model.forward(tokens: flat(tokens), targets: flat(targets), batch: 3, time: 8, gradientScale: 1 / 24)
        XCTAssertEqual(Double(loss), expectedLoss, accuracy: 1e-5 * expectedLoss)
        model.backward(accumulate: false)
        assertGradients(model, expectedGradients)
    }

    /// Same weights, same batch, same dropout masks: the two kernels give the same loss and gradients up to
    /// float32 summation order.
    func testFusedAndMaterializedAttentionAgreeWithAndWithoutDropout() throws {
        let ref = reference(bias: false, seed: 12)
        let batch = randomBatch(13, batch: 2, time: 8, vocab: 11)
        for probability: Float in [0, 0.25] {
            func run(_ kernel: AttentionKernel, tiles: FusedAttention.Tiles = .standard) throws -> (Float, [Float]) {
                let model = try GPT(shape: modelShape(ref.config), maxBatch: 2, maxTime: 8, pool: ThreadPool(threads: 2),
                                    attention: kernel, attentionTiles: tiles)
                load(ref, into: model)
                let loss = try model.forward(tokens: flat(batch.tokens), targets: flat(batch.targets), batch: 2, time: 8,
                                             gradientScale: 1 / 16,
                                             dropout: DropoutContext(probability: probability, seed: 5, step: 3, micro: 1))
                model.backward(accumulate: false)
                return (loss, Array(model.gradients.buffer))
            }
            let (fusedLoss, fusedGradients) = try run(.fused)
            let (smallTilesLoss, smallTilesGradients) = try run(.fused, tiles: .init(queries: 3, keys: 2))
            let (materializedLoss, materializedGradients) = try run(.materialized)
            XCTAssertEqual(fusedLoss, materializedLoss, accuracy: 1e-5 * materializedLoss)
            XCTAssertEqual(smallTilesLoss, materializedLoss, accuracy: 1e-5 * materializedLoss)
            let scale = materializedGradients.map(abs).max()!
            for i in 0..<fusedGradients.count {
                XCTAssertEqual(fusedGradients[i], materializedGradients[i], accuracy: 2e-5 * scale, "p=\(probability) [\(i)]")
                XCTAssertEqual(smallTilesGradients[i], materializedGradients[i], accuracy: 2e-5 * scale, "p=\(probability) [\(i)]")
            }
        }
    }

    func testActivationLayoutFollowsTheAttentionKernel() throws {
        let shape = ModelShape(nLayer: 3, nHead: 4, dModel: 32, dFF: 128, seqLen: 16, vocabSize: 50, bias: true)
        for kernel in AttentionKernel.allCases {
            let model = try GPT(shape: shape, maxBatch: 5, maxTime: 12, pool: ThreadPool(threads: 1), attention: kernel)
            XCTAssertEqual(model.activationCount, shape.activationFloats(batch: 5, context: 12, attention: kernel))
        }
        // The fused kernel keeps B·H·T log-sum-exps a layer instead of B·H·T² probabilities.
        XCTAssertEqual(shape.activationFloats(batch: 5, context: 12, attention: .materialized)
                       - shape.activationFloats(batch: 5, context: 12, attention: .fused), 3 * 5 * 4 * 12 * (12 - 1))
        XCTAssertEqual(shape.activationFloats(batch: 5, context: 12), shape.activationFloats(batch: 5, context: 12, attention: .fused))
    }

    func testBF16NeedsTheFusedKernel() {
        let shape = modelShape(refConfig(bias: false))
        XCTAssertThrowsError(try GPT(shape: shape, maxBatch: 1, maxTime: 8, pool: ThreadPool(threads: 1),
                                     attention: .materialized, precision: .bf16)) {
            XCTAssertEqual($0 as? GPTInputError, .bf16NeedsFusedAttention)
        }
    }

    /// bf16 products against the double-precision reference. Each product's inputs carry a relative rounding
    /// error of at most u = 2⁻⁸ each; a gradient tensor is reached through at most ~12 products (two blocks forward
    /// and back, the head), and first-order errors add, so its relative error in norm is bounded by about
    /// 12·2u ≈ 9%; the loss, a mean over 24 positions, moves by far less. Asserted: gradients within 10% in norm
    /// of the reference (and further from it than fp32's 2e-5: the rounding really happens), the loss within 1%.
    /// The weights in the model stay fp32: the bf16 copy is made by the forward pass.
    func testBF16ModelIsCloseToTheReference() throws {
        try testBF16ModelIsCloseToTheReference(.emulated)
        try XCTSkipUnless(BF16Matmul.isAvailable, "\(CPU.modelName) has no native bf16 products")
        try testBF16ModelIsCloseToTheReference(.native)
    }

    func testBF16ModelIsCloseToTheReference(_ products: BF16Products) throws {
        let ref = reference(bias: true, seed: 1)
        let model = try GPT(shape: modelShape(ref.config), maxBatch: 3, maxTime: 8, pool: ThreadPool(threads: 2),
                            precision: .bf16, bf16Products: products)
        XCTAssertEqual(model.bf16Products, products)
        load(ref, into: model)
        let before = Array(model.parameters.buffer)
        let (tokens, targets) = randomBatch(7, batch: 3, time: 8, vocab: 11)
        let (expectedLoss, expectedGradients) = ref.lossAndGradients(tokens: tokens, targets: targets)
        let loss = try model.forward(tokens: flat(tokens), targets: flat(targets), batch: 3, time: 8, gradientScale: 1 / 24)
        XCTAssertEqual(Double(loss), expectedLoss, accuracy: 0.01 * expectedLoss)
        XCTAssertNotEqual(Double(loss), expectedLoss)
        model.backward(accumulate: false)
        XCTAssertEqual(Array(model.parameters.buffer), before, "master weights are untouched")
        var worstOverall = 0.0
        for tensor in model.layout.tensors {
            let reference = expectedGradients[tensor.name]!
            var difference = 0.0, size = 0.0
            for i in 0..<tensor.count {
                let g = Double(model.gradients.base[tensor.offset + i])
                difference += (g - reference[i]) * (g - reference[i])
                size += reference[i] * reference[i]
            }
            let relative = (difference / max(size, 1e-30)).squareRoot()
            worstOverall = max(worstOverall, relative)
            XCTAssertLessThan(relative, 0.10, "\(tensor.name): relative error \(relative)")
        }
        XCTAssertGreaterThan(worstOverall, 1e-4)
    }

    /// Native (oneDNN) and emulated bf16 products compute the same function: the same bf16 operands, exact
    /// products, fp32 accumulation, differing only in the order of each fp32 sum (a relative 2⁻²⁴·k). A later
    /// rounding to bf16 can turn that into one bf16 ulp (2⁻⁸) where a value lies that close to a rounding boundary,
    /// which happens to about k·2⁻¹⁶ of the values (k ≤ 128 here, so about 0.2%); through the dozen products a
    /// gradient passes, that puts the relative difference in norm near 12·√0.002·2⁻⁸ ≈ 2e-3 (an estimate, not a
    /// bound). Asserted: the loss within 1e-4 relative, every gradient tensor within 5e-3 in norm (the estimate
    /// with a margin), with and without dropout. bf16 against fp32 differs by several percent (the test above), so
    /// this still separates a correct native path from one that computes something else.
    func testNativeAndEmulatedBF16Agree() throws {
        try XCTSkipUnless(BF16Matmul.isAvailable, "\(CPU.modelName) has no native bf16 products")
        let ref = reference(bias: true, seed: 4)
        let batch = randomBatch(21, batch: 3, time: 8, vocab: 11)
        for probability: Float in [0, 0.25] {
            func run(_ products: BF16Products) throws -> (Float, GPT) {
                let model = try GPT(shape: modelShape(ref.config), maxBatch: 3, maxTime: 8, pool: ThreadPool(threads: 2),
                                    precision: .bf16, bf16Products: products)
                load(ref, into: model)
                let dropout = DropoutContext(probability: probability, seed: 9, step: 2, micro: 0)
                let loss = try model.forward(tokens: flat(batch.tokens), targets: flat(batch.targets), batch: 3, time: 8,
                                             gradientScale: 1 / 24, dropout: dropout)
                model.backward(accumulate: false)
                // A second micro-batch accumulates into the gradients (beta = 1 in every product).
                _ = try model.forward(tokens: flat(batch.tokens), targets: flat(batch.targets), batch: 2, time: 7,
                                      gradientScale: 1 / 24, dropout: dropout)
                model.backward(accumulate: true)
                return (loss, model)
            }
            let (nativeLoss, native) = try run(.native)
            let (emulatedLoss, emulated) = try run(.emulated)
            XCTAssertEqual(nativeLoss, emulatedLoss, accuracy: 1e-4 * emulatedLoss, "p = \(probability)")
            for tensor in native.layout.tensors {
                var difference = 0.0, size = 0.0
                for i in tensor.offset..<(tensor.offset + tensor.count) {
                    let d = Double(native.gradients.base[i] - emulated.gradients.base[i])
                    difference += d * d
                    size += Double(emulated.gradients.base[i] * emulated.gradients.base[i])
                }
                let relative = (difference / max(size, 1e-30)).squareRoot()
                XCTAssertLessThan(relative, 5e-3, "\(tensor.name), p = \(probability)")
            }
        }
    }

    func testNativeBF16KeepsBF16CopiesInTheLayout() throws {
        let shape = ModelShape(nLayer: 3, nHead: 4, dModel: 32, dFF: 128, seqLen: 16, vocabSize: 50, bias: true)
        let layout = ActivationLayout(shape, batch: 5, time: 12, bf16Copies: true)
        // Per layer ln_1, attention output, ln_2 (B·T·C each) and the GELU output (B·T·4C); the final LayerNorm;
        // the widest gradient (logits, B·T·V) and its transpose, whose room one layer's attention operands share.
        XCTAssertEqual(layout.halfCount, 3 * (3 * 60 * 32 + 60 * 128) + 60 * 32 + 2 * 60 * 128)
        XCTAssertEqual(layout.attentionQKVHalf, layout.gradientHalf)
        XCTAssertEqual(layout.attentionGradientHalf, layout.gradientHalfTransposed)
        XCTAssertEqual(layout.count, ActivationLayout(shape, batch: 5, time: 12).count)
        XCTAssertEqual(shape.activationBytes(batch: 5, context: 12, bf16Copies: true), 4 * layout.count + 2 * layout.halfCount)
        // The widest gradient here is the MLP's (4C = 128 > V = 50 > 3C = 96).
        // fp32 ignores the choice of bf16 products.
        XCTAssertNil(try GPT(shape: shape, maxBatch: 1, maxTime: 8, pool: ThreadPool(threads: 1), bf16Products: .native).bf16Products)
        guard BF16Matmul.isAvailable else {
            // Without native products, asking for them is refused, and bf16 runs emulated.
            XCTAssertThrowsError(try GPT(shape: shape, maxBatch: 5, maxTime: 12, pool: ThreadPool(threads: 1),
                                         precision: .bf16, bf16Products: .native)) {
                XCTAssertEqual($0 as? GPTInputError, .nativeBF16Unavailable)
            }
            let emulated = try GPT(shape: shape, maxBatch: 5, maxTime: 12, pool: ThreadPool(threads: 1), precision: .bf16)
            XCTAssertEqual(emulated.bf16Products, .emulated)
            return
        }
        let native = try GPT(shape: shape, maxBatch: 5, maxTime: 12, pool: ThreadPool(threads: 1), precision: .bf16)
        XCTAssertEqual(native.bf16Products, .native)
    }

    /// `weightsUnchanged` reuses the bf16 copy of the weights: after the parameters change, a pass that promises
    /// they did not still computes with the old copy (the same loss, bit for bit), and a pass that does not promise
    /// it sees the change. fp32 reads the parameters directly and sees it either way.
    func testUnchangedWeightsReuseTheBF16Copy() throws {
        let ref = reference(bias: true, seed: 2)
        let (tokens, targets) = randomBatch(3, batch: 2, time: 8, vocab: 11)
        var cases: [(Precision, BF16Products?)] = [(.fp32, nil), (.bf16, .emulated)]
        if BF16Matmul.isAvailable { cases.append((.bf16, .native)) }
        for (precision, products) in cases {
            let model = try GPT(shape: modelShape(ref.config), maxBatch: 2, maxTime: 8, pool: ThreadPool(threads: 2),
                                precision: precision, bf16Products: products)
            load(ref, into: model)
            func loss(_ unchanged: Bool) throws -> Float {
                try model.forward(tokens: flat(tokens), targets: flat(targets), batch: 2, time: 8, weightsUnchanged: unchanged)
            }
            let first = try loss(true)   // the first pass makes the copy whatever the promise
            // The blocks' matrices, which only products read (wte is also the fp32 embedding).
            for tensor in model.layout.tensors where tensor.name.hasSuffix("c_attn.weight") || tensor.name.hasSuffix("c_fc.weight") {
                for i in tensor.offset..<(tensor.offset + tensor.count) { model.parameters.base[i] *= 1.5 }
            }
            let promised = try loss(true), fresh = try loss(false)
            XCTAssertNotEqual(fresh, first, "\(precision) \(String(describing: products))")
            if precision == .bf16 {
                XCTAssertEqual(promised.bitPattern, first.bitPattern, "\(String(describing: products)): the old copy")
            } else {
                XCTAssertEqual(promised.bitPattern, fresh.bitPattern, "fp32 reads the parameters")
            }
        }
    }
}
