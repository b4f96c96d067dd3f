import Foundation

extension ScalingLawFitFile {
    /// The bootstrap's refits (Besiroglu et al. 2024, section 3): Approach 3 from resampled runs, and Approach 2
    /// from runs resampled within each budget.
    public struct Bootstrap: Codable, Sendable, Equatable {
        public var approach3: [ParametricFit]
        /// Refits of the power laws N_opt = kN·C^a, D_opt = kD·C^b (their budgets left out to keep the file small).
        public var approach2: [PowerLaws]

        public struct PowerLaws: Codable, Sendable, Equatable {
            public var a: Double
            public var kN: Double
            public var b: Double
            public var kD: Double

            public init(a: Double, kN: Double, b: Double, kD: Double) {
                self.a = a
                self.kN = kN
                self.b = b
                self.kD = kD
            }
        }

        public init(approach3: [ParametricFit], approach2: [IsoFLOPFit]) {
            self.approach3 = approach3
            self.approach2 = approach2.map { PowerLaws(a: $0.a, kN: $0.kN, b: $0.b, kD: $0.kD) }
        }
    }

    /// The width of the bootstrap interval of a above which Approach 3 counts as not identified (gpt-plan fit's
    /// warning).
    public static let identifiedWidthOfA = 0.3

    /// Whether Approach 3 is pinned down: no exponent at its bound of 3 and an interval of a no wider than
    /// `identifiedWidthOfA`. Its curves are drawn, and its predictions trusted, only then.
    public var approach3Identified: Bool {
        let p = approach3, i = intervals
        return p.alpha < 2.999 && p.beta < 2.999 && i.a.count == 2 && i.a[1] - i.a[0] <= Self.identifiedWidthOfA
    }

    /// The final loss Approach 3 predicts for N parameters trained on D tokens, with the bootstrap's interval at the
    /// file's level (the `level` central share of the refits' predictions; nil without refits).
    public func predictedLoss(params n: Double, tokens d: Double) -> (loss: Double, interval: [Double]?) {
        let value = approach3.law.loss(params: n, tokens: d)
        guard let draws = bootstrap?.approach3, !draws.isEmpty else { return (value, nil) }
        let interval = LawFitting.percentiles(draws.map { $0.law.loss(params: n, tokens: d) }, level: intervals.level)
        return (value, interval)
    }

    /// The bootstrap band of Approach 2's N_opt(C) (`tokens` false) or D_opt(C) at each budget of `flops`.
    public func approach2Band(flops: [Double], tokens: Bool) -> [(flops: Double, lower: Double, upper: Double)]? {
        guard let draws = bootstrap?.approach2, draws.count >= 2 else { return nil }
        return flops.compactMap { c in
            let values = draws.map { tokens ? $0.kD * pow(c, $0.b) : $0.kN * pow(c, $0.a) }
            guard let i = LawFitting.percentiles(values, level: intervals.level) else { return nil }
            return (c, i[0], i[1])
        }
    }

    /// The bootstrap band of Approach 3's compute-optimal N (`tokens` false) or D at each budget of `flops`.
    public func approach3Band(flops: [Double], tokens: Bool) -> [(flops: Double, lower: Double, upper: Double)]? {
        guard let draws = bootstrap?.approach3, draws.count >= 2 else { return nil }
        return flops.compactMap { c in
            let values = draws.map { tokens ? $0.law.optimalAllocation(flops: c).tokens : $0.law.optimalAllocation(flops: c).params }
            guard let i = LawFitting.percentiles(values, level: intervals.level) else { return nil }
            return (c, i[0], i[1])
        }
    }
}

extension LawFitting {
    /// The central `level` share of `values` (its (1−level)/2 and (1+level)/2 percentiles, nearest rank), non-finite
    /// values left out; nil when none is finite.
    public static func percentiles(_ values: [Double], level: Double) -> [Double]? {
        let sorted = values.filter(\.isFinite).sorted()
        guard !sorted.isEmpty else { return nil }
        func at(_ p: Double) -> Double {
            sorted[min(sorted.count - 1, max(0, Int((p * Double(sorted.count - 1)).rounded())))]
        }
        return [at((1 - level) / 2), at((1 + level) / 2)]
    }

    /// Approach 2 refitted `samples` times by a residual bootstrap within each budget: the sizes of an isoFLOP
    /// curve are a fixed design (the sweep chose them), so each draw keeps them and adds to the budget's fitted
    /// parabola its residuals resampled with replacement, scaled by sqrt(n/(n − 3)) for the three fitted
    /// coefficients (Efron & Tibshirani 1993, §9.5, the regression bootstrap "resampling residuals"; resampling the
    /// runs themselves would drop sizes and leave degenerate parabolas through two or three points). A budget
    /// without a parabola keeps its runs; a draw whose parabolas leave fewer than two budgets with a minimum, or
    /// no finite power law, is skipped.
    public static func isoFLOPBootstrap(_ runs: [SweepObservation], samples: Int, seed: UInt64 = 1) -> [IsoFLOPFit] {
        var generator = SplitMix(seed: seed ^ 0x5EED_1505)
        let groups = Set(runs.map(\.flops)).sorted().map { c in runs.filter { $0.flops == c } }
        // Each budget's fitted losses and scaled residuals (nil: no parabola; its runs stay as they are).
        let models: [(fitted: [Double], residuals: [Double])?] = groups.map { group in
            guard Set(group.map(\.params)).count >= 3,
                  let q = robustParabola(group.map { log($0.params) }, group.map(\.loss))?.q else { return nil }
            let fitted = group.map { r -> Double in let x = log(r.params); return q[0] + q[1] * x + q[2] * x * x }
            let n = Double(group.count)
            let scale = n > 3 ? (n / (n - 3)).squareRoot() : 1
            return (fitted, zip(group, fitted).map { (r, f) in (r.loss - f) * scale })
        }
        var fits: [IsoFLOPFit] = []
        for _ in 0..<samples {
            var sample: [SweepObservation] = []
            for (group, model) in zip(groups, models) {
                guard let model else { sample += group; continue }
                for (i, run) in group.enumerated() {
                    var drawn = run
                    let r = model.residuals[Int(generator.next() % UInt64(model.residuals.count))]
                    drawn.loss = max(model.fitted[i] + r, Double.leastNormalMagnitude)
                    sample.append(drawn)
                }
            }
            // A draw can leave a budget too flat for a finite vertex, or the line through the vertices
            // degenerate: such a draw has no power law to add.
            if let fit = try? isoFLOP(sample).fit, [fit.a, fit.kN, fit.b, fit.kD].allSatisfy(\.isFinite) {
                fits.append(fit)
            }
        }
        return fits
    }
}
