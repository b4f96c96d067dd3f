import Compute
import GPT
import GPTShape
import Kernels
import XCTest

/// Activation recomputation: the same kernels on the same inputs, so the same bits as keeping everything.
extension ModelTests {
    /// Two micro-batches (the second smaller, accumulated) with each mode; losses, logits' gradients and parameter
    /// gradients must be bitwise equal to `.none`, for both attention kernels, fp32 and both bf16 product paths,
    /// with and without dropout (whose masks the backward pass regenerates from their counter keys).
    func testRecomputationIsBitIdenticalToKeepingEverything() throws {
        let ref = reference(bias: true, seed: 21)
        let first = randomBatch(31, batch: 3, time: 8, vocab: 11), second = randomBatch(32, batch: 2, time: 6, vocab: 11)
        var cases: [(AttentionKernel, Precision, BF16Products?)] = [(.fused, .fp32, nil), (.materialized, .fp32, nil),
                                                                     (.fused, .bf16, .emulated)]
        if BF16Matmul.isAvailable { cases.append((.fused, .bf16, .native)) }
        for (kernel, precision, products) in cases {
            for probability: Float in [0, 0.25] {
                func run(_ mode: Recompute) throws -> (losses: [UInt32], logits: [UInt32], gradients: [UInt32]) {
                    let model = try GPT(shape: modelShape(ref.config), maxBatch: 3, maxTime: 8, pool: ThreadPool(threads: 2),
                                        attention: kernel, precision: precision, bf16Products: products, recompute: mode)
                    XCTAssertEqual(model.recompute, mode)
                    load(ref, into: model)
                    var losses: [UInt32] = [], logits: [UInt32] = []
                    for (micro, (batch, b, t)) in [(first, 3, 8), (second, 2, 6)].enumerated() {
                        let loss = try model.forward(tokens: flat(batch.tokens), targets: flat(batch.targets), batch: b,
                                                     time: t, gradientScale: 1 / 36,
                                                     dropout: DropoutContext(probability: probability, seed: 9, step: 4, micro: micro),
                                                     weightsUnchanged: micro > 0)
                        losses.append(loss.bitPattern)
                        logits += UnsafeBufferPointer(start: model.logits, count: b * t * 11).map(\.bitPattern)
                        model.backward(accumulate: micro > 0)
                    }
                    return (losses, logits, model.gradients.buffer.map(\.bitPattern))
                }
                let kept = try run(.none)
                let label = "\(kernel) \(precision) \(products.map { "\($0)" } ?? "") dropout \(probability)"
                XCTAssertTrue(kept.gradients.contains { $0 != 0 }, label)
                for mode in [Recompute.selective, .full] {
                    let recomputed = try run(mode)
                    XCTAssertEqual(recomputed.losses, kept.losses, "\(mode) \(label)")
                    for (what, a, b) in [("logits' gradient", recomputed.logits, kept.logits),
                                         ("gradients", recomputed.gradients, kept.gradients)] {
                        XCTAssertEqual(a.count, b.count)
                        let differ = zip(a, b).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
                        XCTAssertTrue(differ.isEmpty, "\(mode) \(label): \(differ.count) of \(a.count) \(what) differ, first [\(differ.first ?? -1)]")
                    }
                }
            }
        }
    }

    /// What each mode keeps, counted region by region, and the model allocates what the planner's estimate says.
    func testActivationLayoutFollowsTheRecomputeMode() throws {
        let shape = ModelShape(nLayer: 3, nHead: 4, dModel: 32, dFF: 128, seqLen: 16, vocabSize: 50, bias: true)
        let (b, t, c, f, h, n) = (5, 12, 32, 128, 4, 3)
        let bt = b * t
        for kernel in AttentionKernel.allCases {
            for mode in Recompute.allCases {
                let model = try GPT(shape: shape, maxBatch: b, maxTime: t, pool: ThreadPool(threads: 1), attention: kernel,
                                    recompute: mode)
                XCTAssertEqual(model.activationCount, shape.activationFloats(batch: b, context: t, attention: kernel, recompute: mode))
            }
            let attention = b * h * t * (kernel == .fused ? 1 : t)   // log-sum-exps or probabilities
            // Per block: ln_1 (+2 statistics), qkv, attention, its output, residual, ln_2 (+2), fc and GELU, output.
            let block = bt * c + 2 * bt + 3 * bt * c + attention + bt * c + bt * c + bt * c + 2 * bt + 2 * bt * f + bt * c
            let none = shape.activationFloats(batch: b, context: t, attention: kernel)
            // Selective: one attention output and one attention region for all blocks.
            XCTAssertEqual(none - shape.activationFloats(batch: b, context: t, attention: kernel, recompute: .selective),
                           (n - 1) * (attention + bt * c))
            // Full: every block's output (the next one's input) and one block's other activations.
            XCTAssertEqual(none - shape.activationFloats(batch: b, context: t, attention: kernel, recompute: .full),
                           (n - 1) * (block - bt * c))
        }
        // The bf16 copies follow too: selective shares the attention output's, full every block's four.
        let halves = { (mode: Recompute) in ActivationLayout(shape, batch: b, time: t, bf16Copies: true, recompute: mode).halfCount }
        XCTAssertEqual(halves(.none) - halves(.selective), (n - 1) * bt * c)
        XCTAssertEqual(halves(.none) - halves(.full), (n - 1) * (3 * bt * c + bt * f))
        // Regions of one layout never overlap except where shared: block 0's and block 2's outputs differ.
        let full = ActivationLayout(shape, batch: b, time: t, recompute: .full)
        XCTAssertEqual(full.layers[0].qkv, full.layers[2].qkv)
        XCTAssertNotEqual(full.layers[0].residual3, full.layers[2].residual3)
        let selective = ActivationLayout(shape, batch: b, time: t, recompute: .selective)
        XCTAssertEqual(selective.layers[0].attY, selective.layers[2].attY)
        XCTAssertNotEqual(selective.layers[0].qkv, selective.layers[2].qkv)
    }
}
