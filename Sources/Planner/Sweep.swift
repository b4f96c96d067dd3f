import Foundation

/// An isoFLOP sweep (Hoffmann et al. 2022, section 3.2): for each budget, model sizes spread evenly in log N
/// around a fit's optimum, each trained on D = C/(6N) tokens with its cosine schedule ending at its last step.
public enum IsoFLOPDesign {
    /// The sizes for one budget: N_opt · span^(−1 + 2i/(k−1)), i = 0…k−1 (×¼ … ×4 with the default span 4).
    public static func sizes(optimum n: Double, count k: Int, span: Double = 4) -> [Double] {
        precondition(k >= 1 && span >= 1, "an isoFLOP design needs at least one size and a span of at least 1")
        guard k > 1 else { return [n] }
        return (0..<k).map { n * pow(span, -1 + 2 * Double($0) / Double(k - 1)) }
    }
}

/// A sweep run's final loss over the whole validation split (up to a million tokens, consecutive windows, the same
/// for every run of the sweep): `gpt-train sweep` writes it next to the run's metrics.jsonl once the run has finished,
/// and `gpt-plan fit` prefers it to the last `val_loss` of the metrics, whose `eval.iters` micro-batches are windows
/// drawn with the run's seed (other windows for every seed and batch size: noise of about 0.01 nats a run at a
/// sweep's scale, as large as the curvature near an isoFLOP minimum).
public struct FinalEvaluation: Codable, Sendable, Equatable {
    public static let fileName = "final_eval.json"
    /// The checkpoint's step: the run's last.
    public var step: Int
    public var split: String
    public var windows: Int
    public var seqLen: Int
    public var tokens: Int
    /// Mean cross-entropy, nats per token.
    public var loss: Double

    public init(step: Int, split: String, windows: Int, seqLen: Int, loss: Double) {
        (self.step, self.split, self.windows, self.seqLen, self.loss) = (step, split, windows, seqLen, loss)
        tokens = windows * seqLen
    }

    enum CodingKeys: String, CodingKey {
        case step, split, windows, seqLen = "seq_len", tokens, loss
    }

    /// The run directory's evaluation at `step`, or nil (none, unreadable, or of another step).
    public static func read(runDirectory: String, step: Int) -> FinalEvaluation? {
        let path = (runDirectory as NSString).appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: path),
              let e = try? JSONDecoder().decode(FinalEvaluation.self, from: data),
              e.step == step, e.split == "val", e.loss.isFinite else { return nil }
        return e
    }
}

/// What `gpt-plan sweep` writes to SWEEP/manifest.json and `gpt-train sweep` and `gpt-plan fit` read.
public struct SweepManifest: Codable, Sendable, Equatable {
    public static let currentVersion = 1
    public static let fileName = "manifest.json"

    public struct Run: Codable, Sendable, Equatable {
        public var name: String
        public var flops: Double
        /// The size the design asked for, and the one the shape has.
        public var targetParams: Double
        public var params: Double
        public var tokens: Double
        public var steps: Int
        /// Paths relative to the sweep directory.
        public var recipe: String
        public var run: String
        /// Epochs over the sweep's unique training tokens (nil when the sweep does not know them); above 1 the run
        /// repeats data (Muennighoff et al. 2023).
        public var epochs: Double?
        /// The run's seed when it is a repeat of a size with another seed (`gpt-plan sweep --seeds`); nil: the
        /// sweep's seed.
        public var seed: Int?

        public init(name: String, flops: Double, targetParams: Double, params: Double, tokens: Double, steps: Int,
                    recipe: String, run: String) {
            self.name = name
            self.flops = flops
            self.targetParams = targetParams
            self.params = params
            self.tokens = tokens
            self.steps = steps
            self.recipe = recipe
            self.run = run
        }

        enum CodingKeys: String, CodingKey {
            case name, flops, targetParams = "target_params", params, tokens, steps, recipe, run, epochs, seed
        }
    }

    public var formatVersion: Int
    /// The allocation rule whose optimum the sizes are spread around.
    public var fit: String
    public var budgets: [Double]
    public var sizesPerBudget: Int
    public var span: Double
    public var runs: [Run]
    /// Sizes left out (no shape reaches them, or two sizes gave the same shape), runs that repeat data, and what
    /// `--extend` added.
    public var notes: [String]
    /// The training tokens of the data (`--unique-tokens`, or the prepared data's training split), when known.
    public var uniqueTokens: Double?
    /// How the recipes were planned, so that `gpt-plan sweep --extend` plans new sizes the same way (absent in
    /// manifests written before it).
    public var settings: Settings?

    /// The planning inputs of `gpt-plan sweep`.
    public struct Settings: Codable, Sendable, Equatable {
        /// The data, relative to the sweep directory (absolute if it was given so).
        public var data: String
        public var vocab: Int?
        public var seqLen: Int?
        public var tokenizer: String?
        public var valFraction: Double
        public var seed: Int
        /// The FLOP/s given with --device-flops (nil: measured).
        public var deviceFlops: Double?
        /// The allocation rule as given (--fit: epoch, hoffmann or a fit.json's path relative to the sweep).
        public var fit: String
        /// `--lr-per-width k`: every run's peak learning rate k/d_model (`LearningRateRule.perWidth`); nil: the
        /// planner's rule (DeepSeek's, one rate per budget).
        public var lrPerWidth: Double?
        /// `--tokens-per-param r` with `--fit tokens-per-param`: the optimum the sizes surround is D = r·N.
        public var tokensPerParam: Double?
        /// `--seeds k`: every size trained with k seeds (seed, seed + 1, …), its losses averaged by `gpt-plan fit`.
        public var seeds: Int?
        /// `--min-width W`: the narrowest d_model the shape search may take (nil: 32).
        public var minWidth: Int?

        public init(data: String, vocab: Int?, seqLen: Int?, tokenizer: String?, valFraction: Double, seed: Int,
                    deviceFlops: Double?, fit: String) {
            self.data = data
            self.vocab = vocab
            self.seqLen = seqLen
            self.tokenizer = tokenizer
            self.valFraction = valFraction
            self.seed = seed
            self.deviceFlops = deviceFlops
            self.fit = fit
        }

        enum CodingKeys: String, CodingKey {
            case data, vocab, seqLen = "seq_len", tokenizer, valFraction = "val_fraction", seed
            case deviceFlops = "device_flops", fit, lrPerWidth = "lr_per_width", tokensPerParam = "tokens_per_param", seeds
            case minWidth = "min_width"
        }
    }

    public init(fit: String, budgets: [Double], sizesPerBudget: Int, span: Double, runs: [Run], notes: [String]) {
        self.formatVersion = Self.currentVersion
        self.fit = fit
        self.budgets = budgets
        self.sizesPerBudget = sizesPerBudget
        self.span = span
        self.runs = runs
        self.notes = notes
    }

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", fit, budgets, sizesPerBudget = "sizes_per_budget", span, runs, notes
        case uniqueTokens = "unique_tokens", settings
    }
}

public struct SweepManifestError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

extension SweepManifest {
    /// Reads SWEEP/manifest.json, or says in words (the file, what is wrong, the fix) why it cannot.
    /// Reads `<directory>/manifest.json` through `read` (the bytes of a file, nil when it does not exist: the
    /// commands pass one that opens only regular files, so a FIFO there cannot block them).
    public static func load(sweep directory: String, read: (String) throws -> Data?) throws -> SweepManifest {
        let path = (directory as NSString).appendingPathComponent(fileName)
        guard let data = try read(path) else {
            throw SweepManifestError(description: "\(path): no such file. Fix: give a directory written by gpt-plan sweep")
        }
        let manifest: SweepManifest
        do { manifest = try JSONDecoder().decode(SweepManifest.self, from: data) } catch {
            throw SweepManifestError(description: "\(path): not a sweep manifest (\(error)). Fix: rewrite it with gpt-plan sweep --force")
        }
        guard manifest.formatVersion == currentVersion else {
            throw SweepManifestError(description: "\(path): format_version \(manifest.formatVersion), this tool reads "
                                     + "\(currentVersion). Fix: rewrite it with gpt-plan sweep --force")
        }
        return manifest
    }
}
