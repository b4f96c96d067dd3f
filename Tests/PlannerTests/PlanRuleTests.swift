import GPTShape
import Planner
import XCTest

/// The rules each decision hands out (`PlanRule`): built from the constants the decision used, stated exactly.
final class PlanRuleTests: XCTestCase {
    func testStatementsComeFromTheDecisionsConstants() throws {
        var r = PlanRequest(target: .flops(1e20), hardware: .given(.a100_80gb))
        r.devices = .fixed(8)
        let plan = try Plan.make(r)
        XCTAssertEqual(plan.budgetRule, .given)
        XCTAssertEqual(plan.tokensRule.statement, "C / (6N)")
        XCTAssertEqual(plan.lossRule.statement, "epoch fit L(N, D)")
        XCTAssertEqual(plan.batch.tokensRule.statement, BatchRule.deepseek.formula)
        XCTAssertEqual(plan.learningRateDecision.peakRule.statement, LearningRateRule.deepseek.formula)
        // GPT-3's 375M warmup tokens and the standard recipe's 1-5% of the steps.
        XCTAssertEqual(plan.schedule.warmupRule, .warmup(tokens: WarmupRule.gpt3Tokens, range: WarmupRule.range))
        XCTAssertEqual(plan.schedule.warmupRule.statement, "375M tokens, within 1-5% of steps")
        XCTAssertEqual(plan.learningRateDecision.minimumRule.statement, "10% of peak")
        XCTAssertEqual(plan.shapeDecision.headsRule.statement, "d_model / head size \(plan.shape.headSize)")
        XCTAssertEqual(plan.execution.devicesRule.statement, "given")
        XCTAssertEqual(plan.execution.hardwareRule.statement, "given")
        // A different constant gives a different statement.
        XCTAssertEqual(PlanRule.warmup(tokens: 1e9, range: 0.02...0.1).statement, "1000M tokens, within 2-10% of steps")
        XCTAssertEqual(PlanRule.minimumLearningRate(fraction: 0.05).statement, "5% of peak")
    }

    func testLlamaRulesNameLlama3sConstants() throws {
        var r = PlanRequest(target: .flops(1e21), hardware: .given(.h100_sxm_80gb))
        r.family = .llama
        let shape = try Plan.make(r).shapeDecision
        XCTAssertEqual(shape.shape.ropeTheta, ShapeSearch.llamaRopeTheta)
        XCTAssertEqual(shape.ropeThetaRule.statement, "Llama 3's 500000")
        XCTAssertEqual(shape.keyValueHeadsRule.statement, "Llama 3: 8 key/value heads (all heads below 8)")
        XCTAssertEqual(shape.tiedHeadRule.statement, "untied (Llama 3)")
        XCTAssertEqual(shape.mlpRule.statement, "3.5 · d_model rounded up to a multiple of 256 (Llama 3)")
        XCTAssertEqual(PlanRule.ropeTheta(.gpt2, llama: 5e5).statement, "unused by GPT-2 (learned positions)")
    }
}
