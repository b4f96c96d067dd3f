import ArgumentParser
import CLISupport
import Compute
import Durable
import Foundation
import Recipe
import RunReports
import Trainer

/// `gpt-train ablate`: the same recipe trained with some keys varied, one variant after the other, each in its own
/// run directory under --out; then a table and the curves of all of them.
struct Ablate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ablate",
        abstract: "Train variants of a recipe (some keys varied, the same seed and data) and compare them: DIR/ablation.md and DIR/curves.svg.",
        discussion: """
        gpt-train ablate RECIPE.toml --vary schedule.warmup_steps=0,100 --vary schedule.decay=cosine,constant --out DIR \
        trains the full grid (here 4 variants); with --list the i-th values of every --vary form variant i (every \
        list as long). Any recipe key can be varied (docs/recipe-reference.md); each variant is checked as a recipe \
        (the budget check excepted: varying steps or the model changes what the run spends). Variants run one after \
        the other in DIR/<variant>/; run the command again to go on: finished variants are skipped, an interrupted \
        one resumes from its newest checkpoint. See docs/ablation.md.
        """)

    @Argument(help: "The base recipe.") var recipe: String
    @Option(name: .customLong("vary"), help: "KEY=V1,V2,...: a recipe key and its values (repeat for more keys).")
    var vary: [String] = []
    @Option(help: "Directory for the variants' runs, ablation.md and curves.svg.") var out: String
    @Flag(help: "Pair the values (variant i takes the i-th value of each --vary) instead of the full grid.")
    var list = false
    /// Threads for each run.
    @OptionGroup var threadOption: ThreadOption

    /// One variant: its name (its run directory) and the values it sets.
    struct Variant {
        var name: String
        var settings: [(field: Field, value: RecipeValue)]
    }

    mutating func run() throws {
        guard !vary.isEmpty else { throw CommandFailure.usage("gpt-train ablate: give at least one --vary KEY=V1,V2") }
        let threads = threadOption.count
        let base: Recipe
        do { (base, _) = try RecipeLoader.loadValid(path: recipe) } catch let rejected as RecipeRejected {
            throw CommandFailure("gpt-train ablate: \(recipe) cannot be trained:\n\(rejected)", exitCode: 1)
        } catch { throw CommandFailure("gpt-train ablate: \(error)", exitCode: 2) }
        if let refusal = base.cpuTrainerRefusal {
            throw CommandFailure("gpt-train ablate: \(recipe) cannot be trained: \(refusal)", exitCode: 1)
        }
        let variants = try Self.variants(try vary.map(Self.parse), paired: list)
        let recipeDirectory = URL(fileURLWithPath: recipe).deletingLastPathComponent().path

        var results: [(Variant, AblationResult)] = []
        for (index, variant) in variants.enumerated() {
            let directory = (out as NSString).appendingPathComponent(variant.name)
            let described = variant.settings.map { "\($0.field.path) = \($0.value)" }.joined(separator: ", ")
            if let done = AblationResult.read(directory: directory) {
                Terminal.note("ablate: variant \(index + 1) of \(variants.count), \(variant.name): finished before, skipped")
                results.append((variant, done))
                continue
            }
            var r = base
            for (field, value) in variant.settings {
                // Optional sections: [stability] has a default for every key; [hardware] must be in the recipe.
                if field.section == "stability", r.stability == nil { r.stability = Recipe.Stability() }
                if field.section == "hardware", r.hardware == nil {
                    throw CommandFailure("gpt-train ablate: --vary \(field.path): \(recipe) has no [hardware] section to vary", exitCode: 1)
                }
                if let refusal = field.assign(value, to: &r) {
                    throw CommandFailure("gpt-train ablate: --vary \(field.path)=\(value): \(refusal.message)", exitCode: 1)
                }
            }
            // The variant's recipe lives in its run directory, so its data path is made absolute.
            if !r.data.path.hasPrefix("/") {
                let joined = (recipeDirectory as NSString).appendingPathComponent(r.data.path)
                r.data.path = URL(fileURLWithPath: joined).standardized.path
            }
            let text = RecipeWriter.write(r, header: ["Variant \(variant.name) of \(recipe), written by gpt-train ablate: \(described)"])
            let path = (directory as NSString).appendingPathComponent("recipe.toml")
            let check = RecipeLoader.check(text: text, file: path, tolerance: .infinity)
            guard check.recipe != nil else {
                throw CommandFailure("gpt-train ablate: variant \(variant.name) (\(described)) is not a valid recipe:\n"
                                     + check.errors.map { "  \($0)" }.joined(separator: "\n"), exitCode: 1)
            }
            var options = TrainingOptions(runDirectory: directory, threads: threads)
            options.resume = !Trainer.checkpoints(in: (directory as NSString).appendingPathComponent(r.checkpoint.dir)).isEmpty
            do {
                try AtomicFile.createDirectory(atPath: directory)
                if !options.resume { try AtomicFile.write(text, to: path) }
            } catch { throw CommandFailure("gpt-train ablate: \(error)", exitCode: 1) }
            Terminal.note("ablate: variant \(index + 1) of \(variants.count), \(variant.name): \(described)"
                          + (options.resume ? " (resuming)" : ""))
            let display = ProgressDisplay()
            let summary: RunSummary
            do {
                try CPUTrainingCheck.check(r, products: options.bf16Products, ranksHere: 1)
                let trainer = try Trainer(recipePath: path, options: options) { display.show($0) }
                summary = try trainer.run()
            } catch {
                Terminal.endProgress()
                throw CommandFailure("gpt-train ablate: variant \(variant.name): \(error)", exitCode: 1)
            }
            let metrics = try? RunMetrics.load(runDirectory: directory)
            let result = AblationResult(
                trainLoss: Double(summary.finalTrainLoss), valLoss: summary.finalValLoss,
                spikes: metrics?.events.filter { $0.kind == "spike" }.count ?? 0,
                seconds: summary.seconds)
            do { try result.write(directory: directory) } catch {
                throw CommandFailure("gpt-train ablate: \(error)", exitCode: 1)
            }
            results.append((variant, result))
        }

        do {
            let table = Self.table(results, keys: variants[0].settings.map(\.field.path), recipe: recipe)
            try AtomicFile.write(table, to: (out as NSString).appendingPathComponent("ablation.md"))
            let runs = try variants.map { try RunMetrics.load(runDirectory: (out as NSString).appendingPathComponent($0.name)) }
            let svg = try TrainingCurves.figure(runs: runs).svg()
            try AtomicFile.write(Data(svg.utf8), to: (out as NSString).appendingPathComponent("curves.svg"))
            Terminal.note(table + "\nwrote \(out)/ablation.md and \(out)/curves.svg")
        } catch { throw CommandFailure("gpt-train ablate: \(error)", exitCode: 1) }
    }

    /// `KEY=V1,V2`: the key's field and its values, read as the key's type.
    static func parse(_ argument: String) throws -> (Field, [RecipeValue]) {
        let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[1].isEmpty else {
            throw CommandFailure.usage("gpt-train ablate: --vary \(argument): write KEY=V1,V2,... (for instance schedule.warmup_steps=0,100)")
        }
        guard let field = Schema.field(parts[0]) else {
            // A key of the same section that starts with what was typed, else the nearest by edit distance.
            let typed = parts[0].split(separator: ".", maxSplits: 1).map(String.init)
            let section = typed.count == 2 ? Schema.fields(in: typed[0]).map(\.path) : []
            let guess = section.first { $0.hasPrefix(parts[0]) }
                ?? RecipeLoader.closest(parts[0], among: section.isEmpty ? Schema.fields.map(\.path) : section)
            let near = guess.map { "; did you mean \($0)?" } ?? ""
            throw CommandFailure.usage("gpt-train ablate: --vary \(parts[0]): not a recipe key\(near) (docs/recipe-reference.md lists them)")
        }
        let values = try parts[1].split(separator: ",", omittingEmptySubsequences: false).map { raw -> RecipeValue in
            let text = raw.trimmingCharacters(in: .whitespaces)
            let value: RecipeValue?
            switch field.kind {
            case .integer: value = Int(text).map(RecipeValue.integer)
            case .number: value = Double(text).map(RecipeValue.float)
            case .bool: value = ["true": true, "false": false][text].map(RecipeValue.bool)
            case .string, .path, .choice: value = text.isEmpty ? nil : .string(text)
            }
            guard let value else {
                throw CommandFailure.usage("gpt-train ablate: --vary \(field.path): \"\(text)\" is not \(field.kind.allowed)")
            }
            return value
        }
        return (field, values)
    }

    /// The full grid (the first --vary changing slowest), or the values paired by position.
    static func variants(_ axes: [(Field, [RecipeValue])], paired: Bool) throws -> [Variant] {
        var settings: [[(field: Field, value: RecipeValue)]]
        if paired {
            let count = axes[0].1.count
            guard axes.allSatisfy({ $0.1.count == count }) else {
                throw CommandFailure.usage("gpt-train ablate: with --list every --vary needs as many values ("
                    + axes.map { "\($0.0.path): \($0.1.count)" }.joined(separator: ", ") + ")")
            }
            settings = (0..<count).map { i in axes.map { (field: $0.0, value: $0.1[i]) } }
        } else {
            settings = [[]]
            for (field, values) in axes {
                settings = settings.flatMap { prefix in values.map { prefix + [(field: field, value: $0)] } }
            }
        }
        guard Set(axes.map(\.0.path)).count == axes.count else {
            throw CommandFailure.usage("gpt-train ablate: a key is given to --vary twice")
        }
        let keys = axes.map(\.0.key)
        let shortNames = Set(keys).count == keys.count
        let variants = settings.map { s in
            let name = s.map { setting -> String in
                let value: String
                if case .string(let text) = setting.value { value = text } else { value = setting.value.description }
                return "\(shortNames ? setting.field.key : setting.field.path)=\(value)"
            }.joined(separator: ",").replacingOccurrences(of: "/", with: "_")
            return Variant(name: name, settings: s)
        }
        guard Set(variants.map(\.name)).count == variants.count else {
            throw CommandFailure.usage("gpt-train ablate: two variants are the same ("
                + variants.map(\.name).joined(separator: "; ") + "); give each value once")
        }
        return variants
    }

    static func table(_ results: [(Variant, AblationResult)], keys: [String], recipe: String) -> String {
        func f(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "–" }
        var out = "Ablation of \(recipe): the same seed and data; final losses at the last step (validation: eval.iters "
            + "micro-batches of held-out windows).\n\n"
        out += "| variant | " + keys.joined(separator: " | ") + " | final train loss | final val loss | spikes | wall time |\n"
        out += "|" + String(repeating: "---|", count: keys.count + 5) + "\n"
        for (variant, r) in results {
            let values = variant.settings.map { setting -> String in
                if case .string(let text) = setting.value { return text }
                return setting.value.description
            }
            out += "| \(variant.name) | " + values.joined(separator: " | ")
                + " | \(f(r.trainLoss)) | \(f(r.valLoss)) | \(r.spikes) | \(ProgressDisplay.clock(r.seconds)) |\n"
        }
        return out
    }
}

/// A finished variant's numbers, kept in its run directory (ablation-result.json) so that a rerun skips it.
struct AblationResult: Codable {
    var trainLoss: Double
    var valLoss: Double?
    var spikes: Int
    /// Wall time of the process that finished the variant (an interrupted earlier attempt is not counted).
    var seconds: Double

    static func path(_ directory: String) -> String { (directory as NSString).appendingPathComponent("ablation-result.json") }

    static func read(directory: String) -> AblationResult? {
        guard let data = FileManager.default.contents(atPath: path(directory)) else { return nil }
        return try? JSONDecoder().decode(AblationResult.self, from: data)
    }

    func write(directory: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: Self.path(directory))
    }
}
