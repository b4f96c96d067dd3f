import CLISupport
import Foundation
import Planner

/// What a measured fit predicts for the run a plan describes: Approach 3's final validation loss at the plan's real
/// N and D, with the bootstrap's interval (the central `level` share of the refits' predictions).
func measuredPrediction(fitPath: String, plan: Plan) -> String? {
    guard let data = FileManager.default.contents(atPath: fitPath),
          let file = try? JSONDecoder().decode(ScalingLawFitFile.self, from: data) else { return nil }
    let n = Double(plan.params), d = plan.tokens
    // A run past one epoch of its data (--unique-tokens, or the prepared --data's split) counts its effective tokens
    // D' (Muennighoff et al. 2023), as gpt-plan fit --effective-tokens does for the sweep's runs.
    let unique = plan.allocation.dataConstraint?.uniqueTokens
    let (loss, interval) = file.predictedLoss(params: n, tokens: SweepRepetition.effectiveTokens(tokens: d, unique: unique))
    let level = "\(Int((file.intervals.level * 100).rounded()))%"
    var out = "Predicted final validation loss (measured fit \(fitPath), Approach 3 at N = \(si(n, 3)), D = \(si(d, 3))): "
        + "\(sig(loss, 4))"
    if let i = interval {
        out += ", \(level) bootstrap interval [\(sig(i[0], 4)), \(sig(i[1], 4))] (\(file.bootstrap?.approach3.count ?? 0) refits)"
    } else {
        out += " (no interval: fit.json holds no bootstrap refits; refit with gpt-plan fit --samples 200)"
    }
    out += "\n  in nats per token of the sweep's data and tokenizer; the sweep's budgets were "
        + "\(Set(file.runs.map(\.flops)).sorted().map { sig($0, 3) }.joined(separator: ", ")) FLOPs"
    if let largest = file.runs.map(\.flops).max(), plan.flops > largest {
        let x = plan.flops / largest
        out += "; this run is \(sig(x, 3))× the largest (an extrapolation)"
        if let t = file.backtest, let e = t.expectedError(atFactor: x) {
            // The bootstrap sees the runs' noise; the backtest, what extrapolating the law's form cost on this sweep.
            out += "\n  backtest: Approach 3 fitted to the budgets up to \(sig(t.fittedUpTo, 3)) missed the \(sig(t.checkedAt, 3)) runs "
                + "(\(sig(t.factor, 3))× beyond) by \(sig(t.medianError, 2)) (median, measured − predicted); scaled by log "
                + "distance that is \(sig(e, 2)) at \(sig(x, 3))×, so expect \(sig(loss + e, 4))"
            if let i = interval {
                out += "; the interval with it: [\(sig(min(i[0], i[0] + e), 4)), \(sig(max(i[1], i[1] + e), 4))]"
            }
        }
    }
    if let u = unique, d > u {
        out += "\n  the run reads its \(si(u, 3)) unique tokens \(sig(d / u, 3)) times: predicted at D' = "
            + "\(si(SweepRepetition.effectiveTokens(tokens: d, unique: u), 3)) (Muennighoff et al. 2023)"
    }
    if !file.approach3Identified {
        out += "\n  warning: the sweep does not identify Approach 3 (an exponent at its bound, or the interval of a wider than "
            + "\(sig(ScalingLawFitFile.identifiedWidthOfA, 2))): the prediction is not to be trusted"
    }
    return out + "\n"
}
