import GPTShape
import Foundation

/// How the batch size (in tokens) is chosen (`--batch-rule`).
public enum BatchRule: Sendable, Equatable {
    /// DeepSeek LLM (2024), eq. 1: B_opt = 0.2920·C^0.3271 tokens, C the training budget in FLOPs.
    case deepseek
    /// Kaplan et al. (2020), eq. 5.3: the critical batch B_crit = 2.1e8 / L^(1/0.21) tokens at loss L (nats).
    case kaplan
    /// Li et al. (2025), "Predictable Scale: Part I, Step Law", eq. (1): B = 0.58·D^0.571 tokens, D the training
    /// tokens.
    case stepLaw
    /// Given on the command line.
    case fixed(tokens: Double)

    /// The rules `--compare-rules` shows, by their command-line names.
    public static let named: [(name: String, rule: BatchRule)] = [("deepseek", .deepseek), ("kaplan", .kaplan),
                                                                   ("step-law", .stepLaw)]

    /// The rule in one line (its source and formula): the one description of it that Plan and the command share.
    public var formula: String {
        switch self {
        case .deepseek: return "DeepSeek LLM 2024: B = 0.2920·C^0.3271 tokens"
        case .kaplan: return "Kaplan et al. 2020: critical batch B = 2.1e8 / L^(1/0.21) tokens"
        case .stepLaw: return "Step Law (Li et al. 2025, eq. 1): B = 0.58·D^0.571 tokens"
        case .fixed: return "given"
        }
    }

    public var isFixed: Bool { if case .fixed = self { return true } else { return false } }

    public static func stepLawTokens(tokens d: Double) -> Double { 0.58 * pow(d, 0.571) }

    public static func deepseekTokens(flops c: Double) -> Double { 0.2920 * pow(c, 0.3271) }
    public static func kaplanCriticalTokens(loss l: Double) -> Double { 2.1e8 / pow(l, 1 / 0.21) }
}

/// How the peak learning rate is chosen (`--lr-rule`).
public enum LearningRateRule: Sendable, Equatable {
    public enum Scaling: String, Sendable, Equatable, CaseIterable {
        /// lr ∝ sqrt(batch): the square-root rule for adaptive optimizers (Malladi et al. 2022).
        case sqrt
        /// lr ∝ batch: Goyal et al.'s linear scaling rule (2017).
        case linear
        public var exponent: Double { self == .sqrt ? 0.5 : 1 }
    }

    /// DeepSeek LLM (2024), eq. 1: η_opt = 0.3118·C^-0.1250.
    case deepseek
    /// Kaplan et al. (2020), eq. D.1: LR(N) ≈ 0.003239 − 0.0001395·ln(N), N non-embedding parameters.
    case kaplan
    /// Li et al. (2025), "Predictable Scale: Part I, Step Law", eq. (1): η = 1.79·N^-0.713·D^0.307, N the
    /// non-embedding parameters and D the training tokens.
    case stepLaw
    /// Scaled from a reference run: lr = lr_ref · (B / B_ref)^p.
    case reference(batchTokens: Double, lr: Double, scaling: Scaling)
    /// Inversely with the width: lr = k / d_model. Adam's learning rate for hidden matrices ∝ 1/width under μP
    /// (Yang et al. 2022, "Tensor Programs V", Table 3; Everett et al. 2024 find the same exponent for Adam in the
    /// standard parameterization); `k` is measured (an lr scan at one budget, docs/scaling-laws.md). What an
    /// isoFLOP sweep at small scale needs, where a budget's sizes span 3× in width and one learning rate for all of
    /// them (DeepSeek's, a function of C only) favours the narrow ones.
    case perWidth(Double)
    /// Given on the command line.
    case fixed(Double)

    /// The rule in one line (its source and formula): the one description of it that Plan and the command share.
    public var formula: String {
        switch self {
        case .deepseek: return "DeepSeek LLM 2024: η = 0.3118·C^-0.1250"
        case .kaplan: return "Kaplan et al. 2020 eq. D.1: η = 0.003239 − 0.0001395·ln(N_non-embedding)"
        case .stepLaw: return "Step Law (Li et al. 2025, eq. 1): η = 1.79·N^-0.713·D^0.307, N non-embedding"
        case .reference(_, _, let s): return "\(s.rawValue) scaling from a reference: η = η_ref·(B/B_ref)^\(s.exponent)"
        case .perWidth(let k): return "μP-style width scaling (Yang et al. 2022): η = \(k)/d_model"
        case .fixed: return "given"
        }
    }

    public static func deepseekLR(flops c: Double) -> Double { 0.3118 * pow(c, -0.1250) }
    public static func kaplanLR(nonEmbeddingParams n: Double) -> Double { 0.003239 - 0.0001395 * log(n) }
    public static func stepLawLR(nonEmbeddingParams n: Double, tokens d: Double) -> Double {
        1.79 * pow(n, -0.713) * pow(d, 0.307)
    }
}

/// Where the Step Law was fitted (Li et al. 2025, section 3 and figure 1): grids of dense models up to 1B
/// non-embedding parameters trained on up to 100B tokens (the largest, 1B on 100B tokens, is the paper's test
/// point); the smallest grids hold models of tens of millions of parameters on a few billion tokens. The lower
/// bounds here are that order of magnitude, not a number from a table. Outside the range the law extrapolates.
public enum StepLawRange {
    public static let nonEmbeddingParams: ClosedRange<Double> = 1e7...1e9
    public static let tokens: ClosedRange<Double> = 1e9...1e11

    /// Whether (N, D) lies in the fitted ranges.
    public static func contains(nonEmbeddingParams n: Double, tokens d: Double) -> Bool {
        nonEmbeddingParams.contains(n) && tokens.contains(d)
    }
}

/// How warmup is chosen: GPT-3's 375M warmup tokens (Brown et al. 2020, appendix B), held within 1-5% of the
/// steps, the standard recipe's range.
public enum WarmupRule {
    public static let gpt3Tokens = 375e6
    public static let range = StandardRecipe.warmupFraction

    /// Which bound decided, when GPT-3's tokens fell outside the range.
    public enum Bound: Sendable, Equatable { case gpt3Tokens, atMost5Percent, atLeast1Percent }

    public struct Choice: Sendable, Equatable {
        public var steps: Int
        /// What GPT-3's 375M tokens alone would give.
        public var fromTokens: Int
        public var bound: Bound
    }

    public static func steps(totalSteps: Int, batchTokens: Double) -> Choice {
        let fromTokens = PlanLimits.int(min(1e15, (gpt3Tokens / batchTokens).rounded())) ?? Int(1e15)
        let low = max(1, PlanLimits.int((range.lowerBound * Double(totalSteps)).rounded(.up)) ?? 1)
        let high = max(low, PlanLimits.int((range.upperBound * Double(totalSteps)).rounded(.down)) ?? low)
        let chosen = min(high, max(low, fromTokens))
        let bound: Bound = chosen == fromTokens ? .gpt3Tokens : (chosen == high ? .atMost5Percent : .atLeast1Percent)
        return Choice(steps: chosen, fromTokens: fromTokens, bound: bound)
    }
}
