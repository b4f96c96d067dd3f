import GPTShape
import Foundation
import Planner
import XCTest

/// The per-device memory model against the papers' own numbers.
final class MemoryModelTests: XCTestCase {
    /// Rajbhandari et al. 2020 (ZeRO), Figure 1: Ψ = 7.5B parameters, N_d = 64, K = 12: 120 GB baseline, 31.4 GB
    /// with P_os, 16.6 GB with P_os+g, 1.9 GB with P_os+g+p (GB = 1e9 bytes, rounded as the figure rounds).
    func testZeROFigure1() {
        let psi = 7.5e9
        let gb = [0, 1, 2, 3].map { MemoryModel.modelState(params: psi, zeroStage: $0, dataParallel: 64).total / 1e9 }
        XCTAssertEqual(gb[0], 120, accuracy: 1e-9)                    // (2 + 2 + 12)Ψ
        XCTAssertEqual(gb[1], 30 + 90.0 / 64, accuracy: 1e-9)         // 2Ψ + 2Ψ + 12Ψ/64 = 31.40625
        XCTAssertEqual(gb[2], 15 + 105.0 / 64, accuracy: 1e-9)        // 2Ψ + 14Ψ/64 = 16.640625
        XCTAssertEqual(gb[3], 120.0 / 64, accuracy: 1e-9)             // 16Ψ/64 = 1.875
        XCTAssertEqual([gb[1], gb[2], gb[3]].map { ($0 * 10).rounded() / 10 }, [31.4, 16.6, 1.9])
        // The terms separately: stage 1 keeps weights and gradients whole.
        let s1 = MemoryModel.modelState(params: psi, zeroStage: 1, dataParallel: 64)
        XCTAssertEqual(s1.weights, 2 * psi)
        XCTAssertEqual(s1.gradients, 2 * psi)
        XCTAssertEqual(s1.optimizer, 12 * psi / 64)
    }

    /// Korthikanti et al. 2022, Table 2, for GPT-3 175B (s = 2048, h = 12288, a = 96, t = 8), per layer and per
    /// sequence (b = 1): sbh = 25,165,824 and 5as/h = 80.
    func testKorthikantiTable2ForGPT3() {
        func bytes(_ t: Int, _ sp: Bool, _ r: Recompute) -> Double {
            MemoryModel.activationBytesPerLayer(s: 2048, b: 1, h: 12288, a: 96, t: t, sequenceParallel: sp, recompute: r)
        }
        let sbh = 2048.0 * 12288
        XCTAssertEqual(sbh, 25_165_824)
        XCTAssertEqual(bytes(1, false, .none), sbh * (34 + 80))                 // no parallelism: 2,868,903,936
        XCTAssertEqual(bytes(1, false, .none), 2_868_903_936)
        XCTAssertEqual(bytes(8, false, .none), sbh * (10 + 24.0 / 8 + 80.0 / 8))  // tensor parallel: 578,813,952
        XCTAssertEqual(bytes(8, false, .none), 578_813_952)
        XCTAssertEqual(bytes(8, true, .none), sbh / 8 * 114)                    // + sequence parallel: 358,612,992
        XCTAssertEqual(bytes(8, true, .none), 358_612_992)
        XCTAssertEqual(bytes(8, false, .selective), sbh * 13)                   // tensor + selective: 327,155,712
        XCTAssertEqual(bytes(8, true, .selective), sbh * 34 / 8)                // tensor + SP + selective: 106,954,752
        XCTAssertEqual(bytes(8, true, .selective), 106_954_752)
        XCTAssertEqual(bytes(8, true, .full), 2 * sbh)                          // full recompute: 50,331,648
        XCTAssertEqual(bytes(1, false, .full), 50_331_648)
    }

    func testLayoutCheckForRecipes() {
        // GPT-2 124M on one 80 GB GPU, micro-batch 8: fits; on 1 GB it does not, and says by how much.
        func check(_ memory: Double, zero: Int = 0, t: Int = 1, p: Int = 1, devices: Int = 1)
            -> Result<MemoryBreakdown, LayoutProblem> {
            checkLayoutFits(nLayer: 12, nHead: 12, dModel: 768, dFF: 3072, seqLen: 1024, vocabSize: 50304, bias: false,
                            devices: devices, microBatch: 8, gradAccum: 4, zeroStage: zero, tensorParallel: t,
                            pipelineParallel: p, recompute: .none, deviceMemoryBytes: memory)
        }
        guard case .success(let m) = check(80e9) else { return XCTFail() }
        XCTAssertEqual(m.weights, 2 * 124_373_760)
        XCTAssertEqual(m.optimizer, 12 * 124_373_760)
        guard case .failure(.doesNotFit(let needed, let usable)) = check(1e9) else { return XCTFail() }
        XCTAssertEqual(needed, m.total)
        XCTAssertEqual(usable, 0.9e9)
        guard case .failure(.devicesNotFactored(6, 4, 1)) = check(80e9, t: 4, devices: 6) else { return XCTFail() }
        guard case .failure(.tensorParallelInvalid(5, _, _)) = check(80e9, t: 5, devices: 5) else { return XCTFail() }
        guard case .failure(.zeroStageInvalid(4)) = check(80e9, zero: 4) else { return XCTFail() }
        guard case .failure(.pipelineParallelInvalid(13, _)) = check(80e9, p: 13, devices: 13) else { return XCTFail() }
        // gpt-train's CPU path refuses what it does not implement.
        let cpu = checkLayoutFits(nLayer: 12, nHead: 12, dModel: 768, dFF: 3072, seqLen: 1024, vocabSize: 50304,
                                  bias: false, devices: 2, microBatch: 8, gradAccum: 4, zeroStage: 0, tensorParallel: 2,
                                  pipelineParallel: 1, recompute: .none, deviceMemoryBytes: 80e9, precision: .float32)
        guard case .failure(.unsupportedOnCPU) = cpu else { return XCTFail() }
        // ZeRO-1 it implements: on 4 float32 ranks each keeps a quarter of AdamW's 8 bytes a parameter; stage 2 is refused.
        func cpuZero(_ zero: Int) -> Result<MemoryBreakdown, LayoutProblem> {
            checkLayoutFits(nLayer: 12, nHead: 12, dModel: 768, dFF: 3072, seqLen: 1024, vocabSize: 50304, bias: false,
                            devices: 4, microBatch: 8, gradAccum: 4, zeroStage: zero, tensorParallel: 1,
                            pipelineParallel: 1, recompute: .none, deviceMemoryBytes: 80e9, precision: .float32)
        }
        guard case .success(let plain) = cpuZero(0), case .success(let sharded) = cpuZero(1) else { return XCTFail() }
        XCTAssertEqual(plain.optimizer, 8 * 124_373_760)
        XCTAssertEqual(sharded.optimizer, 8 * 124_373_760 / 4)
        XCTAssertEqual(sharded.weights, 4 * 124_373_760)
        guard case .failure(.unsupportedOnCPU) = cpuZero(2) else { return XCTFail() }
    }
}

final class LayoutSearchTests: XCTestCase {
    /// GPT-3 175B as Megatron-LM trained it (Narayanan et al. 2021, Table 1: 1536 A100-80GB, t = 8, p = 8, d = 24,
    /// batch 1536, micro-batch 1, full recomputation): the search, under the same memory, finds it feasible and a
    /// layout at least as fast.
    func testMegatronGPT3LayoutIsReproducedOrBeaten() {
        let gpt3 = ModelShape(nLayer: 96, nHead: 96, dModel: 12288, dFF: 49152, seqLen: 2048, vocabSize: 51200, bias: true)
        let megatron = Layout(dataParallel: 24, tensorParallel: 8, pipelineParallel: 8, zeroStage: 0, recompute: .full,
                              microBatch: 1, gradAccum: 64)
        let theirs = LayoutModel.estimate(shape: gpt3, layout: megatron, hardware: .a100_80gb, mfu: 0.4)
        XCTAssertTrue(theirs.fits, "\(theirs.memory)")
        let search = LayoutModel.search(shape: gpt3, batchSequences: 1536, devices: 1536, hardware: .a100_80gb, mfu: 0.4)
        let best = try! XCTUnwrap(search.ranked.first)
        XCTAssertTrue(best.fits)
        XCTAssertLessThanOrEqual(best.step.total, theirs.step.total)
        // The numbers docs/planner.md quotes: theirs 52.2 GB and 27.7 s a step; the search's 45.3 GB and 18.7 s.
        XCTAssertEqual(theirs.memory.total / 1e9, 52.24, accuracy: 0.01)
        XCTAssertEqual(theirs.step.total, 27.70, accuracy: 0.01)
        XCTAssertEqual(best.memory.total / 1e9, 45.35, accuracy: 0.01)
        XCTAssertEqual(best.step.total, 18.73, accuracy: 0.01)
        XCTAssertEqual(best.layout, Layout(dataParallel: 192, tensorParallel: 8, pipelineParallel: 1, zeroStage: 3,
                                           recompute: .selective, microBatch: 4, gradAccum: 2))
        // Megatron's own t = 8, p = 8, with ZeRO-1 instead of full recomputation, is among the fastest few as well.
        XCTAssertTrue(search.ranked.contains { $0.layout.tensorParallel == 8 && $0.layout.pipelineParallel == 8 })
        // 2028 since the presets carry the memory the device reports (81,920 MiB, not 80e9 bytes): larger micro-batches
        // fit, so more of them are evaluated; the fastest is the same.
        XCTAssertEqual(search.tried, 2028)
        XCTAssertEqual(best.layout.devices, 1536)
        XCTAssertEqual(best.layout.batchSequences, 1536)
        XCTAssertGreaterThan(search.tried, 100)
        // Without tensor and pipeline parallelism the model state alone (16 bytes × 175B) needs ZeRO-3 over d.
        let flat = LayoutModel.search(shape: gpt3, batchSequences: 1536, devices: 1536, hardware: .a100_80gb, mfu: 0.4,
                                      constraints: LayoutConstraints(zeroStage: 0, tensorParallel: 1, pipelineParallel: 1))
        XCTAssertTrue(flat.ranked.isEmpty)
        XCTAssertNotNil(flat.leastMemory)
    }

    func testTimeModelTerms() {
        let shape = ModelShape(nLayer: 24, nHead: 16, dModel: 2048, dFF: 8192, seqLen: 2048, vocabSize: 50304, bias: false)
        let h = Hardware.h100_sxm_80gb
        let single = Layout(dataParallel: 1, microBatch: 4, gradAccum: 16)
        let st = LayoutModel.stepTime(shape: shape, layout: single, hardware: h, mfu: 0.5)
        // One device: compute only, flops_per_token × tokens / (peak × MFU).
        XCTAssertEqual(st.compute, shape.flopsPerTokenWithAttention() * 64 * 2048 / (989e12 * 0.5), accuracy: 1e-12)
        XCTAssertEqual(st.total, st.compute)
        // Pipeline: bubble (p − 1)/m of the compute.
        let piped = Layout(dataParallel: 1, pipelineParallel: 4, microBatch: 4, gradAccum: 16)
        let pt = LayoutModel.stepTime(shape: shape, layout: piped, hardware: h, mfu: 0.5)
        XCTAssertEqual(pt.bubble, pt.compute * 3 / 16, accuracy: 1e-15)
        // Full recomputation costs one more forward: 4/3 of the compute.
        var full = single
        full.recompute = .full
        XCTAssertEqual(LayoutModel.stepTime(shape: shape, layout: full, hardware: h, mfu: 0.5).compute,
                       st.compute * 4 / 3, accuracy: 1e-12)
    }

    func testDeviceCountsArePowersOfTwoThenWholeNodes() {
        let counts = LayoutModel.deviceCounts(hardware: .h100_sxm_80gb, upTo: 1024)
        XCTAssertEqual(Array(counts.prefix(6)), [1, 2, 4, 8, 16, 24])
        XCTAssertTrue(counts.dropFirst(3).allSatisfy { $0 % 8 == 0 })
    }
}

/// The plan at every scale, with and without hardware.
final class PlanAtEveryScaleTests: XCTestCase {
    /// This machine as the tests pretend it is: 24 GiB, 400 GFLOP/s.
    let here = Hardware.cpu(memoryBytes: 24 * 0x1p30, flops: 4e11, source: "test machine")

    func testEveryBudgetPlansWithoutHardwareAndTheAllocationIgnoresHardware() throws {
        for exponent in 15...26 {
            let c = pow(10, Double(exponent))
            let auto = try Plan.make(PlanRequest(target: .flops(c), hardware: .automatic(thisMachine: here)))
            XCTAssertTrue(auto.execution.chosen.fits)
            // This machine only when the run finishes here within 7 days: at 400 GFLOP/s and 40% MFU that is
            // about 9.7e16 FLOPs (1e16 takes 17 hours, 1e17 7.2 days). Beyond, the default GPU, saying why.
            if exponent <= 16 { XCTAssertEqual(auto.execution.hardware.name, "cpu", "\(c)") }
            if exponent >= 17 {
                XCTAssertEqual(auto.execution.hardware.name, Hardware.defaultGPU.name, "\(c)")
                let here = try XCTUnwrap(auto.execution.secondsOnThisMachine)
                XCTAssertGreaterThan(here, PlanRequest.defaultLocalDays * 86400, "\(c)")
            }
            if (17...18).contains(exponent) {
                guard case .defaultedBecauseThisMachineIsTooSlow(_, 7) = auto.execution.hardwareReason else {
                    return XCTFail("\(c): \(auto.execution.hardwareReason)")
                }
            }
            if exponent >= 22 {
                XCTAssertEqual(auto.execution.hardware.name, Hardware.defaultGPU.name, "\(c)")
                guard case .defaultedBecauseThisMachineIsTooSmall = auto.execution.hardwareReason else {
                    return XCTFail("\(c)")
                }
            }
            for (hardware, devices) in [(Hardware.a100_40gb, PlanRequest.DeviceCount.automatic(days: nil)),
                                        (.mi300x, .automatic(days: 90)), (.h200_141gb, nil)] {
                var r = PlanRequest(target: .flops(c), hardware: .given(hardware))
                r.devices = devices
                let plan: Plan
                do { plan = try Plan.make(r) } catch PlanError.tooSlow { continue }
                XCTAssertEqual(plan.allocation, auto.allocation, "\(c) on \(hardware.name)")
                XCTAssertEqual(plan.shapeDecision, auto.shapeDecision, "\(c)")
                XCTAssertEqual(plan.batch, auto.batch, "\(c)")
                XCTAssertEqual(plan.learningRateDecision, auto.learningRateDecision, "\(c)")
                XCTAssertEqual(plan.schedule, auto.schedule, "\(c)")
                XCTAssertEqual(plan.layout.batchSequences, plan.batchSequences)
                XCTAssertEqual(plan.layout.devices, plan.devices)
                XCTAssertTrue(plan.execution.chosen.fits)
            }
        }
    }

    func testForcedLayoutsAreHonouredOrRefused() throws {
        var r = PlanRequest(target: .flops(1.23e22), hardware: .given(.h100_sxm_80gb))
        r.devices = .fixed(64)
        r.constraints = LayoutConstraints(zeroStage: 1, tensorParallel: 2, pipelineParallel: 1, recompute: .selective)
        let plan = try Plan.make(r)
        XCTAssertEqual(plan.layout.zeroStage, 1)
        XCTAssertEqual(plan.layout.tensorParallel, 2)
        XCTAssertEqual(plan.layout.pipelineParallel, 1)
        XCTAssertEqual(plan.layout.recompute, .selective)
        XCTAssertEqual(plan.layout.dataParallel, 32)
        // The layout's rules name the hardware they fitted.
        XCTAssertEqual(plan.execution.layoutRule.statement,
                       "fastest layout that fits the device (\(plan.execution.hardware.name)) by the time model")
        XCTAssertEqual(plan.execution.microBatchRule.statement,
                       "fastest layout that fits the device (\(plan.execution.hardware.name))")
        // A 10B model whole on one GPU, no sharding: does not fit, and the error says what the least would need.
        r.devices = .fixed(1)
        r.constraints = LayoutConstraints(zeroStage: 0, tensorParallel: 1, pipelineParallel: 1)
        XCTAssertThrowsError(try Plan.make(r)) { error in
            guard case PlanError.noLayout(1, "h100-sxm-80gb", _, let least?) = error else { return XCTFail("\(error)") }
            XCTAssertGreaterThan(least.memory.total, least.usableBytes)
        }
    }

    func testAutoDevicesAreTheFewestThatFit() throws {
        for (c, hardware) in [(1.23e22, Hardware.h100_sxm_80gb), (5.76e23, .a100_80gb), (1e25, .mi300x)] {
            var r = PlanRequest(target: .flops(c), hardware: .given(hardware))
            r.devices = .automatic(days: nil)
            let plan = try Plan.make(r)
            let counts = LayoutModel.deviceCounts(hardware: hardware)
            let index = try XCTUnwrap(counts.firstIndex(of: plan.devices), "\(plan.devices) is not a count auto tries")
            for fewer in counts[..<index] {
                let s = LayoutModel.search(shape: plan.shape, batchSequences: plan.batchSequences, devices: fewer,
                                           hardware: hardware, mfu: 0.4)
                XCTAssertTrue(s.ranked.isEmpty, "\(c): \(fewer) \(hardware.name) would do")
            }
            XCTAssertLessThanOrEqual(plan.memoryBytes, 0.9 * hardware.memoryBytes)
        }
    }

    func testSmallBudgetsSayTheEmbeddingDominates() throws {
        let plan = try Plan.make(PlanRequest(target: .flops(3e15), hardware: .automatic(thisMachine: here)))
        XCTAssertGreaterThan(plan.allocation.embeddingShare, 0.9)
        let v = try XCTUnwrap(plan.allocation.suggestedVocab)
        XCTAssertLessThanOrEqual(v * plan.shape.dModel, plan.shape.parameterCount.nonEmbedding)
        let big = try Plan.make(PlanRequest(target: .flops(1e20), hardware: .automatic(thisMachine: here)))
        XCTAssertNil(big.allocation.suggestedVocab)
    }

    /// `--days` moves the line between this machine and the default GPU: 1e18 FLOPs take 72 days here.
    func testDaysDecideWhetherThisMachineIsEnough() throws {
        var r = PlanRequest(target: .flops(1e18), hardware: .automatic(thisMachine: here))
        XCTAssertEqual(try Plan.make(r).execution.hardware.name, Hardware.defaultGPU.name)
        r.devices = .automatic(days: 100)
        let local = try Plan.make(r)
        XCTAssertEqual(local.execution.hardware.name, "cpu")
        XCTAssertEqual(local.devices, 1)
        XCTAssertGreaterThan(local.estimatedSeconds, 60 * 86400)
        r.devices = .automatic(days: 1)
        let gpu = try Plan.make(r)
        XCTAssertEqual(gpu.execution.hardware.name, Hardware.defaultGPU.name)
        XCTAssertLessThanOrEqual(gpu.estimatedSeconds, 86400)
    }

    /// Llama 3's law (Dubey et al. 2024, §3.2.1): D*(C) = 0.29·C^0.53 and N = C/(6D). At their 3.8e25 FLOPs it
    /// gives 10.46T tokens and 605B parameters; the paper states 402B parameters on 16.55T tokens for that budget
    /// (whose 6ND, 3.99e25, is not the budget either): the published constants do not reproduce the published
    /// point, and the rule applies the constants.
    func testLlama3Law() throws {
        let (n, d) = AllocationRule.llama3.allocation(flops: 3.8e25)
        XCTAssertEqual(d, 0.29 * pow(3.8e25, 0.53), accuracy: 1)
        XCTAssertEqual(d / 1e12, 10.46, accuracy: 0.01)
        XCTAssertEqual(n / 1e9, 605.3, accuracy: 0.1)
        XCTAssertEqual(6 * n * d, 3.8e25, accuracy: 1e12)
        XCTAssertEqual(AllocationRule.llama3.flops(forTokens: d), 3.8e25, accuracy: 3.8e25 * 1e-12)
        XCTAssertEqual(AllocationRule.llama3.flops(forParams: n), 3.8e25, accuracy: 3.8e25 * 1e-12)
        XCTAssertEqual(AllocationRule.named("llama3"), .llama3)
        XCTAssertEqual(6 * 402e9 * 16.55e12 / 3.8e25, 1.05, accuracy: 0.01)
    }

    func testDaysPickMoreDevices() throws {
        var r = PlanRequest(target: .flops(1e23), hardware: .given(.h100_sxm_80gb))
        r.devices = .automatic(days: nil)
        let fewest = try Plan.make(r)
        r.devices = .automatic(days: 7)
        let week = try Plan.make(r)
        XCTAssertLessThanOrEqual(week.estimatedSeconds, 7 * 86400)
        XCTAssertGreaterThanOrEqual(week.devices, fewest.devices)
        r.pricePerDeviceHour = 2
        XCTAssertEqual(try Plan.make(r).execution.cost!, week.execution.deviceHours * 2, accuracy: 1e-6)
    }
}

/// The presets' memory is the total the device reports (docs/planner.md, "Hardware presets" and the paragraph under
/// the table): nvidia-smi's `memory.total` on NVIDIA, HIP's `totalGlobalMem` on the MI300X, in MiB.
final class HardwarePresetMemoryTests: XCTestCase {
    func testPresetMemoryIsWhatTheDeviceReports() {
        let mib: [String: Double] = ["a100-40gb": 40_960, "a100-80gb": 81_920, "h100-sxm-80gb": 81_559,
                                     "h200-141gb": 143_771, "mi300x": 196_592]
        XCTAssertEqual(Set(Hardware.gpuPresets.map(\.name)), Set(mib.keys))
        for h in Hardware.gpuPresets {
            XCTAssertEqual(h.memoryBytes, mib[h.name]! * 1_048_576, h.name)
            // The rule for what a layout may use is unchanged: 90% of it, 2 GiB of which reserved.
            XCTAssertEqual(h.usableFraction, 0.9)
            XCTAssertEqual(h.reservedBytes, 2 * 1_073_741_824)
        }
        // An "80 GB" H100 is 85.5e9 bytes, 7% over 80e9: 71.7 GiB usable where 80e9 gave 67.1.
        XCTAssertEqual(Hardware.h100_sxm_80gb.memoryBytes * 0.9 / 0x1p30, 71.68, accuracy: 0.005)
    }
}
