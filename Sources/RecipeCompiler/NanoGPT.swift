import Foundation
import Recipe

/// nanoGPT (karpathy/nanoGPT `train.py`): a config file of train.py's globals, read by its configurator.
enum NanoGPTCompiler {
    static func compile(_ r: Recipe, _ settings: ExportSettings, _ tokenizer: TokenizerFacts) throws -> EngineConfiguration {
        let t = r.training, m = r.model, o = r.optimizer
        try refuseCommon(r, engine: "nanoGPT's train.py (plain DDP)")
        if t.zeroStage > 0 {
            throw ExportRefusal(key: "training.zero_stage", "nanoGPT's DDP replicates the optimizer state on every process; the recipe's layout partitions it (zero_stage = \(t.zeroStage)) to fit in memory",
                                fix: "export to Megatron-LM (--to megatron), or re-plan with gpt-plan --zero-stage 0")
        }
        if t.recompute != .none {
            throw ExportRefusal(key: "training.recompute", "nanoGPT keeps every activation; the recipe's layout recomputes (\(t.recompute.rawValue)) to fit in memory",
                                fix: "export to Megatron-LM (--to megatron), or re-plan with gpt-plan --recompute none")
        }
        guard m.seqLen == t.seqLen else {
            throw ExportRefusal(key: "training.seq_len", "nanoGPT's block_size is both the model's context (its position table) and the training sequence length; the recipe has model.seq_len = \(m.seqLen) and training.seq_len = \(t.seqLen)",
                                fix: "set training.seq_len = model.seq_len = \(m.seqLen)")
        }
        guard m.dFF == 4 * m.dModel else {
            throw ExportRefusal(key: "model.d_ff", "nanoGPT's MLP is 4·n_embd = \(4 * m.dModel) wide, not \(m.dFF)", fix: "set model.d_ff = \(4 * m.dModel)")
        }
        guard m.dModel % m.nHead == 0 else {
            throw ExportRefusal(key: "model.n_head", "nanoGPT needs n_embd divisible by n_head", fix: "choose n_head dividing d_model = \(m.dModel)")
        }
        guard o.eps == 1e-8 else {
            throw ExportRefusal(key: "optimizer.eps", "nanoGPT's AdamW uses torch's default eps = 1e-8 and has no setting for it", fix: "set optimizer.eps = 1e-8")
        }
        switch r.schedule.decay {
        case .cosine: break
        case .constant where r.schedule.warmupSteps == 0: break
        default:
            throw ExportRefusal(key: "schedule.decay", "nanoGPT's get_lr has warmup then cosine decay, or (decay_lr = False) a constant rate without warmup; decay = \"\(r.schedule.decay.rawValue)\" with \(r.schedule.warmupSteps) warmup steps is neither",
                                fix: "set schedule.decay = \"cosine\"")
        }
        if r.schedule.decay == .cosine, t.steps - 1 <= r.schedule.warmupSteps {
            throw ExportRefusal(key: "schedule.warmup_steps", "warmup (\(r.schedule.warmupSteps) steps) lasts the whole run of \(t.steps) steps; nanoGPT's cosine needs lr_decay_iters > warmup_iters",
                                fix: "set schedule.warmup_steps below training.steps − 1")
        }
        if let v = tokenizer.vocabSize, v > 65536 {
            throw ExportRefusal(key: "data.tokenizer", "nanoGPT's train.bin holds uint16 tokens, and the tokenizer has \(v) ids", fix: "use a vocabulary of at most 65536")
        }
        let processes = t.devices
        let layout = ProcessLayout(devices: processes, gpusPerNode: settings.gpusPerNode)
        guard layout.nodes * layout.perNode == processes else {
            throw ExportRefusal(key: "training.devices", "\(processes) devices do not fill whole nodes of \(settings.gpusPerNode) GPUs",
                                fix: "use a multiple of \(settings.gpusPerNode) devices, or pass --gpus-per-node to gpt-plan export")
        }
        let accumulation = t.gradAccum * processes
        var destinations: [String: String] = [:]
        var lines = [
            "# nanoGPT configuration of \(settings.recipePath), written by `gpt-plan export --to nanogpt`.",
            "# Every value is from the recipe (README.md lists where each recipe key went). From a nanoGPT checkout:",
            "#   python train.py \(settings.directory)/config.py",
            "",
        ]
        func set(_ name: String, _ value: String, _ keys: [String], _ comment: String? = nil) {
            lines.append("\(name) = \(value)" + (comment.map { "  # \($0)" } ?? ""))
            for key in keys {
                let text = "`\(name) = \(value)`"
                destinations[key] = destinations[key].map { $0 + ", " + text } ?? text
            }
        }
        // train.py's float globals as Python floats (0.0 rather than 0), as its own defaults are written.
        func float(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? "\(Int(x)).0" : "\(x)" }
        func py(_ s: String) -> String { "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'" }
        set("out_dir", py("\(settings.directory)/out"), ["checkpoint.dir"])
        set("dataset", py(settings.dataDirectory), ["data.path", "data.tokenizer", "data.val_fraction"],
            "absolute: train.py reads os.path.join('data', dataset), which is this path")
        set("init_from", py("scratch"), [])
        set("n_layer", "\(m.nLayer)", ["model.n_layer"])
        set("n_head", "\(m.nHead)", ["model.n_head"])
        set("n_embd", "\(m.dModel)", ["model.d_model", "model.d_ff"], "the MLP is 4·n_embd = model.d_ff")
        set("block_size", "\(m.seqLen)", ["model.seq_len", "training.seq_len"])
        set("bias", m.bias ? "True" : "False", ["model.bias"])
        set("dropout", float(t.dropout), ["training.dropout"])
        set("batch_size", "\(t.microBatch)", ["training.micro_batch"], "the micro-batch of each process")
        set("gradient_accumulation_steps", "\(accumulation)", ["training.grad_accum", "training.batch_size"],
            "grad_accum × processes: train.py divides it by the DDP world size (\(processes))")
        set("max_iters", "\(t.steps)", ["training.steps"],
            "train.py evaluates (and checkpoints) at iter_num == max_iters before that iteration's update: after exactly training.steps updates")
        set("decay_lr", r.schedule.decay == .cosine ? "True" : "False", ["schedule.decay"])
        set("lr_decay_iters", "\(max(1, t.steps - 1))", ["training.steps"],
            "steps − 1: min_lr at the last update, iteration steps − 1, as gpt-train")
        set("learning_rate", float(o.lr), ["optimizer.lr"])
        set("min_lr", float(o.minLR), ["optimizer.min_lr"])
        set("warmup_iters", "\(r.schedule.warmupSteps)", ["schedule.warmup_steps"], "learning_rate·(it+1)/(warmup_iters+1), as gpt-train")
        set("beta1", float(o.beta1), ["optimizer.beta1"])
        set("beta2", float(o.beta2), ["optimizer.beta2"])
        set("weight_decay", float(o.weightDecay), ["optimizer.weight_decay"])
        set("grad_clip", float(o.gradClip), ["optimizer.grad_clip"])
        set("dtype", py(t.precision == .bf16 ? "bfloat16" : "float32"), ["training.precision"])
        set("eval_interval", "\(r.eval.interval)", ["eval.interval"])
        set("eval_iters", "\(r.eval.iters)", ["eval.iters"], "micro-batches of batch_size windows, as gpt-train's eval.iters")
        set("always_save_checkpoint", "True", ["checkpoint.interval"], "nanoGPT checkpoints at each evaluation")
        set("log_interval", "\(r.logging.interval)", ["logging.interval"])
        set("compile", "True", [])
        let config = lines.joined(separator: "\n") + "\n"
        destinations["optimizer.eps"] = "torch AdamW's default eps = 1e-8 (the recipe's)"
        destinations["training.devices"] = "`torchrun --nnodes \(layout.nodes) --nproc_per_node \(layout.perNode)` (DDP world size \(processes))"
        destinations["training.tensor_parallel"] = "1: nanoGPT is data parallel only (the recipe's)"
        destinations["training.pipeline_parallel"] = "1: nanoGPT is data parallel only (the recipe's)"
        destinations["training.zero_stage"] = "0: DDP replicates the optimizer state (the recipe's)"
        destinations["training.recompute"] = "none (the recipe's)"
        destinations["training.seed"] = "not expressed: train.py seeds torch.manual_seed(1337 + rank) itself"
        destinations["model.vocab_size"] = "`meta.pkl` vocab_size = \(m.vocabSize): train.py builds the model with meta.pkl's vocab_size"
        destinations["checkpoint.keep"] = "not expressed: nanoGPT keeps one checkpoint, out_dir/ckpt.pt, overwritten at each evaluation"
        destinations["checkpoint.allow_outside"] = "not needed: checkpoints go to `\(settings.directory)/out`"
        destinations["checkpoint.interval"] = (destinations["checkpoint.interval"] ?? "") + " (at every eval_interval = \(r.eval.interval), not every \(r.checkpoint.interval))"

        let launch: [String]
        if processes == 1 {
            launch = ["cd /path/to/nanoGPT && python train.py \(settings.directory)/config.py"]
        } else if layout.nodes == 1 {
            launch = ["cd /path/to/nanoGPT && torchrun --standalone --nproc_per_node=\(layout.perNode) train.py \(settings.directory)/config.py"]
        } else {
            launch = ["cd /path/to/nanoGPT && torchrun --nproc_per_node=\(layout.perNode) --nnodes=\(layout.nodes) --node_rank=$NODE_RANK --master_addr=$MASTER_ADDR --master_port=1234 train.py \(settings.directory)/config.py",
                      "# on each of the \(layout.nodes) nodes, NODE_RANK = 0..\(layout.nodes - 1), MASTER_ADDR = node 0's address"]
        }
        var differences = [
            "Weight decay: nanoGPT decays parameters of two or more dimensions (matrices, both embeddings) and not biases or LayerNorms, as gpt-train does. No effect.",
            "Schedule: warmup learning_rate·(it+1)/(warmup_iters+1) and cosine from it = warmup_iters to lr_decay_iters = steps − 1, gpt-train's formula exactly. No effect.",
            "Steps: train.py runs iterations 0 to max_iters inclusive and evaluates before each iteration's update, so with max_iters = steps its last evaluation and checkpoint are after exactly `steps` updates; it then takes one more update at min_lr, which it neither evaluates nor saves. No effect on the saved model or the reported validation loss.",
            "Batch under DDP: train.py divides gradient_accumulation_steps by the world size, so the config holds grad_accum × processes = \(accumulation); each optimizer step then sees micro_batch × grad_accum × processes = \(t.microBatch * t.gradAccum * processes) sequences, the recipe's batch_size = \(t.batchSize). No effect.",
            "Batches: train.py draws micro-batches at random offsets of train.bin, as gpt-train does, from its own generator, seeded 1337 + rank whatever training.seed (\(t.seed)) says: a different batch order and different initial draws, the same distributions.",
            "GELU: nanoGPT's nn.GELU() is the exact (erf) form; gpt-train uses GPT-2's tanh form. They differ by at most 4.7e-4 per activation: no measurable effect on the loss.",
            "Evaluation: every eval_interval iterations (including iteration 0), eval_iters random batches of each split, on rank 0. gpt-train's validation windows come from a fixed generator, so two evaluations of the same model agree exactly in gpt-train and only on average in nanoGPT." + (t.steps % r.eval.interval != 0 ? " training.steps = \(t.steps) is not a multiple of eval.interval = \(r.eval.interval): nanoGPT's last evaluation is at iteration \(t.steps / r.eval.interval * r.eval.interval), not after the last step." : ""),
            "Checkpoints: out_dir/ckpt.pt (torch.save), at every evaluation; gpt-train writes HDF5 every checkpoint.interval.",
        ]
        if t.precision == .bf16 {
            differences.append("Precision: dtype = 'bfloat16' runs the forward and backward passes under torch.autocast in bf16 with fp32 weights and optimizer state, like gpt-train's bf16 products with fp32 master weights. On CUDA train.py also allows TF32 for fp32 matmuls.")
        } else {
            differences.append("Precision: dtype = 'float32', but train.py sets torch.backends.cuda.matmul.allow_tf32 = True: on Ampere and newer GPUs its fp32 matrix products round their inputs to TF32 (10-bit mantissa), unlike gpt-train's fp32. Losses agree within run-to-run noise.")
        }
        differences.append("compile = True: train.py compiles the model with torch.compile (set compile = False on CPU or to skip the compilation). No effect on the numbers beyond rounding.")
        let readme = ExportReadme.text(
            recipe: r, engine: .nanogpt, settings: settings, launch: launch,
            requirements: "a nanoGPT checkout (karpathy/nanoGPT: train.py, model.py, configurator.py) with PyTorch; \(processes) GPU\(processes == 1 ? "" : "s").",
            destinations: destinations, differences: differences,
            dataFiles: [
                "`\(settings.dataDirectory)/train.bin`, `val.bin`: the splits as raw uint16 tokens (train.py's np.memmap)",
                "`\(settings.dataDirectory)/meta.pkl`: vocab_size = model.vocab_size = \(m.vocabSize) (train.py sizes the model from it)" + (tokenizer.kind == "char" ? ", and itos/stoi of the characters, as shakespeare_char's prepare.py writes them (sample.py decodes with them)" : ""),
            ],
            notes: [])
        return EngineConfiguration(engine: .nanogpt, files: [("config.py", config), ("README.md", readme)],
                                   launch: launch[0], destinations: destinations, differences: differences,
                                   dataFiles: ["train.bin", "val.bin", "meta.pkl"])
    }

    /// What nanoGPT and llm.c have in common: data parallel only.
    static func refuseCommon(_ r: Recipe, engine: String) throws {
        let t = r.training
        if t.pipelineParallel > 1 {
            throw ExportRefusal(key: "training.pipeline_parallel", "\(engine) has no pipeline parallelism; the recipe splits the layers into \(t.pipelineParallel) stages",
                                fix: "export to Megatron-LM (--to megatron), or re-plan with gpt-plan --pipeline-parallel 1")
        }
        if t.tensorParallel > 1 {
            throw ExportRefusal(key: "training.tensor_parallel", "\(engine) has no tensor parallelism; the recipe splits each layer over \(t.tensorParallel) devices",
                                fix: "export to Megatron-LM (--to megatron), or re-plan with gpt-plan --tensor-parallel 1")
        }
    }
}
