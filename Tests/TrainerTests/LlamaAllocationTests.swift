import AllocationCounter
import Compute
import GPT
import GPTShape
import XCTest

/// The Llama model's training passes allocate nothing (the trainer's own step is AllocationTests'): forward and
/// backward with gradient accumulation and dropout, fp32 and emulated bf16, every recompute mode; with native bf16
/// products, only oneDNN's own allocations inside each execution.
final class LlamaAllocationTests: XCTestCase {
    let shape = ModelShape(nLayer: 2, nHead: 4, dModel: 32, dFF: 48, seqLen: 16, vocabSize: 37, bias: false,
                           family: .llama, nKVHead: 2)

    // Made before counting starts.
    let tokens = (0..<32).map { Int32($0 % 37) }, targets = (0..<32).map { Int32(($0 * 7 + 3) % 37) }

    func steps(_ model: GPT, count: Int) throws {
        try tokens.withUnsafeBufferPointer { t in
            try targets.withUnsafeBufferPointer { y in
                for step in 0..<count {
                    for micro in 0..<2 {
                        try model.forward(tokens: t.baseAddress!, targets: y.baseAddress!, batch: 2, time: 16,
                                          gradientScale: 1 / 64,
                                          dropout: DropoutContext(probability: 0.1, seed: 1, step: step, micro: micro),
                                          weightsUnchanged: micro > 0)
                        model.backward(accumulate: micro > 0)
                    }
                }
            }
        }
    }

    func testLlamaStepsAllocateNothing() throws {
        try XCTSkipUnless(gpt_allocation_counting() == 1, "allocations are not counted under AddressSanitizer")
        let cases: [(Precision, BF16Products?)] = [(.fp32, nil), (.bf16, .emulated)]
        for (precision, products) in cases {
            for mode in Recompute.allCases {
                let model = try GPT(shape: shape, maxBatch: 2, maxTime: 16, pool: ThreadPool(threads: 2),
                                    precision: precision, bf16Products: products, recompute: mode)
                model.initialize(seed: 3)
                try steps(model, count: 1)   // the first step may warm up OpenBLAS's per-thread buffers
                let before = gpt_allocation_count()
                try steps(model, count: 3)
                XCTAssertEqual(gpt_allocation_count() - before, 0, "\(precision) \(String(describing: products)) \(mode)")
            }
        }
    }

    func testNativeBF16LlamaStepsAllocateOnlyInsideOneDNN() throws {
        try XCTSkipUnless(gpt_allocation_counting() == 1, "allocations are not counted under AddressSanitizer")
        try XCTSkipUnless(BF16Matmul.isAvailable, "\(CPU.modelName) has no native bf16 products")
        let model = try GPT(shape: shape, maxBatch: 2, maxTime: 16, pool: ThreadPool(threads: 2), precision: .bf16,
                            bf16Products: .native)
        model.initialize(seed: 3)
        try steps(model, count: 1)   // creates every product's primitive
        let before = gpt_allocation_count()
        let executions = BF16Matmul.executionCount, insideOneDNN = BF16Matmul.executionAllocationCount
        let unmeasured = BF16Matmul.unmeasuredExecutionCount
        try steps(model, count: 3)
        XCTAssertGreaterThan(BF16Matmul.executionCount - executions, 0, "the products ran natively")
        try XCTSkipIf(BF16Matmul.unmeasuredExecutionCount > unmeasured,
                      "oneDNN runs \(BF16Matmul.implementationsInUse.sorted()) here, not all of them measured")
        XCTAssertEqual(gpt_allocation_count() - before, BF16Matmul.executionAllocationCount - insideOneDNN)
    }
}
