import ArgumentParser
import CLISupport
import RecipeCompiler
import Foundation
import Recipe

/// `gpt-plan export RECIPE --to megatron|nanogpt|llmc -o DIR [--no-data]`: the recipe compiled for an engine.
extension Engine: ExpressibleByArgument {}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Compile a recipe for Megatron-LM, nanoGPT or llm.c, with its data in the engine's format.",
        discussion: """
        DIR gets README.md (how to launch; every recipe key and where it went; what the engine does differently),
        the configuration (train.sh for Megatron-LM and llm.c, config.py for nanoGPT) and the recipe's data split as
        gpt-train splits it, in the engine's format, under DIR/data. What an engine cannot express is refused with
        the recipe key and the fix (exit status 1). docs/export.md has the table of keys × engines.
        Examples:
          gpt-plan export run.toml --to megatron -o megatron-run
          gpt-plan export recipes/shakespeare-char.toml --to nanogpt -o /tmp/nano
        """)

    @Argument(help: "The recipe file.") var recipe: String
    @Option(help: "The engine: megatron, nanogpt or llmc.") var to: Engine
    @Option(name: [.short, .customLong("output")], help: "The export directory.") var output: String
    @Flag(name: .customLong("no-data"), help: "Write the configuration only, not the data.") var noData = false
    @Option(name: .customLong("gpus-per-node"), parsing: .unconditional, help: "GPUs per node for the launch lines, 1 to 1024 (default 8).",
            transform: NumberArgument.whole(1...1024))
    var gpusPerNode: Int = 8
    @Option(name: .customLong("llmc-model"),
            help: "llm.c: start from this model file (gpt-train export CKPT --to llmc) instead of a GPT-2 descriptor (-e dL).")
    var llmcModel: String?

    mutating func run() throws {
        let engine = to
        let loaded: Recipe
        do { loaded = try RecipeLoader.loadValid(path: recipe).0 } catch let rejected as RecipeRejected {
            throw CommandFailure("gpt-plan export: \(recipe) does not pass gpt-plan check:\n"
                                 + rejected.problems.map { "  \($0)" }.joined(separator: "\n"), exitCode: 1)
        } catch {
            throw CommandFailure("gpt-plan export: \(error)", exitCode: 2)
        }
        let cwd = FileManager.default.currentDirectoryPath
        let directory = URL(fileURLWithPath: output, relativeTo: URL(fileURLWithPath: cwd, isDirectory: true)).standardized.path
        let recipeDirectory = URL(fileURLWithPath: recipe, relativeTo: URL(fileURLWithPath: cwd, isDirectory: true))
            .standardized.deletingLastPathComponent().path
        if llmcModel != nil, engine != .llmc {
            throw CommandFailure.usage("gpt-plan export: --llmc-model is for --to llmc")
        }
        let model = llmcModel.map { URL(fileURLWithPath: $0, relativeTo: URL(fileURLWithPath: cwd, isDirectory: true)).standardized.path }
        let settings = ExportSettings(directory: directory, recipePath: recipe, gpusPerNode: gpusPerNode, includeData: !noData,
                                      llmcModel: model)
        let result: ExportResult
        do {
            result = try EngineExporter.export(loaded, recipeDirectory: recipeDirectory, to: engine, settings: settings)
        } catch let refusal as ExportRefusal {
            throw CommandFailure("gpt-plan export: \(recipe): \(engine.displayName) cannot run this recipe as written: \(refusal)", exitCode: 1)
        } catch {
            throw CommandFailure("gpt-plan export: \(error)", exitCode: 1)
        }
        print("\(recipe) → \(engine.displayName) in \(directory)")
        if let summary = result.dataSummary { print("  data: \(summary)") }
        for file in result.files { print("  wrote \(file)") }
        print("  launch: \(result.configuration.launch)")
        print("  \(result.configuration.differences.count) differences from gpt-train, each with its effect on the run: \(directory)/README.md")
        if let missing = result.missingData { Terminal.note("gpt-plan export: warning: \(missing)") }
    }
}
