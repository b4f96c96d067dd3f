import GPTShape
import Planner

/// A training run, completely: what the planner decided, the model, the data, the optimizer, the schedule, the
/// batch, evaluation, checkpoints and logging. Nothing a run needs is implicit. `Schema.fields` describes every
/// key; the loader, the writer and docs/recipe-reference.md are all driven by it.
public struct Recipe: Equatable, Sendable {
    public var schemaVersion: Int = Schema.version
    public var plan = Plan()
    public var model = Model()
    public var data = Data()
    public var optimizer = Optimizer()
    public var schedule = Schedule()
    public var training = Training()
    public var eval = Eval()
    public var checkpoint = Checkpoint()
    public var logging = Logging()

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

    public struct Model: Equatable, Sendable {
        public var nLayer = 0
        public var nHead = 0
        public var dModel = 0
        public var dFF = 0
        public var seqLen = 0
        public var vocabSize = 0
        public var dropout: Double = 0
        public var bias = false

        public init(nLayer: Int = 0, nHead: Int = 0, dModel: Int = 0, dFF: Int = 0, seqLen: Int = 0, vocabSize: Int = 0, dropout: Double = 0, bias: Bool = false) {
            self.nLayer = nLayer
            self.nHead = nHead
            self.dModel = dModel
            self.dFF = dFF
            self.seqLen = seqLen
            self.vocabSize = vocabSize
            self.dropout = dropout
            self.bias = bias
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

    public struct Training: Equatable, Sendable {
        public var steps = 0
        public var batchSize = 0
        public var seqLen = 0
        public var microBatch = 0
        public var gradAccum = 0
        public var devices = 0
        public var seed = 0

        public init(steps: Int = 0, batchSize: Int = 0, seqLen: Int = 0, microBatch: Int = 0, gradAccum: Int = 0, devices: Int = 0, seed: Int = 0) {
            self.steps = steps
            self.batchSize = batchSize
            self.seqLen = seqLen
            self.microBatch = microBatch
            self.gradAccum = gradAccum
            self.devices = devices
            self.seed = seed
        }
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

        public init(dir: String = "", interval: Int = 0, keep: Int = 0) {
            self.dir = dir
            self.interval = interval
            self.keep = keep
        }
    }

    public struct Logging: Equatable, Sendable {
        public var interval = 0

        public init(interval: Int = 0) {
            self.interval = interval
        }
    }

    /// The model shape `[model]` describes, in the planner's terms (for counting parameters and FLOPs).
    public var shape: ModelShape {
        ModelShape(nLayer: model.nLayer, nHead: model.nHead, dModel: model.dModel, dFF: model.dFF,
                              seqLen: model.seqLen, vocabSize: model.vocabSize, bias: model.bias)
    }

    /// Tokens a step trains on: batch_size sequences of training.seq_len.
    public var batchTokens: Int { training.batchSize * training.seqLen }

    /// Tokens the whole run trains on (a Double: steps × batch can pass 2^63 in a recipe that check refuses).
    public var trainingTokens: Double { Double(training.steps) * Double(batchTokens) }
}
