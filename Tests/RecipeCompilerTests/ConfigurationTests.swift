import Corpus
import RecipeCompiler
import Foundation
import GPTShape
import Recipe
import TestFixtures
import Runtime
import Trainer
import XCTest

/// The launch scripts against the recipe: every number, every Megatron flag against Megatron-LM's parser, the
/// learning-rate schedules each engine computes from them against gpt-train's, and the refusals.
final class ConfigurationTests: XCTestCase {
    /// Facts about the tokenizer as the shipped recipes' data have them: tiny Shakespeare's 65 characters; a BPE
    /// left unknown (its data are not in the repository).
    func facts(_ r: Recipe) -> TokenizerFacts {
        TokenizerFacts(kind: r.data.tokenizer, vocabSize: r.data.tokenizer == "char" ? 65 : nil)
    }

    func megatron(_ r: Recipe, _ facts: TokenizerFacts? = nil) throws -> (EngineConfiguration, [String: String]) {
        let c = try EngineExporter.compile(r, for: .megatron, settings: Support.settings(), tokenizer: facts ?? self.facts(r))
        return (c, Support.argumentDictionary(Support.file(c, "train.sh")))
    }

    // MARK: Megatron-LM

    /// Every flag any layout emits is one Megatron-LM's arguments.py defines at the pinned commit.
    func testEveryMegatronFlagIsInMegatronsParser() throws {
        XCTAssertEqual(MegatronArguments.commit, MegatronTarget.commit)
        var layouts: [Recipe] = []
        let base = try Support.recipe("chinchilla-1e20.toml")
        for (tp, pp, zero, recompute, precision, bias) in [(1, 1, 0, Recipe.Recompute.none, Precision.fp32, false),
                                                            (2, 2, 1, .selective, .bf16, true), (8, 1, 1, .full, .bf16, false)] {
            var r = base
            r.training.tensorParallel = tp
            r.training.pipelineParallel = pp
            r.training.devices = 8 * tp * pp
            r.training.zeroStage = zero
            r.training.recompute = recompute
            r.training.precision = precision
            r.model.bias = bias
            layouts.append(r)
        }
        var seen = Set<String>()
        for r in layouts {
            for fact in [TokenizerFacts(kind: "bpe"), TokenizerFacts(kind: "bpe", vocabSize: 50257, endOfText: 50256),
                         TokenizerFacts(kind: "byte")] {
                let (c, _) = try megatron(r, fact)
                for (flag, _) in Support.arguments(Support.file(c, "train.sh")) {
                    XCTAssertTrue(MegatronArguments.flags.contains(flag), "\(flag) is not an argument of Megatron-LM at \(MegatronArguments.commit)")
                    seen.insert(flag)
                }
            }
        }
        for flag in ["--use-distributed-optimizer", "--recompute-granularity", "--recompute-method", "--bf16", "--disable-bias-linear",
                     "--vocab-size", "--vocab-file", "--merge-file", "--lr-warmup-init", "--recompute-num-layers",
                     "--decoder-first-pipeline-num-layers", "--decoder-last-pipeline-num-layers"] {
            XCTAssertTrue(seen.contains(flag), "the layouts above exercise \(flag)")
        }
    }

    /// The 1e20 A100 recipe: every number of train.sh is the recipe's.
    func testMegatronScriptNumbersAreTheRecipes() throws {
        let r = try Support.recipe("chinchilla-1e20.toml")
        let (c, a) = try megatron(r)
        let m = r.model, t = r.training, o = r.optimizer
        let expected: [String: String] = [
            "--num-layers": "\(m.nLayer)", "--hidden-size": "\(m.dModel)", "--num-attention-heads": "\(m.nHead)",
            "--ffn-hidden-size": "\(m.dFF)", "--seq-length": "\(t.seqLen)", "--max-position-embeddings": "\(m.seqLen)",
            "--position-embedding-type": "learned_absolute", "--normalization": "LayerNorm",
            "--micro-batch-size": "\(t.microBatch)", "--global-batch-size": "\(t.batchSize)", "--train-iters": "\(t.steps)",
            "--lr-decay-style": "cosine", "--lr-warmup-iters": "\(r.schedule.warmupSteps)", "--lr-decay-iters": "\(t.steps - 1)",
            "--tensor-model-parallel-size": "1", "--pipeline-model-parallel-size": "1", "--seed": "\(t.seed)",
            "--eval-interval": "\(r.eval.interval)", "--save-interval": "\(r.checkpoint.interval)", "--log-interval": "\(r.logging.interval)",
            "--make-vocab-size-divisible-by": "128", "--tokenizer-type": "GPT2BPETokenizer",
            "--train-data-path": "/exports/run/data/train", "--valid-data-path": "/exports/run/data/val",
            "--disable-bias-linear": "", "--optimizer": "adam",
        ]
        for (flag, value) in expected { XCTAssertEqual(a[flag], value, flag) }
        let numbers: [String: Double] = [
            "--lr": o.lr, "--min-lr": o.minLR, "--adam-beta1": o.beta1, "--adam-beta2": o.beta2, "--adam-eps": o.eps,
            "--weight-decay": o.weightDecay, "--clip-grad": o.gradClip, "--hidden-dropout": t.dropout, "--attention-dropout": t.dropout,
            "--lr-warmup-init": o.lr / Double(r.schedule.warmupSteps + 1),
        ]
        for (flag, value) in numbers { XCTAssertEqual(a[flag].flatMap(Double.init), value, flag) }
        XCTAssertNil(a["--bf16"], "the shipped 1e20 recipe is fp32")
        XCTAssertNil(a["--use-distributed-optimizer"], "zero_stage 0")
        XCTAssertNil(a["--rampup-batch-size"], "no batch schedule with --global-batch-size")
        // Megatron's derived numbers: data parallel and accumulation.
        let dataParallel = t.devices / (t.tensorParallel * t.pipelineParallel)
        XCTAssertEqual(t.batchSize / (t.microBatch * dataParallel), t.gradAccum)
        XCTAssertTrue(Support.file(c, "train.sh").contains("torchrun --nnodes 1 --nproc_per_node 8 "))
        // Evaluation covers at least gpt-train's windows: eval_iters global batches.
        XCTAssertEqual(Int(a["--eval-iters"]!)!, (r.eval.iters * t.microBatch + t.batchSize - 1) / t.batchSize)
        // Megatron pads its vocabulary v to ceil(v / (128 × 1)) × 128: GPT-2's 50257 → 50304 = model.vocab_size.
        XCTAssertEqual((50257 + 127) / 128 * 128, m.vocabSize)
    }

    /// A fresh `gpt-plan --flops 1e20 --gpu a100-80gb --devices 8` layout (bf16, ZeRO-1, selective recomputation over
    /// two nodes of 8) comes out as the flags and the launch line.
    func testMegatronLayoutFlags() throws {
        var r = try Support.recipe("chinchilla-1e20.toml")
        r.training.devices = 16
        r.training.tensorParallel = 2
        r.training.gradAccum = 16
        r.training.batchSize = r.training.microBatch * r.training.gradAccum * 8
        r.training.zeroStage = 1
        r.training.recompute = .selective
        r.training.precision = .bf16
        let (c, a) = try megatron(r)
        XCTAssertEqual(a["--tensor-model-parallel-size"], "2")
        XCTAssertEqual(a["--use-distributed-optimizer"], "")
        XCTAssertEqual(a["--recompute-granularity"], "selective")
        XCTAssertEqual(a["--bf16"], "")
        // 50304 = 196.5 × 256: 128 × tensor_parallel 2 does not divide it; 64 × 2 = 128 does.
        XCTAssertEqual(a["--make-vocab-size-divisible-by"], "64")
        XCTAssertTrue(Support.file(c, "train.sh").contains("torchrun --nnodes 2 --nproc_per_node 8 "))
    }

    /// Layers that do not divide over the pipeline stages: Megatron gets the first and last stage's counts (no stage
    /// above ceil(n_layer / p), the planner's largest), or the export refuses.
    func testMegatronUnevenPipelineStages() throws {
        var r = try Support.recipe("chinchilla-1e20.toml")
        for (layers, stages, first, last) in [(53, 2, 27, 26), (53, 4, 14, 13), (54, 4, 14, 14)] {
            r.model.nLayer = layers
            r.training.pipelineParallel = stages
            r.training.devices = 8 * stages
            let (c, a) = try megatron(r)
            XCTAssertEqual(a["--decoder-first-pipeline-num-layers"], "\(first)", "\(layers) over \(stages)")
            XCTAssertEqual(a["--decoder-last-pipeline-num-layers"], "\(last)", "\(layers) over \(stages)")
            XCTAssertEqual((layers - first - last) % max(1, stages - 2), 0)
            XCTAssertTrue(Support.file(c, "train.sh").contains("export CUDA_DEVICE_MAX_CONNECTIONS=1"))
        }
        r.model.nLayer = 52
        XCTAssertNil(try megatron(r).1["--decoder-first-pipeline-num-layers"], "52 = 13 × 4")
        r.model.nLayer = 55
        XCTAssertThrowsError(try megatron(r)) { XCTAssertEqual(($0 as! ExportRefusal).key, "training.pipeline_parallel") }
    }

    /// Megatron's learning rate for every update, computed with Megatron's formula (OptimizerParamScheduler.get_lr)
    /// from the emitted numbers, is gpt-train's.
    func testMegatronScheduleIsGptTrains() throws {
        for name in ["chinchilla-1e20.toml", "gpt2-124m.toml", "shakespeare-bpe-demo.toml"] {
            let r = try Support.recipe(name)
            let (_, a) = try megatron(r)
            let peak = Double(a["--lr"]!)!, minimum = Double(a["--min-lr"]!)!, w = Int(a["--lr-warmup-iters"]!)!
            let initial = a["--lr-warmup-init"].flatMap(Double.init) ?? 0, decay = Int(a["--lr-decay-iters"]!)!
            let ours = LearningRateSchedule(r)
            for k in 0..<r.training.steps {
                let megatron: Double
                if w > 0 && k <= w {
                    megatron = initial + (peak - initial) * Double(k) / Double(w)
                } else if k > decay {
                    megatron = minimum
                } else {
                    let ratio = Double(k - w) / Double(decay - w)
                    megatron = minimum + 0.5 * (cos(Double.pi * ratio) + 1) * (peak - minimum)
                }
                XCTAssertEqual(megatron, ours.rate(at: k), accuracy: 1e-12 * peak, "\(name) update \(k)")
                if abs(megatron - ours.rate(at: k)) > 1e-12 * peak { break }
            }
        }
    }

    /// megatron-core's own OptimizerParamScheduler, set up from train.sh as Megatron-LM sets it up, gives gpt-train's
    /// rate for every update of the 1e20 run.
    func testMegatronCoresOwnSchedulerGivesGptTrainsRates() throws {
        try Support.requirePython("megatron.core")
        let r = try Support.recipe("chinchilla-1e20.toml")
        let (c, _) = try megatron(r)
        let dir = try Fixtures.directory("megatron-schedule")
        try Support.file(c, "train.sh").write(toFile: dir + "/train.sh", atomically: true, encoding: .utf8)
        let result = try Support.python(["\(Support.pythonDirectory)/megatron_schedule.py", dir + "/train.sh"])
        if result.status == 3 { throw XCTSkip("megatron-core is not installed: \(result.stderr)") }
        XCTAssertEqual(result.status, 0, result.stderr)
        let rates = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [Double]
        XCTAssertEqual(rates.count, r.training.steps)
        let ours = LearningRateSchedule(r)
        var worst = 0.0
        for (k, rate) in rates.enumerated() { worst = max(worst, abs(rate - ours.rate(at: k))) }
        XCTAssertLessThan(worst, 1e-12 * r.optimizer.lr, "the largest difference over \(rates.count) updates")
        XCTAssertEqual(rates.first!, r.optimizer.lr / Double(r.schedule.warmupSteps + 1), accuracy: 1e-18)
        XCTAssertEqual(rates.last!, r.optimizer.minLR, accuracy: 1e-15)
    }

    /// Megatron's vocabulary: NullTokenizer adds an end-of-document id; the padding multiple lands on model.vocab_size
    /// or the export refuses with the key and the fix.
    func testMegatronVocabulary() throws {
        var r = try Support.recipe("shakespeare-char.toml")
        XCTAssertThrowsError(try megatron(r)) { error in
            let refusal = error as! ExportRefusal
            XCTAssertEqual(refusal.key, "model.vocab_size")
            XCTAssertTrue(refusal.fix.contains("model.vocab_size = 66"), refusal.fix)
        }
        r.model.vocabSize = 66
        var (_, a) = try megatron(r)
        XCTAssertEqual(a["--tokenizer-type"], "NullTokenizer")
        XCTAssertEqual(a["--vocab-size"], "65")
        XCTAssertEqual(a["--make-vocab-size-divisible-by"], "2", "ceil(66 / 2) × 2 = 66")
        r.model.vocabSize = 128
        (_, a) = try megatron(r)
        XCTAssertEqual(a["--make-vocab-size-divisible-by"], "128")
        // A BPE read from its data: GPT2BPETokenizer, whose vocabulary is vocab.json's entries.
        var bpe = try Support.recipe("shakespeare-bpe-demo.toml")
        (_, a) = try megatron(bpe, TokenizerFacts(kind: "bpe", vocabSize: 1000, endOfText: 999, hasGPT2Files: true))
        XCTAssertEqual(a["--tokenizer-type"], "GPT2BPETokenizer")
        XCTAssertNil(a["--vocab-size"])
        XCTAssertEqual(a["--vocab-file"], "/exports/run/data/vocab.json")
        XCTAssertEqual(a["--merge-file"], "/exports/run/data/merges.txt")
        XCTAssertEqual(Int(a["--make-vocab-size-divisible-by"]!)!, 128, "ceil(1000 / 128) × 128 = 1024")
        XCTAssertThrowsError(try megatron(bpe, TokenizerFacts(kind: "bpe", vocabSize: 1025))) { error in
            XCTAssertEqual((error as! ExportRefusal).key, "model.vocab_size")
        }
        bpe.training.tensorParallel = 3
        bpe.training.devices = 3
        XCTAssertThrowsError(try megatron(bpe)) { XCTAssertEqual(($0 as! ExportRefusal).key, "model.vocab_size") }
        var big = try Support.recipe("chinchilla-1e20.toml")
        big.training.zeroStage = 2
        XCTAssertThrowsError(try megatron(big)) { XCTAssertEqual(($0 as! ExportRefusal).key, "training.zero_stage") }
    }

    // MARK: nanoGPT

    func testNanoGPTConfigNumbersAreTheRecipes() throws {
        let r = try Support.recipe("gpt2-124m.toml")
        let c = try EngineExporter.compile(r, for: .nanogpt, settings: Support.settings(), tokenizer: facts(r))
        let v = Support.pythonAssignments(Support.file(c, "config.py"))
        let t = r.training, o = r.optimizer
        let expected: [String: String] = [
            "dataset": "'/exports/run/data'", "out_dir": "'/exports/run/out'", "init_from": "'scratch'",
            "n_layer": "12", "n_head": "12", "n_embd": "768", "block_size": "1024", "bias": "False",
            "batch_size": "\(t.microBatch)", "gradient_accumulation_steps": "\(t.gradAccum * t.devices)",
            "max_iters": "\(t.steps)", "lr_decay_iters": "\(t.steps - 1)", "warmup_iters": "\(r.schedule.warmupSteps)",
            "decay_lr": "True", "dtype": "'float32'", "eval_interval": "\(r.eval.interval)", "eval_iters": "\(r.eval.iters)",
            "log_interval": "\(r.logging.interval)",
        ]
        for (name, value) in expected { XCTAssertEqual(v[name], value, name) }
        XCTAssertEqual(v["gradient_accumulation_steps"], "40", "nanoGPT's own OpenWebText config: 5 × 8")
        let numbers: [String: Double] = ["learning_rate": o.lr, "min_lr": o.minLR, "beta1": o.beta1, "beta2": o.beta2,
                                         "weight_decay": o.weightDecay, "grad_clip": o.gradClip, "dropout": t.dropout]
        for (name, value) in numbers { XCTAssertEqual(v[name].flatMap(Double.init), value, name) }
        XCTAssertTrue(c.launch.contains("torchrun --standalone --nproc_per_node=8 train.py /exports/run/config.py"), c.launch)
        // nanoGPT's get_lr with these values, for every update, is gpt-train's schedule.
        let ours = LearningRateSchedule(r)
        let lr = Double(v["learning_rate"]!)!, minLR = Double(v["min_lr"]!)!
        let warmup = Int(v["warmup_iters"]!)!, decay = Int(v["lr_decay_iters"]!)!
        for it in stride(from: 0, to: t.steps, by: 7) {
            let nano: Double
            if it < warmup { nano = lr * Double(it + 1) / Double(warmup + 1) } else if it > decay { nano = minLR } else {
                let ratio = Double(it - warmup) / Double(decay - warmup)
                nano = minLR + 0.5 * (1 + cos(Double.pi * ratio)) * (lr - minLR)
            }
            XCTAssertEqual(nano, ours.rate(at: it), accuracy: 1e-12 * lr, "iteration \(it)")
        }
    }

    /// config.py is Python that sets exactly train.py's globals, with their types.
    func testNanoGPTConfigRunsInPython() throws {
        try Support.requirePython("ast")
        let r = try Support.recipe("shakespeare-char.toml")
        let c = try EngineExporter.compile(r, for: .nanogpt, settings: Support.settings(), tokenizer: facts(r))
        let dir = try Fixtures.directory("nano-config")
        try Support.file(c, "config.py").write(toFile: dir + "/config.py", atomically: true, encoding: .utf8)
        // train.py's globals (karpathy/nanoGPT train.py, the block above `config_keys`), with their types.
        let script = """
            import sys
            types = dict(out_dir=str, eval_interval=int, log_interval=int, eval_iters=int, eval_only=bool,
                always_save_checkpoint=bool, init_from=str, wandb_log=bool, wandb_project=str, wandb_run_name=str,
                dataset=str, gradient_accumulation_steps=int, batch_size=int, block_size=int, n_layer=int, n_head=int,
                n_embd=int, dropout=float, bias=bool, learning_rate=float, max_iters=int, weight_decay=float, beta1=float,
                beta2=float, grad_clip=float, decay_lr=bool, warmup_iters=int, lr_decay_iters=int, min_lr=float,
                backend=str, device=str, dtype=str, compile=bool)
            g = {}
            exec(open(sys.argv[1]).read(), g)
            names = [k for k in g if not k.startswith('_')]
            unknown = [k for k in names if k not in types]
            assert not unknown, unknown
            for k in names:
                ok = isinstance(g[k], types[k]) or (types[k] is float and isinstance(g[k], int) and not isinstance(g[k], bool))
                assert ok, (k, g[k])
            print(len(names))
            """
        let result = try Support.python(["-c", script, dir + "/config.py"])
        XCTAssertEqual(result.status, 0, result.stderr)
    }

    // MARK: llm.c

    func testLLMCCommandNumbersAreTheRecipes() throws {
        var r = try Support.recipe("gpt2-124m.toml")
        r.model.bias = true
        let facts = TokenizerFacts(kind: "bpe", vocabSize: 50257, endOfText: 50256)
        let c = try EngineExporter.compile(r, for: .llmc, settings: Support.settings(), tokenizer: facts)
        let script = Support.file(c, "train.sh")
        let a = Support.argumentDictionary(script)
        let t = r.training, o = r.optimizer
        let expected: [String: String] = [
            "-i": "/exports/run/data/train.bin", "-j": "/exports/run/data/val.bin", "-e": "d12", "-b": "\(t.microBatch)",
            "-t": "\(t.seqLen)", "-d": "\(t.batchSize * t.seqLen)", "-u": "\(r.schedule.warmupSteps + 1)", "-x": "\(t.steps)",
            "-k": "cosine", "-z": "0", "-r": "0", "-v": "\(r.eval.interval)", "-m": "\((r.eval.iters + 7) / 8)",
            "-n": "\(r.checkpoint.interval)", "-nk": "\(r.checkpoint.keep)",
        ]
        for (flag, value) in expected { XCTAssertEqual(a[flag], value, flag) }
        XCTAssertEqual(Double(a["-l"]!), o.lr)
        XCTAssertEqual(Double(a["-q"]!)! * o.lr, o.minLR, accuracy: 1e-15)
        XCTAssertEqual(Double(a["-c"]!), o.weightDecay)
        XCTAssertEqual(t.batchSize * t.seqLen / (t.microBatch * t.seqLen * t.devices), t.gradAccum, "llm.c's derived accumulation")
        XCTAssertTrue(script.contains("exec mpirun -np 8 \"$LLMC/train_gpt2cu\""))
        // llm.c's get_learning_rate_cosine: the warmup steps are gpt-train's; after them, each step uses gpt-train's
        // rate of the step before.
        let ours = LearningRateSchedule(r)
        let u = Int(a["-u"]!)!, x = Int(a["-x"]!)!, lr = Double(a["-l"]!)!, q = Double(a["-q"]!)!
        for step in stride(from: 0, to: t.steps, by: 11) {
            let llmc: Double
            if step < u { llmc = lr * Double(step + 1) / Double(u) } else {
                let ratio = Double(step - u) / Double(x - u)
                llmc = lr * q + 0.5 * (1 + cos(Double.pi * ratio)) * (lr - lr * q)
            }
            let reference = step <= r.schedule.warmupSteps ? ours.rate(at: step) : ours.rate(at: step - 1)
            XCTAssertEqual(llmc, reference, accuracy: 1e-12 * lr, "step \(step)")
        }
    }

    /// llm.c from a model file (`-e FILE`, e.g. gpt-train export CKPT --to llmc): its header must be the recipe's model.
    func testLLMCFromAModelFile() throws {
        var r = try Support.recipe("shakespeare-char.toml")
        r.model.bias = true
        r.optimizer.beta2 = 0.95
        let dir = try Fixtures.directory("llmc-model")
        func header(_ values: [Int32]) throws -> String {
            let path = dir + "/model-\(values.map(String.init).joined(separator: "-")).bin"
            var ints = [Int32](repeating: 0, count: 256)
            for (i, v) in values.enumerated() { ints[i] = v }
            try Data(ints.flatMap { v in withUnsafeBytes(of: v.littleEndian, Array.init) }).write(to: URL(fileURLWithPath: path))
            return path
        }
        // magic, version, max_seq_len, vocab_size, num_layers, num_heads, channels, padded_vocab_size
        let good = try header([20240326, 3, 64, 65, 4, 4, 128, 128])
        var settings = Support.settings()
        settings.llmcModel = good
        let c = try EngineExporter.compile(r, for: .llmc, settings: settings, tokenizer: facts(r))
        let a = Support.argumentDictionary(Support.file(c, "train.sh"))
        XCTAssertEqual(a["-e"], good)
        XCTAssertEqual(a["-d"], "\(12 * 64)")
        XCTAssertEqual(a["-u"], "101")
        XCTAssertTrue(c.differences.contains { $0.hasPrefix("Vocabulary: llm.c's softmax runs over its vocab_size = model.vocab_size = 65") })
        for (values, key) in [([Int32](arrayLiteral: 20240326, 3, 64, 65, 5, 4, 128, 128), "model.n_layer"),
                              ([20240326, 3, 128, 65, 4, 4, 128, 128], "model.seq_len"),
                              ([20240326, 3, 64, 66, 4, 4, 128, 128], "model.vocab_size"),
                              ([20240520, 1, 64, 65, 4, 4, 128, 128], "model.n_layer")] {
            settings.llmcModel = try header(values)
            XCTAssertThrowsError(try EngineExporter.compile(r, for: .llmc, settings: settings, tokenizer: facts(r))) { error in
                XCTAssertEqual((error as! ExportRefusal).key, key, "\(values)")
            }
        }
    }

    // MARK: Refusals and the shipped recipes

    func testRefusalsNameTheKeyAndTheFix() throws {
        var r = try Support.recipe("chinchilla-1e20.toml")
        r.training.pipelineParallel = 2
        r.training.devices = 16
        for engine in [Engine.nanogpt, .llmc] {
            XCTAssertThrowsError(try EngineExporter.compile(r, for: engine, settings: Support.settings(), tokenizer: facts(r))) { error in
                let refusal = error as! ExportRefusal
                XCTAssertEqual(refusal.key, "training.pipeline_parallel", "\(engine)")
                XCTAssertTrue(refusal.fix.contains("--to megatron"), refusal.fix)
            }
        }
        XCTAssertNoThrow(try megatron(r))
        var cases: [(Recipe, Engine, String)] = []
        var x = try Support.recipe("chinchilla-1e20.toml")
        x.training.tensorParallel = 2; x.training.devices = 16
        cases.append((x, .nanogpt, "training.tensor_parallel"))
        x = try Support.recipe("chinchilla-1e20.toml"); x.training.zeroStage = 1
        cases.append((x, .nanogpt, "training.zero_stage"))
        x = try Support.recipe("chinchilla-1e20.toml"); x.training.seqLen = 512
        cases.append((x, .nanogpt, "training.seq_len"))
        x = try Support.recipe("chinchilla-1e20.toml"); x.model.dFF = 4000
        cases.append((x, .nanogpt, "model.d_ff"))
        x = try Support.recipe("chinchilla-1e20.toml"); x.schedule.decay = .linear
        cases.append((x, .nanogpt, "schedule.decay"))
        x = try Support.recipe("chinchilla-1e20.toml")
        cases.append((x, .llmc, "model.bias"))
        x.model.bias = true
        cases.append((x, .llmc, "model.n_layer"))
        x = try Support.recipe("shakespeare-char.toml"); x.model.bias = true
        cases.append((x, .llmc, "optimizer.beta2"))
        x = try Support.recipe("gpt2-124m.toml"); x.model.bias = true; x.training.dropout = 0.1
        cases.append((x, .llmc, "training.dropout"))
        for (recipe, engine, key) in cases {
            XCTAssertThrowsError(try EngineExporter.compile(recipe, for: engine, settings: Support.settings(), tokenizer: facts(recipe))) { error in
                let refusal = error as! ExportRefusal
                XCTAssertEqual(refusal.key, key, "\(engine): \(refusal)")
                XCTAssertFalse(refusal.fix.isEmpty)
            }
        }
    }

    /// Every engine gets GPT-2 blocks: a Llama-style model, an untied head or another LayerNorm ε is refused by its
    /// key, never exported as GPT-2.
    func testOtherBlockDesignsAreRefusedByKey() throws {
        let base = try Support.recipe("gpt2-124m.toml")
        var llama = base
        llama.model = ModelShape(nLayer: base.model.nLayer, nHead: base.model.nHead, dModel: base.model.dModel,
                                 dFF: base.model.dFF, seqLen: base.model.seqLen, vocabSize: base.model.vocabSize, bias: false,
                                 family: .llama, tieEmbeddings: true)
        var untied = base
        untied.model.tieEmbeddings = false
        var eps = base
        eps.model.normEps = 1e-6
        for (recipe, key) in [(llama, "model.family"), (untied, "model.tie_embeddings"), (eps, "model.norm_eps")] {
            for engine in Engine.allCases {
                XCTAssertThrowsError(try EngineExporter.compile(recipe, for: engine, settings: Support.settings(), tokenizer: facts(recipe))) { error in
                    let refusal = error as? ExportRefusal
                    XCTAssertEqual(refusal?.key, key, "\(engine): \(error)")
                    XCTAssertFalse(refusal?.fix.isEmpty ?? true)
                }
            }
        }
    }

    /// Every shipped recipe to every engine: exported, or refused with a recipe key and a fix.
    func testEveryShippedRecipeExportsOrIsRefused() throws {
        let expected: [String: [Engine: String?]] = [
            "chinchilla-1e20.toml": [.megatron: nil, .nanogpt: nil, .llmc: "model.bias"],
            "gpt2-124m.toml": [.megatron: nil, .nanogpt: nil, .llmc: "model.bias"],
            "shakespeare-ablation.toml": [.megatron: "model.vocab_size", .nanogpt: nil, .llmc: "model.bias"],
            "shakespeare-bpe-demo.toml": [.megatron: nil, .nanogpt: nil, .llmc: "model.bias"],
            // The engines' exports write GPT-2 blocks: a Llama-style recipe is refused by its family.
            "shakespeare-bpe-llama.toml": [.megatron: "model.family", .nanogpt: "model.family", .llmc: "model.family"],
            "shakespeare-char-long.toml": [.megatron: "model.vocab_size", .nanogpt: nil, .llmc: "model.bias"],
            "shakespeare-char.toml": [.megatron: "model.vocab_size", .nanogpt: nil, .llmc: "model.bias"],
        ]
        let shipped = try FileManager.default.contentsOfDirectory(atPath: Support.repository + "/recipes").filter { $0.hasSuffix(".toml") }
        XCTAssertEqual(Set(shipped), Set(expected.keys), "a new shipped recipe: add its expected outcome here")
        let keys = Set(Schema.fields.map(\.path))
        for name in shipped.sorted() {
            let r = try Support.recipe(name)
            for engine in Engine.allCases {
                do {
                    let c = try EngineExporter.compile(r, for: engine, settings: Support.settings(), tokenizer: facts(r))
                    XCTAssertEqual(expected[name]?[engine], .some(nil), "\(name) → \(engine) exported")
                    // The README lists every key the recipe holds, with where it went.
                    let readme = Support.file(c, "README.md")
                    for field in r.presentFields {
                        XCTAssertTrue(readme.contains("| `\(field.path)` |"), "\(name) → \(engine): README lacks \(field.path)")
                    }
                    XCTAssertFalse(readme.contains("| not expressed |"), "\(name) → \(engine): a key without a reason")
                } catch let refusal as ExportRefusal {
                    XCTAssertEqual(expected[name]?[engine], .some(refusal.key), "\(name) → \(engine): \(refusal)")
                    XCTAssertTrue(keys.contains(refusal.key), refusal.key)
                    XCTAssertFalse(refusal.fix.isEmpty)
                }
            }
        }
    }

    // MARK: The whole export, with data

    /// The exported tokens are gpt-train's split (TrainingData.load), in each engine's files.
    func testExportedDataIsGptTrainsSplit() throws {
        let dir = try Fixtures.directory("export-data")
        var options = Fixtures.Options()
        options.bias = false
        options.vocabSize = 64
        let path = try Fixtures.recipe(in: dir, options)
        let recipe = try RecipeLoader.loadValid(path: path).0
        let data = try TrainingData.load(recipe, relativeTo: dir)
        func all(_ s: any TokenSequence) -> [Int32] {
            var out = [Int32](repeating: 0, count: s.count)
            out.withUnsafeMutableBufferPointer { s.read(0, s.count, into: $0.baseAddress!) }
            return out
        }
        let train = all(data.train), val = all(data.val)
        for engine in [Engine.nanogpt, .megatron] {
            let out = dir + "/\(engine.rawValue)"
            let result = try EngineExporter.export(recipe, recipeDirectory: dir, to: engine,
                                                   settings: ExportSettings(directory: out, recipePath: path, includeData: true))
            XCTAssertTrue(result.files.contains(engine.configurationFile))
            XCTAssertTrue(result.files.contains("README.md"))
            XCTAssertEqual(Support.uint16s(try Support.bytes(out + "/data/train.bin"), from: 0), train, "\(engine)")
            XCTAssertEqual(Support.uint16s(try Support.bytes(out + "/data/val.bin"), from: 0), val, "\(engine)")
            let mode = try FileManager.default.attributesOfItem(atPath: out + "/" + engine.configurationFile)[.posixPermissions] as! Int
            XCTAssertEqual(mode & 0o100 != 0, engine.configurationFile == "train.sh")
        }
        // llm.c: the same tokens after its header (the fixture's shape is not an llm.c descriptor, so the
        // configuration is refused; the format is tested alone).
        try TokenFiles.writeLLMC(data.val, to: dir + "/llmc-val.bin")
        XCTAssertEqual(Support.uint16s(try Support.bytes(dir + "/llmc-val.bin"), from: 1024), val)
    }
}
