import Foundation
import Formatting

/// One finished run of an isoFLOP sweep: its budget, size, tokens and final validation loss.
public struct SweepObservation: Codable, Sendable, Equatable {
    public var name: String
    public var flops: Double
    public var params: Double
    public var tokens: Double
    public var loss: Double

    public init(name: String, flops: Double, params: Double, tokens: Double, loss: Double) {
        self.name = name
        self.flops = flops
        self.params = params
        self.tokens = tokens
        self.loss = loss
    }
}

/// Hoffmann et al. (2022), section 3.2 (Approach 2): a parabola in log N through each budget's isoFLOP losses; its
/// vertex is N_opt(C); then power laws N_opt ∝ C^a and D_opt = C/(6·N_opt) ∝ C^b by least squares in log-log.
public struct IsoFLOPFit: Codable, Sendable, Equatable {
    public struct Budget: Codable, Sendable, Equatable {
        public var flops: Double
        /// loss ≈ c0 + c1·x + c2·x², x = ln N.
        public var parabola: [Double]
        public var optimalParams: Double
        public var optimalTokens: Double
        public var minimumLoss: Double
        public var runs: Int
    }
    public var budgets: [Budget]
    /// N_opt = kN·C^a, D_opt = kD·C^b.
    public var a: Double
    public var kN: Double
    public var b: Double
    public var kD: Double
}

/// Hoffmann et al. (2022), section 3.3 (Approach 3): L(N, D) = E + A/N^α + B/D^β fitted by minimising the Huber
/// loss (δ = 1e-3) of log-loss residuals, LSE(a − α·ln N, b − β·ln D, e) − ln L, from a grid of starting points
/// (their appendix D.2), with A = e^a, B = e^b, E = e^e.
public struct ParametricFit: Codable, Sendable, Equatable {
    public var E: Double
    public var A: Double
    public var B: Double
    public var alpha: Double
    public var beta: Double
    /// The Huber objective at the optimum (sum over runs).
    public var objective: Double

    public var law: ChinchillaFit {
        ChinchillaFit(name: "fitted", citation: "fitted", E: E, A: A, B: B, alpha: alpha, beta: beta)
    }
}

/// What `gpt-plan fit` writes to fit.json.
public struct ScalingLawFitFile: Codable, Sendable, Equatable {
    public static let currentVersion = 1
    public var formatVersion: Int
    /// The sweep directory the runs came from.
    public var sweep: String
    public var approach2: IsoFLOPFit?
    public var approach3: ParametricFit
    /// Percentile bootstrap intervals (Besiroglu et al. 2024, section 3): `level` of the resampled fits fall inside.
    public var intervals: Intervals
    public var runs: [SweepObservation]
    /// Why a budget or a run was left out.
    public var notes: [String]
    /// The bootstrap's refits, for bands and predicted-loss intervals (absent in files written before them).
    public var bootstrap: Bootstrap?
    /// How well Approach 3 extrapolates on this sweep's own runs (nil when the sweep has too few budgets).
    public var backtest: Backtest?

    /// Approach 3 fitted to the budgets at most 1/`LawFitting.backtestFactor` of the largest, and its error on the
    /// largest budget's runs: what extrapolating the law by that factor costs on this sweep, which the bootstrap
    /// (the runs' noise) does not show.
    public struct Backtest: Codable, Sendable, Equatable {
        /// The largest budget the backtest's law saw, and the budget it predicts.
        public var fittedUpTo: Double
        public var checkedAt: Double
        /// Runs the law was fitted to, and runs it predicted.
        public var fittedRuns: Int
        public var checkedRuns: Int
        /// The median over the checked runs of measured − predicted loss (negative: the law predicted too high).
        public var medianError: Double
        /// checkedAt / fittedUpTo.
        public var factor: Double { checkedAt / fittedUpTo }

        public init(fittedUpTo: Double, checkedAt: Double, fittedRuns: Int, checkedRuns: Int, medianError: Double) {
            (self.fittedUpTo, self.checkedAt, self.fittedRuns, self.checkedRuns, self.medianError)
                = (fittedUpTo, checkedAt, fittedRuns, checkedRuns, medianError)
        }

        /// The error expected at `factor` beyond the sweep's largest budget: the measured one, scaled by the
        /// logarithm of the distance (nil within the sweep).
        public func expectedError(atFactor x: Double) -> Double? {
            guard x > 1, factor > 1 else { return nil }
            return medianError * log(x) / log(factor)
        }

        enum CodingKeys: String, CodingKey {
            case fittedUpTo = "fitted_up_to", checkedAt = "checked_at", fittedRuns = "fitted_runs"
            case checkedRuns = "checked_runs", medianError = "median_error"
        }
    }

    public struct Intervals: Codable, Sendable, Equatable {
        public var level: Double
        public var samples: Int
        /// The compute exponents of Approach 3's optimum, a = β/(α+β) and b = α/(α+β).
        public var a: [Double]
        public var b: [Double]
        public var alpha: [Double]
        public var beta: [Double]
        public var E: [Double]
    }

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", sweep, approach2 = "approach_2", approach3 = "approach_3", intervals
        case runs, notes, bootstrap, backtest
    }

    /// The fit as an allocation rule, named after the file.
    public func law(name: String, source: String) -> ChinchillaFit {
        let p = approach3
        return ChinchillaFit(name: name, citation: "\(source): Approach 3 fitted by gpt-plan fit to \(runs.count) runs of \(sweep)",
                             E: p.E, A: p.A, B: p.B, alpha: p.alpha, beta: p.beta)
    }
}

public enum LawFitError: Error, Equatable, Sendable {
    /// Approach 3 needs at least as many runs as it has constants, and two budgets to separate N from D.
    case tooFewRuns(runs: Int, budgets: Int)
    case invalidObservation(name: String)
    /// A size, token count, budget or loss outside what a run can have: `field`, its value and the range.
    case observationOutOfRange(name: String, field: String, value: Double, range: ClosedRange<Double>)
    /// Two runs at the same size and token count: a copy, which would count the point twice.
    case duplicateObservation(name: String, first: String)
    /// Every run has the same loss: nothing to fit (the runs did not learn, or the metrics are copies).
    case constantLoss(Double)
}

public enum LawFitting {
    public static let huberDelta = 1e-3

    static func huber(_ r: Double, delta: Double) -> Double {
        abs(r) <= delta ? 0.5 * r * r : delta * (abs(r) - 0.5 * delta)
    }

    static func logSumExp(_ xs: [Double]) -> Double {
        let m = xs.max()!
        return m + log(xs.reduce(0) { $0 + exp($1 - m) })
    }

    /// Approach 3's objective at θ = (a, b, e, α, β).
    static func objective(_ theta: [Double], _ runs: [SweepObservation], delta: Double) -> Double {
        let (a, b, e, alpha, beta) = (theta[0], theta[1], theta[2], theta[3], theta[4])
        // Exponents outside (0, 3] describe no scaling law (a loss that grows with N or D, or a step): a small sweep
        // can otherwise reach them by trading A against α.
        guard alpha > 0, beta > 0, alpha <= 3, beta <= 3 else { return .infinity }
        // ln A, ln B and ln E stay where a double holds A, B and E well (an underflowed A = 0 would drop N).
        guard (-20...60).contains(a), (-20...60).contains(b), (-10...5).contains(e) else { return .infinity }
        var total = 0.0
        for r in runs {
            let predicted = logSumExp([a - alpha * log(r.params), b - beta * log(r.tokens), e])
            total += huber(predicted - log(r.loss), delta: delta)
        }
        return total
    }

    /// Hoffmann et al.'s grid of initialisations (appendix D.2): α, β ∈ {0, 0.5, …, 2}, e ∈ {−1, −0.5, …, 1},
    /// a, b ∈ {0, 5, …, 25}; this grid is coarser (a, b every 10; e every 1; α, β from 0.1 as exponents are kept
    /// positive) to keep a fit around a second, and each start is polished by Nelder–Mead instead of L-BFGS.
    public static let startGrid: [[Double]] = {
        var starts: [[Double]] = []
        for a in stride(from: 0.0, through: 25, by: 10) {
            for b in stride(from: 0.0, through: 25, by: 10) {
                for e in [-1.0, 0, 1] {
                    for alpha in [0.1, 0.5, 1, 1.5] {
                        for beta in [0.1, 0.5, 1, 1.5] { starts.append([a, b, e, alpha, beta]) }
                    }
                }
            }
        }
        return starts
    }()

    /// Approach 3 from `starts`: every start is polished briefly, the best few to convergence.
    public static func parametric(_ runs: [SweepObservation], starts: [[Double]] = startGrid,
                                  delta: Double = huberDelta) throws -> ParametricFit {
        try validate(runs)
        let budgets = Set(runs.map(\.flops)).count
        guard runs.count >= 5, budgets >= 2 || Set(runs.map(\.params)).count >= 2 && Set(runs.map(\.tokens)).count >= 2 else {
            throw LawFitError.tooFewRuns(runs: runs.count, budgets: budgets)
        }
        func f(_ t: [Double]) -> Double { objective(t, runs, delta: delta) }
        let step = [1.0, 1.0, 0.5, 0.1, 0.1]
        let first = starts.map { Minimize.nelderMead(f, from: $0, step: step, tolerance: 1e-10, maxIterations: 400) }
            .sorted { $0.value < $1.value }
        var best = first[0]
        for candidate in first.prefix(4) {
            let polished = Minimize.nelderMead(f, from: candidate.x, step: step.map { $0 / 10 }, tolerance: 1e-14,
                                               maxIterations: 5000)
            if polished.value < best.value { best = polished }
        }
        let t = best.x
        return ParametricFit(E: exp(t[2]), A: exp(t[0]), B: exp(t[1]), alpha: t[3], beta: t[4], objective: best.value)
    }

    /// Least squares of y on x: (slope, intercept).
    static func line(_ x: [Double], _ y: [Double]) -> (slope: Double, intercept: Double) {
        let n = Double(x.count)
        let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
        var sxy = 0.0, sxx = 0.0
        for i in x.indices { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) * (x[i] - mx) }
        let slope = sxy / sxx
        return (slope, my - slope * mx)
    }

    /// An isoFLOP curve's parabola c0 + c1·x + c2·x², robust to a diverged run: Huber's M-estimator by iteratively
    /// reweighted least squares (Huber 1964; tuning constant 1.345 on the residuals' scale 1.4826·MAD, the usual
    /// 95%-efficiency choice), started from ordinary least squares. Runs within the noise keep weight 1, so a clean
    /// curve gets the least-squares parabola; a run far above its neighbours (a loss spike, an unlucky learning
    /// rate) is down-weighted instead of bending the whole curve and throwing its vertex off. The weights of the
    /// runs are returned with the coefficients.
    public static func robustParabola(_ x: [Double], _ y: [Double]) -> (q: [Double], weights: [Double])? {
        var w = [Double](repeating: 1, count: x.count)
        guard var q = parabola(x, y, weights: w) else { return nil }
        for _ in 0..<20 {
            let r = x.indices.map { y[$0] - (q[0] + q[1] * x[$0] + q[2] * x[$0] * x[$0]) }
            let mad = median(r.map(abs))
            let k = 1.345 * 1.4826 * mad
            guard k > 1e-12 * (y.map(abs).max() ?? 1) else { break }
            let next = r.map { abs($0) <= k ? 1 : k / abs($0) }
            guard let refit = parabola(x, y, weights: next) else { break }
            let moved = zip(refit, q).map { abs($0 - $1) }.max()!
            (q, w) = (refit, next)
            if moved < 1e-12 { break }
        }
        return (q, w)
    }

    /// Weighted least-squares parabola c0 + c1·x + c2·x² (normal equations, centred for conditioning).
    public static func parabola(_ x: [Double], _ y: [Double], weights: [Double]? = nil) -> [Double]? {
        guard x.count >= 3 else { return nil }
        let wt = weights ?? [Double](repeating: 1, count: x.count)
        let m = zip(x, wt).map { $0 * $1 }.reduce(0, +) / wt.reduce(0, +)
        let u = x.map { $0 - m }
        var s = [Double](repeating: 0, count: 5), t = [Double](repeating: 0, count: 3)
        for i in u.indices {
            var p = wt[i]
            for k in 0..<5 {
                s[k] += p
                if k < 3 { t[k] += p * y[i] }
                p *= u[i]
            }
        }
        // Solve [[s0 s1 s2][s1 s2 s3][s2 s3 s4]]·q = t by Cramer's rule.
        func det(_ m: [[Double]]) -> Double {
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        }
        let matrix = [[s[0], s[1], s[2]], [s[1], s[2], s[3]], [s[2], s[3], s[4]]]
        let d = det(matrix)
        guard d != 0, d.isFinite else { return nil }
        var q = [Double](repeating: 0, count: 3)
        for k in 0..<3 {
            var mk = matrix
            for r in 0..<3 { mk[r][k] = t[r] }
            q[k] = det(mk) / d
        }
        // Back from u = x − m: q0 + q1(x−m) + q2(x−m)².
        return [q[0] - q[1] * m + q[2] * m * m, q[1] - 2 * q[2] * m, q[2]]
    }

    /// Approach 2, with notes for the budgets it had to leave out (fewer than 3 sizes, or no minimum inside).
    public static func isoFLOP(_ runs: [SweepObservation]) throws -> (fit: IsoFLOPFit?, notes: [String]) {
        try validate(runs)
        var notes: [String] = []
        var budgets: [IsoFLOPFit.Budget] = []
        for c in Set(runs.map(\.flops)).sorted() {
            let group = runs.filter { $0.flops == c }
            let distinct = Set(group.map(\.params)).count
            guard distinct >= 3, let (q, weights) = robustParabola(group.map { log($0.params) }, group.map(\.loss)) else {
                notes.append("approach 2: budget \(c) has \(distinct) finished size(s); a parabola needs 3")
                continue
            }
            for (run, w) in zip(group, weights) where w < 0.5 {
                notes.append("approach 2: budget \(c): run \(run.name) (loss \((run.loss * 1e4).rounded() / 1e4)) lies far off its "
                             + "curve; its weight in the parabola is \((w * 100).rounded() / 100) (Huber)")
            }
            guard q[2] > 0 else {
                notes.append("approach 2: budget \(c): the losses curve downwards in log N (no minimum); left out")
                continue
            }
            // A curvature that changes the loss by less than a part in 1e9 across the sizes run is rounding, not a
            // minimum: its vertex can land anywhere (or at infinity).
            let spread = log(group.map(\.params).max()! / group.map(\.params).min()!)
            let meanLoss = group.map(\.loss).reduce(0, +) / Double(group.count)
            let x = -q[1] / (2 * q[2])
            let n = exp(x)
            guard q[2] * spread * spread > 1e-9 * meanLoss, n.isFinite, n > 0 else {
                notes.append("approach 2: budget \(c): the parabola is too flat to place a minimum; left out")
                continue
            }
            let sizes = group.map(\.params)
            if n < sizes.min()! || n > sizes.max()! {
                func whole(_ x: Double) -> String { PlanLimits.int(x.rounded()).map(String.init) ?? "\(x)" }
                // One step of the grid beyond its edge is a mild extrapolation; further out the vertex of a curve that
                // only falls (or only rises) says nothing about the optimum, and the budget is left out.
                let step = pow(sizes.max()! / sizes.min()!, 1 / Double(max(1, distinct - 1)))
                let range = "(\(whole(sizes.min()!))-\(whole(sizes.max()!)))"
                guard n >= sizes.min()! / step, n <= sizes.max()! * step else {
                    notes.append("approach 2: budget \(c): the parabola's minimum N = \(whole(n)) lies more than one size step "
                                 + "(×\(sig(step, 3))) outside the sizes run \(range): not bracketed; left out. Fix: add sizes "
                                 + "on that side (gpt-plan sweep --extend)")
                    continue
                }
                notes.append("approach 2: budget \(c): the parabola's minimum N = \(whole(n)) lies outside the sizes "
                             + "run \(range), within one size step: an extrapolation; add sizes on that side")
            }
            budgets.append(.init(flops: c, parabola: q, optimalParams: n, optimalTokens: c / (6 * n),
                                 minimumLoss: q[0] + q[1] * x + q[2] * x * x, runs: group.count))
        }
        guard budgets.count >= 2 else {
            notes.append("approach 2: needs two budgets with a minimum; \(budgets.count) found")
            return (nil, notes)
        }
        let lc = budgets.map { log($0.flops) }
        let fn = line(lc, budgets.map { log($0.optimalParams) })
        let fd = line(lc, budgets.map { log($0.optimalTokens) })
        return (IsoFLOPFit(budgets: budgets, a: fn.slope, kN: exp(fn.intercept), b: fd.slope, kD: exp(fd.intercept)),
                notes)
    }

    /// The ranges a run's numbers must be in: a recipe's (model parameters under 2^50, tokens at most 2^60
    /// (`PlanLimits.tokens`), budgets at most 1e30), and a loss in nats above 0 and under 100 (a uniform guess over
    /// the largest vocabulary, 2^24 tokens, scores ln 2^24 ≈ 16.6).
    static func observationRanges(_ r: SweepObservation) -> [(field: String, value: Double, range: ClosedRange<Double>)] {
        [("params", r.params, 1...Double(1 << 50)), ("tokens", r.tokens, 1...PlanLimits.tokens),
         ("flops", r.flops, 1...1e30), ("loss", r.loss, Double.leastNormalMagnitude...100)]
    }

    static func validate(_ runs: [SweepObservation]) throws {
        for r in runs where !(r.params > 0 && r.tokens > 0 && r.flops > 0 && r.loss > 0
                              && r.params.isFinite && r.tokens.isFinite && r.loss.isFinite) {
            throw LawFitError.invalidObservation(name: r.name)
        }
        for r in runs {
            for (field, value, range) in observationRanges(r) where !range.contains(value) {
                throw LawFitError.observationOutOfRange(name: r.name, field: field, value: value, range: range)
            }
        }
    }

    /// What a sweep's runs must also be, beyond `validate` (not asked of bootstrap resamples, which repeat runs):
    /// distinct points, and losses that differ.
    static func validateDistinct(_ runs: [SweepObservation]) throws {
        var seen: [[Double]: String] = [:]
        for r in runs {
            if let first = seen[[r.params, r.tokens]] { throw LawFitError.duplicateObservation(name: r.name, first: first) }
            seen[[r.params, r.tokens]] = r.name
        }
        if let low = runs.map(\.loss).min(), let high = runs.map(\.loss).max(), runs.count > 1, high - low <= 1e-9 * high {
            throw LawFitError.constantLoss(low)
        }
    }

    /// A deterministic generator for the bootstrap (SplitMix64), so that a fit is reproducible.
    public struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        public init(seed: UInt64) { state = seed }
        public mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// The whole fit: Approach 2, Approach 3 from the grid, and percentile bootstrap intervals of Approach 3's
    /// constants and exponents (runs resampled with replacement, each refit started from the full fit, as Besiroglu
    /// et al. 2024 do).
    public static func fit(_ runs: [SweepObservation], sweep: String, samples: Int = 200, level: Double = 0.8,
                           seed: UInt64 = 1) throws -> ScalingLawFitFile {
        try validate(runs)
        try validateDistinct(runs)
        let (approach2, notes) = try isoFLOP(runs)
        let full = try parametric(runs)
        let start = [log(full.A), log(full.B), log(full.E), full.alpha, full.beta]
        var generator = SplitMix(seed: seed)
        var draws: [ParametricFit] = []
        for _ in 0..<samples {
            let sample = (0..<runs.count).map { _ in runs[Int(generator.next() % UInt64(runs.count))] }
            if let refit = try? parametric(sample, starts: [start]) { draws.append(refit) }
        }
        func interval(_ value: (ParametricFit) -> Double) -> [Double] {
            let sorted = draws.map(value).filter(\.isFinite).sorted()
            guard !sorted.isEmpty else { return [] }
            func at(_ p: Double) -> Double { sorted[min(sorted.count - 1, max(0, Int((p * Double(sorted.count - 1)).rounded())))] }
            return [at((1 - level) / 2), at((1 + level) / 2)]
        }
        let intervals = ScalingLawFitFile.Intervals(
            level: level, samples: draws.count,
            a: interval { $0.beta / ($0.alpha + $0.beta) }, b: interval { $0.alpha / ($0.alpha + $0.beta) },
            alpha: interval(\.alpha), beta: interval(\.beta), E: interval(\.E))
        var file = ScalingLawFitFile(formatVersion: ScalingLawFitFile.currentVersion, sweep: sweep, approach2: approach2,
                                     approach3: full, intervals: intervals, runs: runs, notes: notes)
        file.bootstrap = .init(approach3: draws, approach2: isoFLOPBootstrap(runs, samples: samples, seed: seed))
        file.backtest = backtest(runs)
        return file
    }

    /// The backtest's distance: the law is fitted to the budgets at most the largest ÷ this (the held-out
    /// run is at 3× the sweep's largest budget; 2.5 leaves a sweep of budgets √2 apart six of nine).
    public static let backtestFactor = 2.5

    /// Approach 3 fitted to the budgets at most the largest ÷ `backtestFactor` (two or more budgets, five or more
    /// runs), checked on the largest budget's runs; nil when there are not enough.
    public static func backtest(_ runs: [SweepObservation]) -> ScalingLawFitFile.Backtest? {
        guard let largest = runs.map(\.flops).max() else { return nil }
        let fitted = runs.filter { $0.flops <= largest / backtestFactor }
        let checked = runs.filter { $0.flops == largest }
        guard Set(fitted.map(\.flops)).count >= 2, fitted.count >= 5, !checked.isEmpty,
              let upTo = fitted.map(\.flops).max(), let law = try? parametric(fitted).law else { return nil }
        let error = median(checked.map { $0.loss - law.loss(params: $0.params, tokens: $0.tokens) })
        guard error.isFinite else { return nil }
        return .init(fittedUpTo: upTo, checkedAt: largest, fittedRuns: fitted.count, checkedRuns: checked.count,
                     medianError: error)
    }

    /// The median of `values` (the mean of the middle two of an even count); `values` must not be empty.
    public static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted(), k = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[k] : (sorted[k - 1] + sorted[k]) / 2
    }
}
