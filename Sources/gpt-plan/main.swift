import ArgumentParser
import CLISupport
import Compute
import Corpus
import Durable
import Foundation
import GPTShape
import Planner
import Recipe
import RecipeCompiler

struct GPTPlan: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpt-plan",
        abstract: "Plan a compute-optimal GPT pre-training run and write it as a recipe.",
        subcommands: [Make.self, EstimateCommand.self, Check.self, Reference.self, Sweep.self, FitSweep.self, Export.self],
        defaultSubcommand: Make.self)
}

struct Make: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make",
        abstract: "Turn a FLOP budget (or a model size, or a token count) into a run; the default command.",
        discussion: """
        Examples:
          gpt-plan --flops 1e20
          gpt-plan --flops 1e20 --compare-fits
          gpt-plan --params 124M --json
          gpt-plan --flops 3e15 --vocab 4096 --data data/shakespeare -o recipe.toml
        Numbers take suffixes: 1e20, 3.2e19, 124M, 1.5B, 2T, 80GiB.
        """)

    // Numbers parse through one parser (NumberArgument) with each flag's range; `.unconditional`, so that
    // `--flops -1e18` reaches the range check instead of being taken for an option.
    @Option(parsing: .unconditional, help: "Training budget in FLOPs (C = 6ND).", transform: NumberArgument.real(.positive))
    var flops: Double?
    @Option(parsing: .unconditional, help: "Model size instead of a budget: plan the run for which it is compute-optimal.",
            transform: NumberArgument.real(.positive))
    var params: Double?
    @Option(parsing: .unconditional, help: "Token count instead of a budget: plan the run for which it is compute-optimal.",
            transform: NumberArgument.real(.positive))
    var tokens: Double?

    @Option(help: "Allocation rule: epoch (Besiroglu et al. 2024), hoffmann (Chinchilla approach 3), tokens-per-param, llama3 (Dubey et al. 2024: D = 0.29·C^0.53), or a fit.json from gpt-plan fit.")
    var fit: FitChoice = .named("epoch")
    @Option(name: .customLong("tokens-per-param"), parsing: .unconditional, help: "The ratio D/N for --fit tokens-per-param (default: 20).",
            transform: NumberArgument.real(.positive))
    var tokensPerParam: Double = 20
    @Option(name: .customLong("unique-tokens"), parsing: .unconditional,
            help: "Unique tokens available (default: the prepared --data's training tokens, when --data is given); plans for repeated data (Muennighoff et al. 2023).",
            transform: NumberArgument.real(.positive))
    var uniqueTokens: Double?
    @Option(name: .customLong("inference-tokens"), parsing: .unconditional,
            help: "Tokens the model will serve: minimise training + inference compute at the same loss (Sardana et al. 2023).",
            transform: NumberArgument.real(.nonNegative))
    var inferenceTokens: Double?
    @Option(name: .customLong("target-loss"), parsing: .unconditional,
            help: "With --inference-tokens: the loss to reach (default: the compute-optimal plan's for --flops).",
            transform: NumberArgument.real(.positive))
    var targetLoss: Double?
    @Flag(name: .customLong("compare-fits"), help: "Show every fit side by side for the same budget.")
    var compareFits = false

    @Option(name: .customLong("seq-len"), parsing: .unconditional,
            help: "Context length, 1 to 1048576 (default: 1024, smaller for tiny budgets).",
            transform: NumberArgument.whole(PlanLimits.seqLen))
    var seqLen: Int?
    @Option(parsing: .unconditional,
            help: "Tokenizer vocabulary, 2 to 16777216, padded to a multiple of 64 (default 50257, or the prepared --data's).",
            transform: NumberArgument.whole(PlanLimits.vocab))
    var vocab: Int?
    @Flag(help: "Biases in linear layers and LayerNorms (GPT-2 has them).") var bias = false
    @Option(help: "Model family: gpt2 (default) or llama (Llama 3's proportions: head size 128, 8 KV heads, d_ff ≈ 3.5·d_model, untied head).")
    var family: ModelFamily = .gpt2

    @Option(name: .customLong("batch-rule"), help: "Batch size rule: deepseek, kaplan or step-law.") var batchRule: BatchRuleName = .deepseek
    @Option(parsing: .unconditional, help: "Batch size in tokens, overriding the rule (e.g. 0.5M).",
            transform: NumberArgument.real(.positive))
    var batch: Double?
    @Option(name: .customLong("lr-rule"), help: "Learning-rate rule: deepseek, kaplan, step-law or reference.") var lrRule: LearningRateRuleName?
    @Flag(name: .customLong("compare-rules"), help: "Show every batch and learning-rate rule for the same budget.")
    var compareRules = false
    @Option(parsing: .unconditional, help: "Peak learning rate, overriding the rule (in (0, 1], a recipe's range).",
            transform: NumberArgument.real(FlagRange(0, included: false, 1)))
    var lr: Double?
    @Option(name: .customLong("lr-per-width"), parsing: .unconditional,
            help: "Peak learning rate k/d_model of the chosen shape (μP-style width scaling, as gpt-plan sweep --lr-per-width), k in (0, 1000].",
            transform: NumberArgument.real(FlagRange(0, included: false, 1000)))
    var lrPerWidth: Double?
    @Option(name: .customLong("reference-batch"), parsing: .unconditional,
            help: "Reference batch in tokens for --lr-rule reference (e.g. 0.5M).", transform: NumberArgument.real(.positive))
    var referenceBatch: Double?
    @Option(name: .customLong("reference-lr"), parsing: .unconditional,
            help: "Learning rate at the reference batch (e.g. 6e-4), in (0, 1].",
            transform: NumberArgument.real(FlagRange(0, included: false, 1)))
    var referenceLR: Double?
    @Option(name: .customLong("lr-scaling"), help: "How lr scales with batch from the reference: sqrt or linear.")
    var lrScaling: LearningRateRule.Scaling = .sqrt

    @Option(help: "Hardware: a GPU preset, cpu (this machine), or list (print the presets). Default: this machine if one process here holds the run, else h100-sxm-80gb.")
    var gpu: HardwareChoice?
    @Option(parsing: .unconditional, help: "Devices: a count (1 to 16777216), or auto (the fewest on which a layout fits).",
            transform: DeviceCount.parse)
    var devices: DeviceCount?
    @Option(parsing: .unconditional, help: "With --devices auto: the fewest devices that also finish within this many days.",
            transform: NumberArgument.real(.positive))
    var days: Double?
    @Option(name: .customLong("device-memory"), parsing: .unconditional,
            help: "Memory per device, 1MiB to 1PiB (default: the preset's, or this machine's RAM), e.g. 80GiB.",
            transform: NumberArgument.real(FlagRange(PlanLimits.deviceMemory)))
    var deviceMemory: Double?
    @Option(name: .customLong("device-flops"), parsing: .unconditional,
            help: "Peak FLOP/s per device, 1e6 to 1e18 (default: the preset's, or this machine's measured rate in the precision the plan picks: bf16 matmul or sgemm).",
            transform: NumberArgument.real(FlagRange(PlanLimits.deviceFlops)))
    var deviceFlops: Double?
    @Option(parsing: .unconditional, help: "Model FLOPs utilisation assumed for the time estimate, 0.001 to 1 (default 0.4).",
            transform: NumberArgument.real(FlagRange(PlanLimits.mfu)))
    var mfu: Double?
    /// Threads whose sgemm (or bf16 matmul) rate is this machine's device rate.
    @OptionGroup var threads: ThreadOption
    @Option(name: .customLong("tensor-parallel"), parsing: .unconditional, help: "Fix the tensor-parallel width (1, 2, 4, 8).",
            transform: NumberArgument.whole(1...8))
    var tensorParallel: Int?
    /// --zero-stage, --pipeline-parallel, --recompute.
    @OptionGroup var fixed: FixedLayoutOptions
    @Flag(name: .customLong("compare-layouts"), help: "Also print the fastest layouts with their memory and time.")
    var compareLayouts = false
    @OptionGroup var price: PriceOption

    @Flag(help: "Print one JSON object instead of the table.") var json = false
    @Option(name: [.short, .customLong("output")], help: "Also write the recipe to this file.") var output: String?
    @Option(name: .customLong("data"),
            help: "For the recipe: the data ([data] path), a text file or a directory from gpt-data prepare (default: data).")
    var dataOption: String?
    var data: String { dataOption ?? "data" }
    @Option(help: "For the recipe: char, byte or bpe (default: the prepared --data's, else bpe).") var tokenizer: TokenizerName?
    @Option(name: .customLong("val-fraction"), parsing: .unconditional,
            help: "For the recipe: share of the data held out, in (0, 0.5] (a recipe's range; default: 0.1).",
            transform: NumberArgument.real(FlagRange(0, included: false, 0.5)))
    var valFraction: Double = 0.1
    @Option(parsing: .unconditional, help: "For the recipe: the seed, 0 or more (default: 1337).", transform: NumberArgument.whole(0...Int.max))
    var seed: Int = 1337

    mutating func run() throws {
        if gpu == .list {
            print(PlanText.presets(cpu: nil), terminator: "")
            print("  cpu           this machine: its RAM and measured sgemm and bf16 matmul rates; bf16 products where it "
                  + "multiplies bf16 natively and faster, else fp32 (master weights and moments fp32 either way)")
            return
        }
        let request = try makeRequest()
        if compareFits {
            try printComparison(request)
            return
        }
        if compareRules {
            try printRuleComparison(request)
            return
        }
        let plan: Plan
        do { plan = try Plan.make(request) } catch let error as PlanError {
            throw CommandFailure.usage("gpt-plan: \(PlanText.error(error))")
        }
        // The recipe is made and checked whether or not it is written: a plan -o would refuse is refused without it.
        let recipe = try recipeText(plan, for: output ?? "recipe.toml", data: data, tokenizer: tokenizer?.rawValue,
                                    valFraction: valFraction, seed: seed)
        if json {
            print(try planJSONText(plan))
        } else {
            printTable(plan)
            if case .file(let path) = fit, let line = measuredPrediction(fitPath: path, plan: plan) {
                print("\n" + line, terminator: "")
            }
            if compareLayouts { print("\n" + PlanText.layouts(plan), terminator: "") }
        }
        if let output {
            try writeFile(recipe, to: output)
            Terminal.note("gpt-plan: wrote \(output)")
        }
    }

    /// The hardware the flags name, or nil when none does.
    func namedHardware(thisMachine: () throws -> Hardware) throws -> Hardware? {
        var hardware: Hardware?
        if case .hardware(let name)? = gpu { hardware = try name.hardware(thisMachine: thisMachine) }
        let memory = deviceMemory
        let rate = deviceFlops
        if memory != nil || rate != nil {
            hardware = try hardware ?? thisMachine()
        }
        if let memory { hardware?.memoryBytes = memory; hardware?.source += "; memory given" }
        if let rate { hardware?.peakFlops = rate; hardware?.source += "; rate given" }
        return hardware
    }

    func makeRequest() throws -> PlanRequest {
        let targets = [(flops, "--flops"), (params, "--params"), (tokens, "--tokens")].filter { $0.0 != nil }
        let lossTarget = targetLoss
        guard targets.count == 1 || (targets.isEmpty && lossTarget != nil) else {
            throw CommandFailure.usage("gpt-plan: give exactly one of --flops, --params, --tokens"
                                       + (targets.isEmpty ? " (e.g. gpt-plan --flops 1e20)" : ""))
        }
        let target: PlanRequest.Target
        let rule = try allocationRule(ratio: tokensPerParam)
        if let c = flops { target = .flops(c) }
        else if let n = params { target = .params(n) }
        else if let d = tokens { target = .tokens(d) }
        else {
            // Only a target loss: the inference-aware plan is compared with the compute-optimal budget reaching it.
            guard inferenceTokens != nil else {
                throw CommandFailure.usage("gpt-plan: --target-loss needs --inference-tokens (and replaces --flops)")
            }
            guard let c = InferenceAware.computeOptimalFlops(rule.lossFit, loss: lossTarget!) else {
                throw CommandFailure.usage("gpt-plan: \(PlanText.error(.lossUnreachable(loss: lossTarget!, irreducible: rule.lossFit.E)))")
            }
            target = .flops(c)
        }
        let prepared = preparedMeta(data)
        let threadCount = threads.count
        // This machine, measured only when the plan may need it.
        func thisMachine() throws -> Hardware { thisMachineHardware(threads: threadCount) }
        let hardware: PlanRequest.HardwareChoice
        if let named = try namedHardware(thisMachine: thisMachine) { hardware = .given(named) }
        else { hardware = .automatic(thisMachine: try thisMachine()) }

        var request = PlanRequest(target: target, hardware: hardware)
        request.rule = rule
        request.targetLoss = lossTarget
        request.inferenceTokens = inferenceTokens
        if let u = uniqueTokens {
            request.uniqueTokens = u
        } else if dataOption != nil, let prepared {
            request.uniqueTokens = Double(prepared.trainTokens)
        }
        request.seqLen = seqLen
        request.vocabSize = vocab ?? prepared?.vocabSize ?? 50257
        request.bias = bias
        request.family = family
        switch devices {
        case nil: request.devices = days.map { .automatic(days: $0) }
        case .auto?: request.devices = .automatic(days: days)
        case .count(let k)?:
            request.devices = .fixed(k)
            if days != nil { throw CommandFailure.usage("gpt-plan: --days needs --devices auto") }
        }
        request.mfu = mfu
        request.constraints = LayoutConstraints(
            zeroStage: fixed.zeroStage,
            tensorParallel: tensorParallel,
            pipelineParallel: fixed.pipelineParallel,
            recompute: fixed.recompute)
        request.pricePerDeviceHour = price.perDeviceHour
        request.batchRule = batchRule.rule
        if let b = batch { request.batchRule = .fixed(tokens: b) }

        let lrRuleName = lrRule ?? (referenceLR != nil ? .reference : .deepseek)
        if let rule = lrRuleName.rule {
            request.lrRule = rule
        } else {
            guard let refLR = referenceLR, let refBatch = referenceBatch else {
                throw CommandFailure.usage("gpt-plan: --lr-rule reference needs --reference-batch and --reference-lr "
                                           + "(e.g. --reference-batch 0.5M --reference-lr 6e-4, GPT-3 125M's)")
            }
            request.lrRule = .reference(batchTokens: refBatch, lr: refLR, scaling: lrScaling)
        }
        if let k = lrPerWidth { request.lrRule = .perWidth(k) }
        if let value = lr { request.lrRule = .fixed(value) }
        return request
    }

    /// The `--fit` rule: a built-in name, or a fit.json written by `gpt-plan fit`.
    func allocationRule(ratio: Double) throws -> AllocationRule { try fit.rule(tokensPerParam: ratio) }

    func printTable(_ plan: Plan) {
        let rows = PlanText.rows(plan)
        var out = "Compute-optimal GPT run for C = \(sig(plan.flops, 4)) FLOPs (fit: \(plan.fit)) on "
            + "\(plan.devices) × \(plan.execution.hardware.name)\n\n"
        let keyWidth = rows.map(\.key.count).max() ?? 0
        let valueWidth = rows.map(\.value.count).max() ?? 0
        out += "  " + "quantity".padding(toLength: keyWidth, withPad: " ", startingAt: 0) + "  "
            + "value".padding(toLength: valueWidth, withPad: " ", startingAt: 0) + "  rule\n"
        for row in rows {
            out += "  " + row.key.padding(toLength: keyWidth, withPad: " ", startingAt: 0) + "  "
                + row.value.padding(toLength: valueWidth, withPad: " ", startingAt: 0) + "  " + row.rule + "\n"
        }
        out += "\nRationale:\n"
        for line in PlanText.rationale(plan) { out += "  - \(line)\n" }
        print(out, terminator: "")
    }

    func printComparison(_ base: PlanRequest) throws {
        var plans: [Plan] = []
        var unplanned: [String] = []
        for name in AllocationRule.names {
            var request = base
            request.rule = AllocationRule.named(name, tokensPerParam: tokensPerParam)!
            do { plans.append(try Plan.make(request)) } catch let error as PlanError {
                // Llama 3's law wants larger models than the Chinchilla fits: it may not fit hardware they fit.
                guard name == "llama3" else { throw CommandFailure.usage("gpt-plan: fit \(name): \(PlanText.error(error))") }
                unplanned.append("\(name): no plan on this hardware: \(PlanText.error(error))")
            }
        }
        if json {
            print("[" + (try plans.map { try planJSONText($0) }.joined(separator: ",\n")) + "]")
            return
        }
        let rows: [(String, (Plan) -> String)] = [
            ("flops", { sig($0.flops, 4) }),
            ("params N", { si(Double($0.params), 4) }),
            ("tokens D", { si($0.tokens, 4) }),
            ("tokens per param", { sig($0.tokensPerParam, 3) }),
            ("predicted loss", { sig($0.predictedLoss, 4) }),
            ("shape (L×H×d)", { "\($0.shape.nLayer)×\($0.shape.nHead)×\($0.shape.dModel)" }),
            ("seq_len", { "\($0.shape.seqLen)" }),
            ("batch tokens", { si(Double($0.batchTokens), 4) }),
            ("learning rate", { sig($0.learningRate, 3) }),
            ("steps", { "\($0.steps)" }),
            ("devices", { "\($0.devices) × \($0.execution.hardware.name)" }),
            ("memory", { bytes($0.memoryBytes) }),
            ("time", { duration($0.estimatedSeconds) }),
        ]
        var out = "Fits compared for the same request\n\n"
        let width = 18, column = 16
        out += "  " + "".padding(toLength: width, withPad: " ", startingAt: 0)
            + plans.map { $0.fit.padding(toLength: column, withPad: " ", startingAt: 0) }.joined() + "\n"
        for (label, value) in rows {
            out += "  " + label.padding(toLength: width, withPad: " ", startingAt: 0)
                + plans.map { value($0).padding(toLength: column, withPad: " ", startingAt: 0) }.joined() + "\n"
        }
        out += "\nepoch: \(PlanText.allocationRule(.fit(.epoch)))\n"
        out += "hoffmann: \(PlanText.allocationRule(.fit(.hoffmann)))\n"
        out += "tokens-per-param: \(PlanText.allocationRule(.tokensPerParam(tokensPerParam))); "
            + "its loss is predicted with the epoch fit\n"
        out += "llama3: \(PlanText.allocationRule(.llama3)); its loss is predicted with the epoch fit\n"
        for line in unplanned { out += line + "\n" }
        print(out, terminator: "")
    }

    /// Every batch rule (with the learning-rate rule asked for) and every learning-rate rule (with the batch rule
    /// asked for), each as the planner applies it to this budget.
    func printRuleComparison(_ base: PlanRequest) throws {
        func plan(_ change: (inout PlanRequest) -> Void, _ label: String) throws -> Plan {
            var request = base
            change(&request)
            do { return try Plan.make(request) } catch let error as PlanError {
                throw CommandFailure.usage("gpt-plan: \(label): \(PlanText.error(error))")
            }
        }
        var out = "Batch and learning-rate rules compared for the same request\n\nBatch rules (learning rate by "
            + "\(base.lrRule.formula)):\n"
        var json: [RuleComparisonJSON] = []
        for (name, rule) in BatchRule.named + (base.batchRule.isFixed ? [("given", base.batchRule)] : []) {
            let p = try plan({ $0.batchRule = rule }, "batch rule \(name)")
            out += "  \(name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(si(p.batch.targetTokens, 4).padding(toLength: 10, withPad: " ", startingAt: 0)) tokens"
                + " → \(p.batchSequences) × \(p.shape.seqLen) = \(si(Double(p.batchTokens), 4)), \(p.steps) steps, lr \(sig(p.learningRate, 3))"
                + (p.batch.cappedAt != nil ? " (capped for \(minimumSteps) steps)" : "") + "\n"
                + "             \(rule.formula)\n"
            json.append(RuleComparisonJSON(batchRule: name, rule, plan: p))
        }
        out += "\nLearning-rate rules (batch by \(base.batchRule.formula)):\n"
        var lrRules: [(String, LearningRateRule)] = LearningRateRuleName.allCases.compactMap { name in
            name.rule.map { (name.rawValue, $0) }
        }
        if case .reference = base.lrRule { lrRules.append(("reference", base.lrRule)) }
        if case .fixed = base.lrRule { lrRules.append(("given", base.lrRule)) }
        for (name, rule) in lrRules {
            let p = try plan({ $0.lrRule = rule }, "learning-rate rule \(name)")
            out += "  \(name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(sig(p.learningRate, 3).padding(toLength: 10, withPad: " ", startingAt: 0))"
                + " \(PlanText.learningRateRule(p.learningRateDecision, batchTokens: p.batchTokens, nonEmbedding: p.nonEmbeddingParams, tokens: p.tokens))\n"
            json.append(RuleComparisonJSON(learningRateRule: name, rule, plan: p))
        }
        let reference = try plan({ _ in }, "the request")
        if !StepLawRange.contains(nonEmbeddingParams: Double(reference.nonEmbeddingParams), tokens: reference.tokens) {
            out += "\nStep Law: N = \(si(Double(reference.nonEmbeddingParams), 3)) (non-embedding) and D = "
                + "\(si(reference.tokens, 3)) are outside its fitted range (about \(si(StepLawRange.nonEmbeddingParams.lowerBound))-"
                + "\(si(StepLawRange.nonEmbeddingParams.upperBound)) parameters, \(si(StepLawRange.tokens.lowerBound))-"
                + "\(si(StepLawRange.tokens.upperBound)) tokens): an extrapolation.\n"
        }
        if self.json {
            print(try jsonText(json))
        } else {
            print(out, terminator: "")
        }
    }

}

/// `--batch-rule`: the planner's named batch rules (`BatchRule.named`).
enum BatchRuleName: String, CaseIterable, ExpressibleByArgument {
    case deepseek
    case kaplan
    case stepLaw = "step-law"

    /// The planner's rule of this name.
    var rule: BatchRule { BatchRule.named.first { $0.name == rawValue }!.rule }
}

/// `--lr-rule`: the planner's learning-rate rules by name.
enum LearningRateRuleName: String, CaseIterable, ExpressibleByArgument {
    case deepseek
    case kaplan
    case stepLaw = "step-law"
    case reference

    /// The planner's rule of this name; nil for `reference`, which needs a reference batch and learning rate.
    var rule: LearningRateRule? {
        switch self {
        case .deepseek: .deepseek
        case .kaplan: .kaplan
        case .stepLaw: .stepLaw
        case .reference: nil
        }
    }
}

/// `--tokenizer` of a recipe: the schema's tokenizer names (`Schema.tokenizerNames`).
enum TokenizerName: String, CaseIterable, ExpressibleByArgument {
    case char
    case byte
    case bpe
}

extension LearningRateRule.Scaling: ExpressibleByArgument {}

/// `--devices`: a count, or auto.
enum DeviceCount: Equatable {
    case auto
    case count(Int)

    static let parse: @Sendable (String) throws -> DeviceCount = { text in
        text == "auto" ? .auto : .count(try NumberArgument.whole(PlanLimits.devices)(text))
    }
}

/// This machine as the planner sees it: its RAM, and its sgemm and bf16 ceilings (measured once and cached,
/// `MachineProfile`) as the structured input of the precision rule (`PrecisionDecision.rule`).
func thisMachineHardware(threads: Int) -> Hardware {
    BLAS.pinToOneThread()
    let pool = ThreadPool(threads: threads)
    let sgemm = MachineProfile.sgemmCeiling(pool: pool)
    let bf16 = MachineProfile.bf16Ceiling(pool: pool)
    return Hardware.cpu(memoryBytes: Double(CPU.memoryBytes),
                        fp32Flops: sgemm.flopsPerSecond, bf16Flops: bf16?.flopsPerSecond,
                        source: MachineProfile.describe(sgemm)
                            + (bf16.map { ", oneDNN \($0.implementation) bf16 matmul \(Int($0.flopsPerSecond / 1e9)) GFLOP/s on \($0.size)³" }
                                ?? ", no native bf16 matmul")
                            + "; memory: this machine's " + bytes(Double(CPU.memoryBytes)))
}

/// The recipe for `plan`, to be written at `path`, after proving that it reads back as the same recipe and passes
/// every check.
func recipeText(_ plan: Plan, for path: String, data: String, tokenizer: String?, valFraction: Double,
                seed: Int) throws -> String {
    var settings = RunSettings()
    // --data is relative to where the command runs; a recipe's data.path is relative to the recipe.
    settings.dataPath = relativePath(of: data, from: AtomicFile.directory(of: path))
    settings.tokenizer = tokenizer ?? preparedMeta(data)?.tokenizer ?? "bpe"
    settings.valFraction = valFraction
    settings.seed = seed
    let (recipe, notes) = Recipe.from(plan: plan, settings: settings)
    let name = (path as NSString).lastPathComponent
    let text = RecipeWriter.write(recipe, notes: notes, header: [
        "Training recipe written by gpt-plan \(CommandLine.arguments.dropFirst().joined(separator: " "))",
        "Check it with `gpt-plan check \(name)`; run it with `gpt-train \(name)`.",
    ])
    let check = RecipeLoader.check(text: text, file: path)
    guard check.passed, check.recipe == recipe else {
        throw CommandFailure("gpt-plan: this plan does not make a valid recipe (a gpt-plan bug: please report it):\n"
                             + check.problems.map(\.description).joined(separator: "\n"))
    }
    return text
}

/// Writes the recipe for `plan` to `path` (atomically), after proving that it reads back as the same recipe and
/// passes every check.
func writeRecipeFile(_ plan: Plan, to path: String, data: String, tokenizer: String?, valFraction: Double,
                     seed: Int) throws {
    try writeFile(try recipeText(plan, for: path, data: data, tokenizer: tokenizer, valFraction: valFraction, seed: seed),
                  to: path)
}

/// Writes `text` to `path` atomically, creating its directory; a failure is exit status 2 naming the path.
func writeFile(_ text: String, to path: String) throws {
    do {
        try AtomicFile.createDirectory(atPath: AtomicFile.directory(of: path))
        try AtomicFile.write(text, to: path)
    } catch {
        throw CommandFailure("gpt-plan: \(error)", exitCode: 2)
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate recipes: schema, ranges, consistency, and that they spend their declared budget.",
        discussion: "Exit status: 0 when every recipe passes, 1 when any has problems, 2 on usage or I/O errors.")

    @Argument(help: "Recipe files.") var files: [String]
    @Option(parsing: .unconditional, help: "Allowed relative difference between 6·N·D and plan.flops_budget, 0 to 1 (default: 0.05).",
            transform: NumberArgument.real(FlagRange(0...1)))
    var tolerance: Double = 0.05
    @Flag(help: "Print only problems.") var quiet = false

    mutating func run() throws {
        guard !files.isEmpty else { throw CommandFailure.usage("gpt-plan check: give at least one recipe file") }
        var failed = false, unreadable = false
        for file in files {
            let result: RecipeCheck
            do { result = try RecipeLoader.load(path: file, tolerance: tolerance) } catch {
                Terminal.error("\(error)")
                unreadable = true
                continue
            }
            for problem in result.problems { print(problem.description) }
            if result.passed, let r = result.recipe {
                // What gpt-train would say of this recipe on this machine (`CPUTrainer`, the rule gpt-train applies).
                let trainer = Self.cpuTrainerHere(for: r).problems(r.cpuTrainerRun)
                if let hardware = r.hardware, hardware.name != "cpu" {
                    // A GPU recipe stays valid for its hardware (and for gpt-plan export); one line says whether
                    // gpt-train could start it here.
                    if !quiet {
                        print("\(file): gpt-train: " + (trainer.first.map { "could not start this recipe here: \($0)" }
                                                        ?? "could start this recipe here"))
                    }
                    if let problem = Self.layoutProblem(r, hardware) {
                        print("\(file): error: training: \(problem)")
                        failed = true
                        continue
                    }
                } else if !trainer.isEmpty {
                    // No [hardware], or cpu: gpt-train on this machine is what runs it, so its refusals are errors.
                    for problem in trainer { print("\(file): error: \(problem)") }
                    print("\(file): \(trainer.count) problem\(trainer.count == 1 ? "" : "s") for gpt-train on this machine")
                    failed = true
                    continue
                }
            }
            if result.passed {
                if !quiet {
                    let r = result.recipe!
                    let n = r.shape.parameterCount.total
                    let spent = 6 * Double(n) * r.trainingTokens
                    print("\(file): ok (N = \(si(Double(n), 4)), D = \(si(r.trainingTokens, 4)), "
                          + "6ND = \(sig(spent, 4)) vs budget \(sig(r.plan.flopsBudget, 4))"
                          + "\(result.warnings.isEmpty ? "" : ", \(result.warnings.count) warning\(result.warnings.count == 1 ? "" : "s")"))")
                    if let estimate = Self.estimateText(r) { print(estimate, terminator: "") }
                }
            } else {
                failed = true
                print("\(file): \(result.errors.count) problem\(result.errors.count == 1 ? "" : "s")")
            }
        }
        if unreadable { throw ExitCode(2) }
        if failed { throw ExitCode(1) }
    }

    /// This machine as gpt-train would train `recipe` on it, one process: its memory, and for a bf16 recipe the
    /// path its products take as gpt-train decides it from the cached ceilings (`gpt-train --no-mfu`'s decision;
    /// native when nothing is cached).
    static func cpuTrainerHere(for recipe: Recipe) -> CPUTrainer {
        let products: BF16Products = recipe.training.precision == .bf16
            ? MachineProfile.nativeBF16Pays(pool: ThreadPool(threads: CPU.count), measure: false) ? .native : .emulated
            : .native
        return CPUTrainer(memoryBytes: Double(CPU.memoryBytes), bf16Products: products, ranksHere: 1)
    }

    /// Whether the recipe's layout fits the memory of the `[hardware]` it names, by the planner's memory model;
    /// nil when it does, else why not, with the fix.
    static func layoutProblem(_ r: Recipe, _ hardware: Recipe.Hardware) -> String? {
        let m = r.model, t = r.training
        let precision: TrainingPrecision = hardware.name == "cpu" ? .float32 : .mixed
        let outcome = checkLayoutFits(
            shape: m, devices: t.devices, microBatch: t.microBatch, gradAccum: t.gradAccum, zeroStage: t.zeroStage,
            tensorParallel: t.tensorParallel, pipelineParallel: t.pipelineParallel, recompute: t.recompute,
            deviceMemoryBytes: Double(hardware.deviceMemory), precision: precision, products: t.precision)
        guard case .failure(let problem) = outcome else { return nil }
        switch problem {
        case .doesNotFit(let needed, let usable):
            return "the layout (micro_batch \(t.microBatch), zero_stage \(t.zeroStage), tensor_parallel \(t.tensorParallel), "
                + "pipeline_parallel \(t.pipelineParallel), recompute \(t.recompute.rawValue)) needs \(bytes(needed)) a device, "
                + "over the \(bytes(usable)) usable of [hardware] \(hardware.name)'s \(bytes(Double(hardware.deviceMemory))). "
                + "Fix: lower training.micro_batch (raising grad_accum), raise zero_stage or recompute, or re-plan with "
                + "gpt-plan --gpu \(hardware.name) --devices \(t.devices)"
        case .unsupportedOnCPU:
            return "[hardware] cpu trains in float32 with one process a device, data parallel: tensor_parallel and "
                + "pipeline_parallel must stay at their defaults and zero_stage at most 1. Fix: set them "
                + "back, or name a GPU in [hardware]"
        default:
            return "the layout is impossible: \(problem). Fix: re-plan with gpt-plan --gpu \(hardware.name) --devices \(t.devices)"
        }
    }
}

struct Reference: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reference", abstract: "Print the recipe reference (docs/recipe-reference.md) in Markdown.")

    func run() { print(RecipeWriter.referenceMarkdown(), terminator: "") }
}

/// The plan as `--json` prints it (`PlanJSON`, the planner's Codable type, with the text renderer's rationale).
func planJSONText(_ plan: Plan) throws -> String {
    try jsonText(PlanJSON(plan, rationale: PlanText.rationale(plan)))
}

/// `value` as the plan JSON encoder writes it; a non-finite number is an error naming its key (and `subject`, what
/// the object describes), never a signal.
func jsonText<Value: Encodable>(_ value: Value, subject: String = "plan") throws -> String {
    do { return String(decoding: try PlanJSON.encoder.encode(value), as: UTF8.self) }
    catch EncodingError.invalidValue(let number, let context) {
        let key = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        throw CommandFailure("gpt-plan: the \(subject)'s \(key) is \(number), which JSON cannot hold", exitCode: 1)
    }
}

/// `target` (absolute, or relative to the current directory) as a path relative to `directory`.
func relativePath(of target: String, from directory: String) -> String {
    if target.hasPrefix("/") { return target }
    let cwd = FileManager.default.currentDirectoryPath
    func absolute(_ p: String) -> [String] {
        let full = p.hasPrefix("/") ? p : (cwd as NSString).appendingPathComponent(p)
        return URL(fileURLWithPath: full).standardized.pathComponents
    }
    let to = absolute(target), from = absolute(directory.isEmpty ? "." : directory)
    var common = 0
    while common < min(to.count, from.count), to[common] == from[common] { common += 1 }
    let parts = Array(repeating: "..", count: from.count - common) + to[common...]
    return parts.isEmpty ? "." : parts.joined(separator: "/")
}

/// What `gpt-data prepare` recorded about a directory (its meta.json), if it is one.
func preparedMeta(_ directory: String) -> DatasetMeta? {
    let path = (directory as NSString).appendingPathComponent("meta.json")
    return FileManager.default.contents(atPath: path).flatMap { try? JSONDecoder().decode(DatasetMeta.self, from: $0) }
}

Main.relaunchWithFastestBLASCore()
Main.run(GPTPlan.self)
