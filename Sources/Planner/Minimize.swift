import Foundation

/// Derivative-free minimisers for the planner's one-dimensional optima and the scaling-law fits.
public enum Minimize {
    /// The minimum of a function of one variable on [lo, hi]: a scan of `grid` points finds the best bracket (so a
    /// function with a kink or a flat stretch still lands in the right basin), then golden-section search narrows
    /// it to `tolerance`.
    public static func scalar(_ f: (Double) -> Double, in lo: Double, _ hi: Double, grid: Int = 200,
                              tolerance: Double = 1e-10) -> (x: Double, value: Double) {
        precondition(lo < hi && grid >= 3, "Minimize.scalar needs lo < hi and at least 3 grid points")
        var best = 0, bestValue = Double.infinity
        let step = (hi - lo) / Double(grid - 1)
        for i in 0..<grid {
            let v = f(lo + Double(i) * step)
            if v < bestValue { (best, bestValue) = (i, v) }
        }
        var a = lo + Double(max(0, best - 1)) * step, b = lo + Double(min(grid - 1, best + 1)) * step
        let phi = (sqrt(5.0) - 1) / 2
        var x1 = b - phi * (b - a), x2 = a + phi * (b - a)
        var f1 = f(x1), f2 = f(x2)
        while b - a > tolerance {
            if f1 < f2 {
                (b, x2, f2) = (x2, x1, f1)
                x1 = b - phi * (b - a)
                f1 = f(x1)
            } else {
                (a, x1, f1) = (x1, x2, f2)
                x2 = a + phi * (b - a)
                f2 = f(x2)
            }
        }
        let x = (a + b) / 2, v = f(x)
        return v <= bestValue ? (x, v) : (lo + Double(best) * step, bestValue)
    }

    public struct Result: Sendable, Equatable {
        public var x: [Double]
        public var value: Double
        public var iterations: Int
        /// Whether the simplex shrank below the tolerance before the iteration limit.
        public var converged: Bool
    }

    /// Nelder–Mead simplex minimisation (Nelder & Mead 1965, with the standard coefficients: reflection 1,
    /// expansion 2, contraction ½, shrink ½; Lagarias et al. 1998's ordering rules). `step` sets the initial
    /// simplex: x0 plus `step[i]` along each axis. Stops when the spread of the simplex's values and its size both
    /// fall below `tolerance`, or after `maxIterations`.
    public static func nelderMead(_ f: ([Double]) -> Double, from x0: [Double], step: [Double],
                                  tolerance: Double = 1e-12, maxIterations: Int = 20000) -> Result {
        let n = x0.count
        precondition(n >= 1 && step.count == n, "Nelder–Mead needs a start point and a step for every coordinate")
        func value(_ x: [Double]) -> Double {
            let v = f(x)
            return v.isNaN ? .infinity : v
        }
        var simplex = [x0]
        for i in 0..<n {
            var x = x0
            x[i] += step[i] == 0 ? 1e-3 : step[i]
            simplex.append(x)
        }
        var values = simplex.map(value)
        var iterations = 0
        var converged = false
        while iterations < maxIterations {
            iterations += 1
            let order = (0...n).sorted { values[$0] < values[$1] }
            simplex = order.map { simplex[$0] }
            values = order.map { values[$0] }
            let spread = abs(values[n] - values[0])
            var size = 0.0
            for i in 1...n { for j in 0..<n { size = max(size, abs(simplex[i][j] - simplex[0][j])) } }
            if spread <= tolerance * (1 + abs(values[0])), size <= max(tolerance, 1e-9) * 1e3 {
                converged = true
                break
            }
            var centroid = [Double](repeating: 0, count: n)
            for i in 0..<n { for j in 0..<n { centroid[j] += simplex[i][j] / Double(n) } }
            func along(_ t: Double) -> [Double] { (0..<n).map { centroid[$0] + t * (simplex[n][$0] - centroid[$0]) } }
            let reflected = along(-1), fr = value(reflected)
            if fr < values[0] {
                let expanded = along(-2), fe = value(expanded)
                if fe < fr { (simplex[n], values[n]) = (expanded, fe) } else { (simplex[n], values[n]) = (reflected, fr) }
            } else if fr < values[n - 1] {
                (simplex[n], values[n]) = (reflected, fr)
            } else {
                let outside = fr < values[n]
                let contracted = along(outside ? -0.5 : 0.5), fc = value(contracted)
                if fc < (outside ? fr : values[n]) {
                    (simplex[n], values[n]) = (contracted, fc)
                } else {
                    for i in 1...n {
                        simplex[i] = (0..<n).map { simplex[0][$0] + 0.5 * (simplex[i][$0] - simplex[0][$0]) }
                        values[i] = value(simplex[i])
                    }
                }
            }
        }
        let best = values.indices.min { values[$0] < values[$1] }!
        return Result(x: simplex[best], value: values[best], iterations: iterations, converged: converged)
    }
}
