import Formatting

// The precision vocabulary. One word for each question, in the module every other one can see:
// - `Precision` (fp32 | bf16): the number format of the matrix products' inputs, the recipe's `training.precision`.
//   Master weights, gradients and AdamW moments are fp32 either way, on every device.
// - `BF16Products` (native | emulated): how a bf16 recipe's products run on a CPU: oneDNN's bf16 matmul, or operands
//   rounded to bf16 and multiplied by the fp32 sgemm. A fact of the machine (measured), passed in.
// - The planner's `PrecisionDecision` is a `Precision` with its reason (tensor cores, or the two measured CPU
//   ceilings it was decided from), and its `TrainingPrecision` (mixed | float32) says which memory model a device
//   follows: the papers' mixed precision on GPUs, or `CPUTrainer`'s exact count (`.float32`, the CPU trainer).
// docs/architecture.md says why these stay apart.

/// How bf16 products run on a CPU.
public enum BF16Products: String, Sendable, CaseIterable {
    /// oneDNN's bf16 matmul (`BF16Matmul`) on bf16 copies of the operands: where the CPU has bf16 instructions.
    case native
    /// Operands rounded to bf16 in fp32 buffers, multiplied by the fp32 sgemm (`BFloat16`): exact, and no faster.
    case emulated
}

/// What gpt-train, the CPU trainer, can run: the layouts it implements, the memory a run takes, and the share of a
/// machine's memory it may use. The one rule behind `gpt-train`'s refusals (train, ablate, sweep), `gpt-plan check`
/// and the planner's CPU layout search, so that they cannot disagree. The machine's facts (its memory, how its bf16
/// products run, the ranks it hosts) are passed in; nothing here measures or reads the machine.
public struct CPUTrainer: Sendable, Equatable {
    /// Share of the machine's memory a run may plan to use: 10% is left to the operating system, the page cache
    /// and the threads' scratch (a few MB each), which the count below leaves out.
    public static let usableFraction = 0.9
    /// Bytes a parameter always costs: fp32 weights, gradients and the two AdamW moments.
    public static let weightBytes = 4.0, gradientBytes = 4.0, optimizerBytes = 8.0
    /// With native bf16 products: the weights' bf16 copy (2 bytes a parameter).
    public static let bf16CopyBytes = 2.0
    /// With emulated bf16 products: the weights rounded to bf16 in a second fp32 copy (4 bytes a parameter).
    public static let roundedCopyBytes = 4.0

    /// Bytes of memory on this machine.
    public var memoryBytes: Double
    /// How a bf16 recipe's products run here.
    public var bf16Products: BF16Products
    /// Processes on this machine, each holding a replica (data-parallel ranks under mpirun; 1 otherwise).
    public var ranksHere: Int

    public init(memoryBytes: Double, bf16Products: BF16Products, ranksHere: Int = 1) {
        self.memoryBytes = memoryBytes
        self.bf16Products = bf16Products
        self.ranksHere = max(1, ranksHere)
    }

    /// What a run may use here.
    public var usableBytes: Double { memoryBytes * Self.usableFraction }

    /// A run as the trainer sees it: the recipe's model and its `[training]` layout keys.
    public struct Run: Sendable, Equatable {
        public var shape: ModelShape
        public var microBatch: Int
        /// Tokens a sequence (training.seq_len).
        public var context: Int
        public var precision: Precision
        public var tensorParallel: Int
        public var pipelineParallel: Int
        public var zeroStage: Int
        public var recompute: Recompute

        public init(shape: ModelShape, microBatch: Int, context: Int, precision: Precision, tensorParallel: Int = 1,
                    pipelineParallel: Int = 1, zeroStage: Int = 0, recompute: Recompute = .none) {
            self.shape = shape
            self.microBatch = microBatch
            self.context = context
            self.precision = precision
            self.tensorParallel = tensorParallel
            self.pipelineParallel = pipelineParallel
            self.zeroStage = zeroStage
            self.recompute = recompute
        }
    }

    /// Why the trainer cannot run something: the recipe key, what is wrong, and the fix.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        /// `section.key`.
        public var key: String
        /// The key's value as the recipe writes it, when the message starts from it (`model.family = "llama"`).
        public var value: String?
        public var message: String
        public var fix: String

        public init(key: String, value: String? = nil, _ message: String, fix: String) {
            self.key = key
            self.value = value
            self.message = message
            self.fix = fix
        }

        public var description: String { "\(key)\(value.map { " = \($0)" } ?? ""): \(message). Fix: \(fix)" }
    }

    // MARK: The rules

    /// Models the trainer builds: GPT-2 blocks (LayerNorm with ε = 1e-5, the head tied to the token embedding) and
    /// Llama blocks (RMSNorm with the recipe's ε, rotary positions, SwiGLU, grouped-query attention, tied or untied
    /// head, no biases). Llama's rotary embedding rotates feature pairs, so its head size must be even. gpt-plan plans, counts
    /// and checks both families with the same rules.
    public static func modelProblems(_ m: ModelShape) -> [Problem] {
        switch m.family {
        case .llama:
            if m.bias {
                return [Problem(key: "model.bias", value: "true", "gpt-train's Llama model has no biases (as Llama: "
                                    + "its linear layers are bias-free and RMSNorm has a gain only)",
                                fix: "set model.bias = false")]
            }
            if m.nHead > 0, m.dModel % m.nHead == 0, m.headSize % 2 != 0 {
                return [Problem(key: "model.n_head", value: "\(m.nHead)",
                                "d_model \(m.dModel) / n_head \(m.nHead) gives an odd head size \(m.headSize), but the llama "
                                    + "family's rotary embedding rotates pairs of features",
                                fix: "choose n_head so that d_model / n_head is even (Llama's is 128)")]
            }
            return []
        case .gpt2:
            if m.normEps != 1e-5 {
                return [Problem(key: "model.norm_eps", value: "\(m.normEps)", "gpt-train's GPT-2 LayerNorm uses ε = 1e-5",
                                fix: "set model.norm_eps = 1e-5")]
            }
            if !m.tieEmbeddings {
                return [Problem(key: "model.tie_embeddings", value: "false",
                                "gpt-train's GPT-2 model ties the output head to the token embedding",
                                fix: "set model.tie_embeddings = true")]
            }
            return []
        }
    }

    /// The layouts the trainer implements: data parallelism (one replica a process) with ZeRO stage 0 or 1, in any
    /// recompute mode. The planner's CPU search tries only these.
    public static func layoutProblems(tensorParallel: Int, pipelineParallel: Int, zeroStage: Int) -> [Problem] {
        var problems: [Problem] = []
        for (key, value) in [("tensor_parallel", tensorParallel), ("pipeline_parallel", pipelineParallel)] where value > 1 {
            problems.append(Problem(key: "training.\(key)",
                                    "is \(value), but gpt-train trains data parallel only (one model replica a process)",
                                    fix: "set training.\(key) = 1 (and training.devices to the data-parallel processes), "
                                        + "or run this layout on a GPU framework"))
        }
        if zeroStage > 1 {
            problems.append(Problem(key: "training.zero_stage", "is \(zeroStage), but gpt-train implements ZeRO stages 0 and 1",
                                    fix: "set training.zero_stage = 1 (optimizer state sharded over the data-parallel ranks) or 0"))
        }
        return problems
    }

    /// The tensor-parallel widths, pipeline depths, ZeRO stages and recompute modes the planner may try on a CPU.
    public static let tensorParallelWidths = [1], pipelineDepths = [1], zeroStages = [0, 1]
    /// Every recompute mode runs (the backward pass recomputes, bit-identical to keeping everything).
    public static let recomputeModes = Recompute.allCases

    // MARK: Memory

    /// One process's training memory, term by term.
    public struct Memory: Sendable, Equatable {
        public var weights: Double
        public var gradients: Double
        public var optimizer: Double
        public var activations: Double
        public var total: Double { weights + gradients + optimizer + activations }
    }

    /// Bytes one process holds to train `shape` on micro-batches of `microBatch` sequences of `context` tokens:
    /// fp32 weights, gradients and AdamW moments (the moments split over `optimizerShards` processes by ZeRO-1),
    /// the copies bf16 products keep (`products`, nil for fp32), and the activations the model allocates
    /// (`ActivationLayout`, counted exactly for both families and every recompute mode).
    public static func memory(_ shape: ModelShape, microBatch: Int, context: Int? = nil, products: BF16Products?,
                              optimizerShards: Int = 1, recompute: Recompute = .none) -> Memory {
        let params = Double(shape.parameterCount.total)
        let copy = products == .native ? bf16CopyBytes : products == .emulated ? roundedCopyBytes : 0
        let activations = Double(shape.activationBytes(batch: microBatch, context: context,
                                                       bf16Copies: products == .native, recompute: recompute))
        return Memory(weights: (weightBytes + copy) * params, gradients: gradientBytes * params,
                      optimizer: optimizerBytes * params / Double(max(1, optimizerShards)), activations: activations)
    }

    /// How a run's bf16 products run here (nil for fp32).
    public func products(_ precision: Precision) -> BF16Products? { precision == .bf16 ? bf16Products : nil }

    /// Whether `ranksHere` replicas of the run fit this machine's usable memory; the problem if not.
    public func memoryProblem(_ run: Run) -> Problem? {
        let needed = Self.memory(run.shape, microBatch: run.microBatch, context: run.context,
                                 products: products(run.precision), recompute: run.recompute).total * Double(ranksHere)
        guard needed > usableBytes else { return nil }
        let recomputation = run.recompute == .full ? ""
            : ", set training.recompute = \"full\" (it keeps only each block's input)"
        return Problem(key: "training.micro_batch", "the run needs \(bytes(needed)) for weights, gradients, AdamW "
                       + "moments and one micro-batch's activations (recompute \"\(run.recompute.rawValue)\")"
                       + "\(ranksHere > 1 ? " on each of the \(ranksHere) ranks here" : ""); "
                       + "this machine has \(bytes(memoryBytes))",
                       fix: "lower training.micro_batch (and raise grad_accum to keep the batch)\(recomputation), or train a smaller model")
    }

    /// Everything that keeps the trainer from starting `run` here, in the order gpt-train reports them: the
    /// model, the layout, then memory (checked only for a model and layout it can build). Empty: it can start.
    public func problems(_ run: Run) -> [Problem] {
        let model = Self.modelProblems(run.shape)
        let layout = Self.layoutProblems(tensorParallel: run.tensorParallel, pipelineParallel: run.pipelineParallel,
                                         zeroStage: run.zeroStage)
        guard model.isEmpty, layout.isEmpty else { return model + layout }
        return memoryProblem(run).map { [$0] } ?? []
    }
}
