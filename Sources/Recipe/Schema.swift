import Formatting
import Foundation
import GPTShape

/// A scalar as it appears in a recipe.
public enum RecipeValue: Equatable, Sendable, CustomStringConvertible {
    case integer(Int)
    case float(Double)
    case string(String)
    case bool(Bool)

    /// Integers are accepted where numbers are expected: `lr = 1` means 1.0.
    public var number: Double? {
        switch self {
        case .float(let x): return x
        case .integer(let i): return Double(i)
        default: return nil
        }
    }

    public var kindName: String {
        switch self {
        case .integer: return "integer"
        case .float: return "number"
        case .string: return "string"
        case .bool: return "boolean"
        }
    }

    /// The TOML spelling: what the writer writes.
    public var description: String {
        switch self {
        case .integer(let i): return String(i)
        case .float(let x): return TOMLText.float(x)
        case .string(let s): return TOMLText.string(s)
        case .bool(let b): return b ? "true" : "false"
        }
    }

    /// The TOML spelling cut to `RecipeText.echoLimit` characters, for messages.
    public var echo: String { RecipeText.echo(description) }
}

/// A range of numbers; `openMin`/`openMax` exclude the bound itself.
public struct NumberRange: Equatable, Sendable, CustomStringConvertible {
    public var min: Double, openMin: Bool
    public var max: Double, openMax: Bool

    public init(_ min: Double, openMin: Bool = false, _ max: Double, openMax: Bool = false) {
        self.min = min
        self.openMin = openMin
        self.max = max
        self.openMax = openMax
    }

    public func contains(_ x: Double) -> Bool {
        x.isFinite && (openMin ? x > min : x >= min) && (openMax ? x < max : x <= max)
    }

    /// "[0.0, 1.0)", "(0.0, 0.001]".
    public var description: String {
        "\(openMin ? "(" : "[")\(TOMLText.float(min)), \(TOMLText.float(max))\(openMax ? ")" : "]")"
    }
}

/// A key whose value is one of an enumeration's raw values, read and written through a key path to the
/// enumeration.
public struct Choice: Sendable {
    public let names: [String]
    let get: @Sendable (Recipe) -> String
    let set: @Sendable (inout Recipe, String) -> Bool

    init<E>(_ keyPath: WritableKeyPath<Recipe, E> & Sendable)
    where E: RawRepresentable & CaseIterable & Sendable, E.RawValue == String {
        names = E.allCases.map(\.rawValue)
        get = { $0[keyPath: keyPath].rawValue }
        set = { recipe, name in
            guard let value = E(rawValue: name) else { return false }
            recipe[keyPath: keyPath] = value
            return true
        }
    }
}

/// What a key holds, where it lives on `Recipe` (a key path of the matching Swift type), and which values are
/// allowed. A value of another TOML type is a problem, never a zero.
public enum FieldKind: Sendable {
    case integer(WritableKeyPath<Recipe, Int> & Sendable, ClosedRange<Int>)
    /// A number (integers are accepted: `lr = 1` means 1.0).
    case number(WritableKeyPath<Recipe, Double> & Sendable, NumberRange)
    /// A non-empty string of at most `RecipeText.maximumStringBytes` bytes, from `choices` when given.
    case string(WritableKeyPath<Recipe, String> & Sendable, choices: [String]?)
    /// A file system path: non-empty, at most 4095 bytes (PATH_MAX less the terminator), no component over 255
    /// bytes (NAME_MAX), no NUL.
    case path(WritableKeyPath<Recipe, String> & Sendable)
    /// One of an enumeration's names.
    case choice(Choice)
    case bool(WritableKeyPath<Recipe, Bool> & Sendable)

    /// The allowed values in words, for messages and the reference: "an integer in 1...1024", "a number in
    /// (0.0, 1.0]", "one of "char", "byte"".
    public var allowed: String {
        switch self {
        case .integer(_, let range): return "an integer in \(range.lowerBound)...\(range.upperBound)"
        case .number(_, let range): return "a number in \(range)"
        case .string(_, let choices?): return Self.oneOf(choices)
        case .choice(let choice): return Self.oneOf(choice.names)
        case .string(_, nil): return "a non-empty string of at most \(RecipeText.maximumStringBytes) bytes"
        case .path: return "a path (a non-empty string of at most \(RecipeText.maximumPathBytes) bytes)"
        case .bool: return "true or false"
        }
    }

    static func oneOf(_ names: [String]) -> String { "one of " + names.map { "\"\($0)\"" }.joined(separator: ", ") }

    public var typeName: String {
        switch self {
        case .integer: return "integer"
        case .number: return "number"
        case .string, .path, .choice: return "string"
        case .bool: return "boolean"
        }
    }
}

/// One key of the recipe: where it lives, what it may hold and why, what it means, its default when it may be
/// left out, and its former names.
public struct Field: Sendable {
    public let section: String
    public let key: String
    public let kind: FieldKind
    public let doc: String
    /// Why the range is what it is (docs/recipe-reference.md shows it).
    public let bounds: String
    /// The value an absent key takes; nil when the key is required.
    public let defaultValue: RecipeValue?
    /// Former `section.key` names still read, with a warning saying where the key lives now.
    public let formerPaths: [String]

    public var path: String { section.isEmpty ? key : "\(section).\(key)" }
    public var isOptional: Bool { defaultValue != nil }

    init(_ path: String, _ kind: FieldKind, default defaultValue: RecipeValue? = nil, formerly: [String] = [],
         doc: String, bounds: String) {
        let parts = path.split(separator: ".", maxSplits: 1).map(String.init)
        section = parts.count == 2 ? parts[0] : ""
        key = parts.last!
        self.kind = kind
        self.doc = doc
        self.bounds = bounds
        self.defaultValue = defaultValue
        formerPaths = formerly
    }

    /// The value on `recipe` (whose section, if optional, must be present).
    public func value(in recipe: Recipe) -> RecipeValue {
        switch kind {
        case .integer(let keyPath, _): return .integer(recipe[keyPath: keyPath])
        case .number(let keyPath, _): return .float(recipe[keyPath: keyPath])
        case .string(let keyPath, _), .path(let keyPath): return .string(recipe[keyPath: keyPath])
        case .choice(let choice): return .string(choice.get(recipe))
        case .bool(let keyPath): return .bool(recipe[keyPath: keyPath])
        }
    }

    /// Why a value cannot be used: the kind of problem and the message.
    public struct Refusal: Equatable, Sendable {
        public var kind: Problem.Kind
        public var message: String
    }

    /// Stores `value` on `recipe`, or says why not (and leaves `recipe` as it was).
    public func assign(_ value: RecipeValue, to recipe: inout Recipe) -> Refusal? {
        func out(of what: String) -> Refusal { Refusal(kind: .outOfRange, message: "must be \(kind.allowed), got \(what)") }
        switch (kind, value) {
        case (.integer(let keyPath, let range), .integer(let i)):
            guard range.contains(i) else { return out(of: String(i)) }
            recipe[keyPath: keyPath] = i
        case (.integer, .float(let x)):
            return Refusal(kind: .wrongType, message: "must be an integer, got the number \(TOMLText.float(x))"
                           + (x == x.rounded() && x.isFinite ? " (write it without a decimal point)" : ""))
        case (.number(let keyPath, let range), .integer), (.number(let keyPath, let range), .float):
            let x = value.number!
            guard range.contains(x) else { return out(of: value.echo) }
            recipe[keyPath: keyPath] = x
        case (.string(let keyPath, let choices), .string(let s)):
            if s.isEmpty { return Refusal(kind: .outOfRange, message: "must not be empty") }
            if let choices, !choices.contains(s) { return out(of: value.echo) }
            if s.utf8.count > RecipeText.maximumStringBytes {
                return Refusal(kind: .outOfRange, message: "is \(s.utf8.count) bytes long, over the limit of "
                               + "\(RecipeText.maximumStringBytes): \(value.echo)")
            }
            recipe[keyPath: keyPath] = s
        case (.path(let keyPath), .string(let s)):
            if let why = RecipeText.pathProblem(s) { return Refusal(kind: .outOfRange, message: why) }
            recipe[keyPath: keyPath] = s
        case (.choice(let choice), .string(let s)):
            guard choice.set(&recipe, s) else { return out(of: value.echo) }
        case (.bool(let keyPath), .bool(let b)):
            recipe[keyPath: keyPath] = b
        default:
            return Refusal(kind: .wrongType, message: "must be \(kind.allowed), got the \(value.kindName) \(value.echo)")
        }
        return nil
    }
}

/// One `[section]` of the recipe. An optional section may be left out as a whole; when it is given, its
/// required keys are required.
public struct Section: Sendable {
    public let name: String
    public let doc: String
    let presence: (isPresent: @Sendable (Recipe) -> Bool, create: @Sendable (inout Recipe) -> Void)?

    public var isOptional: Bool { presence != nil }

    init(_ name: String, _ doc: String) {
        self.name = name
        self.doc = doc
        presence = nil
    }

    /// A section held in an optional property of `Recipe`.
    init<T: Sendable>(optional name: String, _ doc: String, _ keyPath: WritableKeyPath<Recipe, T?> & Sendable,
                      empty: T) {
        self.name = name
        self.doc = doc
        presence = ({ $0[keyPath: keyPath] != nil }, { if $0[keyPath: keyPath] == nil { $0[keyPath: keyPath] = empty } })
    }

    public func isPresent(in recipe: Recipe) -> Bool { presence?.isPresent(recipe) ?? true }
}

/// The recipe format: its sections in order, and every key.
public enum Schema {
    /// 2: dropout moved from [model] to [training] (the old place is still read, with a warning); the optional
    /// layout keys, `checkpoint.allow_outside` and the optional [hardware] section were added. 1 is still read.
    public static let version = 2

    public static let sections: [Section] = [
        Section("plan", "What the planner decided. `gpt-plan check` recounts N from [model] and D from [training] and checks that 6·N·D spends `flops_budget`."),
        Section("model", "The model: pre-norm decoder blocks of the GPT-2 family (token and position embeddings, LayerNorm, GELU MLP, tied output head) or the Llama family (rotary positions, RMSNorm, SwiGLU MLP, grouped-query attention, untied head)."),
        Section("data", "The training text and how it becomes tokens."),
        Section("optimizer", "AdamW with decoupled weight decay on matrices and embeddings only, and global-norm clipping."),
        Section("schedule", "Learning rate over the steps: linear warmup from 0, then decay to `optimizer.min_lr` at the last step."),
        Section("training", "Steps, batch and parallel layout. `devices` is the total device count K = d·t·p: t = tensor_parallel devices split each layer, p = pipeline_parallel devices split the layers into stages, and d = devices / (t·p) are data-parallel ranks. The effective batch is micro_batch × grad_accum × d sequences. With t = p = 1 (the defaults) every device is a data-parallel process."),
        Section("eval", "Validation on the held-out split, in eval mode (no dropout)."),
        Section("checkpoint", "Full training state in HDF5, so that a run resumes exactly."),
        Section("logging", "Metrics written to metrics.jsonl in the run directory."),
        Section(optional: "hardware", "Optional: the device the plan was made for (`gpt-plan` writes it; check uses it for the memory and time estimates). Leave the whole section out when it does not apply; when it is given, every key in it is required.",
                \.hardware, empty: Recipe.Hardware()),
        Section(optional: "stability", "Optional: loss-spike detection and recovery. A spike is a non-finite loss or gradient norm, a training loss more than `loss_sigmas` standard deviations above its mean over the last `window` accepted steps, or a gradient norm above `grad_norm_factor` times their median. The statistical rules fire once the window is full. Without this section only a non-finite loss or gradient norm is a spike, and it stops the run; every key has a default.",
                \.stability, empty: Recipe.Stability()),
    ]

    /// The largest window the spike detector keeps (its losses and norms are saved in every checkpoint).
    public static let maxStabilityWindow = 10_000

    /// The keys and sections schema version 2 introduced; a recipe that says `schema_version = 1` and uses one is
    /// read (this build knows them), with a warning: a version-1 reader would refuse it.
    public static let introducedInVersion2 = (
        keys: ["training.dropout", "training.tensor_parallel", "training.pipeline_parallel", "training.zero_stage",
               "training.recompute", "checkpoint.allow_outside"],
        sections: ["hardware"])

    public static let fitNames = StandardRecipe.recordedFits + ["manual"]
    public static let tokenizerNames = ["char", "byte", "bpe"]

    /// The largest count a run could need anywhere: 2^40 ≈ 1.1e12 (a trillion steps at a millisecond each is 35
    /// years).
    static let maxSteps = 1 << 40

    public static let fields: [Field] = [
        Field("schema_version", .integer(\.schemaVersion, 1...version),
              doc: "recipe format version",
              bounds: "the versions this build reads (1: dropout in [model]; 2: dropout in [training], layout and [hardware] keys)"),

        Field("plan.flops_budget", .number(\.plan.flopsBudget, NumberRange(1, 1e30)),
              doc: "training compute budget C in FLOPs; 6·N·D must match it",
              bounds: "6·N·D is at least 6 (N, D ≥ 1), so a budget under one FLOP is a typo; 1e30 is 10^4 times the largest published runs (~5e25)"),
        Field("plan.fit", .string(\.plan.fit, choices: fitNames),
              doc: "allocation rule that split C into N and D (\"manual\" for a hand-made recipe)",
              bounds: "the planner's rules"),
        Field("plan.params", .integer(\.plan.params, 1...(1 << 50)),
              doc: "parameters N the planner counted (information only: check recounts N from [model])",
              bounds: "2^50 ≈ 1.1e15, a thousand times the largest dense models"),
        Field("plan.tokens", .integer(\.plan.tokens, 1...(1 << 60)),
              doc: "training tokens D the planner chose",
              bounds: "2^60 ≈ 1.2e18, 10^5 times the largest training sets (~1.5e13 tokens)"),
        Field("plan.predicted_loss", .number(\.plan.predictedLoss, NumberRange(0, 100)),
              doc: "final loss the scaling-law fit predicts, in nats per token (0: no prediction, as for a character-level run the fits do not describe)",
              bounds: "uniform guessing over the largest vocabulary (2^24) costs ln 2^24 ≈ 16.6 nats; fits extrapolated to tiny models exceed that, but a prediction over 100 is a broken fit"),

        Field("model.n_layer", .integer(\.model.nLayer, 1...1024),
              doc: "transformer blocks",
              bounds: "ten times the deepest published GPTs (GPT-3: 96, PaLM: 118)"),
        Field("model.n_head", .integer(\.model.nHead, 1...1024),
              doc: "attention heads per block; d_model must be a multiple of it",
              bounds: "ten times the most heads published (GPT-3: 96, PaLM: 48)"),
        Field("model.d_model", .integer(\.model.dModel, 1...65536),
              doc: "width of the residual stream",
              bounds: "2^16, over twice the widest published (PaLM 540B: 18432)"),
        Field("model.d_ff", .integer(\.model.dFF, 1...(1 << 18)),
              doc: "hidden units of the MLP (4·d_model in GPT-2)",
              bounds: "2^18 = 4 × the largest d_model"),
        Field("model.seq_len", .integer(\.model.seqLen, 1...(1 << 20)),
              doc: "context length: learned positions",
              bounds: "2^20 ≈ 1M positions; attention's T^2 scores make longer contexts impossible here"),
        Field("model.vocab_size", .integer(\.model.vocabSize, 2...(1 << 24)),
              doc: "rows of the token embedding; at least the tokenizer's vocabulary",
              bounds: "a language model needs two tokens; 2^24 ≈ 16.8M is 64 times the largest vocabularies (~256K)"),
        Field("model.bias", .bool(\.model.bias),
              doc: "biases in linear layers and LayerNorms (GPT-2: true; Llama: false)",
              bounds: "true or false"),
        Field("model.family", .choice(Choice(\.model.family)), default: .string("gpt2"),
              doc: "the block design: \"gpt2\" (learned positions, LayerNorm, GELU MLP, multi-head attention, tied head) or \"llama\" (rotary positions, RMSNorm, SwiGLU MLP of three matrices, grouped-query attention with n_kv_head key/value heads, untied head unless tie_embeddings = true). gpt-train trains both (llama without biases, with an even head size); gpt-plan plans and checks both",
              bounds: "the families the planner counts"),
        Field("model.n_kv_head", .integer(\.model.nKVHead, 0...1024), default: .integer(0),
              doc: "key/value heads (grouped-query attention; Llama 3: 8); must divide n_head; 0 or absent means n_head (multi-head attention, the only choice for \"gpt2\")",
              bounds: "as n_head"),
        Field("model.rope_theta", .number(\.model.ropeTheta, NumberRange(1, 1e10)), default: .float(10_000),
              doc: "base θ of the rotary position embedding (\"llama\" only; Llama 2: 10000, Llama 3: 500000)",
              bounds: "published bases run from 1e4 to a few 1e7 for long contexts; 1e10 is a thousand times that"),
        Field("model.norm_eps", .number(\.model.normEps, NumberRange(0, openMin: true, 0.1)), default: .float(1e-5),
              doc: "ε added to the variance (LayerNorm) or mean square (RMSNorm) before the square root (GPT-2 and Llama 3: 1e-5)",
              bounds: "positive; published values are 1e-6 to 1e-5, and above 0.1 it swamps activations of unit scale"),
        Field("model.tie_embeddings", .bool(\.model.tieEmbeddings), default: .bool(true),
              doc: "whether the output head is the token embedding (GPT-2) or a matrix of its own (Llama 2 and 3 from 7B); absent: true for \"gpt2\", false for \"llama\"",
              bounds: "true or false"),

        Field("data.path", .path(\.data.path),
              doc: "a UTF-8 text file, or a directory written by `gpt-data prepare`; relative to this file",
              bounds: "what the file system accepts: 4095 bytes (PATH_MAX), 255 per component (NAME_MAX)"),
        Field("data.tokenizer", .string(\.data.tokenizer, choices: tokenizerNames),
              doc: "\"char\" (the file's distinct characters), \"byte\" (256 byte values) or \"bpe\" (a prepared directory's byte-level BPE)",
              bounds: "the tokenizers gpt-train has"),
        Field("data.val_fraction", .number(\.data.valFraction, NumberRange(0, openMin: true, 0.5)),
              doc: "share held out for validation, the end of the data in order: of the tokens for a text file, of the bytes (fixed when it was prepared) for a prepared directory",
              bounds: "some data must be held out; holding out more than is trained on is not pre-training (0.1 is usual, nanoGPT uses 0.1)"),

        Field("optimizer.lr", .number(\.optimizer.lr, NumberRange(0, openMin: true, 1)),
              doc: "peak learning rate",
              bounds: "Adam moves each weight by about lr per step and GPT weights start at 0.02, so lr = 1 already destroys them; published GPT rates are 6e-5 to 1e-2"),
        Field("optimizer.min_lr", .number(\.optimizer.minLR, NumberRange(0, 1)),
              doc: "learning rate at the last step (10% of peak in the standard recipe)",
              bounds: "as lr, and at most lr (checked across keys)"),
        Field("optimizer.beta1", .number(\.optimizer.beta1, NumberRange(0, 1, openMax: true)),
              doc: "AdamW first-moment decay",
              bounds: "a decay factor: 1 would never update the moment"),
        Field("optimizer.beta2", .number(\.optimizer.beta2, NumberRange(0, 1, openMax: true)),
              doc: "AdamW second-moment decay",
              bounds: "a decay factor: 1 would never update the moment"),
        Field("optimizer.eps", .number(\.optimizer.eps, NumberRange(0, openMin: true, 1e-3)),
              doc: "AdamW denominator epsilon",
              bounds: "it must not vanish; √v of GPT gradients is about 1e-3 to 1e-6, so an eps above 1e-3 dominates it and turns AdamW into SGD with rate lr/eps (published values: 1e-8 to 1e-6)"),
        Field("optimizer.weight_decay", .number(\.optimizer.weightDecay, NumberRange(0, 1)),
              doc: "decoupled weight decay, applied to tensors with two or more dimensions only",
              bounds: "each step multiplies weights by 1 - lr·weight_decay; published values are 0 to 0.1 (GPT-3, LLaMA: 0.1), and above 1 decay outweighs learning"),
        Field("optimizer.grad_clip", .number(\.optimizer.gradClip, NumberRange(0, 1000)),
              doc: "clip the global gradient norm to this (0 turns clipping off)",
              bounds: "healthy GPT gradient norms are O(1) (the standard clip is 1.0); a clip over 1000 never acts, so write 0 to turn clipping off"),

        Field("schedule.warmup_steps", .integer(\.schedule.warmupSteps, 0...maxSteps),
              doc: "steps of linear warmup from 0 to the peak learning rate",
              bounds: "as training.steps, and below it (checked across keys)"),
        Field("schedule.decay", .choice(Choice(\.schedule.decay)),
              doc: "shape of the decay after warmup",
              bounds: "the schedules gpt-train has"),

        Field("training.steps", .integer(\.training.steps, 1...maxSteps),
              doc: "optimizer steps",
              bounds: "2^40 ≈ 1.1e12: a trillion steps at a millisecond each is 35 years"),
        Field("training.batch_size", .integer(\.training.batchSize, 1...(1 << 24)),
              doc: "sequences per optimizer step (the effective batch): micro_batch × grad_accum × devices / (tensor_parallel × pipeline_parallel)",
              bounds: "2^24 sequences is thousands of times the largest published batches (GPT-3: 1536 × 2048 tokens)"),
        Field("training.seq_len", .integer(\.training.seqLen, 1...(1 << 20)),
              doc: "tokens per training sequence; at most model.seq_len",
              bounds: "as model.seq_len"),
        Field("training.micro_batch", .integer(\.training.microBatch, 1...(1 << 20)),
              doc: "sequences per forward/backward pass on each data-parallel rank",
              bounds: "2^20; at most batch_size in any consistent recipe"),
        Field("training.grad_accum", .integer(\.training.gradAccum, 1...(1 << 20)),
              doc: "micro-batches whose gradients are summed before each step",
              bounds: "2^20; at most batch_size in any consistent recipe"),
        Field("training.devices", .integer(\.training.devices, 1...(1 << 20)),
              doc: "total devices K = d·t·p (d = devices / (tensor_parallel × pipeline_parallel) data-parallel ranks; gpt-train runs one process and accumulates the other ranks' micro-batches itself)",
              bounds: "2^20 ≈ 1M, ten times the largest clusters"),
        Field("training.tensor_parallel", .integer(\.training.tensorParallel, 1...64), default: .integer(1),
              doc: "t: devices that split each layer's matrices (Megatron-LM); must divide devices, n_head and d_ff",
              bounds: "tensor parallelism stays inside a node (8 GPUs) in practice; 64 is the largest node-sized group"),
        Field("training.pipeline_parallel", .integer(\.training.pipelineParallel, 1...1024), default: .integer(1),
              doc: "p: pipeline stages, each a run of whole layers; must divide devices / tensor_parallel and be at most n_layer",
              bounds: "at most one stage per layer, and n_layer is at most 1024"),
        Field("training.zero_stage", .integer(\.training.zeroStage, 0...3), default: .integer(0),
              doc: "ZeRO stage (Rajbhandari et al. 2020): 0 replicates the optimizer state on every data-parallel rank, 1 partitions the optimizer state, 2 also the gradients, 3 also the weights (FSDP)",
              bounds: "the paper's stages"),
        Field("training.recompute", .choice(Choice(\.training.recompute)), default: .string("none"),
              doc: "activation recomputation (Korthikanti et al. 2022): \"none\" keeps every activation, \"selective\" recomputes attention's score/softmax region, \"full\" recomputes each block from its input",
              bounds: "the paper's modes"),
        Field("training.dropout", .number(\.training.dropout, NumberRange(0, 1, openMax: true)), formerly: ["model.dropout"],
              doc: "dropout probability after the embeddings, on attention weights, and on each block's two outputs (formerly model.dropout)",
              bounds: "a probability; 1 would drop everything"),
        Field("training.seed", .integer(\.training.seed, 0...Int.max),
              doc: "seeds initialisation, batch sampling and dropout",
              bounds: "any non-negative 64-bit integer (2^63 - 1 at most, TOML's largest)"),
        Field("training.precision", .choice(Choice(\.training.precision)), default: .string("fp32"),
              doc: "number format of every matrix product's inputs: \"fp32\", or \"bf16\" (inputs rounded to bfloat16, fp32 accumulation; LayerNorm, softmax, GELU, the loss, clipping, AdamW and the master weights stay fp32, so checkpoints are the same either way). On a CPU without bf16 instructions, or whose native bf16 products measure slower than its fp32 sgemm (AVX512-BF16 without AMX on Intel), gpt-train emulates bf16 products exactly on the fp32 sgemm (the same bf16 operands, fp32 accumulation, no faster than fp32) and says so. gpt-plan writes \"bf16\" for GPUs and for CPUs whose native bf16 products it measured faster than the fp32 sgemm, else \"fp32\" (docs/planner.md). A checkpoint resumes in either precision",
              bounds: "the two formats gpt-train computes in"),

        Field("eval.interval", .integer(\.eval.interval, 1...maxSteps),
              doc: "steps between validations (and one after the last step)",
              bounds: "as training.steps; a warning when it is above training.steps (only the final validation runs)"),
        Field("eval.iters", .integer(\.eval.iters, 1...10_000),
              doc: "micro-batches of held-out windows per validation",
              bounds: "nanoGPT uses 200 for GPT-2 and 20 on a CPU; 10000 is fifty times more, and a warning says when one validation costs more than the training between two"),

        Field("checkpoint.dir", .path(\.checkpoint.dir),
              doc: "where checkpoints go: a path inside the run directory, relative to it; an absolute path elsewhere only with allow_outside = true, and never /",
              bounds: "a path the file system accepts (4095 bytes, 255 per component) that does not leave the run directory"),
        Field("checkpoint.allow_outside", .bool(\.checkpoint.allowOutside), default: .bool(false),
              doc: "allow an absolute checkpoint.dir outside the run directory (for a separate disk)",
              bounds: "true or false"),
        Field("checkpoint.interval", .integer(\.checkpoint.interval, 1...maxSteps),
              doc: "steps between checkpoints (and one after the last step)",
              bounds: "as training.steps; a warning when it is above training.steps (only the final checkpoint is written)"),
        Field("checkpoint.keep", .integer(\.checkpoint.keep, 1...1000),
              doc: "newest checkpoints kept; older ones are removed once a new one is complete",
              bounds: "each checkpoint holds 12 bytes per parameter (weights and both AdamW moments); a thousand is already more disk than any run keeps"),

        Field("logging.interval", .integer(\.logging.interval, 1...maxSteps),
              doc: "steps between training-metric lines in metrics.jsonl",
              bounds: "as training.steps; a warning when it is above training.steps (no line is written until the end)"),
        Field("logging.health_interval", .integer(\.logging.healthInterval, -1...maxSteps), default: .integer(-1),
              doc: "steps between health lines in metrics.jsonl (-1: every logging.interval steps; 0: none): the gradient norm and ‖update‖/‖weight‖ of every parameter tensor, the largest |logit| and the largest |activation| entering each block (on the step's last micro-batch, before the update, in eval mode)",
              bounds: "-1 (the logging interval), 0 (off), or a step count as training.steps"),

        Field("hardware.name", .string(\.hardware!.name, choices: nil),
              doc: "the device, as gpt-plan names it (a preset such as \"h100-sxm-80gb\", or a description)",
              bounds: "a name"),
        Field("hardware.device_memory", .integer(\.hardware!.deviceMemory, (1 << 20)...(1 << 50)),
              doc: "memory of one device, in bytes",
              bounds: "1 MiB to 1 PiB: below any device that can train, and over a thousand times the largest GPU (192 GB)"),
        Field("hardware.device_flops", .number(\.hardware!.deviceFlops, NumberRange(1e6, 1e18)),
              doc: "peak FLOP/s of one device at the training precision",
              bounds: "1 MFLOP/s to 1 EFLOP/s: a thousand times below a CPU core and several hundred times above the fastest GPU (~2e15 dense)"),
        Field("hardware.mfu", .number(\.hardware!.mfu, NumberRange(0, openMin: true, 1)),
              doc: "model FLOPs utilisation the plan assumes: achieved / peak",
              bounds: "a share of the peak: above 0 and at most 1"),

        Field("stability.action", .choice(Choice(\.stability!.action)), default: .string("stop"),
              doc: "what a spike does: \"stop\" ends the run with an error naming the step; \"skip\" discards that step's update (no optimizer step; its data is consumed); \"rollback\" restores the last in-memory snapshot (weights, AdamW moments and step count, training state), passes over the batches drawn since, and multiplies the learning rate by lr_factor for lr_factor_steps steps (PaLM, Chowdhery et al. 2022 §5.1: restart about 100 steps before the spike and skip 200-500 batches; OPT, Zhang et al. 2022 §2.5: restart from an earlier checkpoint at a lower learning rate)",
              bounds: "the actions gpt-train has"),
        Field("stability.window", .integer(\.stability!.window, 2...maxStabilityWindow), default: .integer(50),
              doc: "accepted steps whose losses and gradient norms the detector keeps; it fires only once the window is full (its warm-up)",
              bounds: "a standard deviation needs two values; 10000 steps of history is more than any spike rule looks back (each checkpoint stores the window)"),
        Field("stability.loss_sigmas", .number(\.stability!.lossSigmas, NumberRange(0, 1000)), default: .float(6),
              doc: "k: a loss above mean + k·std of the window is a spike (0 turns the rule off). Our choice: a z-score against a running window, as spike monitors do; 6σ is far outside the step-to-step noise of a healthy run (a false alarm under Gaussian noise is ~1e-9 a step), while the spikes the OPT-175B logbook and PaLM describe are jumps of many σ",
              bounds: "0 (off) to 1000; beyond a few tens only non-finite losses would be caught anyway"),
        Field("stability.grad_norm_factor", .number(\.stability!.gradNormFactor, NumberRange(0, 1e6)), default: .float(0),
              doc: "a gradient norm above this multiple of the window's median is a spike (0: off). Our choice: the median is not moved by the spike itself; OPT (Zhang et al. 2022, §2.5) saw norm spikes with its divergences",
              bounds: "0 (off) to 1e6; healthy norms vary by a few times, so 5 to 20 is typical"),
        Field("stability.snapshot_interval", .integer(\.stability!.snapshotInterval, 1...maxSteps), default: .integer(50),
              doc: "steps between the in-memory snapshots a rollback returns to (also taken at the start of each process and at every checkpoint); costs one more copy of the weights and moments in memory, with action = \"rollback\" only",
              bounds: "as training.steps"),
        Field("stability.lr_factor", .number(\.stability!.lrFactor, NumberRange(0, openMin: true, 1)), default: .float(1),
              doc: "after a rollback the learning rate is multiplied by this for lr_factor_steps steps (1: unchanged)",
              bounds: "a reduction: above 0, at most 1"),
        Field("stability.lr_factor_steps", .integer(\.stability!.lrFactorSteps, 0...maxSteps), default: .integer(0),
              doc: "steps after the snapshot a rollback returns to that run at the lowered learning rate",
              bounds: "as training.steps"),
        Field("stability.max_recoveries", .integer(\.stability!.maxRecoveries, 0...1_000_000), default: .integer(10),
              doc: "spikes skipped or rolled back before the run stops with an error (counted over the whole run, across resumes)",
              bounds: "0 (every spike stops) to a million"),
    ]

    public static func field(_ path: String) -> Field? { fields.first { $0.path == path } }

    public static func fields(in section: String) -> [Field] { fields.filter { $0.section == section } }

    public static func section(_ name: String) -> Section? { sections.first { $0.name == name } }
}

/// Limits and spellings of text in recipes and in the messages about them.
public enum RecipeText {
    /// Characters of a key or value echoed in a message; longer ones are cut, with their length.
    public static let echoLimit = 80
    /// Bytes of a string value (names, not paths).
    public static let maximumStringBytes = 1024
    /// Bytes of a path: PATH_MAX (4096) less the terminating NUL.
    public static let maximumPathBytes = 4095
    /// Bytes of one path component: NAME_MAX.
    public static let maximumComponentBytes = 255

    /// `text` cut to `echoLimit` characters: "aaaa… (4194304 characters)".
    public static func echo(_ text: String) -> String {
        // Count only as far as needed: a 4 MB key costs nothing to cut.
        var end = text.startIndex
        var count = 0
        while end < text.endIndex, count < echoLimit { text.formIndex(after: &end); count += 1 }
        guard end < text.endIndex else { return text }
        return "\(text[..<end])… (\(text.utf8.count) bytes)"
    }

    /// Why `path` cannot be a path, or nil.
    public static func pathProblem(_ path: String) -> String? {
        if path.isEmpty { return "must not be empty" }
        if path.utf8.contains(0) { return "contains a NUL character, which no path can hold" }
        let length = path.utf8.count
        if length > maximumPathBytes {
            return "is \(length) bytes long, over the \(maximumPathBytes)-byte limit of a path: \(echo(path))"
        }
        if let long = path.split(separator: "/").first(where: { $0.utf8.count > maximumComponentBytes }) {
            return "has a component of \(long.utf8.count) bytes, over the \(maximumComponentBytes)-byte limit of a "
                + "file name: \(echo(String(long)))"
        }
        return nil
    }
}

/// TOML spellings of scalars.
public enum TOMLText {
    /// Shortest text that reads back as the same double, always with a decimal point or an exponent, so that TOML
    /// parses it as a float.
    public static func float(_ x: Double) -> String {
        var s = "\(x)"
        if !s.contains(".") && !s.contains("e") && !s.contains("n") && !s.contains("i") { s += ".0" }
        return s
    }

    public static func string(_ s: String) -> String { quotedString(s) }
}

extension Recipe {
    /// The value of one key; nil when the key's optional section is absent.
    public func value(of field: Field) -> RecipeValue? {
        guard Schema.section(field.section)?.isPresent(in: self) ?? true else { return nil }
        return field.value(in: self)
    }

    /// The keys of `sections` ("" is the top level) whose values differ between the two recipes, each value in its
    /// TOML spelling ("(absent)" for a key of an optional section the recipe leaves out). `schema_version` is the
    /// format, not a setting, and is never a difference.
    public func differences(from other: Recipe, in sections: Set<String>) -> [(path: String, this: String, other: String)] {
        Schema.fields.filter { sections.contains($0.section) && $0.path != "schema_version" }
            .compactMap { field in
                let mine = value(of: field), theirs = other.value(of: field)
                guard mine != theirs else { return nil }
                return (field.path, mine?.description ?? "(absent)", theirs?.description ?? "(absent)")
            }
    }
}
