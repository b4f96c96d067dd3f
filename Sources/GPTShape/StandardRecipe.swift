/// The fixed numbers of the standard pre-training recipe (GPT-3, Chinchilla, Llama) that the planner, the recipe and
/// its checks share: here once, so that none of them restates one.
public enum StandardRecipe {
    /// Where the cosine schedule ends, as a fraction of the peak learning rate: 10% (Hoffmann et al. 2022 §3 and
    /// Touvron et al. 2023 §2.2 decay to a tenth of the peak).
    public static let minLRFraction = 0.1
}

extension StandardRecipe {
    /// Warmup as a share of the steps: 1 to 5% (the standard recipe; the planner's warmup rule keeps to it and the
    /// recipe check warns outside it).
    public static let warmupFraction = 0.01...0.05

    /// The allocation rules a plan can record in a recipe's `plan.fit`: the planner's built-in rules (`builtIn`,
    /// in the order `gpt-plan --compare-fits` lists them) and a law measured by `gpt-plan fit` (`measured`).
    public static let builtInFits = ["epoch", "hoffmann", "tokens-per-param", "llama3"]
    public static let measuredFit = "measured"
    public static var recordedFits: [String] { builtInFits + [measuredFit] }
}
