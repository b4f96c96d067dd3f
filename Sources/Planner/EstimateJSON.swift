import Foundation
import GPTShape

/// An estimate as `gpt-plan estimate --json` prints it: one object with exactly the documented keys
/// (docs/planner.md), sorted. Counts are integers, quantities doubles; `mfu_assumed` is `null` when the calibrated
/// step-time model times the compute (and `step_time_model` is `null` when it does not), `training` is `null`
/// without training tokens and its `cost` `null` without a price. A non-finite number is never written as something
/// that is not JSON: encoding throws `EncodingError.invalidValue` naming the key (`encoded()`), as `PlanJSON` does.
public struct EstimateJSON: Codable, Equatable, Sendable {
    public struct Parameters: Codable, Equatable, Sendable {
        public var tokenEmbedding: Int
        public var positionEmbedding: Int
        public var outputHead: Int
        public var nonEmbedding: Int
        public var matmul: Int
        public var total: Int

        enum CodingKeys: String, CodingKey {
            case tokenEmbedding = "token_embedding", positionEmbedding = "position_embedding"
            case outputHead = "output_head", nonEmbedding = "non_embedding", matmul, total
        }
    }

    public struct Model: Codable, Equatable, Sendable {
        public var family: ModelFamily
        public var nLayer: Int
        public var nHead: Int
        public var nKVHead: Int
        public var dModel: Int
        public var dFF: Int
        public var seqLen: Int
        public var vocabSize: Int
        public var bias: Bool
        public var tieEmbeddings: Bool

        enum CodingKeys: String, CodingKey {
            case family, nLayer = "n_layer", nHead = "n_head", nKVHead = "n_kv_head", dModel = "d_model", dFF = "d_ff"
            case seqLen = "seq_len", vocabSize = "vocab_size", bias, tieEmbeddings = "tie_embeddings"
        }
    }

    public struct FlopsPerToken: Codable, Equatable, Sendable {
        /// Model FLOPs (no recomputation).
        public var model: Double
        /// FLOPs the hardware executes, recomputation included.
        public var hardware: Double
    }

    public struct Hardware: Codable, Equatable, Sendable {
        public var name: String
        public var memoryBytes: Double
        public var peakFlops: Double
        public var devices: Int

        enum CodingKeys: String, CodingKey {
            case name, memoryBytes = "memory_bytes", peakFlops = "peak_flops", devices
        }
    }

    public struct Conventions: Codable, Equatable, Sendable {
        public var weightBytes: Double
        public var gradientBytes: Double
        public var optimizerBytes: Double

        enum CodingKeys: String, CodingKey {
            case weightBytes = "weight_bytes", gradientBytes = "gradient_bytes", optimizerBytes = "optimizer_bytes"
        }
    }

    /// Seconds of a step by cause (`StepTime`).
    public struct StepByCause: Codable, Equatable, Sendable {
        public var compute: Double
        public var bubble: Double
        public var dataParallel: Double
        public var tensorParallel: Double
        public var pipeline: Double
        /// Present when the layout has context parallelism.
        public var contextParallel: Double?

        enum CodingKeys: String, CodingKey {
            case compute, bubble, dataParallel = "data_parallel", tensorParallel = "tensor_parallel", pipeline
            case contextParallel = "context_parallel"
        }
    }

    public struct Throughput: Codable, Equatable, Sendable {
        public var tokensPerSecondPerDevice: Double
        public var modelFlopsUtilization: Double
        public var hardwareFlopsUtilization: Double

        enum CodingKeys: String, CodingKey {
            case tokensPerSecondPerDevice = "tokens_per_second_per_device"
            case modelFlopsUtilization = "model_flops_utilization"
            case hardwareFlopsUtilization = "hardware_flops_utilization"
        }
    }

    /// The calibrated compute model's constants (`StepTimeModel`).
    public struct TimeModel: Codable, Equatable, Sendable {
        public var matmulEfficiency: Double
        public var widthHalf: Double
        public var tokensHalf: Double
        public var attentionRelative: Double

        enum CodingKeys: String, CodingKey {
            case matmulEfficiency = "matmul_efficiency", widthHalf = "width_half", tokensHalf = "tokens_half"
            case attentionRelative = "attention_relative"
        }
    }

    /// The run over the training tokens asked for.
    public struct Training: Codable, Equatable, Sendable {
        public var tokens: Double
        public var steps: Int
        public var seconds: Double
        public var deviceHours: Double
        /// nil (written as `null`) without a price per device hour.
        public var cost: Double?

        enum CodingKeys: String, CodingKey {
            case tokens, steps, seconds, deviceHours = "device_hours", cost
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(tokens, forKey: .tokens)
            try c.encode(steps, forKey: .steps)
            try c.encode(seconds, forKey: .seconds)
            try c.encode(deviceHours, forKey: .deviceHours)
            if let cost { try c.encode(cost, forKey: .cost) } else { try c.encodeNil(forKey: .cost) }
        }
    }

    /// The total parameter count (issue 23's `params`).
    public var params: Int
    public var parameters: Parameters
    public var model: Model
    public var flopsPerToken: FlopsPerToken
    public var hardware: Hardware
    public var layout: PlanJSON.Layout
    public var batchSequences: Int
    public var batchTokens: Double
    public var memoryConventions: Conventions
    /// Bytes per device.
    public var memoryPerDevice: PlanJSON.Memory
    public var stepSeconds: Double
    public var stepSecondsByCause: StepByCause
    public var throughput: Throughput
    /// The single MFU of the compute term; nil (`null`) when the calibrated model times it.
    public var mfuAssumed: Double?
    /// nil (`null`) when a single MFU times the compute.
    public var stepTimeModel: TimeModel?
    public var layoutsEvaluated: Int
    /// nil (`null`) without training tokens.
    public var training: Training?

    enum CodingKeys: String, CodingKey {
        case params, parameters, model, flopsPerToken = "flops_per_token", hardware, layout
        case batchSequences = "batch_sequences", batchTokens = "batch_tokens", memoryConventions = "memory_conventions"
        case memoryPerDevice = "memory_per_device", stepSeconds = "step_seconds"
        case stepSecondsByCause = "step_seconds_by_cause", throughput, mfuAssumed = "mfu_assumed"
        case stepTimeModel = "step_time_model", layoutsEvaluated = "layouts_evaluated", training
    }

    public init(_ e: Estimate) {
        let s = e.shape, c = s.parameterCount, l = e.layout, m = e.chosen.memory, step = e.chosen.step
        let h = e.request.hardware, conventions = e.request.conventions
        params = c.total
        parameters = Parameters(tokenEmbedding: c.tokenEmbedding, positionEmbedding: c.positionEmbedding,
                                outputHead: c.outputHead, nonEmbedding: c.nonEmbedding, matmul: c.matmul,
                                total: c.total)
        model = Model(family: s.family, nLayer: s.nLayer, nHead: s.nHead, nKVHead: s.nKVHead, dModel: s.dModel,
                      dFF: s.dFF, seqLen: s.seqLen, vocabSize: s.vocabSize, bias: s.bias,
                      tieEmbeddings: s.tieEmbeddings)
        flopsPerToken = FlopsPerToken(model: e.modelFlopsPerToken, hardware: e.hardwareFlopsPerToken)
        hardware = Hardware(name: h.name, memoryBytes: h.memoryBytes, peakFlops: h.peakFlops, devices: l.devices)
        layout = PlanJSON.Layout(dataParallel: l.dataParallel, tensorParallel: l.tensorParallel,
                        pipelineParallel: l.pipelineParallel, zeroStage: l.zeroStage, recompute: l.recompute,
                        microBatch: l.microBatch, gradAccum: l.gradAccum, interleave: l.interleave,
                        contextParallel: l.contextParallel > 1 ? l.contextParallel : nil)
        batchSequences = l.batchSequences
        batchTokens = e.tokensPerStep
        memoryConventions = Conventions(weightBytes: conventions.weightBytes, gradientBytes: conventions.gradientBytes,
                                        optimizerBytes: conventions.optimizerBytes)
        memoryPerDevice = PlanJSON.Memory(weights: m.weights, gradients: m.gradients, optimizer: m.optimizer,
                                          activations: m.activations, other: m.other, total: m.total)
        stepSeconds = e.stepSeconds
        stepSecondsByCause = StepByCause(compute: step.compute, bubble: step.bubble, dataParallel: step.dataParallel,
                                         tensorParallel: step.tensorParallel, pipeline: step.pipeline,
                                         contextParallel: l.contextParallel > 1 ? step.contextParallel : nil)
        throughput = Throughput(tokensPerSecondPerDevice: e.tokensPerSecondPerDevice,
                                modelFlopsUtilization: e.modelFlopsUtilization,
                                hardwareFlopsUtilization: e.hardwareFlopsUtilization)
        mfuAssumed = e.timeModel == nil ? e.mfuAssumed : nil
        stepTimeModel = e.timeModel.map {
            TimeModel(matmulEfficiency: $0.matmulEfficiency, widthHalf: $0.widthHalf, tokensHalf: $0.tokensHalf,
                      attentionRelative: $0.attentionRelative)
        }
        layoutsEvaluated = e.layoutsTried
        if let tokens = e.request.trainingTokens, let steps = e.steps, let seconds = e.trainingSeconds,
           let hours = e.deviceHours {
            training = Training(tokens: tokens, steps: steps, seconds: seconds, deviceHours: hours, cost: e.cost)
        } else {
            training = nil
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(params, forKey: .params)
        try c.encode(parameters, forKey: .parameters)
        try c.encode(model, forKey: .model)
        try c.encode(flopsPerToken, forKey: .flopsPerToken)
        try c.encode(hardware, forKey: .hardware)
        try c.encode(layout, forKey: .layout)
        try c.encode(batchSequences, forKey: .batchSequences)
        try c.encode(batchTokens, forKey: .batchTokens)
        try c.encode(memoryConventions, forKey: .memoryConventions)
        try c.encode(memoryPerDevice, forKey: .memoryPerDevice)
        try c.encode(stepSeconds, forKey: .stepSeconds)
        try c.encode(stepSecondsByCause, forKey: .stepSecondsByCause)
        try c.encode(throughput, forKey: .throughput)
        // These keys are always there: `null` when they do not apply, as documented.
        if let mfuAssumed { try c.encode(mfuAssumed, forKey: .mfuAssumed) } else { try c.encodeNil(forKey: .mfuAssumed) }
        if let stepTimeModel { try c.encode(stepTimeModel, forKey: .stepTimeModel) } else {
            try c.encodeNil(forKey: .stepTimeModel)
        }
        try c.encode(layoutsEvaluated, forKey: .layoutsEvaluated)
        if let training { try c.encode(training, forKey: .training) } else { try c.encodeNil(forKey: .training) }
    }

    /// The object as pretty-printed JSON with sorted keys (`PlanJSON.encoder`). Throws `EncodingError.invalidValue`
    /// (whose coding path names the key) for a NaN or infinite number, which JSON cannot hold.
    public func encoded() throws -> Data {
        try PlanJSON.encoder.encode(self)
    }
}
