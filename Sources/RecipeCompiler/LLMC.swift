import Foundation
import Recipe

/// llm.c (karpathy/llm.c `train_gpt2cu`, and the CPU reference `train_gpt2.c`): a command line.
enum LLMCCompiler {
    /// GPT-2 depths llm.c builds from a descriptor `-e dL` (`gpt2_set_hyperparameters`): layers → (d_model, heads).
    static let descriptors: [Int: (channels: Int, heads: Int)] = [
        6: (384, 6), 12: (768, 12), 24: (1024, 16), 36: (1280, 20), 48: (1600, 25), 60: (1920, 30), 72: (2880, 30), 84: (3456, 36),
    ]

    static func compile(_ r: Recipe, _ settings: ExportSettings, _ tokenizer: TokenizerFacts) throws -> EngineConfiguration {
        let t = r.training, m = r.model, o = r.optimizer
        try NanoGPTCompiler.refuseCommon(r, engine: "llm.c")
        if !m.bias {
            throw ExportRefusal(key: "model.bias", "llm.c's GPT-2 has biases in every linear layer and LayerNorm and trains them; the recipe's model has none",
                                fix: "set model.bias = true (gpt-plan --bias), or export to nanoGPT or Megatron-LM")
        }
        // Fixed in train_gpt2cu: AdamW(0.9, 0.95, 1e-8), clip 1.0, biases everywhere, no dropout.
        for (key, value, fixed) in [("optimizer.beta1", o.beta1, 0.9), ("optimizer.beta2", o.beta2, 0.95), ("optimizer.eps", o.eps, 1e-8), ("optimizer.grad_clip", o.gradClip, 1.0)]
        where value != fixed {
            throw ExportRefusal(key: key, "llm.c's train_gpt2cu fixes \(key.split(separator: ".")[1]) at \(number(fixed)) (gpt2_update's arguments), and the recipe has \(number(value))",
                                fix: "set \(key) = \(number(fixed))")
        }
        if t.dropout != 0 {
            throw ExportRefusal(key: "training.dropout", "llm.c has no dropout", fix: "set training.dropout = 0")
        }
        if t.zeroStage > 1 {
            throw ExportRefusal(key: "training.zero_stage", "llm.c partitions at most the optimizer state (-z 1)", fix: "re-plan with gpt-plan --zero-stage 1")
        }
        if t.recompute == .full {
            throw ExportRefusal(key: "training.recompute", "llm.c recomputes GELU and LayerNorm (-r 2) but not whole blocks", fix: "re-plan with gpt-plan --recompute selective (or none)")
        }
        guard r.schedule.decay == .cosine else {
            throw ExportRefusal(key: "schedule.decay", "this export compiles llm.c's cosine scheduler only (-k cosine); its other schedulers decay over a different span", fix: "set schedule.decay = \"cosine\"")
        }
        let model: String
        var modelVocabulary = 50257
        if let file = settings.llmcModel {
            // A model file (llm.c's gpt2_124M.bin format, e.g. from gpt-train export CKPT --to llmc): its header
            // must describe the recipe's model.
            let header = try LLMCModelHeader(path: file)
            let padded = (m.vocabSize + 127) / 128 * 128
            for (key, have, want) in [("model.n_layer", header.layers, m.nLayer), ("model.n_head", header.heads, m.nHead),
                                      ("model.d_model", header.channels, m.dModel), ("model.seq_len", header.maxSeqLen, m.seqLen),
                                      ("model.vocab_size", header.paddedVocabSize, padded)]
            where have != want {
                throw ExportRefusal(key: key, "\(file) has \(have) where the recipe's model needs \(want) (its header: \(header))",
                                    fix: "export the model file from a checkpoint of this recipe: gpt-train export CKPT --to llmc -o FILE")
            }
            guard header.vocabSize <= m.vocabSize else {
                throw ExportRefusal(key: "model.vocab_size", "\(file) has a vocabulary of \(header.vocabSize), more than model.vocab_size = \(m.vocabSize)",
                                    fix: "export the model file from a checkpoint of this recipe: gpt-train export CKPT --to llmc -o FILE")
            }
            modelVocabulary = header.vocabSize
            guard m.dFF == 4 * m.dModel else {
                throw ExportRefusal(key: "model.d_ff", "llm.c's MLP is 4·d_model = \(4 * m.dModel) wide, not \(m.dFF)", fix: "set model.d_ff = \(4 * m.dModel)")
            }
            model = file
        } else {
            guard let shape = descriptors[m.nLayer], shape.channels == m.dModel, shape.heads == m.nHead, m.dFF == 4 * m.dModel,
                  m.seqLen == 1024, m.vocabSize == 50304 else {
                let known = descriptors.keys.sorted().map { "d\($0): \(descriptors[$0]!.channels)/\(descriptors[$0]!.heads)" }.joined(separator: ", ")
                throw ExportRefusal(key: "model.n_layer", "llm.c builds a fresh model only from a GPT-2 descriptor -e dL (n_layer/d_model/n_head one of \(known), d_ff = 4·d_model, seq_len 1024, vocabulary 50257 padded to 50304); the recipe's model is \(m.nLayer)/\(m.dModel)/\(m.nHead), d_ff \(m.dFF), seq_len \(m.seqLen), vocab_size \(m.vocabSize)",
                                    fix: "re-plan with one of those shapes, or start llm.c from a model file of the recipe's shape: gpt-train export CKPT --to llmc -o FILE, then gpt-plan export --llmc-model FILE")
            }
            if let v = tokenizer.vocabSize, v != 50257 {
                throw ExportRefusal(key: "data.tokenizer", "llm.c's descriptor models have GPT-2's vocabulary of 50257 (softmax over those, padded rows 50257..<50304 masked); the recipe's tokenizer has \(v)",
                                    fix: "use a 50257-token BPE (gpt-data prepare --tokenizer bpe --vocab-size 50257), or start from a model file (--llmc-model)")
            }
            model = "d\(m.nLayer)"
        }
        guard t.seqLen <= m.seqLen else {
            throw ExportRefusal(key: "training.seq_len", "longer than the model's context", fix: "set training.seq_len ≤ model.seq_len")
        }
        if let v = tokenizer.vocabSize, v > 65536 {
            throw ExportRefusal(key: "data.tokenizer", "llm.c's GPT-2 token files hold uint16 tokens, and the tokenizer has \(v) ids", fix: "use a vocabulary of at most 65536")
        }
        if t.steps - 1 <= r.schedule.warmupSteps {
            throw ExportRefusal(key: "schedule.warmup_steps", "warmup (\(r.schedule.warmupSteps) steps) lasts the whole run of \(t.steps) steps", fix: "set schedule.warmup_steps below training.steps − 1")
        }
        let processes = t.devices
        let layout = ProcessLayout(devices: processes, gpusPerNode: settings.gpusPerNode)
        guard layout.nodes * layout.perNode == processes else {
            throw ExportRefusal(key: "training.devices", "\(processes) devices do not fill whole nodes of \(settings.gpusPerNode) GPUs",
                                fix: "use a multiple of \(settings.gpusPerNode) devices, or pass --gpus-per-node to gpt-plan export")
        }
        let totalTokens = t.batchSize * t.seqLen
        // llm.c evaluates val_max_steps batches of micro_batch windows on each process and averages over processes.
        let valSteps = (r.eval.iters + processes - 1) / processes
        let warmup = r.schedule.warmupSteps + 1
        var destinations: [String: String] = [:]
        var args: [(String, String)] = []
        func arg(_ flag: String, _ value: String, _ keys: [String]) {
            args.append((flag, value))
            for key in keys {
                let text = "`\(flag) \(value)`"
                destinations[key] = destinations[key].map { $0 + ", " + text } ?? text
            }
        }
        let data = settings.dataDirectory
        arg("-i", "\(data)/train.bin", ["data.path", "data.val_fraction", "data.tokenizer"])
        arg("-j", "\(data)/val.bin", ["data.path", "data.val_fraction"])
        arg("-o", "\(settings.directory)/log", ["checkpoint.dir"])
        arg("-e", model, ["model.n_layer", "model.d_model", "model.n_head", "model.d_ff", "model.seq_len", "model.vocab_size", "model.bias"])
        arg("-b", "\(t.microBatch)", ["training.micro_batch"])
        arg("-t", "\(t.seqLen)", ["training.seq_len"])
        arg("-d", "\(totalTokens)", ["training.batch_size", "training.grad_accum"])
        arg("-l", number(o.lr), ["optimizer.lr"])
        arg("-q", number(o.minLR / o.lr), ["optimizer.min_lr"])
        arg("-u", "\(warmup)", ["schedule.warmup_steps"])
        arg("-k", "cosine", ["schedule.decay"])
        arg("-x", "\(t.steps)", ["training.steps"])
        arg("-c", number(o.weightDecay), ["optimizer.weight_decay"])
        arg("-z", "\(t.zeroStage)", ["training.zero_stage"])
        arg("-r", t.recompute == .selective ? "1" : "0", ["training.recompute"])
        arg("-v", "\(r.eval.interval)", ["eval.interval"])
        arg("-m", "\(valSteps)", ["eval.iters"])
        arg("-n", "\(r.checkpoint.interval)", ["checkpoint.interval"])
        arg("-nk", "\(r.checkpoint.keep)", ["checkpoint.keep"])
        arg("-s", "0", [])
        arg("-h", "0", [])
        destinations["optimizer.beta1"] = "fixed at 0.9 in train_gpt2cu (the recipe's)"
        destinations["optimizer.beta2"] = "fixed at 0.95 in train_gpt2cu (the recipe's)"
        destinations["optimizer.eps"] = "fixed at 1e-8 in train_gpt2cu (the recipe's)"
        destinations["optimizer.grad_clip"] = "fixed at 1.0 in train_gpt2cu (the recipe's)"
        destinations["training.dropout"] = "0: llm.c has no dropout (the recipe's)"
        destinations["training.devices"] = "`mpirun -np \(processes)`" + (layout.nodes > 1 ? " over \(layout.nodes) nodes × \(layout.perNode)" : "")
        destinations["training.tensor_parallel"] = "1: llm.c is data parallel only (the recipe's)"
        destinations["training.pipeline_parallel"] = "1: llm.c is data parallel only (the recipe's)"
        destinations["training.seed"] = "not expressed: llm.c initialises with its own seed (42)"
        destinations["training.precision"] = t.precision == .bf16 ? "train_gpt2cu built with its default PRECISION=BF16" : "train_gpt2cu built with `make train_gpt2cu PRECISION=FP32`"
        destinations["logging.interval"] = "not expressed: llm.c logs every step"
        destinations["checkpoint.allow_outside"] = "not needed: checkpoints go to `\(settings.directory)/log`"
        let build = t.precision == .bf16 ? "make train_gpt2cu" : "make train_gpt2cu PRECISION=FP32"
        var lines = [
            "#!/usr/bin/env bash",
            "# llm.c launch of \(settings.recipePath), written by `gpt-plan export --to llmc`.",
            "# Every flag is from the recipe (README.md lists where each recipe key went). Build first, in the llm.c",
            "# checkout: \(build)",
            "set -euo pipefail",
            "LLMC=\"${LLMC:?set LLMC to an llm.c checkout with train_gpt2cu built (\(build))}\"",
            "",
            "ARGS=(",
        ]
        for (flag, value) in args { lines.append("    \(flag) \(shellQuoted(value))") }
        lines.append(")")
        lines.append("")
        let launcher = processes == 1 ? "" : "mpirun -np \(processes) " + (layout.nodes > 1 ? "--hostfile \"${HOSTFILE:?set HOSTFILE to the \(layout.nodes) nodes' MPI hostfile}\" " : "")
        lines.append("exec \(launcher)\"$LLMC/train_gpt2cu\" \"${ARGS[@]}\" \"$@\"")
        let script = lines.joined(separator: "\n") + "\n"
        let differences = [
            "Warmup: llm.c's rate at step s < u is lr·(s+1)/u; with -u warmup_steps + 1 = \(warmup) that is gpt-train's lr·(s+1)/(W+1) for every warmup step, and both are at the peak at step W = \(r.schedule.warmupSteps). No effect.",
            "Decay: llm.c's cosine runs from step u = W+1 to -x = steps, so at step s ≥ W+1 it uses gpt-train's rate of step s − 1, and its last update (step steps − 1) uses a rate slightly above min_lr (\(number(o.minLR)) + (lr − min_lr)·(1 + cos(π·\(t.steps - warmup - 1)/\(t.steps - warmup)))/2). The schedule lags by one step after warmup: a negligible change.",
            "Weight decay: llm.c decays 2-D tensors (matrices and both embeddings) and not biases or LayerNorms, as gpt-train. No effect.",
            modelVocabulary == m.vocabSize
                ? "Vocabulary: llm.c's softmax runs over its vocab_size = model.vocab_size = \(m.vocabSize) rows, as gpt-train's (its padding to \((m.vocabSize + 127) / 128 * 128) rows is masked). No effect."
                : "Vocabulary: llm.c's softmax runs over its vocab_size = \(modelVocabulary) real tokens only, gpt-train's over all model.vocab_size = \(m.vocabSize) rows (the padding rows are never targets and are pushed down within the first steps). Negligible.",
            "Batches: llm.c reads train.bin in order (shuffling sample order within a shard each epoch), gpt-train draws windows at random offsets: a different batch order, the same data. "
                + (settings.llmcModel == nil ? "Initialisation uses llm.c's own seed (42): different initial draws, the same distribution (normal(0, 0.02), output projections 0.02/√(2·n_layer))." : "The weights start from \(settings.llmcModel!), not from a fresh initialisation."),
            "Evaluation: -m \(valSteps) batches of \(t.microBatch) windows on each of \(processes) process\(processes == 1 ? "" : "es"), read in order from the start of val.bin (gpt-train's eval.iters = \(r.eval.iters) micro-batches, at random offsets from a fixed generator). Measurement only.",
            "Grad accumulation: llm.c derives it from -d: \(totalTokens) / (\(t.microBatch) × \(t.seqLen) × \(processes)) = \(totalTokens / max(1, t.microBatch * t.seqLen * processes)), the recipe's grad_accum. No effect.",
            t.precision == .bf16 ? "Precision: train_gpt2cu's default build keeps weights and activations in bf16 with fp32 master weights (-w 1) and fp32 optimizer moments. Losses agree within run-to-run noise." : "Precision: fp32 needs train_gpt2cu built with PRECISION=FP32.",
        ]
        let launch = "LLMC=/path/to/llm.c \(settings.directory)/train.sh"
        let readme = ExportReadme.text(
            recipe: r, engine: .llmc, settings: settings,
            launch: ["cd /path/to/llm.c && \(build)", launch],
            requirements: "an llm.c checkout (karpathy/llm.c) with CUDA and cuDNN, train_gpt2cu built; \(processes) GPU\(processes == 1 ? "" : "s")\(processes > 1 ? " and Open MPI" : "").",
            destinations: destinations, differences: differences,
            dataFiles: [
                "`\(data)/train.bin`, `val.bin`: the splits in llm.c's token format (256-int32 header, magic 20240520, version 1, token count; uint16 tokens)",
            ],
            notes: [])
        return EngineConfiguration(engine: .llmc, files: [("train.sh", script), ("README.md", readme)], launch: launch,
                                   destinations: destinations, differences: differences, dataFiles: ["train.bin", "val.bin"])
    }
}

/// The header of an llm.c model file: 256 int32, magic 20240326, version 3, max_seq_len, vocab_size, num_layers,
/// num_heads, channels, padded_vocab_size (train_gpt2.c, gpt2_build_from_checkpoint).
struct LLMCModelHeader: CustomStringConvertible {
    var maxSeqLen: Int, vocabSize: Int, layers: Int, heads: Int, channels: Int, paddedVocabSize: Int

    init(path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ExportRefusal(key: "model.n_layer", "cannot read the llm.c model file \(path)", fix: "give --llmc-model an llm.c model file (gpt-train export CKPT --to llmc -o FILE)")
        }
        defer { try? handle.close() }
        let bytes = Array((try? handle.read(upToCount: 1024)) ?? Data())
        func int(_ i: Int) -> Int32 {
            Int32(bitPattern: UInt32(bytes[4 * i]) | UInt32(bytes[4 * i + 1]) << 8 | UInt32(bytes[4 * i + 2]) << 16 | UInt32(bytes[4 * i + 3]) << 24)
        }
        guard bytes.count == 1024, int(0) == 20240326, int(1) == 3 else {
            throw ExportRefusal(key: "model.n_layer", "\(path) is not an llm.c model file (magic 20240326, version 3)", fix: "write it with gpt-train export CKPT --to llmc -o FILE")
        }
        maxSeqLen = Int(int(2)); vocabSize = Int(int(3)); layers = Int(int(4)); heads = Int(int(5)); channels = Int(int(6))
        paddedVocabSize = Int(int(7))
    }

    var description: String {
        "max_seq_len \(maxSeqLen), vocab_size \(vocabSize), num_layers \(layers), num_heads \(heads), channels \(channels), padded_vocab_size \(paddedVocabSize)"
    }
}
