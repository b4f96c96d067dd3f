import Foundation
import GPTShape
import Planner
import XCTest

/// The precision rule (`PrecisionDecision.rule`) and what follows from it: the rate the time estimate divides by,
/// and the bf16 copies the memory model counts on a CPU.
final class PrecisionRuleTests: XCTestCase {
    let memory = 64.0 * 0x1p30

    func cpu(fp32: Double, bf16: Double?) -> Hardware {
        Hardware.cpu(memoryBytes: memory, fp32Flops: fp32, bf16Flops: bf16, source: "test")
    }

    func testNativeBF16FasterThanTheSgemmPicksBF16AtTheBF16Ceiling() {
        let h = cpu(fp32: 215e9, bf16: 430e9)
        XCTAssertEqual(h.products, PrecisionDecision(precision: .bf16, reason: .nativeBF16(bf16Flops: 430e9, fp32Flops: 215e9)))
        XCTAssertEqual(h.peakFlops, 430e9)
        XCTAssertEqual(h.fp32Flops, 215e9)
        // Master weights, gradients and moments stay float32: the memory model is still gpt-train's.
        XCTAssertEqual(h.precision, .float32)
    }

    func testWithoutNativeBF16OrWhenItIsNotFasterTheRuleKeepsFP32() {
        let none = cpu(fp32: 215e9, bf16: nil)
        XCTAssertEqual(none.products, PrecisionDecision(precision: .fp32, reason: .noNativeBF16(fp32Flops: 215e9)))
        XCTAssertEqual(none.peakFlops, 215e9)
        let slow = cpu(fp32: 215e9, bf16: 215e9)
        XCTAssertEqual(slow.products, PrecisionDecision(precision: .fp32,
                                                        reason: .nativeBF16NotFaster(bf16Flops: 215e9, fp32Flops: 215e9)))
        XCTAssertEqual(slow.peakFlops, 215e9)
        // A CPU known only by its sgemm rate is an fp32 device.
        XCTAssertEqual(Hardware.cpu(memoryBytes: memory, flops: 1e11, source: "").products.precision, .fp32)
    }

    /// GPU presets were already bf16: their peaks are the datasheets' dense bf16 rates, their memory model mixed.
    func testGPUPresetsTrainInBF16AtTheirDatasheetPeak() {
        for h in Hardware.gpuPresets {
            XCTAssertEqual(h.products, .gpu, h.name)
            XCTAssertEqual(h.products.precision, .bf16, h.name)
            XCTAssertEqual(h.precision, .mixed, h.name)
            XCTAssertGreaterThan(h.peakFlops, h.fp32Flops, h.name)
        }
        XCTAssertEqual(Hardware.h100_sxm_80gb.peakFlops, 989e12)
    }

    /// The same run on the same CPU, once with native bf16 at twice the sgemm's rate: the compute time (all of a
    /// CPU step: no bubble, no communication) halves exactly, whatever micro-batch the bf16 copies leave room for.
    func testTheTimeEstimateUsesTheBF16Ceiling() throws {
        func plan(_ h: Hardware) throws -> Plan {
            var r = PlanRequest(target: .flops(3e15), hardware: .given(h))
            r.vocabSize = 4096
            return try Plan.make(r)
        }
        let fp32 = try plan(cpu(fp32: 215e9, bf16: nil)), bf16 = try plan(cpu(fp32: 215e9, bf16: 430e9))
        XCTAssertEqual(fp32.steps, bf16.steps)
        XCTAssertEqual(fp32.estimatedSeconds / bf16.estimatedSeconds, 2, accuracy: 1e-12)
        let expected = bf16.shape.flopsPerTokenWithAttention() * Double(bf16.batchTokens) / (430e9 * 0.4)
            * Double(bf16.steps)
        XCTAssertEqual(bf16.estimatedSeconds / expected, 1, accuracy: 1e-12)
    }

    /// gpt-train with native bf16 products keeps a 2-byte bf16 copy of every weight and the activations' bf16
    /// copies (`ActivationLayout.bf16Copies`) besides its float32 state: the CPU memory model counts both.
    func testTheCPUMemoryModelCountsTheBF16Copies() throws {
        let shape = ModelShape(nLayer: 4, nHead: 4, dModel: 128, dFF: 512, seqLen: 64, vocabSize: 65, bias: false)
        let layout = Layout(dataParallel: 1, tensorParallel: 1, pipelineParallel: 1, zeroStage: 0, recompute: .none,
                            microBatch: 12, gradAccum: 1)
        let a = LayoutModel.memory(shape: shape, layout: layout, hardware: cpu(fp32: 215e9, bf16: nil))
        let b = LayoutModel.memory(shape: shape, layout: layout, hardware: cpu(fp32: 215e9, bf16: 430e9))
        let params = Double(shape.parameterCount.total)
        XCTAssertEqual(a.weights, 4 * params)
        XCTAssertEqual(b.weights, 6 * params)
        XCTAssertEqual(b.gradients, a.gradients)
        XCTAssertEqual(b.optimizer, a.optimizer)
        XCTAssertEqual(a.activations, 4 * Double(shape.activationFloats(batch: 12)))
        let halves = ActivationLayout(shape, batch: 12, time: 64, bf16Copies: true).halfCount
        XCTAssertGreaterThan(halves, 0)
        XCTAssertEqual(b.activations - a.activations, 2 * Double(halves))
        // gpt-plan check's rule follows the recipe's training.precision the same way.
        func check(_ products: Precision) -> MemoryBreakdown? {
            try? checkLayoutFits(nLayer: 4, nHead: 4, dModel: 128, dFF: 512, seqLen: 64, vocabSize: 65, bias: false,
                                 devices: 1, microBatch: 12, gradAccum: 1, zeroStage: 0, tensorParallel: 1,
                                 pipelineParallel: 1, recompute: .none, deviceMemoryBytes: memory,
                                 precision: .float32, products: products).get()
        }
        XCTAssertEqual(check(.fp32), a)
        XCTAssertEqual(check(.bf16), b)
    }
}
