import ArgumentParser
import CLISupport
import Durable
import Foundation
import Recipe
import RunReports

extension TrainingCurves.XQuantity: ExpressibleByArgument {}

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Draw training loss, validation loss, learning rate and gradient norm of runs to an SVG file.",
        discussion: """
        One line per run (its directory's name in the legend), loss spikes as dashed vertical marks. Losses use a \
        log axis when they span a factor of 4, the gradient norm when it spans a factor of 10. For a PNG: \
        rsvg-convert curves.svg -o curves.png (Debian: librsvg2-bin). See docs/monitoring.md.
        """)

    @Argument(help: "Run directories (each with a metrics.jsonl).") var runs: [String]
    @Option(name: .shortAndLong, help: "The SVG file to write.") var output: String = "curves.svg"
    @Option(name: .customLong("x"), help: "Horizontal axis: steps or tokens (tokens a step from the run's recipe.toml).")
    var x: TrainingCurves.XQuantity = .steps

    mutating func run() throws {
        guard !runs.isEmpty else { throw CommandFailure.usage("gpt-train plot: name at least one run directory") }
        let quantity = x
        guard output.lowercased().hasSuffix(".svg") else {
            throw CommandFailure.usage("gpt-train plot: -o \(output): the plot is SVG, name it *.svg "
                                       + "(for a PNG: rsvg-convert curves.svg -o curves.png)")
        }
        var loaded: [RunMetrics] = []
        for directory in runs {
            var run: RunMetrics
            do { run = try RunMetrics.load(runDirectory: directory) } catch {
                throw CommandFailure("gpt-train plot: \(error)", exitCode: 1)
            }
            if !run.skippedLines.isEmpty {
                Terminal.note("note: \(directory)/metrics.jsonl: skipped \(run.skippedLines.count) line(s) that are not "
                              + "metrics (first: line \(run.skippedLines[0]))")
            }
            if quantity == .tokens {
                let recipe = (directory as NSString).appendingPathComponent("recipe.toml")
                if let (r, _) = try? RecipeLoader.loadValid(path: recipe) {
                    run.tokensPerStep = r.training.batchSize * r.training.seqLen
                }
            }
            loaded.append(run)
        }
        let svg: String
        do { svg = try TrainingCurves.figure(runs: loaded, x: quantity).svg() } catch {
            throw CommandFailure("gpt-train plot: \(error)", exitCode: 1)
        }
        do { try AtomicFile.write(Data(svg.utf8), to: output) } catch {
            throw CommandFailure("gpt-train plot: \(error)", exitCode: 1)
        }
        let summary = loaded.map { run in
            let last = run.training.last.map { "to step \($0.step)" } ?? "no training lines"
            let spikes = run.events.filter { $0.kind == "spike" }.count
            return "\(run.name) (\(last)\(spikes > 0 ? ", \(spikes) spike\(spikes == 1 ? "" : "s")" : ""))"
        }
        Terminal.note("wrote \(output): \(summary.joined(separator: ", "))")
    }
}

struct ExportTensorBoard: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tensorboard",
        abstract: "Write a run's metrics.jsonl as TensorBoard event files under RUN_DIR/tb/ (for runs made before "
            + "runs wrote them).",
        discussion: "Then: tensorboard --logdir runs. See docs/monitoring.md for the tags.")

    @Argument(help: "Run directories.") var runs: [String]
    @Flag(help: "Replace event files already in RUN_DIR/tb/ (the new file is complete before the old ones go).")
    var replace = false

    mutating func run() throws {
        guard !runs.isEmpty else { throw CommandFailure.usage("gpt-train tensorboard: name at least one run directory") }
        for directory in runs {
            do {
                let result = try TensorBoardExport.convert(runDirectory: directory, replace: replace)
                var text = "wrote \(result.path): \(result.events) events"
                if !result.replaced.isEmpty { text += ", replacing \(result.replaced.count) older file(s)" }
                if !result.skippedLines.isEmpty { text += "; skipped \(result.skippedLines.count) line(s) that are not metrics" }
                Terminal.note(text)
            } catch {
                throw CommandFailure("gpt-train tensorboard: \(error)", exitCode: 1)
            }
        }
    }
}
