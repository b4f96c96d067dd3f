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
    /// The weights in the model stay fp32: the bf16 copy is made anew in every forward pass.
    func testBF16ModelIsCloseToTheReference() throws {
        let ref = reference(bias: true, seed: 1)
        let model = try GPT(shape: modelShape(ref.config), maxBatch: 3, maxTime: 8, pool: ThreadPool(threads: 2),
                            precision: .bf16)
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
}
