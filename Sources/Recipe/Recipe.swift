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
    }

    public struct Data: Equatable, Sendable {
        public var path = ""
        public var tokenizer = ""
        public var valFraction: Double = 0
    }

    public struct Optimizer: Equatable, Sendable {
        public var lr: Double = 0
        public var minLR: Double = 0
        public var beta1: Double = 0
        public var beta2: Double = 0
        public var eps: Double = 0
        public var weightDecay: Double = 0
        public var gradClip: Double = 0
    }

    public enum Decay: String, Equatable, Sendable, CaseIterable {
        case cosine, linear, constant
    }

    public struct Schedule: Equatable, Sendable {
        public var warmupSteps = 0
        public var decay: Decay = .cosine
    }

    public struct Training: Equatable, Sendable {
        public var steps = 0
        public var batchSize = 0
        public var seqLen = 0
        public var microBatch = 0
        public var gradAccum = 0
        public var devices = 0
        public var seed = 0
    }

    public struct Eval: Equatable, Sendable {
        public var interval = 0
        public var iters = 0
    }

    public struct Checkpoint: Equatable, Sendable {
        public var dir = ""
        public var interval = 0
        public var keep = 0
    }

    public struct Logging: Equatable, Sendable {
        public var interval = 0
    }

    /// The model shape `[model]` describes, in the planner's terms (for counting parameters and FLOPs).
    public var shape: ModelShape {
        ModelShape(nLayer: model.nLayer, nHead: model.nHead, dModel: model.dModel, dFF: model.dFF,
                              seqLen: model.seqLen, vocabSize: model.vocabSize, bias: model.bias)
    }

    /// Tokens a step trains on: batch_size sequences of training.seq_len.
    public var batchTokens: Int { training.batchSize * training.seqLen }

    /// Tokens the whole run trains on.
    public var trainingTokens: Int { training.steps * batchTokens }
}
