import Foundation
import Planner
import XCTest

/// Issue 26: `gpt-plan sweep --extend` adds sizes beyond the edge where a budget's lowest loss sits, until every
/// minimum is interior; on a known law it finds the interior minimum from a one-sided grid.
final class SweepExtensionTests: XCTestCase {
    let known = ChinchillaFit(name: "known", citation: "test", E: 1.8, A: 480, B: 2100, alpha: 0.35, beta: 0.37)

    func observe(_ c: Double, _ n: Double) -> SweepObservation {
        let d = c / (6 * n)
        return SweepObservation(name: "c\(c)-n\(n)", flops: c, params: n, tokens: d, loss: known.loss(params: n, tokens: d))
    }

    /// Runs the extension loop as a user does (extend, train, extend again) on exact losses of the law.
    func extendUntilBracketed(_ start: [SweepObservation], maxSizes: Int = 20) -> (runs: [SweepObservation], rounds: Int) {
        var runs = start, rounds = 0
        while true {
            let proposals = SweepExtension.proposals(runs, count: 2, maxSizes: maxSizes)
            if proposals.isEmpty { return (runs, rounds) }
            runs += proposals.map { observe($0.flops, $0.params) }
            rounds += 1
            if rounds > 50 { XCTFail("did not converge"); return (runs, rounds) }
        }
    }

    func testFindsTheInteriorMinimumFromAOneSidedGridBelow() throws {
        let budgets = [1e18, 1e19, 1e20]
        // Four sizes ×1/64 … ×1/8 of the optimum, a factor 2 apart: every lowest loss at the largest size.
        let start = budgets.flatMap { c in
            let opt = known.optimalAllocation(flops: c).params
            return (0..<4).map { observe(c, opt / 64 * pow(2, Double($0))) }
        }
        XCTAssertTrue(SweepExtension.brackets(start).allSatisfy { $0.edge == .largest })
        XCTAssertEqual(SweepExtension.edgeNotes(start).count, 3)
        let (runs, rounds) = extendUntilBracketed(start)
        XCTAssertGreaterThanOrEqual(rounds, 2)
        for b in SweepExtension.brackets(runs, margin: 2) {
            XCTAssertNil(b.edge, "C = \(b.flops)")
            let opt = known.optimalAllocation(flops: b.flops).params
            XCTAssertLessThan(b.sizes.first!, opt)
            XCTAssertGreaterThan(b.sizes.last!, opt)
            // The added sizes continue the grid's spacing (×2), so the best size is within a factor √2 of the optimum.
            XCTAssertEqual(log2(b.bestParams / opt), 0, accuracy: 0.5 + 1e-9)
            for (a, c) in zip(b.sizes, b.sizes.dropFirst()) { XCTAssertEqual(c / a, 2, accuracy: 1e-9) }
        }
        XCTAssertTrue(SweepExtension.edgeNotes(runs).isEmpty)
        // Approach 2 on the bracketed grid: its vertices are interpolations.
        let (_, notes) = try LawFitting.isoFLOP(runs)
        XCTAssertFalse(notes.contains { $0.contains("extrapolation") }, "\(notes)")
        // On the five sizes around each lowest loss (×1/4…×4) the vertex is within 5% of the true optimum (a parabola
        // over the whole one-sided grid, ×1/64…×4, is pulled about 13% low by the curve's asymmetry in ln N).
        let window = SweepExtension.brackets(runs).flatMap { b in
            runs.filter { $0.flops == b.flops && abs(log2($0.params / b.bestParams)) <= 2 + 1e-9 }
        }
        XCTAssertEqual(window.count, 15)
        for b in try XCTUnwrap(LawFitting.isoFLOP(window).fit).budgets {
            XCTAssertEqual(b.optimalParams / known.optimalAllocation(flops: b.flops).params, 1, accuracy: 0.05)
        }
    }

    func testExtendsDownwardsAndFromASingleSize() {
        let c = 1e19, opt = known.optimalAllocation(flops: c).params
        let above = [8.0, 16, 32].map { observe(c, opt * $0) }
        XCTAssertEqual(SweepExtension.brackets(above).first?.edge, .smallest)
        let (runs, _) = extendUntilBracketed(above)
        XCTAssertNil(SweepExtension.brackets(runs, margin: 2).first?.edge)
        XCTAssertLessThan(runs.map(\.params).min()!, opt)

        // One size is an edge on both sides: the first round adds sizes below and above it.
        let single = [observe(c, opt)]
        let first = SweepExtension.proposals(single, count: 2)
        XCTAssertEqual(first.filter { $0.edge == .smallest }.count, 2)
        XCTAssertEqual(first.filter { $0.edge == .largest }.count, 2)
        XCTAssertNil(SweepExtension.brackets(extendUntilBracketed(single).runs, margin: 2).first?.edge)
    }

    func testStopsAtTheSizeLimit() {
        let c = 1e19, opt = known.optimalAllocation(flops: c).params
        let start = (0..<4).map { observe(c, opt / 1024 * pow(2, Double($0))) }
        let (runs, _) = extendUntilBracketed(start, maxSizes: 7)
        XCTAssertEqual(runs.count, 7)
        XCTAssertEqual(SweepExtension.brackets(runs, margin: 2).first?.edge, .largest, "the limit, not a bracket, stopped it")
        XCTAssertTrue(SweepExtension.proposals(runs, maxSizes: 7).isEmpty)
    }

    func testRepeatedDataCountsAsEffectiveTokens() {
        XCTAssertEqual(SweepRepetition.effectiveTokens(tokens: 1e6, unique: 2e6), 1e6)
        XCTAssertEqual(SweepRepetition.effectiveTokens(tokens: 1e6, unique: nil), 1e6)
        // Four epochs: D' = U + U·R*·(1 − e^(−3/R*)) with R* = 15.4 (Muennighoff et al. 2023, eq. 5).
        let u = 1e6, expected = u + u * 15.4 * (1 - exp(-3 / 15.4))
        XCTAssertEqual(SweepRepetition.effectiveTokens(tokens: 4e6, unique: u), expected, accuracy: 1e-6)
        XCTAssertLessThan(expected, 4e6)
    }
}
