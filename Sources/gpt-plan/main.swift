import ArgumentParser
import CLISupport
import Compute
import Corpus
import Durable
import Foundation
import Planner
import Recipe

struct GPTPlan: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpt-plan",
        abstract: "Plan a compute-optimal GPT pre-training run and write it as a recipe.",
        subcommands: [Make.self, Check.self, Reference.self],
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

    @Option(help: "Training budget in FLOPs (C = 6ND).") var flops: String?
    @Option(help: "Model size instead of a budget: plan the run for which it is compute-optimal.") var params: String?
    @Option(help: "Token count instead of a budget: plan the run for which it is compute-optimal.") var tokens: String?

    @Option(help: "Allocation rule: epoch (Besiroglu et al. 2024), hoffmann (Chinchilla approach 3) or tokens-per-param.")
    var fit: String = "epoch"
    @Option(name: .customLong("tokens-per-param"), help: "The ratio D/N for --fit tokens-per-param.")
    var tokensPerParam: String = "20"
    @Flag(name: .customLong("compare-fits"), help: "Show every fit side by side for the same budget.")
    var compareFits = false

    @Option(name: .customLong("seq-len"), help: "Context length (default: 1024, smaller for tiny budgets).")
    var seqLen: Int?
    @Option(help: "Tokenizer vocabulary, padded to a multiple of 64 (default 50257, or the prepared --data's).")
    var vocab: Int?
    @Flag(help: "Biases in linear layers and LayerNorms (GPT-2 has them).") var bias = false

    @Option(name: .customLong("batch-rule"), help: "Batch size rule: deepseek or kaplan.") var batchRule: String = "deepseek"
    @Option(help: "Batch size in tokens, overriding the rule (e.g. 0.5M).") var batch: String?
    @Option(name: .customLong("lr-rule"), help: "Learning-rate rule: deepseek, kaplan or reference.") var lrRule: String?
    @Option(help: "Peak learning rate, overriding the rule.") var lr: String?
    @Option(name: .customLong("reference-batch"), help: "Reference batch in tokens for --lr-rule reference (e.g. 0.5M).")
    var referenceBatch: String?
    @Option(name: .customLong("reference-lr"), help: "Learning rate at the reference batch (e.g. 6e-4).")
    var referenceLR: String?
    @Option(name: .customLong("lr-scaling"), help: "How lr scales with batch from the reference: sqrt or linear.")
    var lrScaling: String = "sqrt"

    @Option(help: "Data-parallel devices (processes).") var devices: Int = 1
    @Option(name: .customLong("device-memory"), help: "Memory per device (default: this machine's RAM), e.g. 80GiB.")
    var deviceMemory: String?
    @Option(name: .customLong("device-flops"), help: "Peak FLOP/s per device (default: this machine's measured sgemm rate).")
    var deviceFlops: String?
    @Option(help: "Model FLOPs utilisation assumed for the time estimate.") var mfu: Double = 0.4
    @Option(help: "Threads whose sgemm rate is the default device rate.") var threads: Int = CPU.count

    @Flag(help: "Print one JSON object instead of the table.") var json = false
    @Option(name: [.short, .customLong("output")], help: "Also write the recipe to this file.") var output: String?
    @Option(help: "For the recipe: the data ([data] path), a text file or a directory from gpt-data prepare.")
    var data: String = "data"
    @Option(help: "For the recipe: char, byte or bpe (default: the prepared --data's, else bpe).") var tokenizer: String?
    @Option(name: .customLong("val-fraction"), help: "For the recipe: share of the data held out.") var valFraction: Double = 0.1
    @Option(help: "For the recipe: the seed.") var seed: Int = 1337

    mutating func run() throws {
        if output != nil {
            guard valFraction > 0, valFraction < 1 else {
                throw CommandFailure.usage("gpt-plan: --val-fraction \(valFraction): must be between 0 and 1 (exclusive)")
            }
            guard seed >= 0 else { throw CommandFailure.usage("gpt-plan: --seed \(seed): must be 0 or more") }
            if let tokenizer, !Schema.tokenizerNames.contains(tokenizer) {
                throw CommandFailure.usage("gpt-plan: --tokenizer \(tokenizer): use one of \(Schema.tokenizerNames.joined(separator: ", "))")
            }
        }
        let request = try makeRequest()
        if compareFits {
            try printComparison(request)
            return
        }
        let plan: Plan
        do { plan = try Plan.make(request) } catch let error as PlanError {
            throw CommandFailure.usage("gpt-plan: \(error)")
        }
        if json {
            print(try PlanJSON.text(plan))
        } else {
            printTable(plan)
        }
        if let output { try writeRecipe(plan, to: output) }
    }

    func quantity(_ text: String?, _ flag: String) throws -> Double? {
        guard let text else { return nil }
        guard let value = Quantity.parse(text) else {
            throw CommandFailure.usage("gpt-plan: \(flag) \(text): not a number (write e.g. 1e20, 3.2e19, 124M, 1.5B, 80GiB)")
        }
        guard value > 0 else { throw CommandFailure.usage("gpt-plan: \(flag) \(text): must be positive") }
        return value
    }

    func makeRequest() throws -> PlanRequest {
        let targets = [(flops, "--flops"), (params, "--params"), (tokens, "--tokens")].filter { $0.0 != nil }
        guard targets.count == 1 else {
            throw CommandFailure.usage("gpt-plan: give exactly one of --flops, --params, --tokens"
                                       + (targets.isEmpty ? " (e.g. gpt-plan --flops 1e20)" : ""))
        }
        let target: PlanRequest.Target
        if let c = try quantity(flops, "--flops") { target = .flops(c) }
        else if let n = try quantity(params, "--params") { target = .params(n) }
        else { target = .tokens(try quantity(tokens, "--tokens")!) }

        let ratio = try quantity(tokensPerParam, "--tokens-per-param")!
        guard let rule = AllocationRule.named(fit, tokensPerParam: ratio) else {
            throw CommandFailure.usage("gpt-plan: --fit \(fit): unknown; use one of \(AllocationRule.names.joined(separator: ", "))")
        }
        let prepared = preparedMeta(data)
        let memory = try quantity(deviceMemory, "--device-memory") ?? Double(CPU.memoryBytes)
        let rate: Double
        var deviceDescription: String
        if let given = try quantity(deviceFlops, "--device-flops") {
            rate = given
            deviceDescription = "rate given"
        } else {
            guard threads >= 1 else { throw CommandFailure.usage("gpt-plan: --threads must be at least 1") }
            BLAS.pinToOneThread()
            let measurement = MachineProfile.sgemmCeiling(pool: ThreadPool(threads: threads))
            rate = measurement.flopsPerSecond
            deviceDescription = MachineProfile.describe(measurement)
        }
        deviceDescription += deviceMemory == nil ? "; memory: this machine's \(bytes(memory))" : "; memory given"

        var request = PlanRequest(target: target, deviceMemoryBytes: memory, deviceFlops: rate,
                                  deviceDescription: deviceDescription)
        request.rule = rule
        request.seqLen = seqLen
        request.vocabSize = vocab ?? prepared?.vocabSize ?? 50257
        request.bias = bias
        request.devices = devices
        request.mfu = mfu
        switch batchRule {
        case "deepseek": request.batchRule = .deepseek
        case "kaplan": request.batchRule = .kaplan
        default: throw CommandFailure.usage("gpt-plan: --batch-rule \(batchRule): use deepseek or kaplan")
        }
        if let b = try quantity(batch, "--batch") { request.batchRule = .fixed(tokens: b) }

        let lrRuleName = lrRule ?? (referenceLR != nil ? "reference" : "deepseek")
        switch lrRuleName {
        case "deepseek": request.lrRule = .deepseek
        case "kaplan": request.lrRule = .kaplan
        case "reference":
            guard let refLR = try quantity(referenceLR, "--reference-lr"),
                  let refBatch = try quantity(referenceBatch, "--reference-batch") else {
                throw CommandFailure.usage("gpt-plan: --lr-rule reference needs --reference-batch and --reference-lr "
                                           + "(e.g. --reference-batch 0.5M --reference-lr 6e-4, GPT-3 125M's)")
            }
            guard let scaling = LearningRateRule.Scaling(rawValue: lrScaling) else {
                throw CommandFailure.usage("gpt-plan: --lr-scaling \(lrScaling): use sqrt or linear")
            }
            request.lrRule = .reference(batchTokens: refBatch, lr: refLR, scaling: scaling)
        default: throw CommandFailure.usage("gpt-plan: --lr-rule \(lrRuleName): use deepseek, kaplan or reference")
        }
        if let value = try quantity(lr, "--lr") { request.lrRule = .fixed(value) }
        return request
    }

    func printTable(_ plan: Plan) {
        var out = "Compute-optimal GPT run for C = \(sig(plan.flops, 4)) FLOPs (fit: \(plan.fit))\n\n"
        let keyWidth = plan.rows.map(\.key.count).max() ?? 0
        let valueWidth = plan.rows.map(\.value.count).max() ?? 0
        out += "  " + "quantity".padding(toLength: keyWidth, withPad: " ", startingAt: 0) + "  "
            + "value".padding(toLength: valueWidth, withPad: " ", startingAt: 0) + "  rule\n"
        for row in plan.rows {
            out += "  " + row.key.padding(toLength: keyWidth, withPad: " ", startingAt: 0) + "  "
                + row.value.padding(toLength: valueWidth, withPad: " ", startingAt: 0) + "  " + row.rule + "\n"
        }
        out += "\nRationale:\n"
        for line in plan.rationale { out += "  - \(line)\n" }
        print(out, terminator: "")
    }

    func printComparison(_ base: PlanRequest) throws {
        var plans: [Plan] = []
        for name in AllocationRule.names {
            var request = base
            request.rule = AllocationRule.named(name, tokensPerParam: Quantity.parse(tokensPerParam) ?? 20)!
            do { plans.append(try Plan.make(request)) } catch let error as PlanError {
                throw CommandFailure.usage("gpt-plan: fit \(name): \(error)")
            }
        }
        if json {
            print("[" + (try plans.map { try PlanJSON.text($0) }.joined(separator: ",\n")) + "]")
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
        out += "\nepoch: \(AllocationRule.fit(.epoch).description)\n"
        out += "hoffmann: \(AllocationRule.fit(.hoffmann).description)\n"
        out += "tokens-per-param: \(AllocationRule.tokensPerParam(Quantity.parse(tokensPerParam) ?? 20).description); "
            + "its loss is predicted with the epoch fit\n"
        print(out, terminator: "")
    }

    func writeRecipe(_ plan: Plan, to path: String) throws {
        var settings = RunSettings()
        // --data is relative to where the command runs; a recipe's data.path is relative to the recipe.
        settings.dataPath = relativePath(of: data, from: (path as NSString).deletingLastPathComponent)
        settings.tokenizer = tokenizer ?? preparedMeta(data)?.tokenizer ?? "bpe"
        settings.valFraction = valFraction
        settings.seed = seed
        let (recipe, notes) = Recipe.from(plan: plan, settings: settings)
        let text = RecipeWriter.write(recipe, notes: notes, header: [
            "Training recipe written by gpt-plan \(CommandLine.arguments.dropFirst().joined(separator: " "))",
            "Check it with `gpt-plan check \((path as NSString).lastPathComponent)`; run it with `gpt-train \((path as NSString).lastPathComponent)`.",
        ])
        // Prove the file before writing it: it must read back as the same recipe and pass every check.
        let check = RecipeLoader.check(text: text, file: path)
        guard check.passed, check.recipe == recipe else {
            throw CommandFailure("gpt-plan: internal error: the recipe written for this plan does not read back:\n"
                                 + check.problems.map(\.description).joined(separator: "\n"))
        }
        do {
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            try AtomicFile.write(text, to: path)
        } catch {
            throw CommandFailure("gpt-plan: \(error)", exitCode: 2)
        }
        Terminal.note("gpt-plan: wrote \(path)")
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate recipes: schema, ranges, consistency, and that they spend their declared budget.",
        discussion: "Exit status: 0 when every recipe passes, 1 when any has problems, 2 on usage or I/O errors.")

    @Argument(help: "Recipe files.") var files: [String]
    @Option(help: "Allowed relative difference between 6·N·D and plan.flops_budget.") var tolerance: Double = 0.05
    @Flag(help: "Print only problems.") var quiet = false

    mutating func run() throws {
        guard !files.isEmpty else { throw CommandFailure.usage("gpt-plan check: give at least one recipe file") }
        guard tolerance >= 0, tolerance.isFinite else {
            throw CommandFailure.usage("gpt-plan check: --tolerance must be a non-negative number")
        }
        var failed = false, unreadable = false
        for file in files {
            let result: RecipeCheck
            do { result = try RecipeLoader.load(path: file, tolerance: tolerance) } catch {
                Terminal.error("\(error)")
                unreadable = true
                continue
            }
            for problem in result.problems { print(problem.description) }
            if result.passed {
                if !quiet {
                    let r = result.recipe!
                    let n = r.shape.parameterCount.total
                    let spent = 6 * Double(n) * r.trainingTokens
                    print("\(file): ok (N = \(si(Double(n), 4)), D = \(si(r.trainingTokens, 4)), "
                          + "6ND = \(sig(spent, 4)) vs budget \(sig(r.plan.flopsBudget, 4))"
                          + "\(result.warnings.isEmpty ? "" : ", \(result.warnings.count) warning\(result.warnings.count == 1 ? "" : "s")"))")
                }
            } else {
                failed = true
                print("\(file): \(result.errors.count) problem\(result.errors.count == 1 ? "" : "s")")
            }
        }
        if unreadable { throw ExitCode(2) }
        if failed { throw ExitCode(1) }
    }
}

struct Reference: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reference", abstract: "Print the recipe reference (docs/recipe-reference.md) in Markdown.")

    func run() { print(RecipeWriter.referenceMarkdown(), terminator: "") }
}

/// The plan as one JSON object with exactly the documented keys.
enum PlanJSON {
    static func text(_ plan: Plan) throws -> String {
        let object: [String: Any] = [
            "flops": plan.flops,
            "fit": plan.fit,
            "params": plan.params,
            "non_embedding_params": plan.nonEmbeddingParams,
            "tokens": plan.tokens,
            "tokens_per_param": plan.tokensPerParam,
            "predicted_loss": plan.predictedLoss,
            "model": [
                "n_layer": plan.shape.nLayer, "n_head": plan.shape.nHead, "d_model": plan.shape.dModel,
                "d_ff": plan.shape.dFF, "seq_len": plan.shape.seqLen, "vocab_size": plan.shape.vocabSize,
            ],
            "flops_per_token": plan.flopsPerToken,
            "batch_tokens": plan.batchTokens,
            "batch_sequences": plan.batchSequences,
            "learning_rate": plan.learningRate,
            "min_learning_rate": plan.minLearningRate,
            "warmup_steps": plan.warmupSteps,
            "steps": plan.steps,
            "memory_bytes": plan.memoryBytes,
            "rationale": plan.rationale,
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
        return String(decoding: data, as: UTF8.self)
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
