import ArgumentParser
import CLISupport
import Compute
import Foundation
import GPTShape
import Planner
import Recipe

/// `gpt-plan estimate`: memory, step time and throughput of a model the user gives, on given hardware and layout.
extension ModelFamily: ExpressibleByArgument {}
extension Recompute: ExpressibleByArgument {}

struct EstimateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "estimate",
        abstract: "Per-device memory, step time, throughput and MFU of a given model, layout and batch.",
        discussion: """
        The model is a Hugging Face config.json (GPT-2 or Llama) or given by flags. Layout dimensions not given are
        searched (the fastest layout that fits). Examples:
          gpt-plan estimate --hf-config llama3-8b/config.json --seq-len 8192 --gpu h100-sxm-80gb --devices 64 --batch 4M
          gpt-plan estimate --family gpt2 --layers 32 --d-model 4096 --heads 32 --seq-len 2048 --vocab 50257 \\
              --gpu a100-80gb --devices 64 --micro-batch 1 --zero-stage 1 --batch-sequences 512 --json
        Numbers take suffixes: 4M, 1.5B, 2T, 80GiB.
        """)

    @Option(name: .customLong("hf-config"), help: "A Hugging Face config.json of a GPT-2 or Llama model.")
    var hfConfig: String?
    @Option(help: "Model family when no --hf-config: gpt2 or llama.") var family: ModelFamily?
    @Option(parsing: .unconditional, help: "Transformer blocks, 1 to 1024.", transform: NumberArgument.whole(1...1024))
    var layers: Int?
    @Option(name: .customLong("d-model"), parsing: .unconditional, help: "Width of the residual stream, 1 to 1048576.",
            transform: NumberArgument.whole(1...(1 << 20)))
    var dModel: Int?
    @Option(parsing: .unconditional, help: "Attention (query) heads, 1 to 65536.", transform: NumberArgument.whole(1...(1 << 16)))
    var heads: Int?
    @Option(name: .customLong("kv-heads"), parsing: .unconditional,
            help: "Key/value heads, 1 to 65536 (default: --heads; llama only when fewer).", transform: NumberArgument.whole(1...(1 << 16)))
    var kvHeads: Int?
    @Option(name: .customLong("d-ff"), parsing: .unconditional,
            help: "MLP width, 1 to 16777216 (default: gpt2 4·d_model; llama 3.5·d_model rounded up to a multiple of 256).",
            transform: NumberArgument.whole(1...(1 << 24)))
    var dFF: Int?
    @Option(name: .customLong("seq-len"), parsing: .unconditional,
            help: "Sequence length trained at, 1 to 1048576 (replaces the config's positions).", transform: NumberArgument.whole(PlanLimits.seqLen))
    var seqLen: Int?
    @Option(parsing: .unconditional, help: "Vocabulary (embedding rows), 2 to 16777216.", transform: NumberArgument.whole(PlanLimits.vocab))
    var vocab: Int?
    @Flag(help: "Biases in the linear layers (and GPT-2's LayerNorms); default: gpt2 yes, llama no.") var bias = false
    @Flag(name: .customLong("no-bias"), help: "No biases.") var noBias = false
    @Flag(inversion: .prefixedNo, help: "Tie the output head to the token embedding (default: gpt2 tied, llama untied).")
    var tieEmbeddings: Bool?

    @Option(help: "Hardware: a GPU preset, or cpu (this machine). Default: h100-sxm-80gb.")
    var gpu: HardwareName?
    @Option(parsing: .unconditional, help: "Devices: a count (1 to 16777216), or auto (the fewest on which a layout fits; the default).",
            transform: DeviceCount.parse)
    var devices: DeviceCount?
    @Option(name: .customLong("tensor-parallel"), parsing: .unconditional, help: "Fix the tensor-parallel width, 1 to 65536.",
            transform: NumberArgument.whole(1...(1 << 16)))
    var tensorParallel: Int?
    /// --zero-stage, --pipeline-parallel, --recompute.
    @OptionGroup var fixed: FixedLayoutOptions
    @Option(name: .customLong("context-parallel"), parsing: .unconditional,
            help: "Context-parallel ranks splitting each sequence (ring attention), 1 to 1024; must divide half the sequence (default: 1, not searched).",
            transform: NumberArgument.whole(1...1024))
    var contextParallel: Int?
    @Option(name: .customLong("micro-batch"), parsing: .unconditional,
            help: "Fix the sequences per forward/backward pass on a rank, 1 to 16777216.", transform: NumberArgument.whole(1...PlanLimits.batchSequences))
    var microBatch: Int?
    @Option(parsing: .unconditional, help: "Fix the virtual pipeline stages per device, 1 to 1024 (interleaved 1F1B; 1 = plain 1F1B).",
            transform: NumberArgument.whole(1...1024))
    var interleave: Int?
    @Flag(name: .customLong("balanced-pipeline"),
          help: "Llama 3's memory-balanced pipeline: one layer fewer on the first and last stages (Dubey et al. 2024, §3.3.2).")
    var balancedPipeline = false
    @Flag(name: .customLong("tp-comm-overlap"),
          help: "Tensor-parallel collectives overlapped with the GEMMs (Megatron-core with Transformer Engine's --tp-comm-overlap).")
    var tpCommOverlap = false
    @Option(name: .customLong("batch-sequences"), parsing: .unconditional, help: "Sequences per optimizer step, 1 to 16777216.",
            transform: NumberArgument.whole(1...PlanLimits.batchSequences))
    var batchSequences: Int?
    @Option(parsing: .unconditional, help: "Tokens per optimizer step (rounded to whole sequences), e.g. 4M.",
            transform: NumberArgument.real(.positive))
    var batch: Double?
    @Option(parsing: .unconditional, help: "Training tokens, for the run's time and cost (e.g. 15T), up to 2^60.",
            transform: NumberArgument.real(FlagRange(0, included: false, PlanLimits.tokens)))
    var tokens: Double?
    @OptionGroup var price: PriceOption
    @Option(parsing: .unconditional, help: "Model FLOPs utilisation of the compute term, 0.001 to 1 (default: the hardware's).",
            transform: NumberArgument.real(FlagRange(PlanLimits.mfu)))
    var mfu: Double?
    @Option(name: .customLong("gradient-bytes"), parsing: .unconditional,
            help: "Bytes a gradient: 2 (bf16, the ZeRO paper's 2 + 2 + 12; default) or 4 (fp32, Megatron-LM's and EleutherAI's cookbook's 2 + 4 + 12).")
    var gradientBytes: GradientBytes?
    @Option(name: .customLong("memory-headroom"), parsing: .unconditional,
            help: "Share of each device's memory a layout leaves free for the allocator's fragmentation, 0 to 0.5 (default: 0.1; 0.05 with PyTorch's expandable segments).",
            transform: NumberArgument.real(FlagRange(0...0.5)))
    var memoryHeadroom: Double?
    @Flag(name: .customLong("compare-layouts"), help: "Also print the fastest layouts.") var compareLayouts = false
    @Flag(help: "Print one JSON object.") var json = false
    /// Threads whose measured rate is this machine's (with --gpu cpu).
    @OptionGroup var threads: ThreadOption

    mutating func run() throws {
        let shape = try makeShape()
        let threadCount = threads.count
        var hardware = gpu?.hardware { thisMachineHardware(threads: threadCount) } ?? .defaultGPU
        if let memoryHeadroom {
            guard hardware.precision != .float32 else {
                throw CommandFailure.usage("gpt-plan estimate: --memory-headroom is for GPUs; on cpu gpt-train's own check keeps "
                                           + "\(Int((100 * (1 - CPUTrainer.usableFraction)).rounded()))% free and the estimate with it")
            }
            hardware.usableFraction = 1 - memoryHeadroom
        }
        let trainingTokens = tokens
        let sequences: Int
        switch (batchSequences, batch) {
        case (let s?, nil): sequences = s
        case (nil, let b?):
            guard let count = PlanLimits.int((b / Double(shape.seqLen)).rounded()), count <= PlanLimits.batchSequences else {
                throw CommandFailure.usage("gpt-plan estimate: --batch \(sig(b, 4)): more than \(PlanLimits.batchSequences) sequences of \(shape.seqLen) tokens; give a smaller --batch")
            }
            sequences = max(1, count)
        case (nil, nil): sequences = EstimateRequest.defaultBatchSequences(shape: shape, trainingTokens: trainingTokens)
        default: throw CommandFailure.usage("gpt-plan estimate: give --batch-sequences or --batch, not both")
        }
        var request = EstimateRequest(shape: shape, hardware: hardware, batchSequences: sequences)
        request.trainingTokens = trainingTokens
        request.pricePerDeviceHour = price.perDeviceHour
        if let mfu { request.mfu = mfu }
        request.conventions = (gradientBytes ?? .two).conventions
        switch devices {
        case nil, .auto?: request.devices = nil
        case .count(let k)?: request.devices = k
        }
        request.constraints = LayoutConstraints(
            zeroStage: fixed.zeroStage, tensorParallel: tensorParallel, pipelineParallel: fixed.pipelineParallel,
            recompute: fixed.recompute,
            microBatch: microBatch, interleave: interleave)
        request.constraints.balancedEnds = balancedPipeline
        request.constraints.overlapsTensorParallel = tpCommOverlap
        request.constraints.contextParallel = contextParallel ?? 1
        let estimate: Estimate
        do { estimate = try Estimate.make(request) } catch {
            throw CommandFailure.usage("gpt-plan estimate: \(EstimateText.error(error, request))")
        }
        if json {
            print(try EstimateText.json(estimate))
        } else {
            print(EstimateText.table(estimate, batchRule: batch == nil && batchSequences == nil), terminator: "")
            if compareLayouts { print("\n" + EstimateText.layouts(estimate), terminator: "") }
        }
    }

    func makeShape() throws -> ModelShape {
        let context = seqLen
        if bias && noBias { throw CommandFailure.usage("gpt-plan estimate: give --bias or --no-bias, not both") }
        var shape: ModelShape
        if let hfConfig {
            let given = [(family != nil, "--family"), (layers != nil, "--layers"), (dModel != nil, "--d-model"),
                         (heads != nil, "--heads"), (kvHeads != nil, "--kv-heads"), (dFF != nil, "--d-ff"),
                         (vocab != nil, "--vocab")].filter(\.0).map(\.1)
            if !given.isEmpty {
                throw CommandFailure.usage("gpt-plan estimate: \(given.joined(separator: ", ")) and --hf-config both "
                                           + "describe the model; give one (--seq-len may change the config's context)")
            }
            let contents: Data?
            do { contents = try InputFile.read(hfConfig, fix: "give a Hugging Face config.json", status: 2) } catch {
                throw CommandFailure.usage("gpt-plan estimate: --hf-config \(error.message)")
            }
            guard let data = contents else {
                throw CommandFailure.usage("gpt-plan estimate: --hf-config \(hfConfig): no such file. Fix: give a Hugging Face config.json")
            }
            do { shape = try ModelShape.fromHuggingFaceConfig(data, seqLen: context) } catch {
                throw CommandFailure.usage("gpt-plan estimate: --hf-config \(hfConfig): \(error)")
            }
        } else {
            guard let f = family else {
                throw CommandFailure.usage("gpt-plan estimate: describe the model with --hf-config FILE, or with --family "
                                           + "gpt2|llama --layers L --d-model D --heads H [--kv-heads K] [--d-ff F] "
                                           + "--seq-len S --vocab V")
            }
            var missing: [String] = []
            for (value, flag) in [(layers, "--layers"), (dModel, "--d-model"), (heads, "--heads"), (vocab, "--vocab")]
            where value == nil { missing.append(flag) }
            if context == nil { missing.append("--seq-len") }
            if !missing.isEmpty {
                throw CommandFailure.usage("gpt-plan estimate: --family \(f.rawValue) needs \(missing.joined(separator: ", "))")
            }
            let d = dModel!
            let defaultFF = f == .llama ? (7 * d / 2 + 255) / 256 * 256 : 4 * d
            shape = ModelShape(nLayer: layers!, nHead: heads!, dModel: d, dFF: dFF ?? defaultFF, seqLen: context!,
                               vocabSize: vocab!, bias: f == .gpt2, family: f, nKVHead: kvHeads)
        }
        if bias { shape.bias = true }
        if noBias { shape.bias = false }
        if let tieEmbeddings { shape.tieEmbeddings = tieEmbeddings }
        do { try shape.validate() } catch {
            throw CommandFailure.usage("gpt-plan estimate: the model cannot be built: \(error)")
        }
        return shape
    }
}

/// The estimate as text and JSON (the command's and `gpt-plan check`'s).
enum EstimateText {
    static func shapeLine(_ s: ModelShape) -> String {
        let attention = s.nKVHead == s.nHead ? "\(s.nHead) heads" : "\(s.nHead) heads, \(s.nKVHead) KV heads"
        return "\(s.family.rawValue): \(s.nLayer) layers × \(s.dModel) (\(attention), head size \(s.headSize)), "
            + "d_ff \(s.dFF), sequence \(s.seqLen), vocabulary \(s.vocabSize), "
            + "\(s.tieEmbeddings ? "tied" : "untied") head, \(s.bias ? "biases" : "no biases")"
    }

    static func conventions(_ c: MemoryConventions) -> String {
        "\(sig(c.weightBytes)) + \(sig(c.gradientBytes)) + \(sig(c.optimizerBytes)) bytes a parameter: bf16 weights, "
            + (c.gradientBytes == 4 ? "fp32 gradients (Megatron-LM, EleutherAI's cookbook)" : "bf16 gradients (the ZeRO paper)")
            + ", fp32 master weights and AdamW moments"
    }

    static func table(_ e: Estimate, batchRule: Bool) -> String {
        let s = e.shape, c = s.parameterCount, l = e.layout, m = e.chosen.memory, step = e.chosen.step
        let h = e.request.hardware
        func pad(_ text: String, _ width: Int) -> String {
            text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
        }
        func row(_ name: String, _ value: String, _ why: String = "") -> String {
            pad(name, 18) + (why.isEmpty ? value : pad(value, 14) + "  " + why) + "\n"
        }
        var out = "Model           " + shapeLine(s) + "\n"
        out += row("parameters", si(Double(c.total), 4),
                   "\(c.total): token embedding \(c.tokenEmbedding)"
                   + (c.positionEmbedding > 0 ? ", positions \(c.positionEmbedding)" : "")
                   + (c.outputHead > 0 ? ", output head \(c.outputHead)" : "") + ", blocks and final norm \(c.nonEmbedding)")
        out += row("FLOPs/token", sig(e.modelFlopsPerToken, 4),
                   "model: 6N' + 12·L·heads·head_size·T (N' = \(c.matmul); attention over the full T×T, as PaLM and Megatron-LM count)")
        out += row("  hardware", sig(e.hardwareFlopsPerToken, 4), "recomputation: \(l.recompute.rawValue)")
        out += row("hardware", "\(h.name) × \(l.devices)",
                   "\(flopRate(h.peakFlops)) peak, \(sig(h.memoryBytes / 1e9, 4)) GB each"
                   + (e.devicesGiven ? "" : "; the fewest devices on which a layout fits"))
        out += row("layout", "d\(l.dataParallel) t\(l.tensorParallel) p\(l.pipelineParallel)"
                   + (l.interleave > 1 ? " v\(l.interleave)" : "") + (l.contextParallel > 1 ? " c\(l.contextParallel)" : ""),
                   "ZeRO-\(l.zeroStage), recompute \(l.recompute.rawValue), micro-batch \(l.microBatch) × "
                   + "\(l.gradAccum) accumulation"
                   + (l.balancedEnds ? ", one layer fewer on the first and last stages (Llama 3's balanced pipeline)" : "")
                   + "; \(e.layoutsTried) layouts evaluated, the fastest that fits kept")
        out += row("batch", "\(l.batchSequences) seq", "\(si(e.tokensPerStep, 4)) tokens a step"
                   + (batchRule ? " (DeepSeek LLM's B = 0.2920·C^0.3271 at C = 6·N·D, D = --tokens or 20·N)" : ""))
        let cpu = h.precision == .float32
        out += "\nMemory per device (" + (cpu
            ? "gpt-train on a CPU: float32 weights, gradients and AdamW moments, 4 + 4 + 8 bytes a parameter, and a "
                + "2-byte bf16 copy of the weights with bf16 products"
            : conventions(e.request.conventions)) + "):\n"
        out += row("  weights", bytes(m.weights))
        out += row("  gradients", bytes(m.gradients))
        out += row("  optimizer", bytes(m.optimizer), "ZeRO-\(l.zeroStage) over \(l.dataParallel) data-parallel ranks"
                   + (l.contextParallel > 1 ? " × \(l.contextParallel) context-parallel" : ""))
        out += row("  activations", bytes(m.activations),
                   cpu ? (s.family == .gpt2 ? "gpt-train's buffers, counted exactly"
                                              : "per block as Korthikanti et al. count, in float32, fused attention")
                       : "Korthikanti et al. 2022 per block (16-bit, sequence parallel when t > 1), the stage's layers and micro-batches in flight")
        out += row("  other", bytes(m.other), "runtime, workspaces, communication buffers")
        out += row("  total", bytes(m.total), "of \(bytes(e.chosen.usableBytes)) usable (\(Int((h.usableFraction * 100).rounded()))%)")
        out += "\nStep \(sig(e.stepSeconds, 4)) s:\n"
        if let model = e.timeModel {
            let eta = model.efficiency(width: Double(s.dModel) / Double(l.tensorParallel),
                                       tokens: Double(l.microBatch * s.seqLen / l.contextParallel))
            out += row("  compute", sig(step.compute, 4) + " s",
                       "hardware FLOPs at η = \(sig(model.matmulEfficiency, 2))·w/(w + \(Int(model.widthHalf))) = "
                       + "\(sig(100 * eta, 3))% of peak, w = d_model/t = \(s.dModel / l.tensorParallel) (\(model.source))")
        } else {
            out += row("  compute", sig(step.compute, 4) + " s", "hardware FLOPs at \(sig(e.mfuAssumed * 100, 3))% of peak")
        }
        out += row("  bubble", sig(step.bubble, 4) + " s", l.interleave > 1
                   ? "(p − 1)/(v·m) of the compute, interleaved 1F1B with v = \(l.interleave) (Narayanan et al. 2021)"
                   : "(p − 1)/m of the compute, 1F1B")
        out += row("  data parallel", sig(step.dataParallel, 4) + " s", "exposed gradient/ZeRO collectives")
        out += row("  tensor par.", sig(step.tensorParallel, 4) + " s", l.overlapsTensorParallel
                   ? "collectives of each layer overlapped with its GEMMs (--tp-comm-overlap), exposed beyond them"
                   : "all-reduces of each layer, not overlapped")
        out += row("  pipeline", sig(step.pipeline, 4) + " s", "activations between stages")
        if l.contextParallel > 1 {
            out += row("  context par.", sig(step.contextParallel, 4) + " s",
                       "K/V ring of each layer (c − 1 sends forward, twice that backward, once more with recomputation), "
                       + "exposed beyond attention's compute")
        }
        out += "\nThroughput: \(si(e.tokensPerSecondPerDevice, 4)) tokens/s per device; MFU \(sig(100 * e.modelFlopsUtilization, 3))% "
            + "(model FLOPs), HFU \(sig(100 * e.hardwareFlopsUtilization, 3))% (hardware FLOPs, recomputation included)\n"
        if let tokens = e.request.trainingTokens, let steps = e.steps, let seconds = e.trainingSeconds, let hours = e.deviceHours {
            out += "Training \(si(tokens, 4)) tokens: \(steps) steps, \(duration(seconds)), \(si(hours, 4)) device-hours"
                + (e.cost.map { ", cost \(si($0, 4))" } ?? "") + "\n"
        }
        return out
    }

    static func layouts(_ e: Estimate) -> String {
        var out = "Fastest layouts on \(e.devices) devices:\n"
        for a in e.alternatives {
            let l = a.layout
            out += "  d\(l.dataParallel) t\(l.tensorParallel) p\(l.pipelineParallel)"
                + (l.contextParallel > 1 ? " c\(l.contextParallel)" : "") + " ZeRO-\(l.zeroStage) "
                + "\(l.recompute.rawValue) micro \(l.microBatch): \(bytes(a.memory.total)), \(sig(a.step.total, 4)) s a step\n"
        }
        return out
    }

    /// The estimate as `--json` prints it (`EstimateJSON`, the planner's Codable type); a non-finite number is an
    /// error naming its key.
    static func json(_ e: Estimate) throws -> String {
        try jsonText(EstimateJSON(e), subject: "estimate")
    }

    static func error(_ error: EstimateError, _ r: EstimateRequest) -> String {
        switch error {
        case .invalidShape(let e): return "the model cannot be built: \(e)"
        case let .outOfRange(name, value): return "--\(name) \(sig(value, 6)): out of range"
        case .layout(let problem):
            switch problem {
            case let .devicesNotFactored(k, t, p):
                let cp = r.constraints.contextParallel
                return "--devices \(k) is not a multiple of --tensor-parallel × --pipeline-parallel"
                    + (cp > 1 ? " × --context-parallel" : "") + " = \(t * p * cp)"
            case let .batchNotDivisible(b, d):
                return "the batch of \(b) sequences does not divide among the data-parallel ranks of any allowed layout "
                    + "of \(d) devices; give --batch-sequences as a multiple of devices / (tensor-parallel × pipeline-parallel"
                    + (r.constraints.contextParallel > 1 ? " × context-parallel" : "") + ")"
            case let .tensorParallelInvalid(t, heads, perNode):
                return "--tensor-parallel \(t) must divide the \(heads) heads and the \(r.shape.nKVHead) KV heads and "
                    + "stay within a node of \(perNode)"
            case let .pipelineParallelInvalid(p, layers): return "--pipeline-parallel \(p) must be 1...\(layers) (whole layers a stage)"
            case .zeroStageInvalid(let z): return "--zero-stage \(z): use 0, 1, 2 or 3"
            case let .contextParallelInvalid(c, seqLen):
                return "--context-parallel \(c) must divide half the sequence length \(seqLen) (two chunks a rank, as "
                    + "Megatron-core balances causal attention), on GPUs; give a c that divides \(seqLen / 2)"
            case let .interleaveInvalid(v, slots):
                return "--interleave \(v) must divide the \(slots) layers of a pipeline stage (Megatron-LM's interleaved "
                    + "schedule gives each virtual stage the same number of layers), with --pipeline-parallel above 1"
            case .unsupportedOnCPU:
                return "--gpu cpu trains as gpt-train does: data parallel only (ZeRO 0 or 1), no tensor or pipeline "
                    + "parallelism, no recomputation"
            case let .doesNotFit(needed, usable): return "needs \(bytes(needed)) a device, over the \(bytes(usable)) usable"
            }
        case let .noLayout(devices, least):
            var text = devices.map { "no layout of \($0) \(r.hardware.name) devices fits" }
                ?? "no device count of \(r.hardware.name) fits a layout"
            if let least {
                let m = least.memory, l = least.layout
                text += "; the least memory (d\(l.dataParallel) t\(l.tensorParallel) p\(l.pipelineParallel) "
                    + (l.contextParallel > 1 ? "c\(l.contextParallel) " : "")
                    + "ZeRO-\(l.zeroStage) \(l.recompute.rawValue) micro-batch \(l.microBatch)) needs \(bytes(m.total)) "
                    + "(weights \(bytes(m.weights)), gradients \(bytes(m.gradients)), optimizer \(bytes(m.optimizer)), "
                    + "activations \(bytes(m.activations)), other \(bytes(m.other))) of \(bytes(least.usableBytes)) usable"
            }
            return text + ". Fix: more devices, a higher --zero-stage, --recompute full, or a smaller --micro-batch"
        }
    }
}

extension Check {
    /// The estimate for a recipe that names its `[hardware]`: its model, layout and batch exactly, as
    /// `gpt-plan estimate` prints it; nil without `[hardware]` or when the layout cannot be evaluated (the layout
    /// check reports that).
    static func estimateRequest(_ r: Recipe) -> EstimateRequest? {
        guard let given = r.hardware else { return nil }
        var hardware: Hardware
        if given.name == "cpu" {
            let rate = given.deviceFlops, bf16 = r.training.precision == .bf16
            hardware = .cpu(memoryBytes: Double(given.deviceMemory),
                            fp32Flops: bf16 ? rate / 2 : rate, bf16Flops: bf16 ? rate : nil,
                            source: "the recipe's [hardware]")
        } else {
            hardware = Hardware.preset(named: given.name) ?? .defaultGPU
            hardware.name = given.name
            hardware.memoryBytes = Double(given.deviceMemory)
            hardware.peakFlops = given.deviceFlops
        }
        let t = r.training
        var request = EstimateRequest(shape: r.model, hardware: hardware, batchSequences: t.batchSize)
        var shape = r.model
        shape.seqLen = t.seqLen
        request.shape = shape
        request.devices = t.devices
        request.constraints = LayoutConstraints(zeroStage: t.zeroStage, tensorParallel: t.tensorParallel,
                                                pipelineParallel: t.pipelineParallel, recompute: t.recompute,
                                                microBatch: t.microBatch, interleave: 1)
        request.trainingTokens = r.trainingTokens
        // GPU recipes are timed with the calibrated model, as the plan that wrote them; CPU ones with their MFU.
        if hardware.precision == .float32 { request.mfu = given.mfu }
        request.keepLayouts = 1
        return request
    }

    static func estimateText(_ r: Recipe) -> String? {
        guard let request = estimateRequest(r), let e = try? Estimate.make(request) else { return nil }
        return EstimateText.table(e, batchRule: false).split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.isEmpty ? "" : "  " + $0 }.joined(separator: "\n")
    }
}
