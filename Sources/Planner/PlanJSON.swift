import Foundation
import GPTShape

/// A plan as `gpt-plan --json` prints it: one object with exactly the documented keys (docs/planner.md), sorted.
/// Counts are integers, quantities doubles; `cost` is `null` without a price. A non-finite number is never written as
/// something that is not JSON: encoding throws `EncodingError.invalidValue` naming the key (`encoded()`).
public struct PlanJSON: Codable, Equatable, Sendable {
    public struct Model: Codable, Equatable, Sendable {
        public var nLayer: Int
        public var nHead: Int
        public var dModel: Int
        public var dFF: Int
        public var seqLen: Int
        public var vocabSize: Int

        enum CodingKeys: String, CodingKey {
            case nLayer = "n_layer", nHead = "n_head", dModel = "d_model", dFF = "d_ff", seqLen = "seq_len"
            case vocabSize = "vocab_size"
        }
    }

    public struct Hardware: Codable, Equatable, Sendable {
        public var name: String
        public var memoryBytes: Double
        public var peakFlops: Double
        public var devices: Int
        /// The matrix products' input format.
        public var precision: Precision

        enum CodingKeys: String, CodingKey {
            case name, memoryBytes = "memory_bytes", peakFlops = "peak_flops", devices, precision
        }
    }

    public struct Layout: Codable, Equatable, Sendable {
        public var dataParallel: Int
        public var tensorParallel: Int
        public var pipelineParallel: Int
        public var zeroStage: Int
        public var recompute: Recompute
        public var microBatch: Int
        public var gradAccum: Int
        /// Virtual pipeline stages: in `gpt-plan estimate --json` (EstimateJSON), absent from a plan's JSON.
        public var interleave: Int?
        /// Context-parallel ranks: in `gpt-plan estimate --json` when above 1, absent otherwise.
        public var contextParallel: Int?

        enum CodingKeys: String, CodingKey {
            case dataParallel = "data_parallel", tensorParallel = "tensor_parallel"
            case pipelineParallel = "pipeline_parallel", zeroStage = "zero_stage", recompute
            case microBatch = "micro_batch", gradAccum = "grad_accum", interleave, contextParallel = "context_parallel"
        }
    }

    /// Bytes per device.
    public struct Memory: Codable, Equatable, Sendable {
        public var weights: Double
        public var gradients: Double
        public var optimizer: Double
        public var activations: Double
        public var other: Double
        public var total: Double
    }

    public var flops: Double
    public var fit: String
    public var params: Int
    public var nonEmbeddingParams: Int
    public var tokens: Double
    public var tokensPerParam: Double
    public var predictedLoss: Double
    public var model: Model
    public var flopsPerToken: Double
    public var batchTokens: Int
    public var batchSequences: Int
    public var learningRate: Double
    public var minLearningRate: Double
    public var warmupSteps: Int
    public var steps: Int
    public var memoryBytes: Double
    /// The plan's rationale, one sentence a decision (the text renderer's, given by the caller).
    public var rationale: [String]
    public var hardware: Hardware
    public var layout: Layout
    public var memoryPerDevice: Memory
    public var timeSeconds: Double
    public var deviceHours: Double
    /// nil (written as `null`) without a price per device hour.
    public var cost: Double?

    enum CodingKeys: String, CodingKey {
        case flops, fit, params, nonEmbeddingParams = "non_embedding_params", tokens, tokensPerParam = "tokens_per_param"
        case predictedLoss = "predicted_loss", model, flopsPerToken = "flops_per_token", batchTokens = "batch_tokens"
        case batchSequences = "batch_sequences", learningRate = "learning_rate", minLearningRate = "min_learning_rate"
        case warmupSteps = "warmup_steps", steps, memoryBytes = "memory_bytes", rationale, hardware, layout
        case memoryPerDevice = "memory_per_device", timeSeconds = "time_seconds", deviceHours = "device_hours", cost
    }

    /// `plan` with its `rationale` (rendered by the caller: the planner does not write prose for the terminal).
    public init(_ plan: Plan, rationale: [String]) {
        let e = plan.execution, l = plan.layout, m = plan.memory, s = plan.shape
        flops = plan.flops
        fit = plan.fit
        params = plan.params
        nonEmbeddingParams = plan.nonEmbeddingParams
        tokens = plan.tokens
        tokensPerParam = plan.tokensPerParam
        predictedLoss = plan.predictedLoss
        model = Model(nLayer: s.nLayer, nHead: s.nHead, dModel: s.dModel, dFF: s.dFF, seqLen: s.seqLen,
                      vocabSize: s.vocabSize)
        flopsPerToken = plan.flopsPerToken
        batchTokens = plan.batchTokens
        batchSequences = plan.batchSequences
        learningRate = plan.learningRate
        minLearningRate = plan.minLearningRate
        warmupSteps = plan.warmupSteps
        steps = plan.steps
        memoryBytes = plan.memoryBytes
        self.rationale = rationale
        hardware = Hardware(name: e.hardware.name, memoryBytes: e.hardware.memoryBytes, peakFlops: e.hardware.peakFlops,
                            devices: l.devices, precision: e.hardware.products.precision)
        layout = Layout(dataParallel: l.dataParallel, tensorParallel: l.tensorParallel,
                        pipelineParallel: l.pipelineParallel, zeroStage: l.zeroStage, recompute: l.recompute,
                        microBatch: l.microBatch, gradAccum: l.gradAccum)
        memoryPerDevice = Memory(weights: m.weights, gradients: m.gradients, optimizer: m.optimizer,
                                 activations: m.activations, other: m.other, total: m.total)
        timeSeconds = plan.estimatedSeconds
        deviceHours = e.deviceHours
        cost = e.cost
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(flops, forKey: .flops)
        try c.encode(fit, forKey: .fit)
        try c.encode(params, forKey: .params)
        try c.encode(nonEmbeddingParams, forKey: .nonEmbeddingParams)
        try c.encode(tokens, forKey: .tokens)
        try c.encode(tokensPerParam, forKey: .tokensPerParam)
        try c.encode(predictedLoss, forKey: .predictedLoss)
        try c.encode(model, forKey: .model)
        try c.encode(flopsPerToken, forKey: .flopsPerToken)
        try c.encode(batchTokens, forKey: .batchTokens)
        try c.encode(batchSequences, forKey: .batchSequences)
        try c.encode(learningRate, forKey: .learningRate)
        try c.encode(minLearningRate, forKey: .minLearningRate)
        try c.encode(warmupSteps, forKey: .warmupSteps)
        try c.encode(steps, forKey: .steps)
        try c.encode(memoryBytes, forKey: .memoryBytes)
        try c.encode(rationale, forKey: .rationale)
        try c.encode(hardware, forKey: .hardware)
        try c.encode(layout, forKey: .layout)
        try c.encode(memoryPerDevice, forKey: .memoryPerDevice)
        try c.encode(timeSeconds, forKey: .timeSeconds)
        try c.encode(deviceHours, forKey: .deviceHours)
        // The key is always there: `null` without a price, as documented.
        if let cost { try c.encode(cost, forKey: .cost) } else { try c.encodeNil(forKey: .cost) }
    }

    /// The object as pretty-printed JSON with sorted keys. Throws `EncodingError.invalidValue` (whose coding path
    /// names the key) for a NaN or infinite number, which JSON cannot hold.
    public func encoded() throws -> Data {
        try Self.encoder.encode(self)
    }

    /// The encoder of every plan JSON: sorted keys, pretty-printed, non-finite numbers refused.
    public static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .throw
        return encoder
    }
}

/// One row of `gpt-plan --compare-rules --json`: a batch rule (`kind` "batch", with the batch it gives) or a
/// learning-rate rule (`kind` "learning_rate"), as the planner applies it to the request.
public struct RuleComparisonJSON: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable {
        case batch
        case learningRate = "learning_rate"
    }

    public var kind: Kind
    /// The rule's command-line name, or "given".
    public var rule: String
    public var formula: String
    /// Batch rules only: the rule's batch in tokens before rounding to whole sequences.
    public var targetTokens: Double?
    /// Batch rules only.
    public var batchTokens: Int?
    /// Batch rules only.
    public var steps: Int?
    public var learningRate: Double

    enum CodingKeys: String, CodingKey {
        case kind, rule, formula, targetTokens = "target_tokens", batchTokens = "batch_tokens", steps
        case learningRate = "learning_rate"
    }

    /// The batch rule `rule` (named `name`) as applied in `plan`.
    public init(batchRule name: String, _ rule: BatchRule, plan: Plan) {
        kind = .batch
        self.rule = name
        formula = rule.formula
        targetTokens = plan.batch.targetTokens
        batchTokens = plan.batchTokens
        steps = plan.steps
        learningRate = plan.learningRate
    }

    /// The learning-rate rule `rule` (named `name`) as applied in `plan`.
    public init(learningRateRule name: String, _ rule: LearningRateRule, plan: Plan) {
        kind = .learningRate
        self.rule = name
        formula = rule.formula
        learningRate = plan.learningRate
    }
}
