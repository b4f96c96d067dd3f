import GPTShape
import CLISupport
import Foundation
import Planner
import Recipe

/// Turns the planner's structured decisions into the table, the rationale and error messages. Flag names live
/// here, never in Planner.
enum PlanText {
    /// One line of the plan table: what, how much, and by which rule.
    struct Row {
        var key: String
        var value: String
        var rule: String
    }

    // MARK: Rules in words

    static func allocationRule(_ rule: AllocationRule) -> String {
        switch rule {
        case .fit(let fit):
            return "\(fit.citation): L = \(sig(fit.E, 6)) + \(sig(fit.A, 6))/N^\(sig(fit.alpha, 4)) + "
                + "\(sig(fit.B, 6))/D^\(sig(fit.beta, 4)); optimum N = G·(C/6)^\(sig(fit.a, 4)), "
                + "D = (C/6)^\(sig(fit.b, 4))/G with G = \(sig(fit.G, 4))"
        case .tokensPerParam(let r):
            return "fixed ratio D = \(sig(r, 4))·N (Chinchilla's rule of thumb): N = sqrt(C/(6·\(sig(r, 4))))"
        case .llama3:
            return "Llama 3 (Dubey et al. 2024, §3.2.1): D = \(AllocationRule.llama3A)·C^\(AllocationRule.llama3Alpha) tokens, "
                + "N = C/(6D)"
        }
    }

    static func batchRule(_ b: BatchDecision, flops: Double, tokens: Double) -> String {
        switch b.rule {
        case .deepseek:
            return "\(b.rule.formula), C = \(sig(flops, 3)) (the declared 6ND budget; DeepSeek count C as "
                + "non-embedding FLOPs per token × D, which is a little smaller)"
        case .kaplan: return "\(b.rule.formula) at the predicted loss L = \(sig(b.lossForRule ?? .nan, 4))"
        case .stepLaw: return "\(b.rule.formula) at D = \(si(tokens, 4))"
        case .fixed: return "given (--batch)"
        }
    }

    static func learningRateRule(_ lr: LearningRateDecision, batchTokens: Int, nonEmbedding: Int = 0,
                                 tokens: Double = 0) -> String {
        switch lr.rule {
        case .deepseek: return "\(lr.rule.formula) at C = \(sig(lr.flops, 3))"
        case .kaplan: return lr.rule.formula
        case .stepLaw: return "\(lr.rule.formula) at N = \(si(Double(nonEmbedding), 4)), D = \(si(tokens, 4))"
        case .reference(let refBatch, let refLR, let scaling):
            return "\(lr.rule.formula): \(sig(refLR, 3)) × (\(si(Double(batchTokens)))/\(si(refBatch)))^\(scaling.exponent)"
        case .fixed: return "given (--lr)"
        case .perWidth: return lr.rule.formula
        }
    }

    static func layout(_ l: Layout) -> String {
        "d=\(l.dataParallel) t=\(l.tensorParallel) p=\(l.pipelineParallel) ZeRO-\(l.zeroStage) "
            + "recompute \(l.recompute.rawValue), micro \(l.microBatch) × accum \(l.gradAccum)"
    }

    static func memory(_ m: MemoryBreakdown) -> String {
        "weights \(bytes(m.weights)) + gradients \(bytes(m.gradients)) + optimizer \(bytes(m.optimizer)) + "
            + "activations \(bytes(m.activations)) + other \(bytes(m.other)) = \(bytes(m.total))"
    }

    static func hardware(_ h: Hardware) -> String {
        "\(h.name): \(bytes(h.memoryBytes)), \(flopRate(h.peakFlops))"
            + (h.precision == .mixed ? " dense bf16" : " \(h.products.precision.rawValue)")
            + (h.devicesPerNode > 1 ? ", \(h.devicesPerNode) a node" : "")
    }

    // MARK: Table

    static func rows(_ plan: Plan) -> [Row] {
        let shape = plan.shape, count = shape.parameterCount
        let e = plan.execution, l = plan.layout
        var rows: [Row] = []
        let decided = plan.shapeDecision
        func add(_ key: String, _ value: String, _ rule: String) {
            rows.append(Row(key: key, value: value, rule: rule))
        }
        func add(_ key: String, _ value: String, _ rule: PlanRule) { add(key, value, rule.statement) }
        add("flops", sig(plan.flops, 4), plan.budgetRule)
        add("params", "\(si(Double(plan.params), 4)) (\(plan.params))", decided.parameterCountRule)
        add("non_embedding_params", si(Double(count.nonEmbedding), 4), decided.nonEmbeddingRule)
        add("tokens", si(plan.tokens, 4), plan.tokensRule)
        add("tokens_per_param", sig(plan.tokensPerParam, 3), PlanRule.tokensPerParam)
        add("predicted_loss", sig(plan.predictedLoss, 4), plan.lossRule)
        add("n_layer", "\(shape.nLayer)", decided.smallestAboveOptimum
            ? "the smallest shape: N* = \(si(plan.allocation.idealParams)) is below it"
            : "shape search: N ≈ N*, d_model/n_layer near \(sig(decided.search.preferredAspect, 3))")
        add("n_head", "\(shape.nHead)", decided.headsRule)
        add("d_model", "\(shape.dModel)", "shape search")
        add("d_ff", "\(shape.dFF)", decided.mlpRule)
        add("seq_len", "\(shape.seqLen)", decided.seqLenRule)
        add("vocab_size", "\(shape.vocabSize)", decided.vocabularyRule)
        add("flops_per_token", sig(plan.flopsPerToken, 4),
            "\(decided.flopsPerTokenRule.statement) (6N: \(sig(shape.flopsPerTokenSixN, 4)); Chinchilla app. F: \(sig(shape.flopsPerTokenChinchilla(), 4)))")
        add("batch_tokens", si(Double(plan.batchTokens), 4), plan.batch.tokensRule)
        add("batch_sequences", "\(plan.batchSequences)", plan.batch.sequencesRule)
        add("learning_rate", sig(plan.learningRate, 3), plan.learningRateDecision.peakRule)
        add("min_learning_rate", sig(plan.minLearningRate, 3), plan.learningRateDecision.minimumRule)
        add("warmup_steps", "\(plan.warmupSteps)", plan.schedule.warmupRule)
        add("steps", "\(plan.steps)", plan.schedule.stepsRule)
        add("hardware", e.hardware.name, hardwareRule(e))
        add("precision", e.hardware.products.precision.rawValue, e.hardware.products.explanation)
        add("devices", "\(l.devices)", e.devicesRule)
        add("layout", "d=\(l.dataParallel) t=\(l.tensorParallel) p=\(l.pipelineParallel)",
            "fastest feasible of \(e.layoutsTried) layouts evaluated (time model in docs/planner.md)")
        add("zero_stage", "\(l.zeroStage)", l.zeroStage == 0 ? "no sharding" : "ZeRO-\(l.zeroStage) over \(l.dataParallel) data-parallel ranks")
        add("recompute", l.recompute.rawValue, "activation recomputation (Korthikanti et al. 2022)")
        add("micro_batch", "\(l.microBatch)", e.microBatchRule)
        add("grad_accum", "\(l.gradAccum)", e.gradAccumRule)
        let m = plan.memory
        add("memory_per_device", bytes(m.total),
            "of \(bytes(e.chosen.usableBytes)) usable (\(Int((e.hardware.usableFraction * 100).rounded()))% of \(bytes(e.hardware.memoryBytes)))")
        add("  weights", bytes(m.weights), weightsRule(e))
        add("  gradients", bytes(m.gradients), e.hardware.precision == .mixed ? "2 bytes a parameter (bf16)" : "4 bytes a parameter")
        add("  optimizer", bytes(m.optimizer), e.hardware.precision == .mixed ? "12 bytes a parameter: fp32 master weights and AdamW moments" : "AdamW's two float32 moments")
        add("  activations", bytes(m.activations), e.hardware.precision == .mixed ? "Korthikanti et al. 2022 Table 2, 1F1B in flight"
            : "gpt-train's buffers for one micro-batch" + (e.hardware.products.precision == .bf16 ? ", with their bf16 copies" : ""))
        add("  other", bytes(m.other), e.hardware.precision == .mixed ? "runtime context, NCCL buffers, workspaces" : "none reserved")
        add("time", duration(plan.estimatedSeconds), e.timeModel != nil
            ? "calibrated step-time model (docs/planner.md): \(sig(100 * e.mfu, 3))% MFU predicted on \(l.devices) × \(flopRate(e.hardware.peakFlops)) (\(e.hardware.products.ceilingName))"
            : "\(Int(e.mfu * 100))% MFU of \(l.devices) × \(flopRate(e.hardware.peakFlops)) (\(e.hardware.products.ceilingName)) + bubble + exposed communication")
        add("device_hours", sig(e.deviceHours, 4), "time × devices")
        if let cost = e.cost { add("cost", sig(cost, 4), "device hours × --price-per-device-hour") }
        return rows
    }

    static func weightsRule(_ e: Execution) -> String {
        e.hardware.precision == .mixed
            ? "2 bytes a parameter (bf16); params on a device: ÷t, the heaviest pipeline stage"
            : "4 bytes a parameter (float32)" + (e.hardware.products.precision == .bf16 ? " + 2 for the bf16 copy the products read" : "")
    }

    static func hardwareRule(_ e: Execution) -> String {
        switch e.hardwareReason {
        case .given: return hardware(e.hardware)
        case .thisMachine: return "this machine (no hardware named): \(bytes(e.hardware.memoryBytes)), \(flopRate(e.hardware.peakFlops))"
        case .defaultedBecauseThisMachineIsTooSmall:
            return "no hardware named and the run does not fit this machine: \(hardware(e.hardware))"
        case .defaultedBecauseThisMachineIsTooSlow(let seconds, let days):
            return "no hardware named and the run would take \(duration(seconds)) here (over \(sig(days)) days): \(hardware(e.hardware))"
        }
    }

    // MARK: Rationale

    static func rationale(_ plan: Plan) -> [String] {
        var why: [String] = []
        let a = plan.allocation, rule = a.rule
        let shape = plan.shape, count = shape.parameterCount
        let n = Double(count.total)
        switch plan.target {
        case .flops(let c): why.append("Budget C = \(sig(c, 4)) FLOPs (given).")
        case .params(let p):
            why.append("N = \(si(p)) given: the budget for which it is compute-optimal under the \(rule.name) rule is "
                       + "C = \(sig(a.budget, 4)) FLOPs.")
        case .tokens(let d):
            why.append("D = \(si(d)) tokens given: the budget for which it is compute-optimal under the \(rule.name) "
                       + "rule is C = \(sig(a.budget, 4)) FLOPs.")
        }
        why.append("Allocation (\(rule.name)): \(allocationRule(rule)); ideal N* = \(si(a.idealParams, 4)), "
                   + "D* = \(si(a.idealTokens, 4)) (\(sig(a.idealTokens / a.idealParams, 3)) tokens per parameter).")

        if let i = a.inference { why += inferenceRationale(i) }
        if let dc = a.dataConstraint { why += dataConstraintRationale(dc, rule: rule) }

        let s = plan.shapeDecision
        let vocabNote = shape.vocabSize != s.requestedVocab ? " (\(s.requestedVocab) padded to a multiple of 64)" : ""
        let search = s.smallestAboveOptimum
            ? "the smallest shape the search builds with this vocabulary and context, since N* is below it"
            : s.search.withinTolerance
            ? "of the shapes within \(Int(ShapeSearch.tolerance * 100))% of the target N, the one whose d_model/n_layer "
                + "(\(sig(s.search.aspect, 3))) is nearest \(sig(s.search.preferredAspect, 3)) (64 at ≤1B parameters, "
                + "as GPT-2; 128 at ≥10B, as GPT-3 and LLaMA); head size \(shape.headSize), "
                + (shape.family == .llama
                   ? "\(shape.nKVHead) key/value heads, d_ff = 3.5·d_model rounded up to a multiple of 256 = \(shape.dFF) (Llama 3's proportions), rotary positions, untied head"
                   : "d_ff = 4·d_model")
            : "no shape within \(Int(ShapeSearch.tolerance * 100))% of the target N; the nearest one with "
                + "d_model/n_layer in 32...128"
        let context: String
        switch s.contextRule {
        case .given: context = "context \(shape.seqLen) (--seq-len)"
        case .gpt2: context = "context 1024 (GPT-2's)"
        case .shortened(let cap):
            context = "context \(shape.seqLen), the largest power of two ≤ min(1024, 1.5·d_model, B/16) = \(sig(cap, 4)) "
                + "(attention adds ≤ 25% to 6N, a batch holds ≥ 16 sequences)"
        }
        why.append("Shape: \(shape.nLayer) layers × \(shape.nHead) heads × d_model \(shape.dModel), d_ff \(shape.dFF), "
                   + "\(context), vocabulary \(shape.vocabSize)\(vocabNote); \(search).")
        let embedding = count.outputHead > 0
            ? "token embedding \(count.tokenEmbedding) + untied output head \(count.outputHead)"
            : "token embedding \(count.tokenEmbedding) (shared with the output head, counted once)"
        let positions = shape.family == .llama ? "" : " + position embedding \(count.positionEmbedding)"
        let norm = shape.family == .llama ? "RMSNorm" : "LayerNorm"
        why.append("N = \(count.total) counted from the shape: \(embedding)\(positions) + blocks and final "
                   + "\(norm) \(count.nonEmbedding)\(shape.bias ? " (with biases)" : " (no biases)"); "
                   + "\(sig(100 * (n / a.idealParams - 1), 2))% from N*.")
        if s.smallestAboveOptimum { why.append(smallestShapeNote(plan)) }
        if a.embeddingShare > Allocation.embeddingDominated {
            why.append("Small budget: the token embedding is \(Int((100 * a.embeddingShare).rounded()))% of N, so most of "
                       + "the parameters are a lookup table"
                       + (a.suggestedVocab.map { "; a vocabulary of about \($0) tokens (--vocab \($0), or a prepared "
                           + "--data with its own tokenizer) would leave the blocks the larger share" } ?? "")
                       + ". The allocation still counts all parameters, as the Chinchilla fits do (Kaplan et al.'s "
                       + "non-embedding count would need Kaplan's own fits; Pearce & Song 2024 trace most of the "
                       + "Kaplan-Chinchilla gap to that counting at small scale).")
        }
        if case .tokens(let d) = plan.target {
            why.append("D = \(si(d)) as given; the budget becomes 6·N·D = \(sig(plan.flops, 4)) FLOPs with the real N.")
        } else {
            why.append("D = C/(6N) = \(si(plan.tokens, 4)) tokens, so that 6·N·D spends the budget exactly "
                       + "(\(sig(plan.tokens / n, 3)) tokens per parameter).")
        }
        let withAttention = plan.flopsPerToken, sixN = shape.flopsPerTokenSixN
        let appendixF = shape.flopsPerTokenChinchilla()
        func gap(_ x: Double) -> String {
            let p = 100 * (sixN / x - 1)
            return "\(p >= 0 ? "+" : "")\(sig(p, 2))%"
        }
        why.append("FLOPs per token: 6N = \(sig(sixN, 4)); 6N' + 12·n_layer·d_model·T = \(sig(withAttention, 4)) "
                   + "(N' = \(count.matmul), the parameters in matrix products; nanoGPT's MFU count); Chinchilla "
                   + "appendix F = \(sig(appendixF, 4)). 6N is \(gap(withAttention)) and \(gap(appendixF)) off them.")

        let b = plan.batch
        var batch = "\(batchRule(b, flops: a.budget, tokens: a.tokens)): \(si(b.targetTokens, 4)) tokens = \(b.targetSequences) sequences "
            + "of \(shape.seqLen)"
        if let cap = b.cappedAt { batch += "; capped at \(cap) so the run has at least \(minimumSteps) steps" }
        if b.sequences != min(b.targetSequences, b.cappedAt ?? .max) {
            batch += "; rounded to \(b.sequences) (three significant binary digits, so that it divides among many "
                + "device counts)"
        }
        why.append("Batch: \(batch). The batch, like everything above, does not depend on the hardware.")
        let trained = plan.schedule.trainedTokens
        why.append("Steps = D / batch = \(plan.steps); they train \(si(trained, 4)) tokens, "
                   + "\(sig(100 * (trained / plan.tokens - 1), 2))% from D.")
        why.append("Peak learning rate \(sig(plan.learningRate, 3)): \(learningRateRule(plan.learningRateDecision, batchTokens: plan.batchTokens, nonEmbedding: plan.nonEmbeddingParams, tokens: plan.tokens)). "
                   + "Minimum \(sig(plan.minLearningRate, 3)) = \(Int(StandardRecipe.minLRFraction * 100))% of peak, reached by cosine "
                   + "decay at the last step (the standard recipe).")
        let w = plan.schedule.warmup
        let warmup: String
        switch w.bound {
        case .gpt3Tokens: warmup = "GPT-3's 375M warmup tokens / \(si(Double(plan.batchTokens))) tokens a step"
        case .atMost5Percent: warmup = "5% of the steps (GPT-3's 375M warmup tokens would be \(w.fromTokens) steps, more than 5%)"
        case .atLeast1Percent: warmup = "1% of the steps (GPT-3's 375M warmup tokens would be \(w.fromTokens) steps, less than 1%)"
        }
        why.append("Warmup \(w.steps) steps: \(warmup).")
        if plan.batch.rule == .stepLaw || plan.learningRateDecision.rule == .stepLaw,
           !StepLawRange.contains(nonEmbeddingParams: Double(plan.nonEmbeddingParams), tokens: plan.tokens) {
            why.append("Step Law: N = \(si(Double(plan.nonEmbeddingParams), 3)) non-embedding parameters and D = "
                       + "\(si(plan.tokens, 3)) tokens are outside the ranges it was fitted on (about "
                       + "\(si(StepLawRange.nonEmbeddingParams.lowerBound))-\(si(StepLawRange.nonEmbeddingParams.upperBound)) "
                       + "parameters, \(si(StepLawRange.tokens.lowerBound))-\(si(StepLawRange.tokens.upperBound)) tokens; "
                       + "Li et al. 2025), so its batch and learning rate are extrapolations.")
        }
        let fit = plan.schedule.lossFit
        var lossNote = fit.name == rule.name ? "" : " (the fixed-ratio rule has no loss model of its own)"
        // The published fits' range; a measured fit (gpt-plan fit) states its own sweep after the plan.
        let published = [ChinchillaFit.epoch.name, ChinchillaFit.hoffmann.name].contains(fit.name)
        if published, !ChinchillaFit.fittedParams.contains(n) {
            lossNote += "; N is outside the \(si(ChinchillaFit.fittedParams.lowerBound))-\(si(ChinchillaFit.fittedParams.upperBound)) "
                + "parameters of the models the fits were made on, so this is an extrapolation (and the fits describe "
                + "MassiveText with a 32k-token subword vocabulary, not every corpus and tokenizer)"
        }
        why.append("Predicted loss \(sig(plan.predictedLoss, 4)) nats/token from the \(fit.name) fit at the real N and D\(lossNote).")
        why += executionRationale(plan)
        return why
    }

    static func inferenceRationale(_ i: InferenceDecision) -> [String] {
        let loss = i.targetLossGiven ? "the given loss \(sig(i.targetLoss, 4))"
            : "the compute-optimal plan's loss \(sig(i.targetLoss, 4))"
        return [
            "Inference-aware (Sardana et al. 2023, section 2): the model will serve \(si(i.inferenceTokens, 4)) tokens, so "
                + "the plan minimises training + inference FLOPs 6·N·D + 2·N·T at \(loss): N = \(si(i.params, 4)), D = "
                + "\(si(i.tokens, 4)) (\(sig(i.tokens / i.params, 3)) tokens per parameter) instead of the compute-optimal "
                + "N = \(si(i.computeOptimalParams, 4)), D = \(si(i.computeOptimalTokens, 4)): "
                + "\(sig(i.computeOptimalParams / i.params, 3))× smaller, trained on \(sig(i.tokens / i.computeOptimalTokens, 3))× "
                + "the tokens. Training + inference: \(sig(i.total, 4)) FLOPs vs \(sig(i.computeOptimalTotal, 4)), "
                + "\(sig(100 * i.savedFraction, 3))% saved; the training budget becomes 6·N·D = \(sig(6 * i.params * i.tokens, 4)).",
        ]
    }

    static func dataConstraintRationale(_ dc: DataConstraintDecision, rule: AllocationRule) -> [String] {
        var lines: [String] = []
        let base = "Data-constrained (Muennighoff et al. 2023, eq. 5; R*_D = \(DataConstrained.dataDecay), R*_N = "
            + "\(DataConstrained.paramsDecay)): \(si(dc.uniqueTokens, 4)) unique tokens"
        if dc.reallocated {
            lines.append(base + ", fewer than the unconstrained D* = \(si(dc.unconstrainedTokens, 4)) "
                         + "(\(sig(dc.unconstrainedTokens / dc.uniqueTokens, 3)) epochs, predicted loss "
                         + "\(sig(dc.unconstrainedLoss, 4)) with repetition counted), so the split minimises the loss at "
                         + "effective data D' = U + U·R*_D·(1 − e^(−R_D/R*_D)) and effective parameters N' (the same decay "
                         + "beyond the N that U tokens support); numerically, as there is no closed form.")
        } else {
            lines.append(base + (dc.epochs > 1 ? "." : ": enough for the plan without repeating."))
        }
        if dc.epochs > 1 {
            var line = "The plan trains \(sig(dc.epochs, 3)) epochs: effective data D' = \(si(dc.effectiveTokens, 4)) of "
                + "the \(si(dc.epochs * dc.uniqueTokens, 4)) tokens trained, effective parameters N' = \(si(dc.effectiveParams, 4))"
            switch dc.verdict {
            case .unique, .nearlyFree: line += "; up to about 4 epochs repeated data is nearly as good as unique (ibid., figure 1)."
            case .diminishing:
                line += ". Warning: beyond about 4 epochs each repetition is worth less (ibid.); more unique data would help."
            case .littleValue:
                line += ". Warning: beyond about 16 epochs more repetition adds little value (ibid., section 3); get more "
                    + "unique data or a smaller budget."
            }
            lines.append(line)
        }
        return lines
    }

    static func executionRationale(_ plan: Plan) -> [String] {
        var why: [String] = []
        let e = plan.execution, h = e.hardware, l = plan.layout, m = plan.memory
        switch e.hardwareReason {
        case .given: why.append("Hardware: \(hardware(h)) (\(h.source)).")
        case .thisMachine: why.append("Hardware: this machine, one process (no hardware named; \(h.source)).")
        case .defaultedBecauseThisMachineIsTooSmall(let needed, _) where !needed.isFinite:
            why.append("Hardware: no hardware named, and the fixed layout needs what gpt-train on this machine does not "
                       + "do (tensor or pipeline parallelism, ZeRO, recomputation), so the plan is for "
                       + "\(hardware(h)) (\(h.source)).")
        case .defaultedBecauseThisMachineIsTooSlow(let seconds, let days):
            why.append("Hardware: no hardware named; one process here holds the run but would take \(duration(seconds)) "
                       + "(this machine is planned for only when the run finishes within \(sig(days)) days; --days "
                       + "changes that), so the plan is for \(hardware(h)) (\(h.source)); plan for this machine with --gpu cpu.")
        case .defaultedBecauseThisMachineIsTooSmall(let needed, let usable):
            why.append("Hardware: no hardware named, and one process here would need at least \(bytes(needed)) but has "
                       + "\(bytes(usable)) usable"
                       + (e.secondsOnThisMachine.map { " (and its compute alone would take \(duration($0)) here)" } ?? "")
                       + ", so the plan is for \(hardware(h)) (\(h.source)); name other hardware "
                       + "with --gpu (see --gpu list) or --device-memory and --device-flops.")
        }
        switch e.devicesReason {
        case .given: why.append("Devices: \(l.devices), given.")
        case .fewestThatFit(let days):
            why.append("Devices: \(l.devices), the fewest (a power of two below a node, else whole nodes) on which a "
                       + "layout fits" + (days.map { " and the run finishes within \(sig($0, 3)) days" } ?? "") + ".")
        }
        why.append("Layout: \(layout(l)); the fastest by the time model of the \(e.layoutsTried) layouts evaluated "
                   + "(d·t·p = \(l.devices) device\(l.devices == 1 ? "" : "s"), micro × accumulation × d = \(l.batchSequences) sequences exactly"
                   + constraintText(e.constraints) + ").")
        let state = h.precision == .mixed
            ? "mixed precision: 2 bytes a parameter for bf16 weights, 2 for gradients, 12 for fp32 master weights and "
                + "AdamW moments (the ZeRO paper's K = 12; Megatron-LM also keeps fp32 gradients, 4 more), "
                + "ZeRO-\(l.zeroStage) over d = \(l.dataParallel) (Rajbhandari et al. 2020, Fig. 1), on the "
                + "\(Int(LayoutModel.stageParamsOnDevice(plan.shape, l))) parameters the heaviest device holds; "
                + "activations from Korthikanti et al. 2022 Table 2 (sequence parallelism with t > 1, recompute "
                + "\(l.recompute.rawValue)) × the layers and micro-batches in flight on the first stage (1F1B), plus "
                + "embedding, output layer and loss; other = \(bytes(h.reservedBytes)) for the runtime and buffers"
            : "float32: 4 bytes a parameter each for weights and gradients, 8 for AdamW's moments, and gpt-train's "
                + "activation buffers for one micro-batch (recompute \(l.recompute.rawValue): \(cpuRecomputeNote(l.recompute)))"
                + (h.products.precision == .bf16 ? "; bf16 products add a 2-byte bf16 copy of each weight and bf16 copies of the activations they read" : "")
        why.append("Memory per device: \(memory(m)) (\(state)); a layout must stay under "
                   + "\(Int((h.usableFraction * 100).rounded()))% of \(bytes(h.memoryBytes)) = \(bytes(e.chosen.usableBytes)).")
        why.append("Precision: \(h.products.explanation); the time estimate divides by the \(h.products.ceilingName), "
                   + "\(flopRate(h.peakFlops)).")
        let st = e.chosen.step
        why.append("Time ≈ \(duration(plan.estimatedSeconds)) (\(sig(e.deviceHours, 4)) device hours"
                   + (e.cost.map { ", cost \(sig($0, 4))" } ?? "") + "): per step compute \(duration(st.compute)) at "
                   + (e.timeModel.map { m in
                       "η = \(sig(m.matmulEfficiency, 2))·w/(w + \(Int(m.widthHalf))) of the peak, w = d_model/t = "
                       + "\(plan.shape.dModel / l.tensorParallel) (the calibrated step-time model, \(m.source); "
                       + "\(sig(100 * e.mfu, 3))% MFU predicted overall) on \(l.devices) × \(flopRate(h.peakFlops))" }
                      ?? "\(Int(e.mfu * 100))% MFU of \(l.devices) × \(flopRate(h.peakFlops))")
                   + (l.recompute == .none ? "" : " (recomputation included)")
                   + " + bubble \(duration(st.bubble)) + data-parallel \(duration(st.dataParallel)) + tensor-parallel "
                   + "\(duration(st.tensorParallel)) + pipeline \(duration(st.pipeline)) of exposed communication, "
                   + "× \(plan.steps) steps.")
        return why
    }

    static func constraintText(_ c: LayoutConstraints) -> String {
        var fixed: [String] = []
        if let z = c.zeroStage { fixed.append("--zero-stage \(z)") }
        if let t = c.tensorParallel { fixed.append("--tensor-parallel \(t)") }
        if let p = c.pipelineParallel { fixed.append("--pipeline-parallel \(p)") }
        if let r = c.recompute { fixed.append("--recompute \(r.rawValue)") }
        return fixed.isEmpty ? "" : "; fixed by \(fixed.joined(separator: ", "))"
    }

    // MARK: Errors

    static func flag(_ input: PlanError.Input) -> String {
        switch input {
        case .flops: return "--flops"
        case .params: return "--params"
        case .tokens: return "--tokens"
        case .tokensPerParam: return "--tokens-per-param"
        case .vocab: return "--vocab"
        case .seqLen: return "--seq-len"
        case .batch: return "--batch"
        case .learningRate: return "--lr"
        case .referenceBatch: return "--reference-batch"
        case .referenceLR: return "--reference-lr"
        case .deviceMemory: return "--device-memory"
        case .deviceFlops: return "--device-flops"
        case .mfu: return "--mfu"
        case .devices: return "--devices"
        case .days: return "--days"
        case .pricePerDeviceHour: return "--price-per-device-hour"
        case .uniqueTokens: return "--unique-tokens"
        case .inferenceTokens: return "--inference-tokens"
        case .targetLoss: return "--target-loss"
        case .zeroStage: return "--zero-stage"
        case .tensorParallel: return "--tensor-parallel"
        case .pipelineParallel: return "--pipeline-parallel"
        }
    }

    /// Why a plan whose N* is below every shape trains the smallest one, and what that costs by the loss fit.
    static func smallestShapeNote(_ plan: Plan) -> String {
        let a = plan.allocation, fit = plan.schedule.lossFit, shape = plan.shape
        let n = Double(plan.params)
        let optimum = fit.loss(params: a.idealParams, tokens: a.idealTokens)
        let here = fit.loss(params: n, tokens: plan.tokens)
        return "Small budget: the compute-optimal N* = \(si(a.idealParams, 3)) is below the smallest GPT with vocabulary "
            + "\(shape.vocabSize) and context \(shape.seqLen) (\(shape.nLayer) layer\(shape.nLayer == 1 ? "" : "s"), "
            + "d_model \(shape.dModel): \(si(n, 3))), so the plan trains that model, ×\(sig(n / a.idealParams, 2)) the "
            + "compute-optimal size, on D = C/(6N) = \(si(plan.tokens, 3)) tokens instead of D* = \(si(a.idealTokens, 3)). "
            + "The \(fit.name) fit predicts L(N, D) = \(sig(here, 4)) nats/token for it against L(N*, D*) = "
            + "\(sig(optimum, 4)) at the optimum (+\(sig(here - optimum, 2)) nats, +\(sig(100 * (here / optimum - 1), 2))%). "
            + "The vocabulary is the data's tokenizer's (--vocab): only a smaller one allows a smaller model."
    }

    static func error(_ e: PlanError) -> String {
        switch e {
        case .outOfRange(let input, let value):
            let range: String
            switch input {
            case .mfu: range = FlagRange(PlanLimits.mfu).description
            case .devices: range = FlagRange(PlanLimits.devices).description + ", or auto"
            case .vocab: range = FlagRange(PlanLimits.vocab).description
            case .seqLen: range = FlagRange(PlanLimits.seqLen).description
            case .zeroStage: range = "must be 0, 1, 2 or 3"
            case .tensorParallel: range = "must be 1, 2, 4 or 8"
            case .pipelineParallel: range = FlagRange(PlanLimits.pipelineParallel).description
            case .pricePerDeviceHour: range = FlagRange(PlanLimits.pricePerDeviceHour).description
            case .inferenceTokens: range = FlagRange.nonNegative.description
            case .deviceMemory: range = FlagRange(PlanLimits.deviceMemory).description + " bytes"
            case .deviceFlops: range = FlagRange(PlanLimits.deviceFlops).description
            case .learningRate, .referenceLR: range = FlagRange(0, included: false, 1).description
            default: range = FlagRange.positive.description
            }
            return "\(flag(input)) \(sig(value, 6)): out of range: \(range)"
        case .budgetTooSmall(let target, let smallest, let needed):
            return "the compute-optimal model has about \(si(target)) parameters, but the smallest GPT with vocabulary "
                + "\(smallest.vocabSize) and context \(smallest.seqLen) has \(si(Double(smallest.parameterCount.total))) "
                + "(\(smallest.nLayer) layer, d_model \(smallest.dModel)), and a budget below \(sig(needed, 2)) FLOPs "
                + "trains it on fewer tokens than it has parameters or for fewer than \(minimumSteps) steps of one "
                + "sequence (6·N·max(N, \(minimumSteps)·T)); give --flops of at least \(sig(needed, 2)), or a smaller "
                + "--vocab or --seq-len"
        case .budgetTooLarge(let target, let largest):
            let size = target.isFinite ? "about \(si(target))" : "more than a Double can count"
            return "the compute-optimal model has \(size) parameters, more than the largest shape the "
                + "planner builds (\(si(largest)), d_model \(ShapeSearch.maxWidth)); give a smaller --flops, --params or --tokens"
        case .noShape(let target):
            return "no GPT shape with d_model/n_layer in 32...128 has about \(si(target)) parameters"
        case .tooFewTokens(let tokens, let seqLen):
            return "the run trains \(si(tokens)) tokens: fewer than \(minimumSteps) steps of one \(seqLen)-token "
                + "sequence; give a larger budget or a shorter --seq-len"
        case .learningRateInvalid(let lr):
            return "the learning-rate rule gives \(sig(lr, 3)) for this run; give --lr"
        case .learningRateOutOfRange(let lr):
            let r = PlanLimits.derivedLearningRate
            return "the learning-rate rule gives \(sig(lr, 3)) for this run, outside \(sig(r.lowerBound)) to "
                + "\(sig(r.upperBound)) (no published run trains there); check --reference-batch and --reference-lr, "
                + "use another --lr-rule, or give --lr"
        case .exceeds(let quantity, let value, let limit):
            let fix = quantity == .batchSequences ? "give a smaller --batch"
                : "give a smaller --flops, --tokens or --inference-tokens" + (quantity == .steps ? ", or a larger --batch" : "")
            return "the plan's \(quantity.rawValue) come to \(sig(value, 3)), more than a recipe holds (\(sig(limit, 3))); \(fix)"
        case .noLayout(let devices, let hardware, let reason, let least):
            var text = devices.map { "no layout of \($0) \(hardware) device\($0 == 1 ? "" : "s") fits this run" }
                ?? "no layout on \(hardware) fits this run"
            switch reason {
            case .batchNotDivisible(let batch, _)?:
                text += ": the batch of \(batch) sequences does not divide among \(devices ?? 0) data-parallel ranks "
                    + "(after tensor and pipeline parallelism); give --devices auto or a count that divides it"
            case .devicesNotFactored(let k, let t, let p)?:
                text += ": --tensor-parallel \(t) × --pipeline-parallel \(p) does not divide \(k) devices"
            case .unsupportedOnCPU?:
                text += ": on CPUs gpt-train runs float32, one process a device, data parallel: no tensor or pipeline "
                    + "parallelism, no ZeRO stage above 1 (name a GPU with --gpu)"
            default: break
            }
            if let least {
                text += "; the smallest needs \(bytes(least.memory.total)) a device (\(layout(least.layout)): "
                    + "\(memory(least.memory))) but a device has \(bytes(least.usableBytes)) usable; give more "
                    + "--devices (or auto), a larger --device-memory or --gpu, or fewer fixed dimensions"
            }
            return text
        case .lossUnreachable(let loss, let irreducible):
            return "no model reaches a loss of \(sig(loss, 4)) under this fit: its irreducible loss E is "
                + "\(sig(irreducible, 4)) and finite models stay above it; give a larger --target-loss"
        case .conflicting(let why):
            return "\(why); drop one of --unique-tokens, --inference-tokens, --target-loss, --params, --tokens"
        case .tooSlow(let days, let fastest, let devices):
            return "no device count finishes within \(sig(days, 3)) days: the fastest takes at least "
                + "\(duration(fastest)) (with \(devices) devices); give more --days"
        }
    }

    // MARK: Comparisons

    static func layouts(_ plan: Plan) -> String {
        var out = "Fastest layouts on \(plan.devices) × \(plan.execution.hardware.name) "
            + "(\(plan.execution.layoutsTried) layouts evaluated)\n\n"
        out += "  " + ["d", "t", "p", "zero", "recompute", "micro", "accum", "memory", "time", "compute", "bubble", "comm"]
            .map { $0.padding(toLength: 10, withPad: " ", startingAt: 0) }.joined() + "\n"
        for e in plan.execution.alternatives {
            let l = e.layout, st = e.step
            let cells = ["\(l.dataParallel)", "\(l.tensorParallel)", "\(l.pipelineParallel)", "\(l.zeroStage)",
                         l.recompute.rawValue, "\(l.microBatch)", "\(l.gradAccum)", bytes(e.memory.total),
                         duration(st.total * Double(plan.steps)), duration(st.compute * Double(plan.steps)),
                         duration(st.bubble * Double(plan.steps)),
                         duration((st.dataParallel + st.tensorParallel + st.pipeline) * Double(plan.steps))]
            out += "  " + cells.map { $0.padding(toLength: 10, withPad: " ", startingAt: 0) }.joined() + "\n"
        }
        return out
    }

    static func presets(cpu: Hardware?) -> String {
        var out = "Hardware presets (--gpu NAME); --device-memory, --device-flops, --devices and --mfu override them\n\n"
        for h in Hardware.gpuPresets + (cpu.map { [$0] } ?? []) {
            out += "  \(h.name.padding(toLength: 14, withPad: " ", startingAt: 0))"
                + "\((sig(h.memoryBytes / 1e9, 4) + " GB").padding(toLength: 9, withPad: " ", startingAt: 0))"
                + (h.precision == .mixed
                    ? "\(flopRate(h.peakFlops)) bf16, \(flopRate(h.fp32Flops)) fp32, \(h.devicesPerNode) a node, "
                        + "\(sig(h.intraNodeBandwidth / 1e9, 3)) GB/s in a node, \(sig(h.interNodeBandwidth / 1e9, 3)) GB/s between"
                    : "\(flopRate(h.peakFlops)) \(h.products.precision.rawValue) (\(h.source))")
                + "\n"
        }
        return out
    }
}

/// What gpt-train's activation buffers keep under a recompute mode (`ActivationLayout`), in words.
func cpuRecomputeNote(_ mode: Recompute) -> String {
    switch mode {
    case .none: "every block's activations kept"
    case .selective: "attention's output and log-sum-exps shared by the blocks and recomputed in the backward pass"
    case .full: "each block's output kept, one block's activations shared and recomputed in the backward pass"
    }
}
