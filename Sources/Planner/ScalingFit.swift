import GPTShape
import Foundation

/// A Chinchilla-style parametric loss fit, L(N, D) = E + A/N^α + B/D^β, with N the parameter count (all
/// parameters, embeddings included, as Hoffmann et al. count them) and D the training tokens.
public struct ChinchillaFit: Sendable, Equatable {
    public let name: String
    public let citation: String
    public let E: Double
    public let A: Double
    public let B: Double
    public let alpha: Double
    public let beta: Double

    public init(name: String, citation: String, E: Double, A: Double, B: Double, alpha: Double, beta: Double) {
        self.name = name
        self.citation = citation
        self.E = E
        self.A = A
        self.B = B
        self.alpha = alpha
        self.beta = beta
    }

    /// Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models", Approach 3, with the unrounded
    /// constants from their released fitting code.
    public static let hoffmann = ChinchillaFit(
        name: "hoffmann", citation: "Hoffmann et al. 2022 (Chinchilla), Approach 3",
        E: 1.69337368, A: 406.401018, B: 410.722827, alpha: 0.33917084, beta: 0.2849083)

    /// Besiroglu et al. (2024), "Chinchilla Scaling: A replication attempt" (Epoch AI): the refit of Approach 3 on
    /// the data read off the paper's figures. Its optimum agrees with Chinchilla's Approaches 1 and 2 (about 20
    /// tokens per parameter), which the original Approach 3 fit does not.
    public static let epoch = ChinchillaFit(
        name: "epoch", citation: "Besiroglu et al. 2024 (Epoch AI replication of Chinchilla Approach 3)",
        E: 1.8172, A: 482.01, B: 2085.43, alpha: 0.3478, beta: 0.3658)

    /// Model sizes of the training runs the fits were made on (Hoffmann et al.: 44M to 16B parameters).
    public static let fittedParams: ClosedRange<Double> = 44e6...16e9

    /// Predicted final training loss, in nats per token.
    public func loss(params n: Double, tokens d: Double) -> Double {
        E + A / pow(n, alpha) + B / pow(d, beta)
    }

    /// G = (αA / (βB))^(1/(α+β)).
    public var G: Double { pow(alpha * A / (beta * B), 1 / (alpha + beta)) }
    /// Exponent of compute in the optimal N: a = β/(α+β).
    public var a: Double { beta / (alpha + beta) }
    /// Exponent of compute in the optimal D: b = α/(α+β).
    public var b: Double { alpha / (alpha + beta) }

    /// The loss-minimising split of a budget C = 6ND: N = G·(C/6)^a, D = (C/6)^b / G.
    public func optimalAllocation(flops c: Double) -> (params: Double, tokens: Double) {
        (G * pow(c / 6, a), pow(c / 6, b) / G)
    }

    /// The budget for which `n` parameters are compute-optimal, from N = G·(C/6)^a.
    public func optimalFlops(params n: Double) -> Double { 6 * pow(n / G, 1 / a) }

    /// The budget for which `d` tokens are compute-optimal, from D = (C/6)^b / G.
    public func optimalFlops(tokens d: Double) -> Double { 6 * pow(d * G, 1 / b) }
}

/// How the budget is split between parameters and tokens (`--fit`).
public enum AllocationRule: Sendable, Equatable {
    case fit(ChinchillaFit)
    /// D = ratio · N (Chinchilla's rule of thumb; 20 by default).
    case tokensPerParam(Double)
    /// Llama 3's own isoFLOP law (Dubey et al. 2024, §3.2.1, eq. 1): the compute-optimal training tokens
    /// D*(C) = A·C^α with (α, A) = (0.53, 0.29), and N = C/(6D).
    case llama3

    /// The Llama 3 law's constants, as published.
    public static let llama3A = 0.29, llama3Alpha = 0.53

    /// The built-in rules' names (`StandardRecipe.builtInFits`, which the recipe's `plan.fit` accepts too).
    public static let names = StandardRecipe.builtInFits
    /// The name a law fitted by `gpt-plan fit` (read from a fit.json) plans under.
    public static let measuredName = StandardRecipe.measuredFit

    public static func named(_ name: String, tokensPerParam ratio: Double = 20) -> AllocationRule? {
        switch name {
        case "epoch": return .fit(.epoch)
        case "hoffmann": return .fit(.hoffmann)
        case "tokens-per-param": return .tokensPerParam(ratio)
        case "llama3": return .llama3
        default: return nil
        }
    }

    public var name: String {
        switch self {
        case .fit(let fit): return fit.name
        case .tokensPerParam: return "tokens-per-param"
        case .llama3: return "llama3"
        }
    }

    /// The fit used to predict the loss: the rule's own, or the Epoch AI fit for the fixed-ratio rule and Llama 3's
    /// law, which have no loss model of their own (Llama 3's predicts a downstream negative log-likelihood instead).
    public var lossFit: ChinchillaFit {
        if case .fit(let fit) = self { return fit }
        return .epoch
    }

    public func allocation(flops c: Double) -> (params: Double, tokens: Double) {
        switch self {
        case .fit(let fit): return fit.optimalAllocation(flops: c)
        case .tokensPerParam(let r):
            // C = 6·N·(rN) → N = sqrt(C / 6r).
            let n = (c / (6 * r)).squareRoot()
            return (n, r * n)
        case .llama3:
            let d = Self.llama3A * pow(c, Self.llama3Alpha)
            return (c / (6 * d), d)
        }
    }

    public func flops(forParams n: Double) -> Double {
        switch self {
        case .fit(let fit): return fit.optimalFlops(params: n)
        case .tokensPerParam(let r): return 6 * n * r * n
        case .llama3:
            // N = C/(6·A·C^α) = C^(1−α)/(6A) → C = (6A·N)^(1/(1−α)).
            return pow(6 * Self.llama3A * n, 1 / (1 - Self.llama3Alpha))
        }
    }

    public func flops(forTokens d: Double) -> Double {
        switch self {
        case .fit(let fit): return fit.optimalFlops(tokens: d)
        case .tokensPerParam(let r): return 6 * (d / r) * d
        case .llama3: return pow(d / Self.llama3A, 1 / Self.llama3Alpha)
        }
    }
}
