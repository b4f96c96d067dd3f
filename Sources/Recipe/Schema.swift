import Planner
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

    public var description: String {
        switch self {
        case .integer(let i): return String(i)
        case .float(let x): return TOMLText.float(x)
        case .string(let s): return TOMLText.string(s)
        case .bool(let b): return b ? "true" : "false"
        }
    }
}

/// What a key holds and which values are allowed.
public enum FieldKind: Sendable {
    case integer(min: Int, max: Int?)
    /// A number; `openMin`/`openMax` exclude the bound itself.
    case float(min: Double?, openMin: Bool, max: Double?, openMax: Bool)
    /// A non-empty string, from `choices` when given.
    case string(choices: [String]?)
    case bool

    /// The allowed values in words, for messages and the reference: "an integer in 1...1024", "a number > 0",
    /// "one of "char", "byte"".
    public var allowed: String {
        switch self {
        case .integer(let lo, let hi): return hi.map { "an integer in \(lo)...\($0)" } ?? "an integer ≥ \(lo)"
        case .float(let lo, let openLo, let hi, let openHi):
            switch (lo, hi) {
            case let (lo?, hi?): return "a number in \(openLo ? "(" : "[")\(TOMLText.float(lo)), \(TOMLText.float(hi))\(openHi ? ")" : "]")"
            case let (lo?, nil): return "a number \(openLo ? ">" : "≥") \(TOMLText.float(lo))"
            case let (nil, hi?): return "a number \(openHi ? "<" : "≤") \(TOMLText.float(hi))"
            case (nil, nil): return "a number"
            }
        case .string(let choices): return choices.map { "one of " + $0.map { "\"\($0)\"" }.joined(separator: ", ") } ?? "a non-empty string"
        case .bool: return "true or false"
        }
    }

    public var typeName: String {
        switch self {
        case .integer: return "integer"
        case .float: return "number"
        case .string: return "string"
        case .bool: return "boolean"
        }
    }
}

/// One key of the recipe: where it lives, what it may hold, what it means, and how to read and write it on a
/// `Recipe`.
public struct Field: Sendable {
    public let section: String
    public let key: String
    public let kind: FieldKind
    public let doc: String
    let get: @Sendable (Recipe) -> RecipeValue
    let set: @Sendable (inout Recipe, RecipeValue) -> Void

    public var path: String { section.isEmpty ? key : "\(section).\(key)" }

    /// Nil when `value` is allowed, else why not.
    public func check(_ value: RecipeValue) -> String? {
        switch (kind, value) {
        case (.integer(let lo, let hi), .integer(let i)):
            if i < lo || (hi.map { i > $0 } ?? false) { return "must be \(kind.allowed), got \(i)" }
        case (.float(let lo, let openLo, let hi, let openHi), _):
            guard let x = value.number else { return "must be a number, got \(value.kindName) \(value)" }
            let tooLow = lo.map { openLo ? x <= $0 : x < $0 } ?? false
            let tooHigh = hi.map { openHi ? x >= $0 : x > $0 } ?? false
            if !x.isFinite || tooLow || tooHigh { return "must be \(kind.allowed), got \(value)" }
        case (.string(let choices), .string(let s)):
            if s.isEmpty { return "must not be empty" }
            if let choices, !choices.contains(s) { return "must be \(kind.allowed), got \"\(s)\"" }
        case (.bool, .bool):
            break
        case (.integer, .float(let x)):
            return "must be an integer, got the number \(TOMLText.float(x))" + (x == x.rounded() ? " (write it without a decimal point)" : "")
        default:
            return "must be \(kind.allowed), got \(value.kindName) \(value)"
        }
        return nil
    }
}

extension RecipeValue {
    var kindName: String {
        switch self {
        case .integer: return "integer"
        case .float: return "number"
        case .string: return "string"
        case .bool: return "boolean"
        }
    }
    var int: Int { if case .integer(let i) = self { return i }; return 0 }
    var double: Double { number ?? 0 }
    var string: String { if case .string(let s) = self { return s }; return "" }
    var bool: Bool { if case .bool(let b) = self { return b }; return false }
}

/// The recipe format: its sections in order, and every key.
public enum Schema {
    public static let version = 1

    public static let sections: [(name: String, doc: String)] = [
        ("plan", "What the planner decided. `gpt-plan check` recounts N from [model] and D from [training] and checks that 6·N·D spends `flops_budget`."),
        ("model", "The GPT-2 style model: token and position embeddings, pre-LayerNorm blocks, tied output head."),
        ("data", "The training text and how it becomes tokens."),
        ("optimizer", "AdamW with decoupled weight decay on matrices and embeddings only, and global-norm clipping."),
        ("schedule", "Learning rate over the steps: linear warmup from 0, then decay to `optimizer.min_lr` at the last step."),
        ("training", "Steps and batch. The effective batch is micro_batch × grad_accum × devices sequences."),
        ("eval", "Validation on the held-out split, in eval mode (no dropout)."),
        ("checkpoint", "Full training state in HDF5, so that a run resumes exactly."),
        ("logging", "Metrics written to metrics.jsonl in the run directory."),
    ]

    public static let fitNames = AllocationRule.names + ["manual"]
    public static let tokenizerNames = ["char", "byte", "bpe"]

    public static let fields: [Field] = [
        Field(section: "", key: "schema_version", kind: .integer(min: 1, max: version),
              doc: "recipe format version",
              get: { .integer($0.schemaVersion) }, set: { $0.schemaVersion = $1.int }),

        Field(section: "plan", key: "flops_budget", kind: .float(min: 0, openMin: true, max: nil, openMax: false),
              doc: "training compute budget C in FLOPs; 6·N·D must match it",
              get: { .float($0.plan.flopsBudget) }, set: { $0.plan.flopsBudget = $1.double }),
        Field(section: "plan", key: "fit", kind: .string(choices: fitNames),
              doc: "allocation rule that split C into N and D (\"manual\" for a hand-made recipe)",
              get: { .string($0.plan.fit) }, set: { $0.plan.fit = $1.string }),
        Field(section: "plan", key: "params", kind: .integer(min: 1, max: 1 << 50),
              doc: "parameters N the planner counted (information only: check recounts N from [model])",
              get: { .integer($0.plan.params) }, set: { $0.plan.params = $1.int }),
        Field(section: "plan", key: "tokens", kind: .integer(min: 1, max: 1 << 60),
              doc: "training tokens D the planner chose",
              get: { .integer($0.plan.tokens) }, set: { $0.plan.tokens = $1.int }),
        Field(section: "plan", key: "predicted_loss", kind: .float(min: 0, openMin: false, max: nil, openMax: false),
              doc: "final loss the scaling-law fit predicts, in nats per token (0: no prediction, as for a character-level run the fits do not describe)",
              get: { .float($0.plan.predictedLoss) }, set: { $0.plan.predictedLoss = $1.double }),

        Field(section: "model", key: "n_layer", kind: .integer(min: 1, max: 1024),
              doc: "transformer blocks",
              get: { .integer($0.model.nLayer) }, set: { $0.model.nLayer = $1.int }),
        Field(section: "model", key: "n_head", kind: .integer(min: 1, max: 1024),
              doc: "attention heads per block; d_model must be a multiple of it",
              get: { .integer($0.model.nHead) }, set: { $0.model.nHead = $1.int }),
        Field(section: "model", key: "d_model", kind: .integer(min: 1, max: 65536),
              doc: "width of the residual stream",
              get: { .integer($0.model.dModel) }, set: { $0.model.dModel = $1.int }),
        Field(section: "model", key: "d_ff", kind: .integer(min: 1, max: 1 << 18),
              doc: "hidden units of the MLP (4·d_model in GPT-2)",
              get: { .integer($0.model.dFF) }, set: { $0.model.dFF = $1.int }),
        Field(section: "model", key: "seq_len", kind: .integer(min: 1, max: 1 << 20),
              doc: "context length: learned positions",
              get: { .integer($0.model.seqLen) }, set: { $0.model.seqLen = $1.int }),
        Field(section: "model", key: "vocab_size", kind: .integer(min: 2, max: 1 << 24),
              doc: "rows of the token embedding; at least the tokenizer's vocabulary",
              get: { .integer($0.model.vocabSize) }, set: { $0.model.vocabSize = $1.int }),
        Field(section: "model", key: "dropout", kind: .float(min: 0, openMin: false, max: 1, openMax: true),
              doc: "dropout probability after the embeddings, on attention weights, and on each block's two outputs",
              get: { .float($0.model.dropout) }, set: { $0.model.dropout = $1.double }),
        Field(section: "model", key: "bias", kind: .bool,
              doc: "biases in linear layers and LayerNorms (GPT-2: true)",
              get: { .bool($0.model.bias) }, set: { $0.model.bias = $1.bool }),

        Field(section: "data", key: "path", kind: .string(choices: nil),
              doc: "a UTF-8 text file, or a directory written by `gpt-data prepare`; relative to this file",
              get: { .string($0.data.path) }, set: { $0.data.path = $1.string }),
        Field(section: "data", key: "tokenizer", kind: .string(choices: tokenizerNames),
              doc: "\"char\" (the file's distinct characters), \"byte\" (256 byte values) or \"bpe\" (a prepared directory's byte-level BPE)",
              get: { .string($0.data.tokenizer) }, set: { $0.data.tokenizer = $1.string }),
        Field(section: "data", key: "val_fraction", kind: .float(min: 0, openMin: true, max: 1, openMax: true),
              doc: "share held out for validation, the end of the data in order: of the tokens for a text file, of the bytes (fixed when it was prepared) for a prepared directory",
              get: { .float($0.data.valFraction) }, set: { $0.data.valFraction = $1.double }),

        Field(section: "optimizer", key: "lr", kind: .float(min: 0, openMin: true, max: nil, openMax: false),
              doc: "peak learning rate",
              get: { .float($0.optimizer.lr) }, set: { $0.optimizer.lr = $1.double }),
        Field(section: "optimizer", key: "min_lr", kind: .float(min: 0, openMin: false, max: nil, openMax: false),
              doc: "learning rate at the last step (10% of peak in the standard recipe)",
              get: { .float($0.optimizer.minLR) }, set: { $0.optimizer.minLR = $1.double }),
        Field(section: "optimizer", key: "beta1", kind: .float(min: 0, openMin: false, max: 1, openMax: true),
              doc: "AdamW first-moment decay",
              get: { .float($0.optimizer.beta1) }, set: { $0.optimizer.beta1 = $1.double }),
        Field(section: "optimizer", key: "beta2", kind: .float(min: 0, openMin: false, max: 1, openMax: true),
              doc: "AdamW second-moment decay",
              get: { .float($0.optimizer.beta2) }, set: { $0.optimizer.beta2 = $1.double }),
        Field(section: "optimizer", key: "eps", kind: .float(min: 0, openMin: true, max: nil, openMax: false),
              doc: "AdamW denominator epsilon",
              get: { .float($0.optimizer.eps) }, set: { $0.optimizer.eps = $1.double }),
        Field(section: "optimizer", key: "weight_decay", kind: .float(min: 0, openMin: false, max: nil, openMax: false),
              doc: "decoupled weight decay, applied to tensors with two or more dimensions only",
              get: { .float($0.optimizer.weightDecay) }, set: { $0.optimizer.weightDecay = $1.double }),
        Field(section: "optimizer", key: "grad_clip", kind: .float(min: 0, openMin: false, max: nil, openMax: false),
              doc: "clip the global gradient norm to this (0 turns clipping off)",
              get: { .float($0.optimizer.gradClip) }, set: { $0.optimizer.gradClip = $1.double }),

        Field(section: "schedule", key: "warmup_steps", kind: .integer(min: 0, max: 1 << 40),
              doc: "steps of linear warmup from 0 to the peak learning rate",
              get: { .integer($0.schedule.warmupSteps) }, set: { $0.schedule.warmupSteps = $1.int }),
        Field(section: "schedule", key: "decay", kind: .string(choices: Recipe.Decay.allCases.map(\.rawValue)),
              doc: "shape of the decay after warmup",
              get: { .string($0.schedule.decay.rawValue) },
              set: { $0.schedule.decay = Recipe.Decay(rawValue: $1.string) ?? .cosine }),

        Field(section: "training", key: "steps", kind: .integer(min: 1, max: 1 << 40),
              doc: "optimizer steps",
              get: { .integer($0.training.steps) }, set: { $0.training.steps = $1.int }),
        Field(section: "training", key: "batch_size", kind: .integer(min: 1, max: 1 << 24),
              doc: "sequences per optimizer step (the effective batch): micro_batch × grad_accum × devices",
              get: { .integer($0.training.batchSize) }, set: { $0.training.batchSize = $1.int }),
        Field(section: "training", key: "seq_len", kind: .integer(min: 1, max: 1 << 20),
              doc: "tokens per training sequence; at most model.seq_len",
              get: { .integer($0.training.seqLen) }, set: { $0.training.seqLen = $1.int }),
        Field(section: "training", key: "micro_batch", kind: .integer(min: 1, max: 1 << 20),
              doc: "sequences per forward/backward pass",
              get: { .integer($0.training.microBatch) }, set: { $0.training.microBatch = $1.int }),
        Field(section: "training", key: "grad_accum", kind: .integer(min: 1, max: 1 << 20),
              doc: "micro-batches whose gradients are summed before each step",
              get: { .integer($0.training.gradAccum) }, set: { $0.training.gradAccum = $1.int }),
        Field(section: "training", key: "devices", kind: .integer(min: 1, max: 1 << 20),
              doc: "data-parallel processes (gpt-train runs one and accumulates the others' micro-batches itself)",
              get: { .integer($0.training.devices) }, set: { $0.training.devices = $1.int }),
        Field(section: "training", key: "seed", kind: .integer(min: 0, max: nil),
              doc: "seeds initialisation, batch sampling and dropout",
              get: { .integer($0.training.seed) }, set: { $0.training.seed = $1.int }),

        Field(section: "eval", key: "interval", kind: .integer(min: 1, max: nil),
              doc: "steps between validations (and one after the last step)",
              get: { .integer($0.eval.interval) }, set: { $0.eval.interval = $1.int }),
        Field(section: "eval", key: "iters", kind: .integer(min: 1, max: nil),
              doc: "micro-batches of held-out windows per validation",
              get: { .integer($0.eval.iters) }, set: { $0.eval.iters = $1.int }),

        Field(section: "checkpoint", key: "dir", kind: .string(choices: nil),
              doc: "where checkpoints go, relative to the run directory",
              get: { .string($0.checkpoint.dir) }, set: { $0.checkpoint.dir = $1.string }),
        Field(section: "checkpoint", key: "interval", kind: .integer(min: 1, max: nil),
              doc: "steps between checkpoints (and one after the last step)",
              get: { .integer($0.checkpoint.interval) }, set: { $0.checkpoint.interval = $1.int }),
        Field(section: "checkpoint", key: "keep", kind: .integer(min: 1, max: nil),
              doc: "newest checkpoints kept; older ones are removed once a new one is complete",
              get: { .integer($0.checkpoint.keep) }, set: { $0.checkpoint.keep = $1.int }),

        Field(section: "logging", key: "interval", kind: .integer(min: 1, max: nil),
              doc: "steps between training-metric lines in metrics.jsonl",
              get: { .integer($0.logging.interval) }, set: { $0.logging.interval = $1.int }),
    ]

    public static func field(_ path: String) -> Field? { fields.first { $0.path == path } }

    public static func fields(in section: String) -> [Field] { fields.filter { $0.section == section } }
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

    public static func string(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += String(format: "\\u%04X", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

import Foundation

extension Recipe {
    /// The value of one key.
    public func value(of field: Field) -> RecipeValue { field.get(self) }

    /// The keys of `sections` ("" is the top level) whose values differ between the two recipes.
    public func differences(from other: Recipe, in sections: Set<String>) -> [(path: String, this: RecipeValue, other: RecipeValue)] {
        Schema.fields.filter { sections.contains($0.section) && $0.get(self) != $0.get(other) }
            .map { ($0.path, $0.get(self), $0.get(other)) }
    }
}
