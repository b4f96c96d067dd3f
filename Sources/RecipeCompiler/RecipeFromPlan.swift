import GPTShape
import Formatting
import Planner
import Recipe

/// What the planner leaves to the user: where the data is, how runs are evaluated, checkpointed and logged.
public struct RunSettings: Sendable {
    public var dataPath = "data"
    public var tokenizer = "bpe"
    public var valFraction = 0.1
    public var seed = 1337
    public var dropout = 0.0
    public var checkpointDir = "checkpoints"
    public var keep = 3

    public init() {}
}

extension Recipe {
    /// The recipe that executes `plan`, with the standard recipe's optimizer settings, and per-key notes saying
    /// which rule produced each value.
    public static func from(plan: Planner.Plan, settings: RunSettings = RunSettings()) -> (recipe: Recipe, notes: [String: String]) {
        var r = Recipe()
        var notes: [String: String] = [:]
        func round4(_ x: Double) -> Double { Double(sig(x, 4)) ?? x }

        r.plan.flopsBudget = round4(plan.flops)
        r.plan.fit = plan.fit
        r.plan.params = plan.params
        // A plan's values fit a recipe (Plan.make refuses the rest); should one not, the recipe check names the key.
        r.plan.tokens = PlanLimits.int(plan.tokens) ?? Int.max
        r.plan.predictedLoss = round4(plan.predictedLoss)
        let shape = plan.shapeDecision
        notes["plan.flops_budget"] = plan.budgetRule.statement
        notes["plan.params"] = shape.parameterCountRule.statement
        notes["plan.tokens"] = plan.tokensRule.statement
        notes["plan.predicted_loss"] = plan.lossRule.statement

        r.model = plan.shape
        for (key, rule) in [("n_layer", shape.searchRule), ("n_head", shape.headsRule), ("d_model", shape.searchRule),
                            ("d_ff", shape.mlpRule), ("seq_len", shape.seqLenRule), ("vocab_size", shape.vocabularyRule),
                            ("family", shape.familyRule), ("n_kv_head", shape.keyValueHeadsRule),
                            ("rope_theta", shape.ropeThetaRule), ("norm_eps", shape.normEpsilonRule),
                            ("tie_embeddings", shape.tiedHeadRule)] {
            notes["model.\(key)"] = rule.statement
        }

        r.data = Data(path: settings.dataPath, tokenizer: settings.tokenizer, valFraction: settings.valFraction)

        r.optimizer = Optimizer(lr: round4(plan.learningRate), minLR: round4(round4(plan.learningRate) * StandardRecipe.minLRFraction),
                                beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1.0)
        notes["optimizer.lr"] = plan.learningRateDecision.peakRule.statement
        notes["optimizer.min_lr"] = "\(sig(StandardRecipe.minLRFraction * 100))% of peak (the standard recipe)"
        for key in ["beta1", "beta2", "eps", "weight_decay", "grad_clip"] {
            notes["optimizer.\(key)"] = "the standard recipe (GPT-3, LLaMA): β=(0.9, 0.95), ε=1e-8, decay 0.1, clip 1.0"
        }

        r.schedule = Schedule(warmupSteps: plan.warmupSteps, decay: .cosine)
        notes["schedule.warmup_steps"] = plan.schedule.warmupRule.statement
        notes["schedule.decay"] = "cosine to min_lr (the standard recipe)"

        let layout = plan.layout
        r.training = Training(steps: plan.steps, batchSize: plan.batchSequences, seqLen: plan.shape.seqLen,
                              microBatch: plan.microBatch, gradAccum: plan.gradAccum, devices: plan.devices,
                              tensorParallel: layout.tensorParallel, pipelineParallel: layout.pipelineParallel,
                              zeroStage: layout.zeroStage, recompute: layout.recompute,
                              dropout: settings.dropout, seed: settings.seed)
        let execution = plan.execution
        for key in ["zero_stage", "tensor_parallel", "pipeline_parallel", "recompute"] {
            notes["training.\(key)"] = execution.layoutRule.statement
        }
        let hardware = execution.hardware
        r.training.precision = hardware.products.precision
        notes["training.precision"] = hardware.products.explanation
        r.hardware = Hardware(name: hardware.name, deviceMemory: PlanLimits.int(hardware.memoryBytes) ?? Int.max,
                              deviceFlops: hardware.peakFlops, mfu: plan.execution.mfu)
        for key in ["name", "device_memory", "device_flops", "mfu"] { notes["hardware.\(key)"] = execution.hardwareRule.statement }
        notes["training.steps"] = plan.schedule.stepsRule.statement
        notes["training.batch_size"] = "\(plan.batch.tokensRule.statement) → \(plan.batchTokens) tokens"
        notes["training.micro_batch"] = execution.microBatchRule.statement
        notes["training.grad_accum"] = execution.gradAccumRule.statement
        notes["training.devices"] = execution.devicesRule.statement
        notes["training.dropout"] = "none: one pass over enough data does not overfit (nanoGPT's pretraining setting)"

        let evalInterval = max(1, plan.steps / 10)
        r.eval = Eval(interval: evalInterval, iters: 20)
        notes["eval.interval"] = "ten validations over the run"
        notes["eval.iters"] = "20 micro-batches (nanoGPT's CPU setting), a few percent of the training time"
        r.checkpoint = Checkpoint(dir: settings.checkpointDir, interval: evalInterval, keep: settings.keep)
        r.logging = Logging(interval: max(1, min(100, plan.steps / 200)))
        return (r, notes)
    }
}
