import GPTShape
import Planner
import XCTest

/// The CPU memory model per recompute mode (docs/benchmarks.md, "Activation recomputation"): what `gpt-plan check`
/// accepts for GPT-2 124M (bias-free, vocabulary 50304) at sequence 1024 on a 24 GiB machine.
final class RecomputeMemoryTests: XCTestCase {
    let shape = ModelShape(nLayer: 12, nHead: 12, dModel: 768, dFF: 3072, seqLen: 1024, vocabSize: 50304, bias: false)

    func largestMicroBatch(_ mode: Recompute, products: Precision = .fp32) -> Int {
        var micro = 0
        while case .success = checkLayoutFits(nLayer: 12, nHead: 12, dModel: 768, dFF: 3072, seqLen: 1024, vocabSize: 50304,
                                              bias: false, devices: 1, microBatch: micro + 1, gradAccum: 1, zeroStage: 0,
                                              tensorParallel: 1, pipelineParallel: 1, recompute: mode,
                                              deviceMemoryBytes: 24 * 1_073_741_824, precision: .float32, products: products) {
            micro += 1
        }
        return micro
    }

    /// The layout's bytes for one sequence of 1024 tokens, region by region (c = 768, f = 3072, h = 12, T = 1024, 12
    /// blocks): without recomputation 848,572,416; selective shares 11 blocks' attention output and log-sum-exps,
    /// 11 · (c + h) · T · 4 = 35,143,680 fewer; full keeps 12 block outputs and one block's other activations,
    /// 11 · (7c + 2f + h + 4) · T · 4 = 519,766,016 fewer (ln_1 and ln_2 with their statistics, qkv, attention's
    /// output and log-sum-exps, the mid-block residual, the MLP before and after GELU).
    func testActivationBytesOfGPT2SmallAtFullContext() {
        let (c, f, h, t) = (768, 3072, 12, 1024)
        XCTAssertEqual(shape.activationBytes(batch: 1), 848_572_416)
        XCTAssertEqual(shape.activationBytes(batch: 1) - shape.activationBytes(batch: 1, recompute: .selective),
                       11 * (c + h) * t * 4)
        XCTAssertEqual(shape.activationBytes(batch: 1) - shape.activationBytes(batch: 1, recompute: .full),
                       11 * (7 * c + 2 * f + h + 4) * t * 4)
        XCTAssertEqual(shape.activationBytes(batch: 1, recompute: .selective), 813_428_736)
        XCTAssertEqual(shape.activationBytes(batch: 1, recompute: .full), 328_806_400)
        // Weights, gradients and both moments, 16 bytes a parameter, plus those: what docs/benchmarks.md compares with
        // the measured peak resident memory.
        XCTAssertEqual(shape.trainingMemoryBytes(microBatch: 1, recompute: .full), 16 * 124_373_760 + 328_806_400)
        // With native bf16 products: 2 bytes a parameter more, and the activations' bf16 copies (the four product
        // inputs a block keeps, the final LayerNorm's output, two logits-wide gradient copies), of which selective
        // shares the attention output's and full all four of a block's.
        XCTAssertEqual(Recompute.allCases.map { shape.trainingMemoryBytes(microBatch: 1, bf16Copies: true, recompute: $0) },
                       [3_427_038_720, 3_374_593_536, 2_786_162_176])
    }

    /// 90% of 24 GiB holds micro-batches of 24 sequences without recomputation, 26 with selective and 64 with full
    /// (fp32); with native bf16 products (their bf16 copies besides) 17, 18 and 38.
    func testGPT2SmallMicroBatchesThatFit24GiB() {
        XCTAssertEqual(Recompute.allCases.map { largestMicroBatch($0) }, [24, 26, 64])
        XCTAssertEqual(Recompute.allCases.map { largestMicroBatch($0, products: .bf16) }, [17, 18, 38])
    }
}
