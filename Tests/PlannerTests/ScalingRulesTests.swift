import Foundation
import GPTShape
import Planner
import XCTest

/// Step Law, data-constrained and inference-aware planning, and the minimisers behind them.
final class ScalingRulesTests: XCTestCase {
    func cpuRequest(_ c: Double) -> PlanRequest {
        PlanRequest(target: .flops(c), deviceMemoryBytes: 1e15, deviceFlops: 1e15, deviceDescription: "test")
    }

    // MARK: Step Law (Li et al. 2025, eq. 1)

    /// The paper's test point, 1B non-embedding parameters on 100B tokens (its figure 1, right): η and B from
    /// eq. 1 worked by hand in base 10. log10 η = log10 1.79 − 0.713·9 + 0.307·11 = 0.25285 − 6.417 + 3.377;
    /// log10 B = log10 0.58 + 0.571·11 = −0.23657 + 6.281.
    func testStepLawAtThePapersTestPoint() {
        let eta = LearningRateRule.stepLawLR(nonEmbeddingParams: 1e9, tokens: 1e11)
        XCTAssertEqual(log10(eta), log10(1.79) - 0.713 * 9 + 0.307 * 11, accuracy: 1e-12)
        XCTAssertEqual(eta, 1.6325e-3, accuracy: 1e-7)
        let b = BatchRule.stepLawTokens(tokens: 1e11)
        XCTAssertEqual(b, 1.1077e6, accuracy: 1e2)
        XCTAssertTrue(StepLawRange.contains(nonEmbeddingParams: 1e9, tokens: 1e11))
        XCTAssertFalse(StepLawRange.contains(nonEmbeddingParams: 1e5, tokens: 1e8))
    }

    func testPlanUsesStepLawWithNonEmbeddingParametersAndD() throws {
        var r = cpuRequest(1e20)
        r.batchRule = .stepLaw
        r.lrRule = .stepLaw
        let plan = try Plan.make(r)
        XCTAssertEqual(plan.batch.targetTokens, 0.58 * pow(plan.tokens, 0.571), accuracy: 1e-6)
        XCTAssertEqual(plan.learningRate, 1.79 * pow(Double(plan.nonEmbeddingParams), -0.713) * pow(plan.tokens, 0.307),
                       accuracy: 1e-15)
    }

    // MARK: Data-constrained (Muennighoff et al. 2023)

    func testEffectiveDataLimits() {
        let u = 1e9
        XCTAssertEqual(DataConstrained.effectiveTokens(unique: u, tokens: 0.5e9), 0.5e9)
        XCTAssertEqual(DataConstrained.effectiveTokens(unique: u, tokens: u), u)
        // Four epochs (R_D = 3): D' = U·(1 + 15.4·(1 − e^(−3/15.4))) = 3.7259·U, 93% of the 4U trained: "up to 4
        // epochs ... negligible changes" (their abstract).
        let four = DataConstrained.effectiveTokens(unique: u, tokens: 4 * u)
        XCTAssertEqual(four / u, 1 + 15.4 * (1 - exp(-3 / 15.4)), accuracy: 1e-12)
        XCTAssertEqual(four / (4 * u), 0.9315, accuracy: 1e-4)
        // Infinite repetition saturates at U·(1 + R*_D).
        XCTAssertEqual(DataConstrained.effectiveTokens(unique: u, tokens: 1e6 * u) / u, 16.4, accuracy: 1e-9)
        // Excess parameters saturate at U_N·(1 + R*_N).
        let fit = ChinchillaFit.epoch
        let supported = fit.optimalFlops(tokens: u) / (6 * u)
        XCTAssertEqual(DataConstrained.effectiveParams(fit, params: supported / 2, unique: u), supported / 2)
        XCTAssertEqual(DataConstrained.effectiveParams(fit, params: 1e6 * supported, unique: u) / supported, 6.3,
                       accuracy: 1e-9)
    }

    func testDataConstrainedOptimumMatchesABruteForceScan() {
        let fit = ChinchillaFit.epoch
        for (c, u) in [(1e20, 1e9), (1e20, 5e9), (1e22, 2e10), (1e18, 1e8)] {
            let best = DataConstrained.optimum(fit, flops: c, unique: u)
            XCTAssertEqual(6 * best.params * best.tokens / c, 1, accuracy: 1e-12)
            // An independent scan of 200001 points over 8 decades of N.
            var scanN = 0.0, scanLoss = Double.infinity
            for i in 0...200_000 {
                let n = pow(10, 4 + 8 * Double(i) / 200_000)
                let l = DataConstrained.loss(fit, params: n, tokens: c / (6 * n), unique: u)
                if l < scanLoss { (scanN, scanLoss) = (n, l) }
            }
            let found = DataConstrained.loss(fit, params: best.params, tokens: best.tokens, unique: u)
            XCTAssertLessThanOrEqual(found, scanLoss + 1e-12, "C \(c), U \(u)")
            // The scan's step is 1e-4 decades; the loss is flat at the optimum, so N agrees to about 1%.
            XCTAssertEqual(best.params / scanN, 1, accuracy: 0.01, "C \(c), U \(u)")
        }
        // With enough unique data the closed-form Chinchilla optimum is returned unchanged.
        let free = fit.optimalAllocation(flops: 1e20)
        let same = DataConstrained.optimum(fit, flops: 1e20, unique: 1e12)
        XCTAssertEqual(same.params, free.params)
        XCTAssertEqual(same.tokens, free.tokens)
    }

    func testDataConstrainedPlanReportsEpochsAndVerdict() throws {
        var r = cpuRequest(1e20)
        r.uniqueTokens = 1e9
        let plan = try Plan.make(r)
        let dc = try XCTUnwrap(plan.allocation.dataConstraint)
        XCTAssertTrue(dc.reallocated)
        XCTAssertEqual(dc.epochs, plan.tokens / 1e9, accuracy: 1e-9)
        XCTAssertEqual(dc.verdict, .littleValue)
        // The constrained plan predicts a lower loss than training the unconstrained split on repeated data.
        XCTAssertLessThan(plan.predictedLoss, dc.unconstrainedLoss)
        r.uniqueTokens = 1e13
        let free = try Plan.make(r)
        XCTAssertEqual(free.allocation.dataConstraint?.reallocated, false)
        XCTAssertEqual(free.allocation.dataConstraint?.verdict, .unique)
        XCTAssertEqual(free.params, try Plan.make(cpuRequest(1e20)).params)
    }

    // MARK: Inference-aware (Sardana et al. 2023)

    func testInferenceOptimumMatchesABruteForceScan() throws {
        let fit = ChinchillaFit.epoch
        for (loss, t) in [(2.6, 1e12), (2.4, 1e13), (3.0, 1e9)] {
            let best = try XCTUnwrap(InferenceAware.optimum(fit, loss: loss, inferenceTokens: t))
            XCTAssertEqual(fit.loss(params: best.params, tokens: best.tokens), loss, accuracy: 1e-9)
            let nMin = try XCTUnwrap(InferenceAware.minimumParams(fit, loss: loss))
            var scanN = 0.0, scanCost = Double.infinity
            for i in 1...200_000 {
                let n = nMin * pow(10, 5 * Double(i) / 200_000)
                guard let d = InferenceAware.tokens(fit, params: n, loss: loss) else { continue }
                let cost = 6 * n * d + 2 * n * t
                if cost < scanCost { (scanN, scanCost) = (n, cost) }
            }
            let cost = 6 * best.params * best.tokens + 2 * best.params * t
            XCTAssertLessThanOrEqual(cost, scanCost * (1 + 1e-12))
            XCTAssertEqual(best.params / scanN, 1, accuracy: 0.01)
        }
    }

    /// With no inference the inference-aware optimum is the compute-optimal (closed-form) one at the same loss.
    func testNoInferenceGivesTheChinchillaOptimum() throws {
        let fit = ChinchillaFit.hoffmann
        let (n, d) = fit.optimalAllocation(flops: 1e21)
        let loss = fit.loss(params: n, tokens: d)
        let best = try XCTUnwrap(InferenceAware.optimum(fit, loss: loss, inferenceTokens: 0))
        XCTAssertEqual(best.params / n, 1, accuracy: 1e-4)
        XCTAssertEqual(best.tokens / d, 1, accuracy: 1e-4)
        let c = try XCTUnwrap(InferenceAware.computeOptimalFlops(fit, loss: loss))
        XCTAssertEqual(c / 1e21, 1, accuracy: 1e-9)
    }

    func testInferencePlanIsSmallerLongerTrainedAndCheaperInTotal() throws {
        var r = cpuRequest(1e20)
        r.inferenceTokens = 1e12
        let plan = try Plan.make(r)
        let i = try XCTUnwrap(plan.allocation.inference)
        XCTAssertLessThan(i.params, i.computeOptimalParams)
        XCTAssertGreaterThan(i.tokens, i.computeOptimalTokens)
        XCTAssertGreaterThan(i.savedFraction, 0)
        XCTAssertEqual(i.targetLoss, ChinchillaFit.epoch.loss(params: i.computeOptimalParams, tokens: i.computeOptimalTokens),
                       accuracy: 1e-12)
        r.targetLoss = 1.0
        XCTAssertThrowsError(try Plan.make(r)) { XCTAssertEqual($0 as? PlanError, .lossUnreachable(loss: 1.0, irreducible: ChinchillaFit.epoch.E)) }
        r.targetLoss = nil
        r.uniqueTokens = 1e9
        XCTAssertThrowsError(try Plan.make(r))
    }

    // MARK: Minimisers

    func testNelderMeadFindsKnownMinima() {
        // Rosenbrock: minimum 0 at (1, 1), from the classic start (−1.2, 1).
        let rosenbrock = Minimize.nelderMead({ x in 100 * pow(x[1] - x[0] * x[0], 2) + pow(1 - x[0], 2) },
                                             from: [-1.2, 1], step: [0.5, 0.5], tolerance: 1e-15)
        XCTAssertTrue(rosenbrock.converged)
        XCTAssertEqual(rosenbrock.x[0], 1, accuracy: 1e-5)
        XCTAssertEqual(rosenbrock.x[1], 1, accuracy: 1e-5)
        XCTAssertLessThan(rosenbrock.value, 1e-10)
        // A shifted, scaled quadratic in 5 dimensions: minimum 3 at (1, −2, 3, −4, 5).
        let centre = [1.0, -2, 3, -4, 5]
        func bowl(_ x: [Double]) -> Double {
            var total = 3.0
            for k in 0..<5 { total += Double(k + 1) * (x[k] - centre[k]) * (x[k] - centre[k]) }
            return total
        }
        let quad = Minimize.nelderMead(bowl, from: [0, 0, 0, 0, 0], step: [1, 1, 1, 1, 1], tolerance: 1e-15)
        for k in 0..<5 { XCTAssertEqual(quad.x[k], centre[k], accuracy: 1e-5) }
        XCTAssertEqual(quad.value, 3, accuracy: 1e-10)
        // Himmelblau's function from (0, 0) reaches its minimum 0 at (3, 2).
        let himmelblau = Minimize.nelderMead({ x in pow(x[0] * x[0] + x[1] - 11, 2) + pow(x[0] + x[1] * x[1] - 7, 2) },
                                             from: [0, 0], step: [1, 1], tolerance: 1e-15)
        XCTAssertEqual(himmelblau.x[0], 3, accuracy: 1e-5)
        XCTAssertEqual(himmelblau.x[1], 2, accuracy: 1e-5)
    }

    func testScalarMinimiserFindsKnownMinima() {
        let r = Minimize.scalar({ ($0 - 0.3) * ($0 - 0.3) + 1 }, in: -5, 5)
        // A smooth minimum is resolved to about sqrt(ε) ≈ 1.5e-8 of the value's scale: f differs from 1 by less
        // than one ulp within that distance.
        XCTAssertEqual(r.x, 0.3, accuracy: 1e-7)
        // |x − 2| has a kink at its minimum.
        XCTAssertEqual(Minimize.scalar({ abs($0 - 2) }, in: 0, 10).x, 2, accuracy: 1e-8)
        // cos on [0, 10] has minima at π and 3π; the scan takes the lower-valued basin (both −1: the first).
        XCTAssertEqual(Minimize.scalar({ cos($0) }, in: 0, 8).x, Double.pi, accuracy: 1e-6)
    }
}
