import CLISupport
import Foundation
import LinePlots
import Planner

extension FitFigure {
    /// Approach 2's bootstrap interval of a and b (residuals resampled within each budget), a line of the summary.
    static func approach2Interval(_ f: ScalingLawFitFile) -> String {
        guard let draws = f.bootstrap?.approach2, draws.count >= 2,
              let a = LawFitting.percentiles(draws.map(\.a), level: f.intervals.level),
              let b = LawFitting.percentiles(draws.map(\.b), level: f.intervals.level) else { return "" }
        return "    Approach 2 bootstrap: a in [\(sig(a[0], 3)), \(sig(a[1], 3))], b in [\(sig(b[0], 3)), \(sig(b[1], 3))] "
            + "(\(Int(f.intervals.level * 100))%, \(draws.count) residual resamples within budgets)\n"
    }

    /// The extrapolation target when none is given: 4× the largest budget (a held-out run at ≥ 3× the sweep).
    static func defaultTarget(_ f: ScalingLawFitFile) -> Double? { f.runs.map(\.flops).max().map { 4 * $0 } }

    /// Hoffmann et al. (2022), figure 3, for this sweep. Left: each budget's final losses against N as markers, its
    /// Approach 2 parabola as a line in the same colour, and the parabola's minimum marked. Middle and right: the
    /// minima's N_opt and D_opt against C, the power laws through them with their bootstrap band, dashed from the
    /// largest budget to `target`; Approach 3's optimum and band only when it is identified.
    static func figure(_ f: ScalingLawFitFile, target given: Double? = nil) -> Figure {
        var left: [Series] = [], nPanel: [Series] = [], dPanel: [Series] = []
        var nBands: [Band] = [], dBands: [Band] = []
        var titles = ["Compute-optimal N", "Compute-optimal D"]
        let budgets = Set(f.runs.map(\.flops)).sorted()
        var minima: [(x: Double, y: Double)] = []
        for (i, c) in budgets.enumerated() {
            let label = "C = \(sig(c, 3)) FLOPs"
            let group = f.runs.filter { $0.flops == c }.sorted { $0.params < $1.params }
            if let b = f.approach2?.budgets.first(where: { $0.flops == c }), let lo = group.first, let hi = group.last {
                // The parabola over the sizes run, a little beyond them on each side, and to its vertex if that is outside.
                let x0 = min(log(lo.params), log(b.optimalParams)) - 0.15, x1 = max(log(hi.params), log(b.optimalParams)) + 0.15
                let q = b.parabola
                let points = (0...60).map { k -> (x: Double, y: Double) in
                    let x = x0 + (x1 - x0) * Double(k) / 60
                    return (exp(x), q[0] + q[1] * x + q[2] * x * x)
                }
                left.append(Series(label: label, color: Palette.color(i), points: points))
                minima.append((b.optimalParams, b.minimumLoss))
            }
            left.append(Series(label: label, color: Palette.color(i), points: group.map { ($0.params, $0.loss) },
                               line: nil, marker: .circle, markerSize: 4))
        }
        if !minima.isEmpty {
            left.append(Series(label: "Approach 2 minima", color: "#000000", points: minima, line: nil,
                               marker: .diamond, markerSize: 5))
        }

        let target = given ?? defaultTarget(f)
        if let a2 = f.approach2, let cMin = a2.budgets.map(\.flops).min(), let cMax = a2.budgets.map(\.flops).max() {
            let end = max(cMax, target ?? cMax)
            func grid(_ from: Double, _ to: Double, _ k: Int = 24) -> [Double] {
                (0...k).map { pow(10, log10(from) + (log10(to) - log10(from)) * Double($0) / Double(k)) }
            }
            let fitted = grid(cMin, cMax), beyond = grid(cMax, end)
            titles = ["N_opt ∝ C^a: a = \(sig(a2.a, 3))" + (f.approach3Identified ? ", \(sig(f.approach3.law.a, 3)) (A3)" : ""),
                      "D_opt ∝ C^b: b = \(sig(a2.b, 3))" + (f.approach3Identified ? ", \(sig(f.approach3.law.b, 3)) (A3)" : "")]
            let level = "\(Int(f.intervals.level * 100))%"
            for tokens in [false, true] {
                let value = { (c: Double) in tokens ? a2.kD * pow(c, a2.b) : a2.kN * pow(c, a2.a) }
                var out: [Series] = [
                    Series(label: "Approach 2 power law", color: Palette.color(0), points: fitted.map { ($0, value($0)) }),
                    Series(label: "Approach 2 minima", color: "#000000",
                           points: a2.budgets.map { ($0.flops, tokens ? $0.optimalTokens : $0.optimalParams) },
                           line: nil, marker: .diamond, markerSize: 5),
                ]
                var bandsOut: [Band] = []
                if let band = f.approach2Band(flops: fitted + beyond.dropFirst(), tokens: tokens) {
                    bandsOut.append(Band(label: "Approach 2 \(level) bootstrap band", color: Palette.color(0),
                                         lower: band.map { ($0.flops, $0.lower) }, upper: band.map { ($0.flops, $0.upper) }))
                }
                if end > cMax {
                    out.append(Series(label: "extrapolation", color: Palette.color(0), points: beyond.map { ($0, value($0)) },
                                      line: .dashed))
                    out.append(Series(label: "target \(sig(end, 3)) FLOPs (Approach 2, extrapolated)", color: Palette.color(3),
                                      points: [(end, value(end))], line: nil, marker: .square, markerSize: 5))
                }
                if f.approach3Identified {
                    let law = f.approach3.law
                    let all = fitted + beyond.dropFirst()
                    let a3 = { (c: Double) in tokens ? law.optimalAllocation(flops: c).tokens : law.optimalAllocation(flops: c).params }
                    out.append(Series(label: "Approach 3", color: Palette.color(2), points: all.map { ($0, a3($0)) }))
                    if let band = f.approach3Band(flops: all, tokens: tokens) {
                        bandsOut.append(Band(label: "Approach 3 \(level) bootstrap band", color: Palette.color(2),
                                             lower: band.map { ($0.flops, $0.lower) }, upper: band.map { ($0.flops, $0.upper) },
                                             opacity: 0.15))
                    }
                }
                if tokens { (dPanel, dBands) = (out, bandsOut) } else { (nPanel, nBands) = (out, bandsOut) }
            }
        }
        let lossUnit = "final validation loss (nats/token)"
        return Figure(panels: [
            Panel(title: "IsoFLOP curves", xLabel: "N (parameters)", yLabel: lossUnit, series: left, xScale: .log),
            Panel(title: titles[0], xLabel: "C (FLOPs)", yLabel: "N_opt (parameters)", yScale: .log,
                  series: nPanel, xScale: .log, bands: nBands),
            Panel(title: titles[1], xLabel: "C (FLOPs)", yLabel: "D_opt (tokens)", yScale: .log,
                  series: dPanel, xScale: .log, bands: dBands),
        ], columns: 3, panelWidth: 420, panelHeight: 340, sharedX: false)
    }
}
