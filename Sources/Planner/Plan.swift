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

    /// Which hardware the plan is for.
    public enum HardwareChoice: Sendable, Equatable {
        /// Named by the user (a preset, this machine, or either with overrides).
        case given(Hardware)
        /// Nothing named: this machine when one process here holds the run and finishes it within
        /// `PlanRequest.localDaysLimit` days (`--days`, else `defaultLocalDays`), else `Hardware.defaultGPU` on as
        /// many devices as it takes (and, with `--days`, as finish within them).
        case automatic(thisMachine: Hardware)
    }

    /// How many devices.
    public enum DeviceCount: Sendable, Equatable {
        case fixed(Int)
        /// The fewest (a power of two below a node, else whole nodes) on which a layout fits, and, with `days`,
        /// on which the run also finishes within that many days.
        case automatic(days: Double?)
    }

    public var target: Target
    public var rule: AllocationRule = .fit(.epoch)
    /// Context length; nil chooses one from the batch size.
    public var seqLen: Int?
    /// Tokenizer vocabulary; the model's embedding is padded up to a multiple of 64.
    public var vocabSize: Int = 50257
    public var bias: Bool = false
    /// The block design of the model the plan chooses; `.llama` takes Llama 3's proportions (`ShapeSearch`).
    public var family: ModelFamily = .gpt2
    public var batchRule: BatchRule = .deepseek
    public var lrRule: LearningRateRule = .deepseek
    public var hardware: HardwareChoice
    /// nil: one device of this machine, or as many GPUs as the run needs (`.automatic(days: nil)`).
    public var devices: DeviceCount?

    /// With no hardware named, this machine is planned for only when the run finishes here within this many days.
    public static let defaultLocalDays = 7.0
    /// The days a run may take on this machine when no hardware is named: `--days` (`.automatic(days:)`), else
    /// `defaultLocalDays`.
    public var localDaysLimit: Double {
        if case .automatic(let days?)? = devices { return days }
        return Self.defaultLocalDays
    }
    /// Model FLOPs utilisation for the time estimate; nil takes the hardware's default.
    public var mfu: Double?
    public var constraints = LayoutConstraints()
    /// Price of one device for one hour, for the cost; nil leaves the cost out.
    public var pricePerDeviceHour: Double?
    /// How many of the fastest layouts the plan keeps (for `--compare-layouts`).
    public var keepLayouts = 5
    /// Unique tokens available (Muennighoff et al. 2023): with a budget, the split minimises the loss with
    /// repetition taken into account; nil means unlimited data.
    public var uniqueTokens: Double?
    /// Tokens the model will serve (Sardana et al. 2023): with a budget, the plan reaches the compute-optimal
    /// plan's loss (or `targetLoss`) at the least training + inference compute.
    public var inferenceTokens: Double?
    /// The loss the inference-aware plan must reach; nil takes the compute-optimal plan's for the budget.
    public var targetLoss: Double?
    /// An isoFLOP sweep's point: this N at the budget (D = C/6N) instead of the compute-optimal one.
    public var isoFLOPParams: Double?
    /// The narrowest d_model the shape search may take (32, the conventional shapes' narrowest, down to
    /// `ShapeSearch.smallestFineWidth`): `gpt-plan sweep --min-width` for sweeps of tiny models.
    public var minimumWidth = 32

    public init(target: Target, hardware: HardwareChoice) {
        self.target = target
        self.hardware = hardware
    }

    /// A plan for one float32 device (gpt-train's CPU model) with the given memory and rate.
    public init(target: Target, deviceMemoryBytes: Double, deviceFlops: Double, deviceDescription: String) {
        self.init(target: target, hardware: .given(.cpu(memoryBytes: deviceMemoryBytes, flops: deviceFlops,
                                                        source: deviceDescription)))
    }
}

/// Fewest optimizer steps a plan may have; the batch is capped to keep at least this many.
public let minimumSteps = 100

/// A compute-optimal run: every decision with its numbers and the rule that produced them. The allocation
/// (`allocation`, `shape`, `batch`, `learningRate`, `schedule`) never depends on the hardware; `execution` does.
public struct Plan: Sendable {
    public var target: PlanRequest.Target
    public var allocation: Allocation
    public var shapeDecision: ShapeDecision
    public var batch: BatchDecision
    public var learningRateDecision: LearningRateDecision
    public var schedule: ScheduleDecision
    public var execution: Execution

    // The numbers every caller wants, by name.
    public var flops: Double { allocation.flops }
    public var fit: String { allocation.rule.name }
    public var shape: ModelShape { shapeDecision.shape }
    public var params: Int { shape.parameterCount.total }
    public var nonEmbeddingParams: Int { shape.parameterCount.nonEmbedding }
    public var tokens: Double { allocation.tokens }
    public var tokensPerParam: Double { tokens / Double(params) }
    public var predictedLoss: Double { schedule.predictedLoss }
    /// 6N' + 12·n_layer·d_model·T (N' the parameters in matrix products): the count used for time and MFU.
    public var flopsPerToken: Double { shape.flopsPerTokenWithAttention() }
    public var batchTokens: Int { batch.sequences * shape.seqLen }
    public var batchSequences: Int { batch.sequences }
    public var learningRate: Double { learningRateDecision.peak }
    public var minLearningRate: Double { learningRateDecision.minimum }
    public var warmupSteps: Int { schedule.warmup.steps }
    public var steps: Int { schedule.steps }
    public var layout: Layout { execution.chosen.layout }
    public var microBatch: Int { layout.microBatch }
    public var gradAccum: Int { layout.gradAccum }
    public var devices: Int { layout.devices }
    public var memory: MemoryBreakdown { execution.chosen.memory }
    public var memoryBytes: Double { memory.total }
    public var estimatedSeconds: Double { execution.seconds }
}

// MARK: Decisions

/// Step 1: the budget and its split into N and D.
public struct Allocation: Sendable, Equatable {
    public var rule: AllocationRule
    /// The budget the split is made for (given, or the compute-optimal one for the given N or D).
    public var budget: Double
    public var idealParams: Double
    public var idealTokens: Double
    /// The budget 6·N·D with the real N (equal to `budget` unless D was given).
    public var flops: Double
    /// D: C/(6N) with the real N, or as given.
    public var tokens: Double
    /// Share of N in the token embedding, and, when it is most of N, a vocabulary that would leave the blocks the
    /// larger share.
    public var embeddingShare: Double
    public var suggestedVocab: Int?
    /// Set when unique tokens were given.
    public var dataConstraint: DataConstraintDecision?
    /// Set when inference tokens were given.
    public var inference: InferenceDecision?

    /// Embeddings above this share of N mark a budget whose model is mostly lookup table.
    public static let embeddingDominated = 0.5
}

/// Step 2: context length and a concrete shape.
public struct ShapeDecision: Sendable, Equatable {
    public enum ContextRule: Sendable, Equatable {
        case given
        /// GPT-2's 1024.
        case gpt2
        /// The largest power of two ≤ min(1024, 1.5·d_model, B/16).
        case shortened(cap: Double)
    }
    public var shape: ModelShape
    public var search: ShapeSearch.Choice
    public var contextRule: ContextRule
    /// The vocabulary asked for, before padding to a multiple of 64.
    public var requestedVocab: Int
    /// Set when N* is below the smallest shape the vocabulary and context allow (more than ×2 from it) and the
    /// budget still trains that shape on at least one token per parameter and for `minimumSteps` steps of one
    /// sequence: the plan takes the smallest shape, larger than
    /// compute-optimal, and D = C/(6N) for it. Only for a `--flops` budget without an isoFLOP point or an
    /// inference-aware allocation (a sweep skips such sizes; a given N or D is the user's).
    public var smallestAboveOptimum = false
}

/// Step 3: the batch in whole sequences.
public struct BatchDecision: Sendable, Equatable {
    public var rule: BatchRule
    /// The loss the Kaplan rule was evaluated at.
    public var lossForRule: Double?
    /// The rule's batch in tokens.
    public var targetTokens: Double
    /// The rule's batch in whole sequences.
    public var targetSequences: Int
    /// Set when the batch was capped to keep `minimumSteps` steps.
    public var cappedAt: Int?
    /// The planned batch: rounded to three significant binary digits (4, 5, 6 or 7 × 2^k) so that it divides
    /// among many device counts.
    public var sequences: Int

    /// Batches round to this many significant binary digits.
    public static let significantBits = 3
}

/// Step 4: the peak and minimum learning rate.
public struct LearningRateDecision: Sendable, Equatable {
    public var rule: LearningRateRule
    /// The budget the DeepSeek rule was evaluated at.
    public var flops: Double
    public var peak: Double
    public var minimum: Double
}

/// Step 5: steps, warmup, and the loss they lead to.
public struct ScheduleDecision: Sendable, Equatable {
    public var steps: Int
    /// Tokens the steps train: steps × batch tokens.
    public var trainedTokens: Double
    public var warmup: WarmupRule.Choice
    public var lossFit: ChinchillaFit
    public var predictedLoss: Double
}

/// Step 6: hardware, layout and time.
public struct Execution: Sendable {
    public enum HardwareReason: Sendable, Equatable {
        case given
        case thisMachine
        /// Nothing was named and the run does not fit one process here.
        case defaultedBecauseThisMachineIsTooSmall(needed: Double, usable: Double)
        /// Nothing was named and one process here holds the run but would take `seconds`, over `limitDays`.
        case defaultedBecauseThisMachineIsTooSlow(seconds: Double, limitDays: Double)
    }
    public enum DevicesReason: Sendable, Equatable {
        case given
        /// The fewest devices on which a layout fits (and, with days, finishes in time).
        case fewestThatFit(days: Double?)
    }
    public var hardware: Hardware
    public var hardwareReason: HardwareReason
    public var devicesReason: DevicesReason
    /// The model FLOPs utilisation of the chosen layout: the given (or the CPU's default) single MFU, or, with the
    /// calibrated step-time model, the MFU it predicts for the chosen layout.
    public var mfu: Double
    /// The calibrated step-time model the layouts were timed with (GPU presets unless `--mfu` was given); nil: the
    /// single MFU.
    public var timeModel: StepTimeModel?
    public var constraints: LayoutConstraints
    public var chosen: LayoutEstimate
    /// The fastest feasible layouts on these devices, fastest first (`chosen` is the first).
    public var alternatives: [LayoutEstimate]
    /// Layouts whose memory and time were evaluated, over every device count considered.
    public var layoutsTried: Int
    public var seconds: Double
    public var deviceHours: Double
    public var cost: Double?
    /// When no hardware was named and the plan left this machine: the run's compute time here at its rate and
    /// MFU (a lower bound when it does not even fit here).
    public var secondsOnThisMachine: Double?
}

/// The ranges of the planner's inputs and of what it derives, where "positive" is not enough. Those a recipe
/// stores are the recipe schema's ranges (a plan `-o` could not write is refused with or without `-o`); gpt-plan's
/// flags state the same ranges.
public enum PlanLimits {
    public static let seqLen = 1...(1 << 20)
    public static let vocab = 2...(1 << 24)
    public static let devices = 1...(1 << 24)
    /// At most one stage a layer, and a recipe holds at most 1024 layers.
    public static let pipelineParallel = 1...1024
    /// hardware.device_memory's range: 1 MiB to 1 PiB.
    public static let deviceMemory = Double(1 << 20)...Double(1 << 50)
    /// hardware.device_flops's range.
    public static let deviceFlops = 1e6...1e18
    /// 0.1% to 100%: below 0.1% no run is planned (a typo such as 1e-300 made the time estimate infinite).
    public static let mfu = 0.001...1.0
    /// The peak learning rates a rule may derive: at most 1 (a recipe's range) and at least 1e-6, 60 times below
    /// the smallest peak of a published large run (GPT-3 175B, 6e-5; Brown et al. 2020, Table 2.1). Below it a
    /// fp32 weight of 0.02 moves by less than its rounding step in a thousand steps: nothing trains.
    public static let derivedLearningRate = 1e-6...1.0
    /// The most tokens a recipe's plan.tokens holds (2^60).
    public static let tokens = Double(1 << 60)
    /// The most steps a recipe's training.steps holds (2^40).
    public static let steps = 1 << 40
    /// The most sequences a recipe's training.batch_size holds (2^24).
    public static let batchSequences = 1 << 24
    /// The most a device hour may cost: a million (no device rents for that; a larger price is a typo, and one
    /// near 1e308 made the cost infinite).
    public static let pricePerDeviceHour = 0.0...1e6

    /// `x` as an Int when it is finite and within ±2^62 (so that sums and products of a few such values still
    /// fit), else nil: the one conversion every plan path uses instead of `Int(_:)`, which traps.
    public static func int(_ x: Double) -> Int? {
        guard x.isFinite, abs(x) <= Double(1 << 62) else { return nil }
        return Int(x)
    }
}

public enum PlanError: Error, Equatable, Sendable {
    /// An input the planner needs, out of its range.
    public enum Input: Sendable, Equatable {
        case flops, params, tokens, tokensPerParam, vocab, seqLen, batch, learningRate, referenceBatch, referenceLR
        case uniqueTokens, inferenceTokens, targetLoss
        case deviceMemory, deviceFlops, mfu, devices, days, pricePerDeviceHour
        case zeroStage, tensorParallel, pipelineParallel
    }
    case outOfRange(Input, Double)
    /// No shape comes near the compute-optimal N; `smallest` is the smallest the vocabulary and context allow, and
    /// `neededFlops` the least budget that trains it on as many tokens as it has parameters and for `minimumSteps`
    /// steps of one sequence: 6·N·max(N, minimumSteps·T).
    case budgetTooSmall(targetParams: Double, smallest: ModelShape, neededFlops: Double)
    /// The compute-optimal N is beyond the largest shape the search builds.
    case budgetTooLarge(targetParams: Double, largestParams: Double)
    case noShape(targetParams: Double)
    /// Fewer than `minimumSteps` steps of a single sequence.
    case tooFewTokens(tokens: Double, seqLen: Int)
    case learningRateInvalid(Double)
    /// No layout on `devices` devices (nil: on any count tried) fits; `least` needs the least memory.
    case noLayout(devices: Int?, hardware: String, reason: LayoutProblem?, least: LayoutEstimate?)
    /// No model reaches this loss under the fit (it is at or below the irreducible loss E).
    case lossUnreachable(loss: Double, irreducible: Double)
    /// Two requests that cannot be combined.
    case conflicting(String)
    /// No device count finishes within the days asked for.
    case tooSlow(days: Double, fastest: Double, devices: Int)
    /// A value the plan derives is beyond what a recipe holds.
    public enum Derived: String, Sendable, Equatable {
        case tokens = "training tokens D", steps = "training steps", batchSequences = "batch sequences"
    }
    case exceeds(Derived, value: Double, limit: Double)
    /// The rule's learning rate is outside `PlanLimits.derivedLearningRate`.
    case learningRateOutOfRange(Double)
}

// MARK: The steps

extension Plan {
    /// Plans the run `request` asks for: the allocation, then the execution on the hardware.
    public static func make(_ request: PlanRequest) throws -> Plan {
        try validate(request)
        let allocation0 = try allocate(request)
        let shape = try chooseShape(request, allocation0)
        let allocation = spend(request, allocation0, shape.shape)
        guard allocation.tokens <= PlanLimits.tokens else {
            throw PlanError.exceeds(.tokens, value: allocation.tokens, limit: PlanLimits.tokens)
        }
        let batch = try chooseBatch(request, allocation, shape.shape)
        guard batch.sequences <= PlanLimits.batchSequences else {
            throw PlanError.exceeds(.batchSequences, value: Double(batch.sequences), limit: Double(PlanLimits.batchSequences))
        }
        let lr = try chooseLearningRate(request, allocation, shape.shape, batch)
        let schedule = chooseSchedule(allocation, shape.shape, batch)
        guard schedule.steps <= PlanLimits.steps else {
            throw PlanError.exceeds(.steps, value: Double(schedule.steps), limit: Double(PlanLimits.steps))
        }
        let execution = try execute(request, shape.shape, batch, schedule)
        return Plan(target: request.target, allocation: allocation, shapeDecision: shape, batch: batch,
                    learningRateDecision: lr,
                    schedule: schedule, execution: execution)
    }

    /// The budget and the ideal N* and D* for it.
    static func allocate(_ request: PlanRequest) throws -> Allocation {
        let rule = request.rule
        let budget: Double, n: Double, d: Double
        switch request.target {
        case .flops(let c): budget = c; (n, d) = rule.allocation(flops: c)
        case .params(let p): budget = rule.flops(forParams: p); (n, d) = (p, budget / (6 * p))
        case .tokens(let t): budget = rule.flops(forTokens: t); (n, d) = (budget / (6 * t), t)
        }
        guard budget.isFinite, n.isFinite, d.isFinite else {
            throw PlanError.budgetTooLarge(targetParams: n.isFinite ? n : .infinity,
                                           largestParams: ShapeSearch.largestParams(seqLen: request.seqLen ?? 1024,
                                                                                    vocabSize: request.vocabSize,
                                                                                    bias: request.bias,
                                                                                    family: request.family))
        }
        var allocation = Allocation(rule: rule, budget: budget, idealParams: n, idealTokens: d, flops: budget,
                                    tokens: d, embeddingShare: 0, suggestedVocab: nil)
        if let p = request.isoFLOPParams {
            (allocation.idealParams, allocation.idealTokens, allocation.tokens) = (p, budget / (6 * p), budget / (6 * p))
        }
        let fit = rule.lossFit
        if let t = request.inferenceTokens, case .flops(let c) = request.target {
            let loss = request.targetLoss ?? fit.loss(params: n, tokens: d)
            var reference = (params: n, tokens: d)
            if request.targetLoss != nil {
                guard let c0 = InferenceAware.computeOptimalFlops(fit, loss: loss) else {
                    throw PlanError.lossUnreachable(loss: loss, irreducible: fit.E)
                }
                reference = fit.optimalAllocation(flops: c0)
            }
            guard let best = InferenceAware.optimum(fit, loss: loss, inferenceTokens: t) else {
                throw PlanError.lossUnreachable(loss: loss, irreducible: fit.E)
            }
            _ = c
            allocation.budget = 6 * best.params * best.tokens
            allocation.flops = allocation.budget
            (allocation.idealParams, allocation.idealTokens, allocation.tokens) = (best.params, best.tokens, best.tokens)
            allocation.inference = InferenceDecision(
                inferenceTokens: t, targetLoss: loss, targetLossGiven: request.targetLoss != nil,
                computeOptimalParams: reference.params, computeOptimalTokens: reference.tokens,
                params: best.params, tokens: best.tokens)
        }
        if let u = request.uniqueTokens {
            var reallocated = false
            if case .flops(let c) = request.target, allocation.inference == nil, d > u {
                let best = DataConstrained.optimum(fit, flops: c, unique: u)
                (allocation.idealParams, allocation.idealTokens, allocation.tokens) = (best.params, best.tokens, best.tokens)
                reallocated = true
            }
            allocation.dataConstraint = DataConstraintDecision(
                uniqueTokens: u, reallocated: reallocated, unconstrainedParams: n, unconstrainedTokens: d,
                unconstrainedLoss: DataConstrained.loss(fit, params: n, tokens: d, unique: u),
                epochs: allocation.tokens / u,
                effectiveTokens: DataConstrained.effectiveTokens(unique: u, tokens: allocation.tokens),
                effectiveParams: DataConstrained.effectiveParams(fit, params: allocation.idealParams, unique: u))
        }
        return allocation
    }

    /// Context length, then the shape nearest N*.
    static func chooseShape(_ request: PlanRequest, _ a: Allocation) throws -> ShapeDecision {
        let vocab = (request.vocabSize + 63) / 64 * 64
        let seqLen: Int, rule: ShapeDecision.ContextRule
        if let given = request.seqLen {
            (seqLen, rule) = (given, .given)
        } else {
            // As long as GPT-2's 1024, unless attention would add more than 25% to the 6N FLOPs (12·L·d·T ≤
            // 0.25·72·L·d², i.e. T ≤ 1.5·d, for the width a 1024 context gives) or a batch would hold fewer than 16
            // sequences.
            // A model too small for any shape with a 1024 context (its position embedding alone is too large)
            // takes the narrowest width, and so the shortest context.
            let width: Int
            do {
                width = try ShapeSearch.shape(targetParams: a.idealParams, seqLen: 1024, vocabSize: vocab,
                                              bias: request.bias, rule: a.rule, family: request.family).shape.dModel
            } catch PlanError.budgetTooSmall {
                width = 32
            }
            let cap = min(1024, 1.5 * Double(width), batchTargetTokens(request, a) / 16)
            var t = 32
            while Double(t * 2) <= cap { t *= 2 }
            (seqLen, rule) = (t, t == 1024 ? .gpt2 : .shortened(cap: cap))
        }
        do {
            let choice = try ShapeSearch.shape(targetParams: a.idealParams, seqLen: seqLen, vocabSize: vocab,
                                               bias: request.bias, rule: a.rule, family: request.family,
                                               minimumWidth: request.minimumWidth)
            return ShapeDecision(shape: choice.shape, search: choice, contextRule: rule, requestedVocab: request.vocabSize)
        } catch PlanError.budgetTooSmall(let target, let smallest, _) {
            // Below the smallest shape: a --flops budget plans that shape when D = C/(6N) gives it at least one
            // token per parameter and `minimumSteps` steps of one sequence; else the error names that budget.
            // (Fewer tokens than parameters is where the fits' extrapolation stops meaning anything: the Epoch AI
            // fit predicts over 100 nats at D = 3K tokens for the 1.6M smallest GPT-2.)
            let n = Double(smallest.parameterCount.total)
            let needed = 6 * n * max(n, Double(minimumSteps * smallest.seqLen))
            guard case .flops = request.target, request.isoFLOPParams == nil, a.inference == nil,
                  a.budget >= needed else {
                throw PlanError.budgetTooSmall(targetParams: target, smallest: smallest, neededFlops: needed)
            }
            let choice = ShapeSearch.Choice(shape: smallest, withinTolerance: false,
                                            preferredAspect: ShapeSearch.targetAspect(params: target))
            return ShapeDecision(shape: smallest, search: choice, contextRule: rule, requestedVocab: request.vocabSize,
                                 smallestAboveOptimum: true)
        }
    }

    /// D with the real N: C/(6N), so that 6ND spends the budget exactly (or D as given, and C = 6ND).
    static func spend(_ request: PlanRequest, _ a: Allocation, _ shape: ModelShape) -> Allocation {
        var a = a
        let count = shape.parameterCount
        let n = Double(count.total)
        if case .tokens(let d) = request.target {
            (a.tokens, a.flops) = (d, 6 * n * d)
        } else {
            (a.tokens, a.flops) = ((a.budget / (6 * n)).rounded(), a.budget)
        }
        a.embeddingShare = Double(count.tokenEmbedding) / n
        if var dc = a.dataConstraint {
            let fit = a.rule.lossFit
            dc.epochs = a.tokens / dc.uniqueTokens
            dc.effectiveTokens = DataConstrained.effectiveTokens(unique: dc.uniqueTokens, tokens: a.tokens)
            dc.effectiveParams = DataConstrained.effectiveParams(fit, params: n, unique: dc.uniqueTokens)
            a.dataConstraint = dc
        }
        if a.embeddingShare > Allocation.embeddingDominated {
            // A vocabulary whose embedding would be no larger than the blocks: a power of two, at least 256 (bytes).
            var v = 256
            while (v * 2) * shape.dModel <= count.nonEmbedding { v *= 2 }
            a.suggestedVocab = v < shape.vocabSize ? v : nil
        }
        return a
    }

    static func batchTargetTokens(_ request: PlanRequest, _ a: Allocation) -> Double {
        switch request.batchRule {
        case .deepseek: return BatchRule.deepseekTokens(flops: a.budget)
        case .kaplan: return BatchRule.kaplanCriticalTokens(loss: a.rule.lossFit.loss(params: a.idealParams, tokens: a.idealTokens))
        case .stepLaw: return BatchRule.stepLawTokens(tokens: a.tokens)
        case .fixed(let tokens): return tokens
        }
    }

    /// The batch: the rule's tokens in whole sequences, capped to keep `minimumSteps` steps, rounded to three
    /// significant binary digits. Independent of the hardware.
    static func chooseBatch(_ request: PlanRequest, _ a: Allocation, _ shape: ModelShape) throws -> BatchDecision {
        let tokens = batchTargetTokens(request, a)
        let seqLen = Double(shape.seqLen)
        let stepCap = a.tokens / (Double(minimumSteps) * seqLen)
        guard stepCap >= 1 else { throw PlanError.tooFewTokens(tokens: a.tokens, seqLen: shape.seqLen) }
        // Converted with PlanLimits.int; a value it refuses (NaN) counts as too many, which `make` then refuses.
        let cap = PlanLimits.int(min(stepCap, 1e12)) ?? Int(1e12)
        let target = PlanLimits.int(max(1, min((tokens / seqLen).rounded(), 1e12))) ?? Int(1e12)
        let capped = min(target, cap)
        var sequences = capped
        if capped >= 8 {
            let unit = 1 << (Int(log2(Double(capped))) - (BatchDecision.significantBits - 1))
            sequences = (capped + unit / 2) / unit * unit
            if sequences > cap { sequences = capped / unit * unit }
        }
        var lossForRule: Double?
        if case .kaplan = request.batchRule {
            lossForRule = a.rule.lossFit.loss(params: a.idealParams, tokens: a.idealTokens)
        }
        return BatchDecision(rule: request.batchRule, lossForRule: lossForRule, targetTokens: tokens,
                             targetSequences: target, cappedAt: target > cap ? cap : nil, sequences: sequences)
    }

    static func chooseLearningRate(_ request: PlanRequest, _ a: Allocation, _ shape: ModelShape,
                                   _ batch: BatchDecision) throws -> LearningRateDecision {
        let batchTokens = Double(batch.sequences * shape.seqLen)
        let lr: Double
        switch request.lrRule {
        case .deepseek: lr = LearningRateRule.deepseekLR(flops: a.flops)
        case .kaplan: lr = LearningRateRule.kaplanLR(nonEmbeddingParams: Double(shape.parameterCount.nonEmbedding))
        case .stepLaw:
            lr = LearningRateRule.stepLawLR(nonEmbeddingParams: Double(shape.parameterCount.nonEmbedding), tokens: a.tokens)
        case .reference(let refBatch, let refLR, let scaling): lr = refLR * pow(batchTokens / refBatch, scaling.exponent)
        case .fixed(let value): lr = value
        case .perWidth(let k): lr = k / Double(shape.dModel)
        }
        guard lr > 0, lr.isFinite else { throw PlanError.learningRateInvalid(lr) }
        if case .fixed = request.lrRule {} else if !PlanLimits.derivedLearningRate.contains(lr) {
            throw PlanError.learningRateOutOfRange(lr)
        }
        return LearningRateDecision(rule: request.lrRule, flops: a.flops, peak: lr, minimum: lr * StandardRecipe.minLRFraction)
    }

    static func chooseSchedule(_ a: Allocation, _ shape: ModelShape, _ batch: BatchDecision) -> ScheduleDecision {
        let batchTokens = Double(batch.sequences * shape.seqLen)
        // A value PlanLimits.int refuses counts as too many steps, which `make` then refuses.
        let steps = PlanLimits.int(max(1, min((a.tokens / batchTokens).rounded(), 1e15))) ?? PlanLimits.steps + 1
        let trained = Double(steps) * batchTokens
        let warmup = WarmupRule.steps(totalSteps: steps, batchTokens: batchTokens)
        let fit = a.rule.lossFit
        let n = Double(shape.parameterCount.total)
        let loss = a.dataConstraint.map { DataConstrained.loss(fit, params: n, tokens: a.tokens, unique: $0.uniqueTokens) }
            ?? fit.loss(params: n, tokens: a.tokens)
        return ScheduleDecision(steps: steps, trainedTokens: trained, warmup: warmup, lossFit: fit, predictedLoss: loss)
    }

    /// Hardware, device count and layout: the fastest feasible layout by the time model.
    static func execute(_ request: PlanRequest, _ shape: ModelShape, _ batch: BatchDecision,
                        _ schedule: ScheduleDecision) throws -> Execution {
        switch request.hardware {
        case .given(let hardware):
            let devices = request.devices ?? (hardware.precision == .float32 ? .fixed(1) : .automatic(days: nil))
            return try execute(request, shape, batch, schedule, hardware, reason: .given, devices: devices)
        case .automatic(let here):
            // This machine: one process (or the ranks given with --devices N), when it holds the run and finishes
            // it within the day limit; else the default GPU.
            var localDevices = PlanRequest.DeviceCount.fixed(1)
            if case .fixed? = request.devices { localDevices = request.devices! }
            let reason: Execution.HardwareReason
            do {
                let local = try execute(request, shape, batch, schedule, here, reason: .thisMachine,
                                        devices: localDevices)
                let limit = request.localDaysLimit
                guard local.seconds > limit * 86400, case .fixed(1) = localDevices else { return local }
                reason = .defaultedBecauseThisMachineIsTooSlow(seconds: local.seconds, limitDays: limit)
            } catch PlanError.noLayout(_, _, _, let least) {
                reason = .defaultedBecauseThisMachineIsTooSmall(
                    needed: least?.memory.total ?? .infinity, usable: here.memoryBytes * here.usableFraction)
            }
            var gpu = try execute(request, shape, batch, schedule, .defaultGPU, reason: reason,
                                  devices: request.devices ?? .automatic(days: nil))
            if case .defaultedBecauseThisMachineIsTooSlow(let seconds, _) = reason {
                gpu.secondsOnThisMachine = seconds
            } else {
                gpu.secondsOnThisMachine = shape.flopsPerTokenWithAttention() * schedule.trainedTokens
                    / (here.peakFlops * (request.mfu ?? here.defaultMFU))
            }
            return gpu
        }
    }

    static func execute(_ request: PlanRequest, _ shape: ModelShape, _ batch: BatchDecision,
                        _ schedule: ScheduleDecision, _ hardware: Hardware, reason: Execution.HardwareReason,
                        devices: PlanRequest.DeviceCount) throws -> Execution {
        let mfu = request.mfu ?? hardware.defaultMFU
        let timeModel = request.mfu == nil ? StepTimeModel.calibrated(for: hardware) : nil
        let c = request.constraints
        if hardware.precision == .float32,
           !CPUTrainer.layoutProblems(tensorParallel: c.tensorParallel ?? 1, pipelineParallel: c.pipelineParallel ?? 1,
                                      zeroStage: c.zeroStage ?? 0).isEmpty {
            throw PlanError.noLayout(devices: nil, hardware: hardware.name, reason: .unsupportedOnCPU, least: nil)
        }
        func search(_ k: Int) -> LayoutModel.Search {
            LayoutModel.search(shape: shape, batchSequences: batch.sequences, devices: k, hardware: hardware, mfu: mfu,
                               constraints: c, keep: request.keepLayouts, timeModel: timeModel)
        }
        var tried = 0
        var found: (k: Int, search: LayoutModel.Search)?
        let devicesReason: Execution.DevicesReason
        switch devices {
        case .fixed(let k):
            let s = search(k)
            tried = s.tried
            guard !s.ranked.isEmpty else {
                // Nothing evaluated: no structure splits K devices and the batch exactly.
                var problem: LayoutProblem?
                if s.leastMemory == nil {
                    if let t = c.tensorParallel, let p = c.pipelineParallel, k % (t * p) != 0 {
                        problem = .devicesNotFactored(devices: k, tensorParallel: t, pipelineParallel: p)
                    } else {
                        problem = .batchNotDivisible(batchSequences: batch.sequences, dataParallel: k)
                    }
                }
                throw PlanError.noLayout(devices: k, hardware: hardware.name, reason: problem, least: s.leastMemory)
            }
            found = (k, s)
            devicesReason = .given
        case .automatic(let days):
            devicesReason = .fewestThatFit(days: days)
            var fastest: (seconds: Double, k: Int)?
            for k in LayoutModel.deviceCounts(hardware: hardware) where k <= batch.sequences * 64 {
                guard LayoutModel.anyFits(shape: shape, batchSequences: batch.sequences, devices: k,
                                          hardware: hardware, constraints: c, tried: &tried) else { continue }
                if let days {
                    // Compute alone at this count is a lower bound on the time: skip counts that cannot make it.
                    let bound = shape.flopsPerTokenWithAttention() * schedule.trainedTokens
                        / (Double(k) * hardware.peakFlops * (timeModel?.matmulEfficiency ?? mfu))
                    if fastest == nil || bound < fastest!.seconds { fastest = (bound, k) }
                    guard bound <= days * 86400 else { continue }
                }
                let s = search(k)
                tried += s.tried
                guard let best = s.ranked.first else { continue }
                let seconds = best.step.total * Double(schedule.steps)
                if fastest == nil || seconds < fastest!.seconds { fastest = (seconds, k) }
                if let days, seconds > days * 86400 { continue }
                found = (k, s)
                break
            }
            if found == nil {
                if let days, let fastest {
                    throw PlanError.tooSlow(days: days, fastest: fastest.seconds, devices: fastest.k)
                }
                throw PlanError.noLayout(devices: nil, hardware: hardware.name, reason: nil, least: nil)
            }
        }
        let (k, s) = found!
        let chosen = s.ranked[0]
        let seconds = chosen.step.total * Double(schedule.steps)
        let deviceHours = seconds / 3600 * Double(k)
        let achieved = timeModel == nil ? mfu
            : shape.flopsPerTokenWithAttention() * Double(chosen.layout.batchSequences * shape.seqLen)
                / (Double(k) * hardware.peakFlops * chosen.step.total)
        return Execution(hardware: hardware, hardwareReason: reason, devicesReason: devicesReason, mfu: achieved,
                         timeModel: timeModel, constraints: c, chosen: chosen, alternatives: s.ranked, layoutsTried: tried,
                         seconds: seconds, deviceHours: deviceHours,
                         cost: request.pricePerDeviceHour.map { $0 * deviceHours })
    }

    static func validate(_ r: PlanRequest) throws {
        func positive(_ x: Double, _ input: PlanError.Input) throws {
            guard x.isFinite, x > 0 else { throw PlanError.outOfRange(input, x) }
        }
        switch r.target {
        case .flops(let c): try positive(c, .flops)
        case .params(let n): try positive(n, .params)
        case .tokens(let d): try positive(d, .tokens)
        }
        if case .tokensPerParam(let ratio) = r.rule { try positive(ratio, .tokensPerParam) }
        if let u = r.uniqueTokens { try positive(u, .uniqueTokens) }
        if let p = r.isoFLOPParams {
            try positive(p, .params)
            guard case .flops = r.target, r.inferenceTokens == nil, r.uniqueTokens == nil else {
                throw PlanError.conflicting("an isoFLOP point is a budget and a size, nothing else")
            }
        }
        if let t = r.inferenceTokens { guard t.isFinite, t >= 0 else { throw PlanError.outOfRange(.inferenceTokens, t) } }
        if let l = r.targetLoss { try positive(l, .targetLoss) }
        if r.targetLoss != nil, r.inferenceTokens == nil {
            throw PlanError.conflicting("a target loss is for inference-aware planning: it needs inference tokens")
        }
        if r.inferenceTokens != nil {
            guard case .flops = r.target else {
                throw PlanError.conflicting("inference-aware planning starts from a budget (or a target loss), not from N or D")
            }
            if r.uniqueTokens != nil {
                throw PlanError.conflicting("inference-aware and data-constrained planning cannot be combined")
            }
        }
        let hardware: Hardware
        switch r.hardware {
        case .given(let h), .automatic(let h): hardware = h
        }
        guard PlanLimits.deviceMemory.contains(hardware.memoryBytes) else {
            throw PlanError.outOfRange(.deviceMemory, hardware.memoryBytes)
        }
        guard PlanLimits.deviceFlops.contains(hardware.peakFlops) else {
            throw PlanError.outOfRange(.deviceFlops, hardware.peakFlops)
        }
        if let mfu = r.mfu, !PlanLimits.mfu.contains(mfu) { throw PlanError.outOfRange(.mfu, mfu) }
        switch r.devices ?? .fixed(1) {
        case .fixed(let k): guard PlanLimits.devices.contains(k) else { throw PlanError.outOfRange(.devices, Double(k)) }
        case .automatic(let days): if let days { try positive(days, .days) }
        }
        if let price = r.pricePerDeviceHour, !PlanLimits.pricePerDeviceHour.contains(price) {
            throw PlanError.outOfRange(.pricePerDeviceHour, price)
        }
        guard PlanLimits.vocab.contains(r.vocabSize) else { throw PlanError.outOfRange(.vocab, Double(r.vocabSize)) }
        if let t = r.seqLen, !PlanLimits.seqLen.contains(t) { throw PlanError.outOfRange(.seqLen, Double(t)) }
        if case .fixed(let b) = r.batchRule { try positive(b, .batch) }
        if case .fixed(let lr) = r.lrRule, !(lr > 0 && lr <= 1) { throw PlanError.outOfRange(.learningRate, lr) }
        if case .reference(let b, let lr, _) = r.lrRule {
            try positive(b, .referenceBatch)
            guard lr > 0, lr <= 1 else { throw PlanError.outOfRange(.referenceLR, lr) }
        }
        if let z = r.constraints.zeroStage, !(0...3).contains(z) { throw PlanError.outOfRange(.zeroStage, Double(z)) }
        if let t = r.constraints.tensorParallel, !LayoutModel.tensorWidths.contains(t) {
            throw PlanError.outOfRange(.tensorParallel, Double(t))
        }
        if let p = r.constraints.pipelineParallel, !PlanLimits.pipelineParallel.contains(p) {
            throw PlanError.outOfRange(.pipelineParallel, Double(p))
        }
    }
}
