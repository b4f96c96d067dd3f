import Foundation
import GPTShape
import Planner
import XCTest

final class ScalingFitTests: XCTestCase {
    /// Minimises L(N, C/(6N)) over ln N by golden-section search, independently of the closed form.
    func numericalOptimum(_ fit: ChinchillaFit, flops c: Double) -> Double {
        func loss(_ lnN: Double) -> Double { fit.loss(params: exp(lnN), tokens: c / (6 * exp(lnN))) }
        var lo = log(1e3), hi = log(1e15)
        let phi = (sqrt(5.0) - 1) / 2
        var x1 = hi - phi * (hi - lo), x2 = lo + phi * (hi - lo)
        var f1 = loss(x1), f2 = loss(x2)
        while hi - lo > 1e-12 {
            if f1 < f2 {
                hi = x2; x2 = x1; f2 = f1; x1 = hi - phi * (hi - lo); f1 = loss(x1)
            } else {
                lo = x1; x1 = x2; f1 = f2; x2 = lo + phi * (hi - lo); f2 = loss(x2)
            }
        }
        return exp((lo + hi) / 2)
    }

    func testClosedFormMatchesNumericalMinimisation() {
        for fit in [ChinchillaFit.hoffmann, .epoch] {
            for c in [1e15, 1e18, 1e20, 1e22, 1e24] {
                let (n, d) = fit.optimalAllocation(flops: c)
                let numeric = numericalOptimum(fit, flops: c)
                // The golden-section bracket is 1e-12 wide in ln N; the loss is flat at the optimum, so 1e-5 in N
                // is what double precision resolves there.
                XCTAssertEqual(n / numeric, 1, accuracy: 1e-5, "\(fit.name) at \(c)")
                XCTAssertEqual(6 * n * d / c, 1, accuracy: 1e-12, "\(fit.name): 6ND must equal C")
            }
        }
    }

    func testInverseQuestionsInvertTheAllocation() {
        for rule in [AllocationRule.fit(.epoch), .fit(.hoffmann), .tokensPerParam(20)] {
            let (n, d) = rule.allocation(flops: 3e21)
            XCTAssertEqual(rule.flops(forParams: n) / 3e21, 1, accuracy: 1e-12)
            XCTAssertEqual(rule.flops(forTokens: d) / 3e21, 1, accuracy: 1e-12)
        }
    }

    /// Chinchilla's Table 3 (20 tokens per parameter): 1.21e20 FLOPs → 1.0B parameters and 20.2B tokens;
    /// 1.23e22 → 10B and 205.1B. The table rounds N to two digits, so the check allows 2%.
    func testTokensPerParamMatchesChinchillaTable3() {
        let rule = AllocationRule.tokensPerParam(20)
        let (n1, d1) = rule.allocation(flops: 1.21e20)
        XCTAssertEqual(n1, (1.21e20 / 120).squareRoot(), accuracy: 1)
        XCTAssertEqual(n1 / 1.0e9, 1, accuracy: 0.02)
        XCTAssertEqual(d1 / 20.2e9, 1, accuracy: 0.02)
        let (n2, d2) = rule.allocation(flops: 1.23e22)
        XCTAssertEqual(n2 / 10e9, 1, accuracy: 0.02)
        XCTAssertEqual(d2 / 205.1e9, 1, accuracy: 0.02)
        XCTAssertEqual(d2 / n2, 20, accuracy: 1e-9)
    }

    func testEpochFitGivesAbout23TokensPerParameterAt1e20() {
        let (n, d) = ChinchillaFit.epoch.optimalAllocation(flops: 1e20)
        XCTAssertEqual(d / n, 23, accuracy: 0.5)
        // And the original Approach 3 fit wants far fewer parameters per token than 20.
        let (nh, dh) = ChinchillaFit.hoffmann.optimalAllocation(flops: 1e20)
        XCTAssertGreaterThan(dh / nh, 25)
    }

    func testDeepSeekBatchAndLearningRateAt1e20() {
        XCTAssertEqual(BatchRule.deepseekTokens(flops: 1e20) / 1.02e6, 1, accuracy: 0.01)
        XCTAssertEqual(LearningRateRule.deepseekLR(flops: 1e20) / 9.9e-4, 1, accuracy: 0.01)
    }

    func testKaplanRules() {
        // B_crit = 2.1e8 / L^(1/0.21): at L = 3 nats, 2.1e8 / 3^4.7619 = 1.1e6 tokens.
        XCTAssertEqual(BatchRule.kaplanCriticalTokens(loss: 3), 2.1e8 / pow(3, 1 / 0.21), accuracy: 1e-6)
        XCTAssertEqual(BatchRule.kaplanCriticalTokens(loss: 3) / 1.12e6, 1, accuracy: 0.01)
        XCTAssertEqual(LearningRateRule.kaplanLR(nonEmbeddingParams: 85e6), 0.003239 - 0.0001395 * log(85e6), accuracy: 1e-15)
    }

    func testWarmupStaysWithinOneToFivePercent() {
        for steps in [100, 1000, 5000, 20_000, 1_000_000] {
            for batch in [1e4, 1e5, 1e6, 4e7] {
                let w = WarmupRule.steps(totalSteps: steps, batchTokens: batch).steps
                XCTAssertGreaterThanOrEqual(Double(w), 0.01 * Double(steps) - 1e-9, "\(steps) steps, batch \(batch)")
                XCTAssertLessThanOrEqual(Double(w), 0.05 * Double(steps) + 1e-9, "\(steps) steps, batch \(batch)")
            }
        }
        // Inside the range, GPT-3's 375M tokens decide: 375e6 / 1e6 = 375 steps of 10000.
        XCTAssertEqual(WarmupRule.steps(totalSteps: 10_000, batchTokens: 1e6).steps, 375)
    }
}

final class ModelShapeTests: XCTestCase {
    let gpt2 = ModelShape(nLayer: 12, nHead: 12, dModel: 768, dFF: 3072, seqLen: 1024, vocabSize: 50257, bias: true)

    func testGPT2SmallParameterCount() {
        // nanoGPT: "number of parameters: 123.65M" (without the 786,432 position embeddings) for GPT-2 124M.
        XCTAssertEqual(gpt2.parameterCount.total, 124_439_808)
        XCTAssertEqual(gpt2.parameterCount.total - gpt2.parameterCount.positionEmbedding, 123_653_376)
        XCTAssertEqual(gpt2.parameterCount.nonEmbedding, 85_056_000)
        var noBias = gpt2
        noBias.bias = false
        // Each block loses 7·768 + 3072 biases; the final LayerNorm loses 768.
        XCTAssertEqual(noBias.parameterCount.total, 124_439_808 - 12 * (7 * 768 + 3072) - 768)
    }

    func testFlopsPerTokenWithAttentionIsNanoGPTs() {
        // nanoGPT estimate_mfu: 6N + 12·L·H·Q·T with N = params without position embeddings.
        XCTAssertEqual(gpt2.flopsPerTokenWithAttention(), 6 * 123_653_376 + 12 * 12 * 768 * 1024)
        XCTAssertEqual(gpt2.flopsPerTokenSixN, 6 * 124_439_808)
    }

    func testChinchillaAppendixFCountedByHand() {
        // L=2, H=2, d=8 (key size 4), ff=32, T=4, V=10, per sequence forward:
        // embeddings 2·4·10·8 = 640; attention 1536 + 256 + 96 + 256 + 512 = 2656; dense 2·4·(8·32·2) = 4096;
        // logits 640; total 640 + 2·(2656 + 4096) + 640 = 14784; with backward ×3, per token / 4 = 11088.
        let tiny = ModelShape(nLayer: 2, nHead: 2, dModel: 8, dFF: 32, seqLen: 4, vocabSize: 10, bias: false)
        XCTAssertEqual(tiny.flopsPerTokenChinchilla(), 11088)
    }

    func testActivationCount() {
        // B=2, T=4, d=8, H=2, ff=32, V=10, L=2: bt=8; per layer 8·8·8 + 4·8 + 2·8·32 + 2·2·16 = 512+32+512+64 = 1120
        // with the B·H·T² probabilities (materialized attention), 1120 − 64 + 2·2·4 = 1072 with one log-sum-exp a
        // row (fused attention, the default); forward 64 + 2·1120 + 64 + 24 + 80 = 2472 (2376 fused); backward
        // scratch 8·(6·8 + 32) = 640.
        let tiny = ModelShape(nLayer: 2, nHead: 2, dModel: 8, dFF: 32, seqLen: 4, vocabSize: 10, bias: false)
        XCTAssertEqual(tiny.activationFloats(batch: 2, attention: .materialized), 2472 + 640)
        XCTAssertEqual(tiny.activationFloats(batch: 2), 2376 + 640)
    }
}

final class PlanTests: XCTestCase {
    func request(_ target: PlanRequest.Target) -> PlanRequest {
        PlanRequest(target: target, deviceMemoryBytes: 80 * 1024 * 1024 * 1024, deviceFlops: 312e12,
                    deviceDescription: "A100 (test)")
    }

    func testPlanAt1e20IsConsistent() throws {
        let plan = try Plan.make(request(.flops(1e20)))
        let (idealN, _) = ChinchillaFit.epoch.optimalAllocation(flops: 1e20)
        XCTAssertEqual(Double(plan.params) / idealN, 1, accuracy: 0.05)
        XCTAssertEqual(plan.params, plan.shape.parameterCount.total)
        XCTAssertEqual(6 * Double(plan.params) * plan.tokens / 1e20, 1, accuracy: 1e-9)
        XCTAssertEqual(plan.shape.seqLen, 1024)
        XCTAssertEqual(plan.shape.vocabSize, 50304)
        XCTAssertEqual(plan.shape.dModel % plan.shape.nHead, 0)
        XCTAssertEqual(plan.shape.dFF, 4 * plan.shape.dModel)
        XCTAssertTrue(ShapeSearch.aspectRange.contains(Double(plan.shape.dModel) / Double(plan.shape.nLayer)))
        XCTAssertEqual(plan.batchTokens, plan.batchSequences * plan.shape.seqLen)
        XCTAssertEqual(plan.batchSequences, plan.microBatch * plan.gradAccum * plan.devices)
        XCTAssertEqual(Double(plan.batchTokens) / 1.02e6, 1, accuracy: 0.05)
        XCTAssertEqual(plan.learningRate / 9.9e-4, 1, accuracy: 0.01)
        XCTAssertEqual(plan.minLearningRate, plan.learningRate * 0.1, accuracy: 1e-18)
        XCTAssertTrue((0.01...0.05).contains(Double(plan.warmupSteps) / Double(plan.steps)))
        XCTAssertEqual(Double(plan.steps * plan.batchTokens) / plan.tokens, 1, accuracy: 0.005)
        XCTAssertLessThanOrEqual(plan.memoryBytes, 0.9 * 80 * 1024 * 1024 * 1024)
        XCTAssertEqual(plan.predictedLoss, ChinchillaFit.epoch.loss(params: Double(plan.params), tokens: plan.tokens), accuracy: 1e-12)
        XCTAssertEqual(plan.execution.hardware.precision, .float32)
        XCTAssertEqual(plan.layout.tensorParallel * plan.layout.pipelineParallel, 1)
    }

    func testMicroBatchIsTheLargestDivisorThatFits() throws {
        var r = request(.flops(1e21))
        r.devices = .fixed(8)
        let plan = try Plan.make(r)
        let usable = 0.9 * 80 * 1024 * 1024 * 1024
        XCTAssertEqual(plan.batchSequences, plan.microBatch * plan.gradAccum * 8)
        XCTAssertLessThanOrEqual(plan.shape.trainingMemoryBytes(microBatch: plan.microBatch), usable)
        XCTAssertEqual(plan.memoryBytes, plan.shape.trainingMemoryBytes(microBatch: plan.microBatch))
        // Every larger micro-batch that divides a device's share would not fit.
        let perDevice = plan.batchSequences / 8
        for micro in (plan.microBatch + 1)...perDevice where perDevice % micro == 0 {
            XCTAssertGreaterThan(plan.shape.trainingMemoryBytes(microBatch: micro), usable, "\(micro)")
        }
    }

    func testInverseQuestions() throws {
        let byParams = try Plan.make(request(.params(124e6)))
        XCTAssertEqual(Double(byParams.params) / 124e6, 1, accuracy: 0.03)
        XCTAssertEqual(byParams.flops, ChinchillaFit.epoch.optimalFlops(params: 124e6), accuracy: 1)
        XCTAssertEqual(6 * Double(byParams.params) * byParams.tokens / byParams.flops, 1, accuracy: 1e-9)

        let byTokens = try Plan.make(request(.tokens(2e10)))
        XCTAssertEqual(byTokens.tokens, 2e10)
        XCTAssertEqual(byTokens.flops, 6 * Double(byTokens.params) * 2e10, accuracy: 1)
    }

    func testReferenceLearningRateScaling() throws {
        var r = request(.flops(1e19))
        r.lrRule = .reference(batchTokens: 0.5e6, lr: 6e-4, scaling: .sqrt)
        let plan = try Plan.make(r)
        XCTAssertEqual(plan.learningRate, 6e-4 * (Double(plan.batchTokens) / 0.5e6).squareRoot(), accuracy: 1e-15)
        r.lrRule = .reference(batchTokens: 0.5e6, lr: 6e-4, scaling: .linear)
        let linear = try Plan.make(r)
        XCTAssertEqual(linear.learningRate, 6e-4 * Double(linear.batchTokens) / 0.5e6, accuracy: 1e-15)
    }

    func testKaplanBatchRuleUsesPredictedLoss() throws {
        var r = request(.flops(1e20))
        r.batchRule = .kaplan
        let plan = try Plan.make(r)
        let (n, d) = ChinchillaFit.epoch.optimalAllocation(flops: 1e20)
        let target = BatchRule.kaplanCriticalTokens(loss: ChinchillaFit.epoch.loss(params: n, tokens: d))
        // The batch rounds to three significant bits (and whole sequences): at most 12.5% from the rule.
        XCTAssertEqual(Double(plan.batchTokens) / target, 1, accuracy: 0.125)
    }

    func testTinyBudgetsGetShortContexts() throws {
        var r = request(.flops(1e15))
        r.vocabSize = 65
        let plan = try Plan.make(r)
        XCTAssertLessThan(plan.shape.seqLen, 1024)
        XCTAssertLessThanOrEqual(Double(plan.shape.seqLen), 1.5 * Double(plan.shape.dModel))
        XCTAssertGreaterThanOrEqual(plan.batchSequences, 16)
        XCTAssertGreaterThanOrEqual(plan.steps, minimumSteps)
    }

    func testNonsenseIsRejected() {
        XCTAssertThrowsError(try Plan.make(request(.flops(-1)))) { error in
            XCTAssertEqual(error as? PlanError, .outOfRange(.flops, -1))
        }
        XCTAssertThrowsError(try Plan.make(request(.flops(.nan))))
        XCTAssertThrowsError(try Plan.make(request(.flops(1e10)))) { error in
            guard case PlanError.budgetTooSmall(_, let smallest, let needed) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(smallest.nLayer, 1)
            XCTAssertGreaterThan(needed, 1e10)
        }
        var tiny = request(.flops(1e24))
        tiny.hardware = .given(.cpu(memoryBytes: 2e6, flops: 1e12, source: "test"))  // over the 1 MiB floor (PlanLimits)
        XCTAssertThrowsError(try Plan.make(tiny)) { error in
            guard case PlanError.noLayout(1, "cpu", _, let least?) = error else { return XCTFail("\(error)") }
            XCTAssertGreaterThan(least.memory.total, 0.9e6)
        }
    }

    /// Issue 14: these trapped converting a huge Double to Int; now each is a clear error.
    func testHugeTargetsAreErrorsNotTraps() {
        for target in [PlanRequest.Target.params(1e24), .tokens(1e25), .flops(1e50), .flops(1e300)] {
            XCTAssertThrowsError(try Plan.make(request(target)), "\(target)") { error in
                guard case PlanError.budgetTooLarge = error else { return XCTFail("\(target): \(error)") }
            }
        }
    }

    func testDevicesNeverBreakTheStepFloorNorChangeTheAllocation() throws {
        var base = request(.flops(3e15))
        base.vocabSize = 65
        let one = try Plan.make(base)
        for devices in [1, 2, 8] {
            var r = base
            r.devices = .fixed(devices)
            let plan = try Plan.make(r)
            XCTAssertGreaterThanOrEqual(plan.steps, minimumSteps, "\(devices) devices")
            XCTAssertEqual(plan.batchSequences, plan.microBatch * plan.gradAccum * devices)
            XCTAssertEqual(plan.batch, one.batch)
            XCTAssertEqual(plan.schedule, one.schedule)
        }
        // More data-parallel ranks than sequences in a batch: a clear error, not a different batch.
        var r = base
        r.devices = .fixed(4096)
        XCTAssertThrowsError(try Plan.make(r)) { error in
            guard case PlanError.noLayout(4096, _, .batchNotDivisible?, _) = error else { return XCTFail("\(error)") }
        }
    }

    func testBatchHasThreeSignificantBits() throws {
        for c in [1e17, 1e19, 1e21] {
            let b = try Plan.make(request(.flops(c))).batchSequences
            var x = b
            while x >= 8 { XCTAssertEqual(x % 2, 0, "\(b) at \(c)"); x /= 2 }
        }
    }

    func testQuantities() {
        XCTAssertEqual(Quantity.parse("1e20"), 1e20)
        XCTAssertEqual(Quantity.parse("3.2e19"), 3.2e19)
        XCTAssertEqual(Quantity.parse("124M"), 124e6)
        XCTAssertEqual(Quantity.parse("1.5B"), 1.5e9)
        XCTAssertEqual(Quantity.parse("2T"), 2e12)
        XCTAssertEqual(Quantity.parse("0.5M"), 5e5)
        XCTAssertEqual(Quantity.parse("80GiB"), 80 * 1024 * 1024 * 1024)
        XCTAssertEqual(Quantity.parse("40GB"), 40e9)
        XCTAssertEqual(Quantity.parse(" 6e-4 "), 6e-4)
        XCTAssertNil(Quantity.parse("abc"))
        XCTAssertNil(Quantity.parse(""))
        XCTAssertNil(Quantity.parse("nan"))
        XCTAssertNil(Quantity.parse("1e400"))
        XCTAssertNil(Quantity.parse("12Q"))
        XCTAssertEqual(Quantity.parse("-1"), -1)
    }
}
