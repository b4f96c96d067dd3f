import Foundation

/// Muennighoff et al. (2023), "Scaling Data-Constrained Language Models" (NeurIPS 2023), section 3: repeated tokens
/// and parameters in excess of what the unique data supports are worth less than fresh ones, by exponential decay.
///
///     D' = U_D + U_D·R*_D·(1 − e^(−R_D/R*_D)),  R_D = D/U_D − 1 (repetitions after the first epoch)
///     N' = U_N + U_N·R*_N·(1 − e^(−R_N/R*_N)),  U_N = min(N_opt(U_D), N), R_N = N/U_N − 1
///
/// and the loss is the Chinchilla form at the effective counts, L = E + A/N'^α + B/D'^β (their eq. 5). N_opt(U_D)
/// is the compute-optimal model for U_D tokens under the same fit.
public enum DataConstrained {
    /// R*_D: the fitted "half-life" of repeated data, 15.4 (Muennighoff et al. 2023, section 3.1, fitted on their
    /// C4 runs of up to 9B parameters and 900B tokens).
    public static let dataDecay = 15.4
    /// R*_N: the same for excess parameters, 5.3 (ibid.).
    public static let paramsDecay = 5.3
    /// Up to about 4 epochs, repeated data is nearly as good as unique data (ibid., abstract and figure 1).
    public static let nearlyFreeEpochs = 4.0
    /// Around 16 epochs, more repetition adds little (ibid., section 3: R*_D ≈ 15 repetitions is where the decay
    /// has spent 1 − 1/e of its value).
    public static let littleValueEpochs = 16.0

    /// D' for D training tokens drawn from U unique ones; D itself when D ≤ U.
    public static func effectiveTokens(unique u: Double, tokens d: Double) -> Double {
        guard d > u else { return d }
        let r = d / u - 1
        return u + u * dataDecay * (1 - exp(-r / dataDecay))
    }

    /// N' for N parameters when U unique tokens support at most N_opt(U) of them; N itself when N ≤ N_opt(U).
    public static func effectiveParams(_ fit: ChinchillaFit, params n: Double, unique u: Double) -> Double {
        let supported = fit.optimalFlops(tokens: u) / (6 * u)
        guard n > supported else { return n }
        let r = n / supported - 1
        return supported + supported * paramsDecay * (1 - exp(-r / paramsDecay))
    }

    /// The loss of N parameters trained on D tokens of which U are unique.
    public static func loss(_ fit: ChinchillaFit, params n: Double, tokens d: Double, unique u: Double) -> Double {
        fit.loss(params: effectiveParams(fit, params: n, unique: u), tokens: effectiveTokens(unique: u, tokens: d))
    }

    /// The split of budget C that minimises the data-constrained loss: the unconstrained optimum when it needs no
    /// more than U tokens, else a numerical minimum over ln N (there is no closed form once D > U).
    public static func optimum(_ fit: ChinchillaFit, flops c: Double, unique u: Double) -> (params: Double, tokens: Double) {
        let free = fit.optimalAllocation(flops: c)
        if free.tokens <= u { return free }
        func f(_ lnN: Double) -> Double { loss(fit, params: exp(lnN), tokens: c / (6 * exp(lnN)), unique: u) }
        // The optimum lies between a model 1e4 times smaller than the free one and the model that sees U tokens
        // exactly once (spending the budget on fewer tokens than U wastes data).
        let hi = log(c / (6 * u)), lo = min(hi - 1, log(free.params) - log(1e4))
        let best = Minimize.scalar(f, in: lo, hi)
        let n = exp(best.x)
        return (n, c / (6 * n))
    }
}

/// What data-constrained planning decided.
public struct DataConstraintDecision: Sendable, Equatable {
    public var uniqueTokens: Double
    /// Whether the allocation moved (the unconstrained D* needed more than U tokens and the target was a budget).
    public var reallocated: Bool
    /// The unconstrained compute-optimal split, and its loss with repetition taken into account.
    public var unconstrainedParams: Double
    public var unconstrainedTokens: Double
    public var unconstrainedLoss: Double
    /// Epochs of the planned D over U.
    public var epochs: Double
    public var effectiveTokens: Double
    public var effectiveParams: Double

    public enum Verdict: Sendable, Equatable {
        /// At most one epoch.
        case unique
        /// Up to about 4 epochs: nearly as good as unique data.
        case nearlyFree
        /// 4 to 16 epochs: each repetition is worth less.
        case diminishing
        /// Beyond about 16 epochs: little value in more repetition; more unique data would help.
        case littleValue
    }
    public var verdict: Verdict {
        if epochs <= 1 { return .unique }
        if epochs <= DataConstrained.nearlyFreeEpochs { return .nearlyFree }
        if epochs <= DataConstrained.littleValueEpochs { return .diminishing }
        return .littleValue
    }
}

/// Sardana et al. (2023), "Beyond Chinchilla-Optimal: Accounting for Inference in Language Model Scaling Laws",
/// section 2: for a model that will also serve T tokens of inference, minimise the total cost
/// 6·N·D_train + 2·N·T subject to reaching a given loss, L(N, D_train) = ℓ.
public enum InferenceAware {
    /// Training tokens N parameters need to reach loss ℓ, from ℓ = E + A/N^α + B/D^β; nil if no D reaches it.
    public static func tokens(_ fit: ChinchillaFit, params n: Double, loss l: Double) -> Double? {
        let gap = l - fit.E - fit.A / pow(n, fit.alpha)
        guard gap > 0 else { return nil }
        return pow(fit.B / gap, 1 / fit.beta)
    }

    /// The smallest model that can reach ℓ at all (with infinite data): N_min = (A/(ℓ − E))^(1/α).
    public static func minimumParams(_ fit: ChinchillaFit, loss l: Double) -> Double? {
        guard l > fit.E else { return nil }
        return pow(fit.A / (l - fit.E), 1 / fit.alpha)
    }

    /// The compute-optimal budget whose optimum reaches loss ℓ (bisection on ln C; the optimal loss falls
    /// monotonically with C).
    public static func computeOptimalFlops(_ fit: ChinchillaFit, loss l: Double) -> Double? {
        guard l > fit.E else { return nil }
        func optimalLoss(_ lnC: Double) -> Double {
            let (n, d) = fit.optimalAllocation(flops: exp(lnC))
            return fit.loss(params: n, tokens: d)
        }
        var lo = log(1e3), hi = log(1e40)
        guard optimalLoss(lo) > l, optimalLoss(hi) < l else { return nil }
        for _ in 0..<200 {
            let mid = (lo + hi) / 2
            if optimalLoss(mid) > l { lo = mid } else { hi = mid }
        }
        return exp((lo + hi) / 2)
    }

    /// The (N, D_train) reaching ℓ at the least total compute 6·N·D + 2·N·T, by minimisation over ln N.
    public static func optimum(_ fit: ChinchillaFit, loss l: Double, inferenceTokens t: Double)
        -> (params: Double, tokens: Double)? {
        guard let nMin = minimumParams(fit, loss: l) else { return nil }
        func cost(_ lnN: Double) -> Double {
            let n = exp(lnN)
            guard let d = tokens(fit, params: n, loss: l) else { return .infinity }
            return log(6 * n * d + 2 * n * t)
        }
        // Just above N_min the data needed diverges; far above it, the model's own size dominates: the optimum is
        // within 12 e-folds (a factor of 1.6e5) of N_min for any fit with α, β ≤ 1.
        let best = Minimize.scalar(cost, in: log(nMin) + 1e-9, log(nMin) + 12, grid: 400)
        let n = exp(best.x)
        guard let d = tokens(fit, params: n, loss: l) else { return nil }
        return (n, d)
    }
}

/// What inference-aware planning decided.
public struct InferenceDecision: Sendable, Equatable {
    public var inferenceTokens: Double
    /// The loss both plans reach: the compute-optimal plan's for the budget, or the one given.
    public var targetLoss: Double
    public var targetLossGiven: Bool
    /// The compute-optimal (Chinchilla) plan that reaches the same loss.
    public var computeOptimalParams: Double
    public var computeOptimalTokens: Double
    /// The inference-aware optimum.
    public var params: Double
    public var tokens: Double

    public var computeOptimalTotal: Double { 6 * computeOptimalParams * computeOptimalTokens + 2 * computeOptimalParams * inferenceTokens }
    public var total: Double { 6 * params * tokens + 2 * params * inferenceTokens }
    /// The share of the compute-optimal plan's training + inference FLOPs saved.
    public var savedFraction: Double { 1 - total / computeOptimalTotal }
}
