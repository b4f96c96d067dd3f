import ArgumentParser
import CLISupport
import Compute
import Foundation
import Metrics
import GPT
import Durable
import Planner
import Recipe
import Runtime
import Trainer

/// `gpt-train sweep`: trains a sweep's runs one after another, skipping those that have finished and resuming those
/// that stopped part-way.
struct TrainSweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Train the runs of a sweep (gpt-plan sweep) that have not finished, one after another; resumable.")

    @Argument(help: "The sweep directory (with manifest.json).") var sweep: String
    /// Threads for each run.
    @OptionGroup var threadOption: ThreadOption
    var threads: Int { threadOption.count }
    @Flag(name: .customLong("no-mfu"), help: "Do not measure the sgemm or bf16 ceiling (MFU is then left out).") var noMFU = false

    mutating func run() throws {
        let manifest: SweepManifest
        do { manifest = try InputFile.sweepManifest(sweep) } catch {
            throw CommandFailure.usage("gpt-train sweep: \(error)")
        }
        let pool = noMFU ? nil : ThreadPool(threads: threads)
        if !noMFU { BLAS.pinToOneThread() }
        var trained = 0, skipped = 0, evaluated = 0, failed: [String] = []
        /// `checkpoint.dir`, relative to the run directory unless absolute (as the trainer reads it).
        func checkpointDirectory(_ recipe: Recipe, _ runDirectory: String) -> String {
            RunDirectory(path: runDirectory, recipe: recipe, recipeText: "", recipePath: nil).checkpointDirectory
        }
        // After a run finishes: its final checkpoint on the whole validation split (`FinalEvaluation`), which
        // gpt-plan fit prefers to the last validation of the metrics; finished runs without one get it too.
        func evaluate(_ run: SweepManifest.Run, _ runDirectory: String, _ recipe: Recipe) {
            guard FinalEvaluation.read(runDirectory: runDirectory, step: run.steps) == nil else { return }
            let path = (checkpointDirectory(recipe, runDirectory) as NSString)
                .appendingPathComponent(RunDirectory.checkpointName(step: run.steps))
            do {
                let loaded = try LoadedCheckpoint(path: path, threads: threads)
                let (loss, windows, time) = try loaded.meanLoss(on: try loaded.trainingData().val, split: "val")
                let result = FinalEvaluation(step: run.steps, split: "val", windows: windows, seqLen: time, loss: loss)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                try AtomicFile.write(encoder.encode(result) + Data("\n".utf8),
                                     to: (runDirectory as NSString).appendingPathComponent(FinalEvaluation.fileName))
            } catch {
                // The run itself has finished: the sweep goes on, and says at the end what could not be evaluated
                // (gpt-plan fit then uses that run's last validation in metrics.jsonl, and says so).
                failed.append("\(run.name): the final checkpoint \(path) cannot be evaluated on the validation split: \(error)")
                Terminal.note("gpt-train sweep: " + failed.last!)
                return
            }
            evaluated += 1
        }
        for (index, run) in manifest.runs.enumerated() {
            let recipePath = (sweep as NSString).appendingPathComponent(run.recipe)
            let runDirectory = (sweep as NSString).appendingPathComponent(run.run)
            let metrics = (runDirectory as NSString).appendingPathComponent("metrics.jsonl")
            let text: String?
            do { text = try InputFile.metricsText(metrics) } catch {
                throw CommandFailure("gpt-train sweep: \(error.message)", exitCode: 1)
            }
            // A run without a readable final validation loss is trained (resumed from its checkpoints, if any).
            let finished = text.flatMap { (try? MetricsFile(path: metrics, text: $0))?.validationLoss(atStep: run.steps) } != nil
            let recipe: Recipe
            do { recipe = try RecipeLoader.loadValid(path: recipePath).0 } catch {
                throw CommandFailure("gpt-train sweep: \(recipePath) cannot be trained:\n\(error)", exitCode: 1)
            }
            if finished {
                evaluate(run, runDirectory, recipe)
                skipped += 1
                continue
            }
            if let refusal = recipe.cpuTrainerRefusal {
                throw CommandFailure("gpt-train sweep: \(recipePath) cannot be trained: \(refusal)", exitCode: 1)
            }
            var options = TrainingOptions(runDirectory: runDirectory, threads: threads)
            if recipe.training.precision == .bf16 {
                // Where bf16 products are fastest (gpt-train's rule): native unless measured slower than the sgemm.
                let native = MachineProfile.nativeBF16Pays(pool: pool ?? ThreadPool(threads: threads), measure: pool != nil)
                options.bf16Products = native ? .native : .emulated
            }
            // The ceiling of the run's products: the bf16 matmul's when they run natively in bf16, else the sgemm's.
            options.ceilingFlops = pool.map {
                MachineProfile.ceiling(pool: $0, nativeBF16Products: options.bf16Products == .native).flopsPerSecond
            }
            // Resume a run that stopped part-way (it has checkpoints); start the others afresh.
            let checkpoints = checkpointDirectory(recipe, runDirectory)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpoints)) ?? []
            options.resume = names.contains { $0.hasPrefix("ckpt-") && $0.hasSuffix(".h5") }
            // An evaluation left from an earlier training of this run directory is not this run's.
            try? FileManager.default.removeItem(atPath: (runDirectory as NSString).appendingPathComponent(FinalEvaluation.fileName))
            Terminal.note("gpt-train sweep: run \(index + 1)/\(manifest.runs.count) \(run.name) (N = \(si(run.params, 3)), "
                          + "D = \(si(run.tokens, 3)), \(run.steps) steps)\(options.resume ? ", resuming" : "")")
            let display = ProgressDisplay()
            do {
                try CPUTrainingCheck.check(recipe, products: options.bf16Products, ranksHere: 1)
                let trainer = try Trainer(recipePath: recipePath, options: options) { display.show($0) }
                try trainer.run()
            } catch {
                Terminal.endProgress()
                throw CommandFailure("gpt-train sweep: \(run.name): \(error). Fix the cause and run gpt-train sweep \(sweep) "
                                     + "again: finished runs are kept", exitCode: 1)
            }
            evaluate(run, runDirectory, recipe)
            trained += 1
        }
        guard failed.isEmpty else {
            throw CommandFailure("gpt-train sweep: \(trained) trained, \(skipped) already finished, \(evaluated) evaluated; "
                                 + "\(failed.count) final checkpoint\(failed.count == 1 ? "" : "s") could not be evaluated:\n  "
                                 + failed.joined(separator: "\n  ") + "\nFix the cause and run gpt-train sweep \(sweep) again, or delete such a "
                                 + "run's metrics.jsonl to train it afresh (finished runs are kept; gpt-plan fit uses their "
                                 + "metrics' last validation meanwhile)", exitCode: 1)
        }
        Terminal.note("gpt-train sweep: \(trained) trained, \(skipped) already finished, \(evaluated) final checkpoint"
                      + "\(evaluated == 1 ? "" : "s") evaluated on the whole validation split; next: gpt-plan fit \(sweep)")
    }
}
