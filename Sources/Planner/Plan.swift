import GPTShape
import Foundation

/// What the user asks the planner for.
public struct PlanRequest: Sendable {
    public enum Target: Sendable, Equatable {
        /// A training budget in FLOPs: find N and D.
        case flops(Double)
        /// A model size: find the budget for which it is compute-optimal, and D.
        case params(Double)
        /// A token count: find the budget for which it is compute-optimal, and N.
        case tokens(Double)
    }

    public var target: Target
    public var rule: AllocationRule = .fit(.epoch)
    /// Context length; nil chooses one from the batch size.
    public var seqLen: Int?
    /// Tokenizer vocabulary; the model's embedding is padded up to a multiple of 64.
    public var vocabSize: Int = 50257
    public var bias: Bool = false
    public var batchRule: BatchRule = .deepseek
    public var lrRule: LearningRateRule = .deepseek
    public var devices: Int = 1
    public var deviceMemoryBytes: Double
    public var deviceFlops: Double
    /// Where the device numbers come from, for the rationale ("this machine: ...").
    public var deviceDescription: String
    /// Model FLOPs utilisation assumed for the time estimate.
    public var mfu: Double = 0.4
    /// Share of device memory the training state may use; the rest is left to the runtime and data.
    public var usableMemoryFraction: Double = 0.9

    public init(target: Target, deviceMemoryBytes: Double, deviceFlops: Double, deviceDescription: String) {
        self.target = target
        self.deviceMemoryBytes = deviceMemoryBytes
        self.deviceFlops = deviceFlops
        self.deviceDescription = deviceDescription
    }
}

/// A compute-optimal run: every number, and for each the rule that produced it.
public struct Plan: Sendable {
    public var flops: Double
    public var fit: String
    public var shape: ModelShape
    public var params: Int
    public var nonEmbeddingParams: Int
    public var tokens: Double
    public var predictedLoss: Double
    /// 6N' + 12·n_layer·d_model·T (N' the parameters in matrix products): the exact count used for time and MFU.
    public var flopsPerToken: Double
    public var flopsPerTokenSixN: Double
    public var flopsPerTokenChinchilla: Double
    public var batchTokens: Int
    public var batchSequences: Int
    public var learningRate: Double
    public var minLearningRate: Double
    public var warmupSteps: Int
    public var steps: Int
    public var microBatch: Int
    public var gradAccum: Int
    public var devices: Int
    public var memoryBytes: Double
    public var estimatedSeconds: Double
    public var rows: [Row]
    public var rationale: [String]

    public var tokensPerParam: Double { tokens / Double(params) }

    /// One line of the plan table: what, how much, and by which rule.
    public struct Row: Sendable {
        public var key: String
        public var value: String
        public var rule: String
    }

    /// The rule that produced the value of `key`, for comments in the recipe.
    public func rule(for key: String) -> String? { rows.first { $0.key == key }?.rule }
}

/// The minimum learning rate as a fraction of the peak: the standard recipe decays to 10%.
public let minLRFraction = 0.1
/// Fewest optimizer steps a plan may have; the batch is capped to keep at least this many.
public let minimumSteps = 100

extension Plan {
    /// Plans the run `request` asks for.
    public static func make(_ request: PlanRequest) throws -> Plan {
        try validate(request)
        var rows: [Plan.Row] = []
        var why: [String] = []
        let rule = request.rule

        // 1. Budget and the ideal split between parameters and tokens.
        let budget: Double, idealN: Double, idealD: Double
        switch request.target {
        case .flops(let c):
            budget = c
            (idealN, idealD) = rule.allocation(flops: c)
            why.append("Budget C = \(sig(c, 4)) FLOPs (given).")
        case .params(let n):
            budget = rule.flops(forParams: n)
            (idealN, idealD) = (n, budget / (6 * n))
            why.append("N = \(si(n)) given: the budget for which it is compute-optimal under the \(rule.name) rule is "
                       + "C = \(sig(budget, 4)) FLOPs.")
        case .tokens(let d):
            budget = rule.flops(forTokens: d)
            (idealN, idealD) = (budget / (6 * d), d)
            why.append("D = \(si(d)) tokens given: the budget for which it is compute-optimal under the \(rule.name) "
                       + "rule is C = \(sig(budget, 4)) FLOPs.")
        }
        why.append("Allocation (\(rule.name)): \(rule.description); ideal N* = \(si(idealN, 4)), D* = \(si(idealD, 4)) "
                   + "(\(sig(idealD / idealN, 3)) tokens per parameter).")
        let lossFit = rule.lossFit

        // 2. Batch size in tokens.
        let batchTarget: Double, batchRuleText: String
        switch request.batchRule {
        case .deepseek:
            batchTarget = BatchRule.deepseekTokens(flops: budget)
            batchRuleText = "DeepSeek LLM 2024: B = 0.2920·C^0.3271 tokens, C = \(sig(budget, 3)) (the declared "
                + "6ND budget; DeepSeek count C as non-embedding FLOPs per token × D, which is a little smaller)"
        case .kaplan:
            let l = lossFit.loss(params: idealN, tokens: idealD)
            batchTarget = BatchRule.kaplanCriticalTokens(loss: l)
            batchRuleText = "Kaplan et al. 2020: critical batch B = 2.1e8 / L^(1/0.21) tokens at the predicted loss "
                + "L = \(sig(l, 4))"
        case .fixed(let tokens):
            batchTarget = tokens
            batchRuleText = "given on the command line"
        }

        // 3. Context length: as long as GPT-2's 1024, unless attention would add more than 25% to the 6N FLOPs
        // (12·L·d·T ≤ 0.25·72·L·d², i.e. T ≤ 1.5·d, for the width a 1024 context gives) or a batch would hold
        // fewer than 16 sequences.
        let paddedVocab = (request.vocabSize + 63) / 64 * 64
        let seqLen: Int, seqRule: String
        if let given = request.seqLen {
            seqLen = given
            seqRule = "given (--seq-len)"
        } else {
            let width = try ShapeSearch.shape(targetParams: idealN, seqLen: 1024, vocabSize: paddedVocab,
                                              bias: request.bias, rule: rule).shape.dModel
            let cap = min(1024, 1.5 * Double(width), batchTarget / 16)
            var t = 32
            while Double(t * 2) <= cap { t *= 2 }
            seqLen = t
            seqRule = t == 1024 ? "1024, GPT-2's context" : "largest power of two ≤ min(1024, 1.5·d_model, B/16): "
                + "attention adds ≤ 25% to 6N, a batch holds ≥ 16 sequences"
        }

        // 4. A concrete shape, and N counted from it.
        let choice = try ShapeSearch.shape(targetParams: idealN, seqLen: seqLen, vocabSize: paddedVocab,
                                           bias: request.bias, rule: rule)
        let shape = choice.shape
        let count = shape.parameterCount
        let n = Double(count.total)
        why.append("Shape: \(shape.nLayer) layers × \(shape.nHead) heads × d_model \(shape.dModel), d_ff \(shape.dFF), "
                   + "context \(seqLen), vocabulary \(paddedVocab)\(paddedVocab != request.vocabSize ? " (\(request.vocabSize) padded to a multiple of 64)" : ""); "
                   + choice.reason + ".")
        why.append("N = \(count.total) counted from the shape: token embedding \(count.tokenEmbedding) (shared with the "
                   + "output head, counted once) + position embedding \(count.positionEmbedding) + blocks and final "
                   + "LayerNorm \(count.nonEmbedding)\(request.bias ? " (with biases)" : " (no biases)"); "
                   + "\(sig(100 * (n / idealN - 1), 2))% from N*.")

        // 5. Tokens: spend the budget exactly with the real N (or keep the D the user gave).
        let tokens: Double, flops: Double
        if case .tokens(let d) = request.target {
            tokens = d
            flops = 6 * n * d
            why.append("D = \(si(d)) as given; the budget becomes 6·N·D = \(sig(flops, 4)) FLOPs with the real N.")
        } else {
            flops = budget
            tokens = (budget / (6 * n)).rounded()
            why.append("D = C/(6N) = \(si(tokens, 4)) tokens, so that 6·N·D spends the budget exactly "
                       + "(\(sig(tokens / n, 3)) tokens per parameter).")
        }

        // 6. FLOPs per token, three ways.
        let withAttention = shape.flopsPerTokenWithAttention()
        let sixN = shape.flopsPerTokenSixN
        let appendixF = shape.flopsPerTokenChinchilla()
        func gap(_ x: Double) -> String {
            let p = 100 * (sixN / x - 1)
            return "\(p >= 0 ? "+" : "")\(sig(p, 2))%"
        }
        why.append("FLOPs per token: 6N = \(sig(sixN, 4)); 6N' + 12·n_layer·d_model·T = \(sig(withAttention, 4)) "
                   + "(N' = \(count.matmul), the parameters in matrix products; nanoGPT's MFU count); Chinchilla "
                   + "appendix F = \(sig(appendixF, 4)). 6N is \(gap(withAttention)) and \(gap(appendixF)) off them.")

        // 7. Batch in whole sequences, at least `minimumSteps` steps, split into micro-batches that fit.
        var batchSequences = max(1, Int((batchTarget / Double(seqLen)).rounded()))
        var batchNote = "\(batchRuleText): \(si(batchTarget, 4)) tokens = \(batchSequences) sequences of \(seqLen)"
        let stepCap = Int(tokens / Double(minimumSteps * seqLen))
        guard stepCap >= request.devices else {
            throw PlanError.invalid("the run trains \(si(tokens)) tokens: fewer than \(minimumSteps) steps of one "
                                    + "\(seqLen)-token sequence per device over \(request.devices) devices; give a larger "
                                    + "budget, fewer --devices or a shorter --seq-len")
        }
        if batchSequences > stepCap {
            batchSequences = stepCap
            batchNote += "; capped at \(stepCap) so the run has at least \(minimumSteps) steps"
        }
        batchSequences = max(batchSequences, request.devices)
        let usable = request.deviceMemoryBytes * request.usableMemoryFraction
        guard shape.trainingMemoryBytes(microBatch: 1) <= usable else {
            throw PlanError.doesNotFit(
                "one sequence needs \(bytes(shape.trainingMemoryBytes(microBatch: 1))) of training state "
                + "(weights, gradients, AdamW moments, activations) but a device has \(bytes(usable)) usable "
                + "(\(Int(request.usableMemoryFraction * 100))% of \(bytes(request.deviceMemoryBytes))); "
                + "give --device-memory, or a smaller --seq-len")
        }
        let perDevice = batchSequences / request.devices
        var lo = 1, hi = perDevice
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if shape.trainingMemoryBytes(microBatch: mid) <= usable { lo = mid } else { hi = mid - 1 }
        }
        // As few accumulation steps as memory allows, and the micro-batch that brings the batch nearest its target;
        // rounded down instead when rounding up would break the step floor.
        let gradAccum = (perDevice + lo - 1) / lo
        var microBatch = min(lo, max(1, Int((Double(perDevice) / Double(gradAccum)).rounded())))
        if microBatch * gradAccum * request.devices > stepCap { microBatch = max(1, perDevice / gradAccum) }
        let exactBatch = microBatch * gradAccum * request.devices
        if exactBatch != batchSequences {
            batchNote += "; rounded to \(exactBatch) so that micro-batch × accumulation × devices is exact"
        }
        batchSequences = exactBatch
        let batchTokens = batchSequences * seqLen
        why.append("Batch: \(batchNote).")
        let memory = shape.trainingMemoryBytes(microBatch: microBatch)
        why.append("Micro-batch \(microBatch) is the largest that fits \(Int(request.usableMemoryFraction * 100))% of "
                   + "\(bytes(request.deviceMemoryBytes)) (needs \(bytes(memory)): 16 bytes a parameter for weights, "
                   + "gradients and AdamW moments, plus gpt-train's activations); \(gradAccum) accumulation step"
                   + "\(gradAccum == 1 ? "" : "s") × \(request.devices) device\(request.devices == 1 ? "" : "s") gives "
                   + "\(microBatch) × \(gradAccum) × \(request.devices) = \(batchSequences) sequences.")

        // 8. Steps.
        let steps = max(1, Int((tokens / Double(batchTokens)).rounded()))
        let trained = Double(steps * batchTokens)
        why.append("Steps = D / batch = \(steps); they train \(si(trained, 4)) tokens, "
                   + "\(sig(100 * (trained / tokens - 1), 2))% from D.")

        // 9. Learning rate.
        let lr: Double, lrText: String
        switch request.lrRule {
        case .deepseek:
            lr = LearningRateRule.deepseekLR(flops: flops)
            lrText = "DeepSeek LLM 2024: η = 0.3118·C^-0.1250 at C = \(sig(flops, 3))"
        case .kaplan:
            lr = LearningRateRule.kaplanLR(nonEmbeddingParams: Double(count.nonEmbedding))
            lrText = "Kaplan et al. 2020 eq. D.1: 0.003239 − 0.0001395·ln(N_non-embedding)"
        case .reference(let refBatch, let refLR, let scaling):
            lr = refLR * pow(Double(batchTokens) / refBatch, scaling.exponent)
            lrText = "\(scaling.rawValue) scaling from the reference \(sig(refLR, 3)) at \(si(refBatch)) tokens: "
                + "\(sig(refLR, 3)) × (\(si(Double(batchTokens)))/\(si(refBatch)))^\(scaling.exponent)"
        case .fixed(let value):
            lr = value
            lrText = "given on the command line"
        }
        guard lr > 0, lr.isFinite else {
            throw PlanError.invalid("the learning-rate rule gives \(sig(lr, 3)) for this run; give --lr")
        }
        let minLR = lr * minLRFraction
        why.append("Peak learning rate \(sig(lr, 3)): \(lrText). Minimum \(sig(minLR, 3)) = 10% of peak, reached by "
                   + "cosine decay at the last step (the standard recipe).")

        // 10. Warmup.
        let warmup = WarmupRule.steps(totalSteps: steps, batchTokens: Double(batchTokens))
        why.append("Warmup \(warmup.steps) steps: \(warmup.reason).")

        // 11. Loss and time.
        let loss = lossFit.loss(params: n, tokens: tokens)
        var lossNote = lossFit.name == rule.name ? "" : " (the fixed-ratio rule has no loss model of its own)"
        if !ChinchillaFit.fittedParams.contains(n) {
            lossNote += "; N is outside the \(si(ChinchillaFit.fittedParams.lowerBound))-\(si(ChinchillaFit.fittedParams.upperBound)) "
                + "parameters of the models the fits were made on, so this is an extrapolation (and the fits describe "
                + "MassiveText with a 32k-token subword vocabulary, not every corpus and tokenizer)"
        }
        why.append("Predicted loss \(sig(loss, 4)) nats/token from the \(lossFit.name) fit at the real N and D\(lossNote).")
        let rate = request.deviceFlops * Double(request.devices) * request.mfu
        let seconds = withAttention * trained / rate
        why.append("Time ≈ \(duration(seconds)): \(sig(withAttention * trained, 3)) FLOPs at \(Int(request.mfu * 100))% "
                   + "MFU of \(request.devices) × \(flopRate(request.deviceFlops)) (\(request.deviceDescription)).")

        let ratio = tokens / n
        rows = [
            .init(key: "flops", value: sig(flops, 4), rule: budgetRule(request.target)),
            .init(key: "params", value: "\(si(n, 4)) (\(count.total))", rule: "counted from the shape (all parameters, tied head once)"),
            .init(key: "non_embedding_params", value: si(Double(count.nonEmbedding), 4), rule: "blocks + final LayerNorm"),
            .init(key: "tokens", value: si(tokens, 4), rule: request.target == .tokens(tokens) ? "given" : "C / (6N)"),
            .init(key: "tokens_per_param", value: sig(ratio, 3), rule: "D / N"),
            .init(key: "predicted_loss", value: sig(loss, 4), rule: "\(lossFit.name) fit L(N, D)"),
            .init(key: "n_layer", value: "\(shape.nLayer)", rule: "shape search: N ≈ N*, d_model/n_layer near \(sig(ShapeSearch.targetAspect(params: idealN), 3))"),
            .init(key: "n_head", value: "\(shape.nHead)", rule: "d_model / head size \(shape.headSize)"),
            .init(key: "d_model", value: "\(shape.dModel)", rule: "shape search"),
            .init(key: "d_ff", value: "\(shape.dFF)", rule: "4 · d_model"),
            .init(key: "seq_len", value: "\(seqLen)", rule: seqRule),
            .init(key: "vocab_size", value: "\(paddedVocab)", rule: paddedVocab == request.vocabSize ? "--vocab" : "--vocab \(request.vocabSize) padded to a multiple of 64"),
            .init(key: "flops_per_token", value: sig(withAttention, 4), rule: "6N' + 12·n_layer·d_model·T (6N: \(sig(sixN, 4)); Chinchilla app. F: \(sig(appendixF, 4)))"),
            .init(key: "batch_tokens", value: si(Double(batchTokens), 4), rule: batchRuleName(request.batchRule)),
            .init(key: "batch_sequences", value: "\(batchSequences)", rule: "batch tokens / seq_len, = micro × accum × devices"),
            .init(key: "micro_batch", value: "\(microBatch)", rule: "largest that fits \(Int(request.usableMemoryFraction * 100))% of \(bytes(request.deviceMemoryBytes))"),
            .init(key: "grad_accum", value: "\(gradAccum)", rule: "batch / (micro × devices)"),
            .init(key: "devices", value: "\(request.devices)", rule: request.devices == 1 ? "one process" : "--devices"),
            .init(key: "learning_rate", value: sig(lr, 3), rule: lrRuleName(request.lrRule)),
            .init(key: "min_learning_rate", value: sig(minLR, 3), rule: "10% of peak"),
            .init(key: "warmup_steps", value: "\(warmup.steps)", rule: "375M tokens, within 1-5% of steps"),
            .init(key: "steps", value: "\(steps)", rule: "D / batch tokens"),
            .init(key: "memory_bytes", value: bytes(memory), rule: "weights, grads, AdamW moments + one micro-batch's activations"),
            .init(key: "time", value: duration(seconds), rule: "\(Int(request.mfu * 100))% MFU of \(request.devices) × \(flopRate(request.deviceFlops))"),
        ]

        return Plan(
            flops: flops, fit: rule.name, shape: shape, params: count.total, nonEmbeddingParams: count.nonEmbedding,
            tokens: tokens, predictedLoss: loss, flopsPerToken: withAttention, flopsPerTokenSixN: sixN,
            flopsPerTokenChinchilla: appendixF, batchTokens: batchTokens, batchSequences: batchSequences,
            learningRate: lr, minLearningRate: minLR, warmupSteps: warmup.steps, steps: steps,
            microBatch: microBatch, gradAccum: gradAccum, devices: request.devices, memoryBytes: memory,
            estimatedSeconds: seconds, rows: rows, rationale: why)
    }

    private static func budgetRule(_ target: PlanRequest.Target) -> String {
        switch target {
        case .flops: return "given"
        case .params: return "compute-optimal budget for the given N"
        case .tokens: return "6·N·D for the given D"
        }
    }

    private static func batchRuleName(_ rule: BatchRule) -> String {
        switch rule {
        case .deepseek: return "DeepSeek LLM: 0.2920·C^0.3271"
        case .kaplan: return "Kaplan critical batch 2.1e8/L^(1/0.21)"
        case .fixed: return "given"
        }
    }

    private static func lrRuleName(_ rule: LearningRateRule) -> String {
        switch rule {
        case .deepseek: return "DeepSeek LLM: 0.3118·C^-0.1250"
        case .kaplan: return "Kaplan eq. D.1: 0.003239 − 0.0001395·ln N"
        case .reference(_, _, let s): return "\(s.rawValue) scaling from the reference point"
        case .fixed: return "given"
        }
    }

    private static func validate(_ r: PlanRequest) throws {
        func positive(_ x: Double, _ what: String) throws {
            guard x.isFinite, x > 0 else { throw PlanError.invalid("\(what) must be a positive number, got \(x)") }
        }
        switch r.target {
        case .flops(let c): try positive(c, "--flops")
        case .params(let n): try positive(n, "--params")
        case .tokens(let d): try positive(d, "--tokens")
        }
        if case .tokensPerParam(let ratio) = r.rule { try positive(ratio, "--tokens-per-param") }
        try positive(r.deviceMemoryBytes, "--device-memory")
        try positive(r.deviceFlops, "--device-flops")
        guard r.mfu > 0, r.mfu <= 1 else { throw PlanError.invalid("--mfu must be in (0, 1], got \(r.mfu)") }
        guard r.devices >= 1 else { throw PlanError.invalid("--devices must be at least 1, got \(r.devices)") }
        guard r.vocabSize >= 2 else { throw PlanError.invalid("--vocab must be at least 2, got \(r.vocabSize)") }
        if let t = r.seqLen, t < 1 { throw PlanError.invalid("--seq-len must be at least 1, got \(t)") }
        if case .fixed(let b) = r.batchRule { try positive(b, "--batch") }
        if case .fixed(let lr) = r.lrRule { try positive(lr, "--lr") }
        if case .reference(let b, let lr, _) = r.lrRule {
            try positive(b, "--reference-batch")
            try positive(lr, "--reference-lr")
        }
    }
}
