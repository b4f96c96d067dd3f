import Foundation
import Recipe

/// Megatron-LM (`pretrain_gpt.py`), its argument names checked against `megatron/training/arguments.py` at
/// `MegatronTarget.commit` (the megatron-core 0.16.1 release; Tests/RecipeCompilerTests keeps the full list).
public enum MegatronTarget {
    public static let release = "core_v0.16.1"
    public static let commit = "55ac7082517c3878ae653c07c09c534b8aed49f6"
}

/// How Megatron gets the recipe's vocabulary: its tokenizer, the vocabulary it reports, and the padding multiple.
public struct MegatronVocabulary: Equatable, Sendable {
    /// `--tokenizer-type`: "NullTokenizer" or "GPT2BPETokenizer".
    public var tokenizerType: String
    /// `--vocab-size` for NullTokenizer (ids below it; Megatron adds one end-of-document id after them).
    public var nullVocabSize: Int?
    /// `--make-vocab-size-divisible-by`.
    public var divisibleBy: Int
    /// The tokenizer vocabularies Megatron pads to exactly `model.vocab_size` with this setting.
    public var accepted: ClosedRange<Int>
    /// What the tokenizer choice means, for the README.
    public var explanation: String

    /// Megatron pads its tokenizer's vocabulary v to ceil(v / (divisible_by × tensor_parallel)) × that
    /// (`_vocab_size_with_padding`); the divisor is chosen so that the padded size is `model.vocab_size` exactly.
    static func choose(_ recipe: Recipe, _ tokenizer: TokenizerFacts) throws -> MegatronVocabulary {
        let m = recipe.model.vocabSize, t = recipe.training.tensorParallel
        guard m % t == 0 else {
            let up = (m + t - 1) / t * t
            throw ExportRefusal(key: "model.vocab_size", "Megatron splits the embedding over training.tensor_parallel = \(t) devices, so its padded vocabulary is a multiple of \(t); \(m) is not",
                                fix: "set model.vocab_size = \(up)")
        }
        // The vocabulary Megatron's tokenizer reports, when the tokenizer is known.
        let type: String, null: Int?, v: Int?, explanation: String
        if tokenizer.kind == "char", tokenizer.vocabSize == nil {
            throw ExportRefusal(key: "data.path", "a char tokenizer's vocabulary is the text's characters, and Megatron's NullTokenizer needs its size (--vocab-size); the data are not there to read",
                                fix: "export with the data (the text file at data.path)")
        }
        switch tokenizer.kind {
        case "bpe":
            type = "GPT2BPETokenizer"
            null = nil
            v = tokenizer.vocabSize
            explanation = "the byte-level BPE as GPT-2 style vocab.json + merges.txt (GPT2BPETokenizer; its vocabulary is vocab.json's entries, <|endoftext|> the end-of-document id)"
        default:
            type = "NullTokenizer"
            null = tokenizer.vocabSize
            v = tokenizer.vocabSize.map { $0 + 1 }
            if let n = tokenizer.vocabSize {
                explanation = "NullTokenizer with --vocab-size \(n): the data are already token ids (the \(tokenizer.kind) tokenizer's \(n)); NullTokenizer adds an end-of-document id \(n), which the data never contain, so Megatron's vocabulary is \(n + 1)"
            } else {
                explanation = "NullTokenizer (the \(tokenizer.kind) tokenizer's vocabulary is not known without the data)"
            }
        }
        if let v, v > m {
            throw ExportRefusal(key: "model.vocab_size", "Megatron's \(type) has a vocabulary of \(v)\(type == "NullTokenizer" && tokenizer.kind != "bpe" ? " (the \(tokenizer.kind) tokenizer's \(v - 1) and NullTokenizer's end-of-document id)" : ""), more than model.vocab_size = \(m), so Megatron would train a larger embedding",
                                fix: "set model.vocab_size = \(v) (or more: Megatron pads up to it)")
        }
        for d in [128, 64, 32, 16, 8, 4, 2, 1, m / t] {
            let multiple = d * t
            guard m % multiple == 0 else { continue }
            let lowest = m - multiple + 1
            if let v, v < lowest { continue }
            return MegatronVocabulary(tokenizerType: type, nullVocabSize: null, divisibleBy: d, accepted: max(1, lowest)...m,
                                      explanation: explanation)
        }
        // d = m / t always works (multiple = m ≥ v); not reached.
        throw ExportRefusal(key: "model.vocab_size", "no padding multiple makes Megatron's vocabulary \(m)", fix: "set model.vocab_size to a multiple of 128 × tensor_parallel")
    }
}

enum MegatronCompiler {
    static func compile(_ r: Recipe, _ settings: ExportSettings, _ tokenizer: TokenizerFacts) throws -> EngineConfiguration {
        let t = r.training, m = r.model, o = r.optimizer
        switch t.zeroStage {
        case 0, 1: break
        default:
            throw ExportRefusal(key: "training.zero_stage", "zero_stage = \(t.zeroStage): Megatron-LM's distributed optimizer is ZeRO-1 (it partitions the optimizer state; gradients stay in a full buffer), and its FSDP is a different engine path this export does not compile",
                                fix: "re-plan with gpt-plan --zero-stage 1 (or set training.zero_stage = 1 and check the memory with gpt-plan check)")
        }
        if t.steps - 1 <= r.schedule.warmupSteps && t.steps > 1 {
            throw ExportRefusal(key: "schedule.warmup_steps", "warmup (\(r.schedule.warmupSteps) steps) lasts the whole run of \(t.steps) steps; Megatron's scheduler needs a decay phase after it",
                                fix: "set schedule.warmup_steps below training.steps − 1")
        }
        let vocab = try MegatronVocabulary.choose(r, tokenizer)
        let layout = ProcessLayout(devices: t.devices, gpusPerNode: settings.gpusPerNode)
        guard layout.nodes * layout.perNode == t.devices else {
            throw ExportRefusal(key: "training.devices", "\(t.devices) devices do not fill whole nodes of \(settings.gpusPerNode) GPUs",
                                fix: "use a multiple of \(settings.gpusPerNode) devices, or pass --gpus-per-node to gpt-plan export")
        }
        let data = settings.dataDirectory
        let globalBatch = t.batchSize
        // gpt-train: rate(k) = peak·(k+1)/(W+1) for k < W. Megatron: init + (peak − init)·k/W for k ≤ W, where k
        // counts the updates before this one; with init = peak/(W+1) that is peak·(k+1)/(W+1), the same, and both
        // reach the peak at k = W. Decay: gpt-train reaches min_lr at the last update k = steps − 1, Megatron at
        // k = lr_decay_iters.
        let warmupInit = r.schedule.warmupSteps > 0 ? o.lr / Double(r.schedule.warmupSteps + 1) : 0
        let evalSequences = r.eval.iters * t.microBatch
        let evalIters = (evalSequences + globalBatch - 1) / globalBatch

        var args: [(String, String?)] = []
        var destinations: [String: String] = [:]
        func arg(_ flag: String, _ value: String? = nil, for keys: [String] = []) {
            args.append((flag, value))
            for key in keys {
                let text = value.map { "`\(flag) \($0)`" } ?? "`\(flag)`"
                destinations[key] = destinations[key].map { $0 + ", " + text } ?? text
            }
        }
        // Model.
        arg("--num-layers", "\(m.nLayer)", for: ["model.n_layer"])
        arg("--hidden-size", "\(m.dModel)", for: ["model.d_model"])
        arg("--num-attention-heads", "\(m.nHead)", for: ["model.n_head"])
        arg("--ffn-hidden-size", "\(m.dFF)", for: ["model.d_ff"])
        arg("--seq-length", "\(t.seqLen)", for: ["training.seq_len"])
        arg("--max-position-embeddings", "\(m.seqLen)", for: ["model.seq_len"])
        arg("--position-embedding-type", "learned_absolute")
        arg("--normalization", "LayerNorm")
        arg("--norm-epsilon", "1e-05")
        arg("--init-method-std", "0.02")
        if !m.bias { arg("--disable-bias-linear", for: ["model.bias"]) }
        arg("--hidden-dropout", number(t.dropout), for: ["training.dropout"])
        arg("--attention-dropout", number(t.dropout), for: ["training.dropout"])
        // Tokenizer and vocabulary.
        arg("--tokenizer-type", vocab.tokenizerType, for: ["data.tokenizer"])
        if let n = vocab.nullVocabSize { arg("--vocab-size", "\(n)") }
        if vocab.tokenizerType == "GPT2BPETokenizer" {
            arg("--vocab-file", "\(data)/vocab.json")
            arg("--merge-file", "\(data)/merges.txt")
        }
        arg("--make-vocab-size-divisible-by", "\(vocab.divisibleBy)", for: ["model.vocab_size"])
        // Data: gpt-train's split, as two indexed datasets.
        arg("--train-data-path", "\(data)/train", for: ["data.path", "data.val_fraction"])
        arg("--valid-data-path", "\(data)/val", for: ["data.path", "data.val_fraction"])
        arg("--data-cache-path", "\(data)/cache")
        // Batch and steps.
        arg("--micro-batch-size", "\(t.microBatch)", for: ["training.micro_batch"])
        arg("--global-batch-size", "\(globalBatch)", for: ["training.batch_size", "training.grad_accum"])
        arg("--train-iters", "\(t.steps)", for: ["training.steps"])
        // Optimizer and schedule.
        arg("--optimizer", "adam")
        arg("--lr", number(o.lr), for: ["optimizer.lr"])
        arg("--min-lr", number(o.minLR), for: ["optimizer.min_lr"])
        arg("--lr-decay-style", r.schedule.decay.rawValue, for: ["schedule.decay"])
        arg("--lr-warmup-iters", "\(r.schedule.warmupSteps)", for: ["schedule.warmup_steps"])
        if r.schedule.warmupSteps > 0 { arg("--lr-warmup-init", number(warmupInit), for: ["schedule.warmup_steps"]) }
        arg("--lr-decay-iters", "\(max(1, t.steps - 1))", for: ["training.steps"])
        arg("--adam-beta1", number(o.beta1), for: ["optimizer.beta1"])
        arg("--adam-beta2", number(o.beta2), for: ["optimizer.beta2"])
        arg("--adam-eps", number(o.eps), for: ["optimizer.eps"])
        arg("--weight-decay", number(o.weightDecay), for: ["optimizer.weight_decay"])
        arg("--clip-grad", number(o.gradClip), for: ["optimizer.grad_clip"])
        // Precision and layout.
        if t.precision == .bf16 { arg("--bf16", for: ["training.precision"]) } else {
            destinations["training.precision"] = "no `--bf16` / `--fp16`: Megatron trains in fp32"
        }
        arg("--tensor-model-parallel-size", "\(t.tensorParallel)", for: ["training.tensor_parallel"])
        arg("--pipeline-model-parallel-size", "\(t.pipelineParallel)", for: ["training.pipeline_parallel"])
        if let (first, last) = try unevenStages(r) {
            // Megatron splits layers evenly over the stages unless told the first and last stages' counts.
            arg("--decoder-first-pipeline-num-layers", "\(first)", for: ["training.pipeline_parallel"])
            arg("--decoder-last-pipeline-num-layers", "\(last)", for: ["training.pipeline_parallel"])
        }
        if t.zeroStage == 1 { arg("--use-distributed-optimizer", for: ["training.zero_stage"]) } else {
            destinations["training.zero_stage"] = "no `--use-distributed-optimizer`: every data-parallel rank keeps the whole optimizer state (ZeRO-0)"
        }
        switch t.recompute {
        case .none:
            destinations["training.recompute"] = "no `--recompute-granularity`: every activation is kept"
        case .selective:
            arg("--recompute-granularity", "selective", for: ["training.recompute"])
        case .full:
            arg("--recompute-granularity", "full", for: ["training.recompute"])
            arg("--recompute-method", "uniform", for: ["training.recompute"])
            arg("--recompute-num-layers", "1", for: ["training.recompute"])
        }
        arg("--seed", "\(t.seed)", for: ["training.seed"])
        // Evaluation, checkpoints, logging.
        arg("--eval-interval", "\(r.eval.interval)", for: ["eval.interval"])
        arg("--eval-iters", "\(evalIters)", for: ["eval.iters"])
        arg("--save", "\(settings.directory)/checkpoints", for: ["checkpoint.dir"])
        arg("--load", "\(settings.directory)/checkpoints")
        arg("--save-interval", "\(r.checkpoint.interval)", for: ["checkpoint.interval"])
        arg("--log-interval", "\(r.logging.interval)", for: ["logging.interval"])
        if t.dataParallel * t.tensorParallel * t.pipelineParallel != t.devices {
            throw ExportRefusal(key: "training.devices", "devices = \(t.devices) is not data × tensor × pipeline parallel = \(t.dataParallel) × \(t.tensorParallel) × \(t.pipelineParallel)",
                                fix: "run gpt-plan check on the recipe and fix the layout it names")
        }
        destinations["training.devices"] = "`torchrun --nnodes \(layout.nodes) --nproc_per_node \(layout.perNode)` (data parallel = devices / (tensor × pipeline) = \(t.dataParallel), which Megatron derives)"
        destinations["training.grad_accum"] = (destinations["training.grad_accum"] ?? "") + " (Megatron derives grad_accum = global / (micro × data parallel) = \(globalBatch / max(1, t.microBatch * t.dataParallel)))"
        destinations["checkpoint.keep"] = "not expressed: Megatron keeps every checkpoint it saves (remove old iter_* directories yourself)"
        destinations["checkpoint.allow_outside"] = "not needed: checkpoints go to `\(settings.directory)/checkpoints`"
        destinations["eval.iters"] = (destinations["eval.iters"] ?? "") + " (\(evalIters) global batches of \(globalBatch) sequences ≥ gpt-train's \(r.eval.iters) micro-batches of \(t.microBatch) = \(evalSequences) sequences)"

        var lines = [
            "#!/usr/bin/env bash",
            "# Megatron-LM launch of \(settings.recipePath), written by `gpt-plan export --to megatron`.",
            "# Every argument is from the recipe (README.md lists where each recipe key went); the argument names are",
            "# Megatron-LM's at \(MegatronTarget.release) (commit \(MegatronTarget.commit)).",
            "# Run on every node: MEGATRON_LM=/path/to/Megatron-LM NODE_RANK=<0..\(layout.nodes - 1)> MASTER_ADDR=<node 0> ./train.sh",
            "set -euo pipefail",
            "MEGATRON_LM=\"${MEGATRON_LM:?set MEGATRON_LM to a Megatron-LM checkout (pretrain_gpt.py)}\"",
            "NODE_RANK=\"${NODE_RANK:-0}\"",
            "MASTER_ADDR=\"${MASTER_ADDR:-localhost}\"",
            "MASTER_PORT=\"${MASTER_PORT:-6000}\"",
            "# Megatron-LM requires it with tensor or context parallelism (validate_args), and its examples always set it.",
            "export CUDA_DEVICE_MAX_CONNECTIONS=1",
            "",
            "ARGS=(",
        ]
        for (flag, value) in args { lines.append("    \(flag)" + (value.map { " \(shellQuoted($0))" } ?? "")) }
        lines.append(")")
        lines.append("")
        let torchrun = "torchrun --nnodes \(layout.nodes) --nproc_per_node \(layout.perNode) --node_rank \"$NODE_RANK\" --master_addr \"$MASTER_ADDR\" --master_port \"$MASTER_PORT\""
        lines.append("exec \(torchrun) \\")
        lines.append("    \"$MEGATRON_LM/pretrain_gpt.py\" \"${ARGS[@]}\" \"$@\"")
        let script = lines.joined(separator: "\n") + "\n"

        var differences = [
            "Weight decay: Megatron exempts biases and every 1-D parameter (LayerNorm weights and biases) and decays the matrices and both embeddings, as gpt-train does (tensors of two or more dimensions). No effect.",
            "Warmup: Megatron's rate for the update after k earlier ones is init + (peak − init)·k/W; with `--lr-warmup-init` = peak/(W+1) = \(number(warmupInit)) that is gpt-train's peak·(k+1)/(W+1) exactly, and `--lr-decay-iters` = steps − 1 = \(max(1, t.steps - 1)) makes the decay reach min_lr at the last update, as gpt-train's does. No effect.",
            "Layout: Megatron derives data parallel = devices / (tensor × pipeline) = \(t.dataParallel) and grad_accum = global / (micro × data parallel) = \(globalBatch / max(1, t.microBatch * t.dataParallel)) from `--global-batch-size` \(globalBatch) and `--micro-batch-size` \(t.microBatch): the recipe's. No effect.",
            "Batches: Megatron cuts each split into windows of seq_len + 1 tokens at a stride of seq_len and visits them in a shuffled order seeded by `--seed`; gpt-train draws windows at random offsets. Same distribution of data, a different order: final losses agree within run-to-run noise.",
            "Initialisation: normal(0, 0.02) for weights and embeddings and 0.02/√(2·n_layer) for the output projections of attention and MLP, as gpt-train's, but from a different random generator: different initial draws, the same distribution.",
            "Evaluation: `--eval-iters` counts global batches of \(globalBatch) sequences: \(evalIters) of them cover \(evalIters * globalBatch) validation windows, gpt-train's eval.iters × micro_batch = \(evalSequences). Measurement only, not training.",
        ]
        if !m.bias {
            differences.append("Biases: `--disable-bias-linear` removes the linear layers' biases, but Megatron's LayerNorms always have a bias: \((2 * m.nLayer + 1) * m.dModel) more parameters ((2·n_layer + 1)·d_model, \(String(format: "%.4f", 100 * Double((2 * m.nLayer + 1) * m.dModel) / Double(max(1, m.parameterCount.total))))% of N), zero at the start and trained without weight decay. A small change of the model; gpt-train has no option for it.")
            differences.append("GELU: without linear biases Megatron applies torch's exact (erf) GELU; gpt-train uses GPT-2's tanh form. They differ by at most 4.7e-4 per activation: no measurable effect on the loss.")
        } else {
            differences.append("GELU: Megatron's fused bias-GELU is GPT-2's tanh form, as gpt-train's. No effect.")
        }
        if t.precision == .bf16 {
            differences.append("Precision: `--bf16` keeps the weights and activations in bf16 with fp32 master weights, gradients and optimizer moments; gpt-train multiplies bf16 inputs with fp32 accumulation over fp32 weights. Rounding differs in the last bf16 digit; losses agree to within run-to-run noise.")
        }
        if vocab.tokenizerType == "NullTokenizer" {
            differences.append("Tokenizer: \(vocab.explanation). No effect on training: Megatron's padded vocabulary is model.vocab_size = \(m.vocabSize).")
        }
        differences.append("Checkpoints: Megatron's own format (torch distributed checkpoints), not gpt-train's HDF5; it keeps every checkpoint.")
        let readme = ExportReadme.text(
            recipe: r, engine: .megatron, settings: settings,
            launch: [
                "MEGATRON_LM=/path/to/Megatron-LM \(settings.directory)/train.sh",
                layout.nodes > 1 ? "# on each of the \(layout.nodes) nodes: NODE_RANK=<0..\(layout.nodes - 1)> MASTER_ADDR=<node 0's address> before it" : nil,
            ].compactMap { $0 },
            requirements: "Megatron-LM (checked against \(MegatronTarget.release), commit \(MegatronTarget.commit)) and its dependencies; \(t.devices) GPU\(t.devices == 1 ? "" : "s") (\(layout.nodes) node\(layout.nodes == 1 ? "" : "s") × \(layout.perNode)).",
            destinations: destinations, differences: differences,
            dataFiles: dataFilesText(vocab: vocab, tokenizer: tokenizer, data: data),
            notes: ["Vocabulary: Megatron pads its tokenizer's vocabulary to a multiple of `--make-vocab-size-divisible-by` × tensor_parallel = \(vocab.divisibleBy) × \(t.tensorParallel); any tokenizer vocabulary in \(vocab.accepted.lowerBound)...\(vocab.accepted.upperBound) pads to model.vocab_size = \(m.vocabSize). Tokenizer: \(vocab.explanation)."])
        return EngineConfiguration(engine: .megatron, files: [("train.sh", script), ("README.md", readme)],
                                   launch: "MEGATRON_LM=/path/to/Megatron-LM \(settings.directory)/train.sh",
                                   destinations: destinations, differences: differences,
                                   dataFiles: ["train.bin", "train.idx", "val.bin", "val.idx"]
                                       + (vocab.tokenizerType == "GPT2BPETokenizer" ? ["vocab.json", "merges.txt"] : []))
    }

    /// n_layer = q·p + r with 0 < r: the first stage takes q + 1 layers and, when r = 2, the last one too, so no
    /// stage holds more than ceil(n_layer / p), the planner's largest stage. nil when the layers divide evenly.
    static func unevenStages(_ r: Recipe) throws -> (first: Int, last: Int)? {
        let l = r.model.nLayer, p = r.training.pipelineParallel
        guard p > 1, l % p != 0 else { return nil }
        let q = l / p, rest = l % p
        guard rest <= 2 else {
            throw ExportRefusal(key: "training.pipeline_parallel", "Megatron-LM splits the \(l) layers evenly over the middle pipeline stages and can give only the first and last stage a different count; \(l) = \(q) × \(p) + \(rest) leaves \(rest) extra layers for two end stages",
                                fix: "re-plan with a pipeline_parallel that divides model.n_layer = \(l) (or leaves at most 2 over)")
        }
        return (q + 1, q + (rest == 2 ? 1 : 0))
    }

    static func dataFilesText(vocab: MegatronVocabulary, tokenizer: TokenizerFacts, data: String) -> [String] {
        var lines = [
            "`\(data)/train.bin`, `train.idx`: the training split, a Megatron MMap indexed dataset (`--train-data-path \(data)/train`)",
            "`\(data)/val.bin`, `val.idx`: the validation split (`--valid-data-path \(data)/val`)",
        ]
        if vocab.tokenizerType == "GPT2BPETokenizer" {
            lines.append("`\(data)/vocab.json`, `merges.txt`: the BPE tokenizer, GPT-2 style (`--vocab-file`, `--merge-file`)")
        }
        return lines
    }
}

/// A word for bash: as is when it is safe, else in single quotes.
func shellQuoted(_ s: String) -> String {
    let safe = s.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }
    return safe && !s.isEmpty ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
