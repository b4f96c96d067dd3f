import GPTShape


/// A training run, completely: what the planner decided, the model, the data, the optimizer, the schedule, the
/// batch and its parallel layout, evaluation, checkpoints, logging, and (optionally) the hardware it was planned
/// for. Nothing a run needs is implicit. `Schema.fields` describes every key; the loader, the writer and
/// docs/recipe-reference.md are all driven by it.
public struct Recipe: Equatable, Sendable {
    public var schemaVersion: Int = Schema.version
    public var plan = Plan()
    /// `[model]`: the shape every layer shares, exactly the planner's `ModelShape`.
    public var model = ModelShape(nLayer: 0, nHead: 0, dModel: 0, dFF: 0, seqLen: 0, vocabSize: 0, bias: false)
    public var data = Data()
    public var optimizer = Optimizer()
    public var schedule = Schedule()
    public var training = Training()
    public var eval = Eval()
    public var checkpoint = Checkpoint()
    public var logging = Logging()
    /// `[hardware]`, the devices the plan was made for; nil when the recipe does not say.
    public var hardware: Hardware?
    /// `[stability]`, loss-spike detection and recovery; nil when the recipe does not say (then only a non-finite
    /// loss or gradient norm is a spike, and it stops the run).
    public var stability: Stability?

    public init() {}

    public struct Plan: Equatable, Sendable {
        public var flopsBudget: Double = 0
        public var fit: String = ""
        public var params: Int = 0
        public var tokens: Int = 0
        public var predictedLoss: Double = 0

        public init(flopsBudget: Double = 0, fit: String = "", params: Int = 0, tokens: Int = 0, predictedLoss: Double = 0) {
            self.flopsBudget = flopsBudget
            self.fit = fit
            self.params = params
            self.tokens = tokens
            self.predictedLoss = predictedLoss
        }
    }

    public struct Data: Equatable, Sendable {
        public var path = ""
        public var tokenizer = ""
        public var valFraction: Double = 0

        public init(path: String = "", tokenizer: String = "", valFraction: Double = 0) {
            self.path = path
            self.tokenizer = tokenizer
            self.valFraction = valFraction
        }
    }

    public struct Optimizer: Equatable, Sendable {
        public var lr: Double = 0
        public var minLR: Double = 0
        public var beta1: Double = 0
        public var beta2: Double = 0
        public var eps: Double = 0
        public var weightDecay: Double = 0
        public var gradClip: Double = 0

        public init(lr: Double = 0, minLR: Double = 0, beta1: Double = 0, beta2: Double = 0, eps: Double = 0, weightDecay: Double = 0, gradClip: Double = 0) {
            self.lr = lr
            self.minLR = minLR
            self.beta1 = beta1
            self.beta2 = beta2
            self.eps = eps
            self.weightDecay = weightDecay
            self.gradClip = gradClip
        }
    }

    public enum Decay: String, Equatable, Sendable, CaseIterable {
        case cosine, linear, constant
    }

    public struct Schedule: Equatable, Sendable {
        public var warmupSteps = 0
        public var decay: Decay = .cosine

        public init(warmupSteps: Int = 0, decay: Decay = .cosine) {
            self.warmupSteps = warmupSteps
            self.decay = decay
        }
    }

    /// Activation recomputation (Korthikanti et al. 2022): GPTShape's `Recompute`, the one type the model, the planner
    /// and the recipe share.
    public typealias Recompute = GPTShape.Recompute


    /// Steps, batch and parallel layout. `devices` is the total device count K = d·t·p: `tensorParallel` (t)
    /// devices split each layer, `pipelineParallel` (p) devices split the layers into stages, and the remaining
    /// d = K / (t·p) are data-parallel ranks, so the effective batch is micro_batch × grad_accum × d. With
    /// t = p = 1 (the defaults) devices are data-parallel processes, as in schema version 1.
    public struct Training: Equatable, Sendable {
        public var steps = 0
        public var batchSize = 0
        public var seqLen = 0
        public var microBatch = 0
        public var gradAccum = 0
        public var devices = 0
        public var tensorParallel: Int = Schema.defaultValue(\Recipe.training.tensorParallel)
        public var pipelineParallel: Int = Schema.defaultValue(\Recipe.training.pipelineParallel)
        public var zeroStage: Int = Schema.defaultValue(\Recipe.training.zeroStage)
        public var recompute: Recompute = Schema.defaultValue(\Recipe.training.recompute)
        /// Dropout probability after the embeddings, on attention weights and on each block's two outputs (a
        /// training setting, not part of the shape).
        public var dropout: Double = 0
        public var seed = 0
        /// The number format of matrix products' inputs: fp32, or bf16 with fp32 accumulation (master weights,
        /// moments and checkpoints are fp32 either way).
        public var precision: Precision = Schema.defaultValue(\Recipe.training.precision)

        /// The optional keys default to the schema's defaults.
        public init(steps: Int = 0, batchSize: Int = 0, seqLen: Int = 0, microBatch: Int = 0, gradAccum: Int = 0,
                    devices: Int = 0, tensorParallel: Int = Schema.defaultValue(\Recipe.training.tensorParallel),
                    pipelineParallel: Int = Schema.defaultValue(\Recipe.training.pipelineParallel),
                    zeroStage: Int = Schema.defaultValue(\Recipe.training.zeroStage),
                    recompute: Recompute = Schema.defaultValue(\Recipe.training.recompute), dropout: Double = 0,
                    seed: Int = 0, precision: Precision = Schema.defaultValue(\Recipe.training.precision)) {
            self.steps = steps
            self.batchSize = batchSize
            self.seqLen = seqLen
            self.microBatch = microBatch
            self.gradAccum = gradAccum
            self.devices = devices
            self.tensorParallel = tensorParallel
            self.pipelineParallel = pipelineParallel
            self.zeroStage = zeroStage
            self.recompute = recompute
            self.dropout = dropout
            self.seed = seed
            self.precision = precision
        }

        /// Data-parallel ranks d = devices / (tensor_parallel × pipeline_parallel) (the validator checks that
        /// the division is exact).
        public var dataParallel: Int { devices / max(1, tensorParallel * pipelineParallel) }
    }

    public struct Eval: Equatable, Sendable {
        public var interval = 0
        public var iters = 0

        public init(interval: Int = 0, iters: Int = 0) {
            self.interval = interval
            self.iters = iters
        }
    }

    public struct Checkpoint: Equatable, Sendable {
        public var dir = ""
        public var interval = 0
        public var keep = 0
        /// Whether an absolute `dir` outside the run directory is intended.
        public var allowOutside: Bool = Schema.defaultValue(\Recipe.checkpoint.allowOutside)

        public init(dir: String = "", interval: Int = 0, keep: Int = 0,
                    allowOutside: Bool = Schema.defaultValue(\Recipe.checkpoint.allowOutside)) {
            self.dir = dir
            self.interval = interval
            self.keep = keep
            self.allowOutside = allowOutside
        }
    }

    public struct Logging: Equatable, Sendable {
        public var interval = 0
        /// Steps between health lines; -1: `interval`, 0: none.
        public var healthInterval: Int = Schema.defaultValue(\Recipe.logging.healthInterval)

        public init(interval: Int = 0, healthInterval: Int = Schema.defaultValue(\Recipe.logging.healthInterval)) {
            self.interval = interval
            self.healthInterval = healthInterval
        }

        /// Steps between health lines, or nil when there are none.
        public var effectiveHealthInterval: Int? {
            healthInterval < 0 ? interval : healthInterval == 0 ? nil : healthInterval
        }
    }

    /// The device a plan was made for: its memory, its peak rate and the share of it a run achieves.
    public struct Hardware: Equatable, Sendable {
        public var name = ""
        public var deviceMemory = 0
        public var deviceFlops: Double = 0
        public var mfu: Double = 0

        public init(name: String = "", deviceMemory: Int = 0, deviceFlops: Double = 0, mfu: Double = 0) {
            self.name = name
            self.deviceMemory = deviceMemory
            self.deviceFlops = deviceFlops
            self.mfu = mfu
        }
    }

    /// Loss-spike detection and what to do about a spike (see `Schema` for each key's meaning and source).
    public struct Stability: Equatable, Sendable {
        public enum Action: String, Equatable, Sendable, CaseIterable {
            case stop, skip, rollback
        }
        // Every key has a default: the schema's.
        public var action: Action = Schema.defaultValue(\Recipe.stability!.action)
        public var window: Int = Schema.defaultValue(\Recipe.stability!.window)
        public var lossSigmas: Double = Schema.defaultValue(\Recipe.stability!.lossSigmas)
        public var gradNormFactor: Double = Schema.defaultValue(\Recipe.stability!.gradNormFactor)
        public var snapshotInterval: Int = Schema.defaultValue(\Recipe.stability!.snapshotInterval)
        public var lrFactor: Double = Schema.defaultValue(\Recipe.stability!.lrFactor)
        public var lrFactorSteps: Int = Schema.defaultValue(\Recipe.stability!.lrFactorSteps)
        public var maxRecoveries: Int = Schema.defaultValue(\Recipe.stability!.maxRecoveries)

        public init() {}

        /// What a run without a [stability] section does: stop on a non-finite loss or gradient norm only.
        public static let nonFiniteOnly: Stability = {
            var s = Stability()
            s.lossSigmas = 0
            return s
        }()
    }

    /// The model shape (the same value as `model`; kept for callers that count parameters and FLOPs).
    public var shape: ModelShape { model }

    /// Tokens a step trains on: batch_size sequences of training.seq_len.
    public var batchTokens: Int { training.batchSize * training.seqLen }

    /// Tokens the whole run trains on (a Double: steps × batch can pass 2^63 in a recipe that check refuses).
    public var trainingTokens: Double { Double(training.steps) * Double(batchTokens) }
}
