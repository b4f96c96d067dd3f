import GPTShape
import Planner
import XCTest

/// The planner's CPU memory for the Llama family is the trainer's own count (`ActivationLayout`), in every recompute
/// mode, fp32 and native bf16: a Llama-style model of GPT-2 124M's size (12 × 12 × 768, 4 KV heads, SwiGLU d_ff 2048,
/// the head tied to the embedding, vocabulary 50304) at sequence 1024, the shape docs/benchmarks.md measures
/// (`gpt-bench train --config l`).
final class LlamaMemoryTests: XCTestCase {
    let shape = ModelShape(nLayer: 12, nHead: 12, dModel: 768, dFF: 2048, seqLen: 1024, vocabSize: 50304, bias: false,
                           family: .llama, nKVHead: 4, tieEmbeddings: true)

    func largestMicroBatch(_ mode: Recompute, products: Precision = .fp32) -> Int {
        var micro = 0
        while case .success = checkLayoutFits(shape: shape, devices: 1, microBatch: micro + 1, gradAccum: 1, zeroStage: 0,
                                              tensorParallel: 1, pipelineParallel: 1, recompute: mode,
                                              deviceMemoryBytes: 24 * 1_073_741_824, precision: .float32,
                                              products: products) {
            micro += 1
        }
        return micro
    }

    func testPlannerActivationsAreTheLayoutsInEveryMode() {
        for bf16 in [false, true] {
            let cpu = Hardware.cpu(memoryBytes: 24e9, fp32Flops: 1, bf16Flops: bf16 ? 2 : nil,
                                   source: "test")
            for mode in Recompute.allCases {
                for micro in [1, 3] {
                    let layout = ActivationLayout(shape, batch: micro, time: 1024, bf16Copies: bf16, recompute: mode)
                    let planned = LayoutModel.memory(shape: shape, layout: Layout(dataParallel: 1, recompute: mode,
                                                                                  microBatch: micro, gradAccum: 1),
                                                     hardware: cpu)
                    XCTAssertEqual(planned.activations, Double(layout.bytes), "\(mode) bf16 \(bf16) micro \(micro)")
                    let trainer = CPUTrainer.memory(shape, microBatch: micro, products: bf16 ? .native : nil,
                                                    recompute: mode)
                    XCTAssertEqual(trainer.activations, Double(layout.bytes))
                    XCTAssertEqual(planned.total - planned.other, trainer.total)
                }
            }
        }
    }

    /// The layout region by region, one sequence of T = 1024 (c = 768, K = 4 · 64 = 256 so qkv is s = c + 2K = 1280
    /// wide, f = 2048, h = 12 heads, L = 12): the embedding output c; per block ln_1 and ln_2 (c each) with their rstd
    /// (1 each), qkv s, attention's output c and log-sum-exps h, the mid-block residual c, gate, up and SwiGLU output
    /// (f each), the block's output c; the final RMSNorm c + 1, the logits V, the losses 1; the backward scratch
    /// 3c + s + f. Selective shares 11 blocks' attention output and log-sum-exps; full keeps 12 block outputs and
    /// one block's other activations.
    func testActivationBytesAtFullContext() {
        let (c, s, f, h, t, v, l) = (768, 1280, 2048, 12, 1024, 50304, 12)
        let block = 5 * c + 2 + s + h + 3 * f
        let none = (c + l * block + c + 1 + v + 1 + 3 * c + s + f) * t * 4
        XCTAssertEqual(none, 789_749_760)
        XCTAssertEqual(shape.activationBytes(batch: 1), none)
        XCTAssertEqual(shape.activationBytes(batch: 1, recompute: .selective), none - 11 * (c + h) * t * 4)
        XCTAssertEqual(shape.activationBytes(batch: 1, recompute: .full), none - 11 * (block - c) * t * 4)
        XCTAssertEqual(shape.parameterCount.total, 114_150_144)
        XCTAssertEqual(shape.trainingMemoryBytes(microBatch: 1, recompute: .full),
                       Double(16 * 114_150_144 + none - 11 * (block - c) * t * 4))
    }

    /// 90% of 24 GiB holds micro-batches of 27 sequences of 1024 tokens without recomputation, 28 with selective and
    /// 67 with full (fp32); with native bf16 products (their bf16 copies besides) 19, 20 and 39. GPT-2 124M's are 24,
    /// 26, 64 and 17, 18, 38 (`RecomputeMemoryTests`): the Llama blocks keep a narrower qkv (4 KV heads) and have
    /// 10M fewer parameters.
    func testMicroBatchesThatFit24GiB() {
        XCTAssertEqual(Recompute.allCases.map { largestMicroBatch($0) }, [27, 28, 67])
        XCTAssertEqual(Recompute.allCases.map { largestMicroBatch($0, products: .bf16) }, [19, 20, 39])
    }
}
