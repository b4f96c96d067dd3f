import GPTShape

/// The rule behind one number of a plan, as a value built from the constants the rule used: the recipe's
/// `# from:` comments and the plan table's rule column are its `statement`. Each decision hands out the rules of
/// the numbers it decided (`ShapeDecision.layersRule`, `BatchDecision.tokensRule`, ...), so that a comment can only
/// restate what the decision used. Constants only: the command renders the numbers that went in.
public enum PlanRule: Sendable, Equatable {
    /// The number was given (on the command line).
    case given
    // The budget and its split (`Plan.budgetRule`, `Plan.tokensRule`).
    /// C for a given N: the allocation rule's compute-optimal budget.
    case budgetForParams
    /// C = 6·N·D for a given D.
    case budgetForTokens
    /// C = 6·N·D of the inference-aware optimum (Sardana et al. 2023).
    case inferenceAwareBudget
    /// D = C / (6N).
    case tokensFromBudget
    /// D / N.
    case tokensPerParam
    /// L(N, D) of the named fit; at the effective N' and D' when the data repeats (Muennighoff et al. 2023).
    case loss(fit: String, dataConstrained: Bool)
    // The shape (`ShapeDecision`).
    /// All parameters counted from the shape; a tied head once.
    case parameterCount(tiedHead: Bool)
    /// Kaplan et al.'s N: the blocks and the final norm.
    case nonEmbeddingParameters
    /// The shape search: N near the optimum, d_model/n_layer near the preferred aspect (nil when it does not fit
    /// an Int).
    case shapeSearch(preferredAspect: Int?)
    /// n_head = d_model / head size.
    case heads(headSize: Int)
    /// d_ff of the family: GPT-2's 4·d_model, Llama 3's 3.5·d_model rounded up to a multiple of 256.
    case mlpWidth(ModelFamily)
    case family(ModelFamily)
    /// Llama 3's key/value heads (all heads below `llama`), or multi-head attention for GPT-2.
    case keyValueHeads(ModelFamily, llama: Int)
    /// The rotary base (Llama 3's), or learned positions (GPT-2).
    case ropeTheta(ModelFamily, llama: Double)
    case normEpsilon
    case tiedHead(ModelFamily)
    case context(ShapeDecision.ContextRule)
    /// The tokenizer's vocabulary, padded to a multiple of 64 when it is not one.
    case vocabulary(requested: Int, padded: Int)
    /// 6N' + 12·n_layer·d_model·T.
    case flopsPerToken
    // Batch and learning rate (`BatchDecision`, `LearningRateDecision`).
    case batch(BatchRule)
    /// Batch tokens / seq_len in three significant bits; = micro × accum × data-parallel.
    case batchSequences
    case learningRate(LearningRateRule)
    /// The cosine schedule's floor as a fraction of the peak (`StandardRecipe.minLRFraction`).
    case minimumLearningRate(fraction: Double)
    // Schedule (`ScheduleDecision`).
    /// GPT-3's warmup tokens held within a share of the steps (`WarmupRule`).
    case warmup(tokens: Double, range: ClosedRange<Double>)
    /// D / batch tokens.
    case steps
    // Hardware and layout (`Execution`).
    /// The micro-batch (or, `byTimeModel`, a layout dimension) of the fastest layout that fits the device.
    case fastestLayout(hardware: String, byTimeModel: Bool)
    /// batch / (micro × data-parallel).
    case gradientAccumulation
    case devices(Execution.DevicesReason, count: Int)
    case hardware(Execution.HardwareReason)

    /// The rule in one line.
    public var statement: String {
        switch self {
        case .given: return "given"
        case .budgetForParams: return "compute-optimal budget for the given N"
        case .budgetForTokens: return "6·N·D for the given D"
        case .inferenceAwareBudget: return "6·N·D of the inference-aware optimum"
        case .tokensFromBudget: return "C / (6N)"
        case .tokensPerParam: return "D / N"
        case let .loss(fit, dataConstrained):
            return dataConstrained ? "\(fit) fit at the effective N' and D' (Muennighoff et al. 2023)" : "\(fit) fit L(N, D)"
        case .parameterCount(let tied):
            return tied ? "counted from the shape (all parameters, tied head once)"
                : "counted from the shape (all parameters, the untied head included)"
        case .nonEmbeddingParameters: return "blocks + final LayerNorm"
        case .shapeSearch(let aspect):
            return "shape search: N ≈ N*, d_model/n_layer near \(aspect.map(String.init) ?? "?")"
        case .heads(let size): return "d_model / head size \(size)"
        case .mlpWidth(let family):
            return family == .llama ? "3.5 · d_model rounded up to a multiple of 256 (Llama 3)" : "4 · d_model"
        case .family(let family):
            return family == .llama ? "given (--family llama): Llama 3's proportions" : "GPT-2 blocks (the default)"
        case let .keyValueHeads(family, llama):
            return family == .llama ? "Llama 3: \(llama) key/value heads (all heads below \(llama))"
                : "= n_head (multi-head attention)"
        case let .ropeTheta(family, llama):
            return family == .llama ? "Llama 3's \(PlanLimits.int(llama).map(String.init) ?? "\(llama)")"
                : "unused by GPT-2 (learned positions)"
        case .normEpsilon: return "1e-5 (GPT-2, Llama 3)"
        case .tiedHead(let family): return family == .llama ? "untied (Llama 3)" : "tied (GPT-2)"
        case .context(let rule):
            switch rule {
            case .given: return "given"
            case .gpt2: return "1024, GPT-2's context"
            case .shortened: return "largest power of two ≤ min(1024, 1.5·d_model, B/16)"
            }
        case let .vocabulary(requested, padded):
            return requested == padded ? "the tokenizer's" : "the tokenizer's \(requested) padded to a multiple of 64"
        case .flopsPerToken: return "6N' + 12·n_layer·d_model·T"
        case .batch(let rule): return rule.formula
        case .batchSequences: return "batch tokens / seq_len, 3 significant bits; = micro × accum × data-parallel"
        case .learningRate(let rule): return rule.formula
        case .minimumLearningRate(let fraction): return "\(Int(fraction * 100))% of peak"
        case let .warmup(tokens, range):
            return "\(PlanLimits.int(tokens / 1e6).map(String.init) ?? "\(tokens / 1e6)")M tokens, within "
                + "\(Int((range.lowerBound * 100).rounded()))-\(Int((range.upperBound * 100).rounded()))% of steps"
        case .steps: return "D / batch tokens"
        case let .fastestLayout(hardware, byTimeModel):
            return "fastest layout that fits the device (\(hardware))" + (byTimeModel ? " by the time model" : "")
        case .gradientAccumulation: return "batch / (micro × data-parallel)"
        case let .devices(reason, count):
            switch reason {
            case .given: return count == 1 ? "one process" : "given"
            case .fewestThatFit: return "fewest on which a layout fits"
            }
        case .hardware(let reason):
            switch reason {
            case .given: return "given"
            case .thisMachine: return "this machine (no hardware named)"
            case .defaultedBecauseThisMachineIsTooSmall: return "the default GPU: the run does not fit this machine"
            case .defaultedBecauseThisMachineIsTooSlow(_, let days):
                return "the default GPU: the run would take over \(days) days on this machine"
            }
        }
    }
}

extension Plan {
    /// How the budget C was set.
    public var budgetRule: PlanRule {
        if allocation.inference != nil { return .inferenceAwareBudget }
        switch target {
        case .flops: return .given
        case .params: return .budgetForParams
        case .tokens: return .budgetForTokens
        }
    }

    /// How the training tokens D were set.
    public var tokensRule: PlanRule {
        if case .tokens = target { return .given } else { return .tokensFromBudget }
    }

    /// Which fit predicts the loss.
    public var lossRule: PlanRule { .loss(fit: schedule.lossFit.name, dataConstrained: allocation.dataConstraint != nil) }
}

extension ShapeDecision {
    public var parameterCountRule: PlanRule { .parameterCount(tiedHead: shape.tieEmbeddings) }
    public var nonEmbeddingRule: PlanRule { .nonEmbeddingParameters }
    /// n_layer and d_model.
    public var searchRule: PlanRule { .shapeSearch(preferredAspect: PlanLimits.int(search.preferredAspect.rounded())) }
    public var headsRule: PlanRule { .heads(headSize: shape.headSize) }
    public var mlpRule: PlanRule { .mlpWidth(shape.family) }
    public var familyRule: PlanRule { .family(shape.family) }
    public var keyValueHeadsRule: PlanRule { .keyValueHeads(shape.family, llama: ShapeSearch.llamaKVHeads) }
    public var ropeThetaRule: PlanRule { .ropeTheta(shape.family, llama: ShapeSearch.llamaRopeTheta) }
    public var normEpsilonRule: PlanRule { .normEpsilon }
    public var tiedHeadRule: PlanRule { .tiedHead(shape.family) }
    public var seqLenRule: PlanRule { .context(contextRule) }
    public var vocabularyRule: PlanRule { .vocabulary(requested: requestedVocab, padded: shape.vocabSize) }
    public var flopsPerTokenRule: PlanRule { .flopsPerToken }
}

extension BatchDecision {
    /// The batch in tokens.
    public var tokensRule: PlanRule { .batch(rule) }
    public var sequencesRule: PlanRule { .batchSequences }
}

extension LearningRateDecision {
    public var peakRule: PlanRule { .learningRate(rule) }
    public var minimumRule: PlanRule { .minimumLearningRate(fraction: StandardRecipe.minLRFraction) }
}

extension ScheduleDecision {
    public var warmupRule: PlanRule { .warmup(tokens: WarmupRule.gpt3Tokens, range: WarmupRule.range) }
    public var stepsRule: PlanRule { .steps }
}

extension Execution {
    public var microBatchRule: PlanRule { .fastestLayout(hardware: hardware.name, byTimeModel: false) }
    /// zero_stage, tensor_parallel, pipeline_parallel and recompute.
    public var layoutRule: PlanRule { .fastestLayout(hardware: hardware.name, byTimeModel: true) }
    public var gradAccumRule: PlanRule { .gradientAccumulation }
    public var devicesRule: PlanRule { .devices(devicesReason, count: chosen.layout.devices) }
    public var hardwareRule: PlanRule { .hardware(hardwareReason) }
}
