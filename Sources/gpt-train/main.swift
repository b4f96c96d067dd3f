import ArgumentParser
import CLISupport
import Collectives
import Compute
import Foundation
import GPT
import GPTShape
import Recipe
import Runtime
import Trainer

struct GPTTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpt-train",
        abstract: "Train a GPT on the CPU as a recipe says; evaluate and inspect checkpoints.",
        subcommands: [Train.self, Evaluate.self, Inspect.self, Export.self, Import.self, Plot.self, ExportTensorBoard.self, Ablate.self,
                      TrainSweep.self],
        defaultSubcommand: Train.self)
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Execute a recipe (the default command): gpt-train RECIPE.toml [--out DIR] [--steps N] [--threads N] [--resume]",
        discussion: """
        Under Open MPI (`mpirun -np K gpt-train RECIPE.toml ...`, K = the recipe's training.devices) the run is data \
        parallel over K processes: each computes its share of every batch, gradients are summed in a fixed order, \
        training.zero_stage = 1 shards the AdamW moments; rank 0 prints, writes metrics and checkpoints \
        (docs/distributed.md).
        """)

    @Argument(help: "The recipe (see docs/recipe-reference.md).") var recipe: String
    @Option(help: "Run directory for metrics.jsonl, checkpoints and a copy of the recipe (default: runs/<recipe name>).")
    var out: String?
    @Option(parsing: .unconditional,
            help: "Stop when the run reaches this step (1 to 2^40); the schedule still spans the recipe's steps, so --resume finishes the run exactly.",
            transform: NumberArgument.whole(1...(1 << 40)))
    var steps: Int?
    /// Results are bit-identical for the same recipe and thread count; the default is the cores this process may
    /// use, under mpirun the cores it is bound to, or the machine's shared by its ranks.
    @OptionGroup var threads: ThreadOption
    @Flag(help: "Continue from the newest valid checkpoint in the run directory.") var resume = false
    @Flag(help: "With --resume: continue even if the checkpoint's recipe differs from this one.") var force = false
    @Option(name: .customLong("init-from"), help: "Start from this checkpoint's weights (e.g. one gpt-train import wrote) instead of a random initialisation; its model must be the recipe's, its tokenizer the data's.")
    var initFrom: String?
    @Flag(name: .customLong("no-mfu"), help: "Do not measure the sgemm or bf16 ceiling (MFU is then left out; a bf16 recipe's products follow the cached ceilings, else run natively).") var noMFU = false

    @Flag(name: .customLong("check-only"), help: "Check that this machine can start the recipe (everything gpt-plan check asks of gpt-train: the recipe, the model, the layout, the memory) and exit 0 without reading data or training; bf16 products follow the cached ceilings, as with --no-mfu.")
    var checkOnly = false

    mutating func run() throws {
        // Under mpirun, join the job first, so that any failure below ends every rank, not just this one.
        let group: ProcessGroup
        do { group = try ProcessGroup.fromLaunch() } catch { throw CommandFailure("gpt-train: \(error)", exitCode: 1) }
        if group.isDistributed {
            Main.failureHandler = { message, status in
                // When every rank fails alike, rank 0's message is the one shown before MPI_Abort ends the others.
                if group.rank != 0 { usleep(500_000) }
                Terminal.error(group.rank == 0 ? message : "[rank \(group.rank) of \(group.size)] \(message)")
                group.abort(code: status)
            }
        }
        let threads = self.threads.value ?? Self.defaultThreads(group)
        guard FileManager.default.fileExists(atPath: recipe) else {
            throw CommandFailure.usage("gpt-train: \(recipe): no such file")
        }
        let loaded: Recipe
        do { loaded = try RecipeLoader.loadValid(path: recipe).0 } catch let rejected as RecipeRejected {
            throw CommandFailure("gpt-train: \(recipe) cannot be trained:\n\(rejected)", exitCode: 1)
        } catch { throw CommandFailure("gpt-train: \(error)", exitCode: 2) }
        if let refusal = loaded.cpuTrainerRefusal {
            throw CommandFailure("gpt-train: \(recipe) cannot be trained: \(refusal)", exitCode: 1)
        }
        let name = ((recipe as NSString).lastPathComponent as NSString).deletingPathExtension
        var options = TrainingOptions(runDirectory: out ?? "runs/\(name)", threads: threads)
        options.stopAfter = steps
        options.resume = resume
        options.force = force
        options.initFrom = initFrom
        var ceilingKind = MachineProfile.Ceiling.Kind.sgemm
        if loaded.training.precision == .bf16 || !(noMFU || checkOnly) {
            BLAS.pinToOneThread()
            let pool = ThreadPool(threads: threads)
            if loaded.training.precision == .bf16 {
                // bf16 products run where they are fastest: natively where oneDNN's bf16 matmul beats the sgemm
                // here, else emulated on the sgemm (AVX512-BF16 without AMX on Intel: 0.53-0.59× the sgemm).
                // Without MFU nothing is measured; the cache decides, else native.
                options.bf16Products = MachineProfile.nativeBF16Pays(pool: pool, measure: !(noMFU || checkOnly)) ? .native : .emulated
            }
            if !(noMFU || checkOnly) {
                // The job's ceiling: this rank's, times the ranks (MFU compares the whole job's tokens a second to
                // it); the bf16 matmul's when the recipe's products run natively in bf16 here, else the sgemm's.
                let ceiling = MachineProfile.ceiling(pool: pool, nativeBF16Products: options.bf16Products == .native)
                options.ceilingFlops = ceiling.flopsPerSecond * Double(group.size)
                ceilingKind = ceiling.kind
            }
        }
        let display = ProgressDisplay()
        display.ceilingKind = ceilingKind
        let trainer: Trainer
        do {
            try CPUTrainingCheck.check(loaded, products: options.bf16Products,
                                       ranksHere: group.isDistributed ? group.launch.localSize : 1)
            if checkOnly {
                print("gpt-train: \(recipe): can start here")
                group.finalize()
                return
            }
            trainer = try Trainer(recipePath: recipe, options: options, group: group) { event in
                if group.rank == 0 { display.show(event) }
            }
        } catch let rejected as RecipeRejected {
            throw CommandFailure("gpt-train: \(recipe) cannot be trained:\n\(rejected)", exitCode: 1)
        } catch let error as RecipeFileError {
            throw CommandFailure("gpt-train: \(error)", exitCode: 2)
        } catch let error as DataError {
            throw CommandFailure("gpt-train: \(recipe): \(error)", exitCode: 1)
        } catch let error as DataParallelError {
            throw CommandFailure("gpt-train: \(recipe): \(error)", exitCode: 1)
        } catch {
            throw CommandFailure("gpt-train: \(recipe): \(error)", exitCode: 1)
        }
        do {
            try trainer.run()
        } catch {
            Terminal.endProgress()
            throw CommandFailure("gpt-train: \(error)", exitCode: 1)
        }
        group.finalize()
    }

    /// The cores this process may use; under mpirun without binding, the machine's cores shared by its ranks.
    static func defaultThreads(_ group: ProcessGroup) -> Int {
        let available = CPU.count
        guard group.isDistributed else { return available }
        let online = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let bound = available < online
        return bound ? available : max(1, available / group.launch.localSize)
    }
}

/// Shows training events: a live line on a terminal, plain lines otherwise, and a summary at the end.
final class ProgressDisplay {
    var total = 0
    var ceiling: Double?
    /// Which ceiling `ceiling` is (the started event carries only its rate).
    var ceilingKind = MachineProfile.Ceiling.Kind.sgemm

    func show(_ event: TrainingEvent) {
        switch event {
        case .started(let info):
            if let note = CPUTrainingCheck.productsNote(info.bf16Products) { Terminal.note("note: \(note)") }
            total = info.stopStep
            ceiling = info.ceilingFlops
            var lines = [
                "gpt-train: \(si(Double(info.parameters), 4)) parameters, \(info.tokensPerStep) tokens a step, "
                    + "steps \(info.startStep + 1)...\(info.stopStep) of \(info.totalSteps)",
                "  data: \(info.data)",
                "  compute: \(info.ranks > 1 ? "\(info.ranks) data-parallel ranks × " : "")\(info.threads) thread\(info.threads == 1 ? "" : "s"), \(Main.blasDescription), "
                    + "\(sig(info.flopsPerToken / 1e6, 4)) MFLOP a token"
                    + (info.ceilingFlops.map { ", MFU against \(flopRate($0)) (\(ceilingKind.rawValue) ceiling)" } ?? ""),
                "  run directory: \(info.runDirectory)",
            ]
            if let from = info.resumedFrom { lines.append("  resumed from \(from)") }
            Terminal.note(lines.joined(separator: "\n"))
        case .note(let text):
            Terminal.endProgress()
            Terminal.note("note: \(text)")
        case .step(let m):
            let line = "step \(m.step)/\(total) | loss \(String(format: "%.4f", m.trainLoss)) | lr \(String(format: "%.2e", m.lr))"
                + " | \(si(m.tokensPerSecond, 3)) tok/s" + (m.mfu.map { " | MFU \(String(format: "%.0f", $0 * 100))%" } ?? "")
                + " | ETA \(Self.clock(m.eta))"
            if Terminal.isInteractive {
                Terminal.progress(line)
            } else if m.logged {
                Terminal.note(line)
            }
        case .validation(let step, let loss):
            Terminal.endProgress()
            Terminal.note("step \(step): validation loss \(String(format: "%.4f", loss))")
        case .checkpointSaved(let path, _):
            if !Terminal.isInteractive { Terminal.note("saved \(path)") }
        case .finished(let s):
            Terminal.endProgress()
            var text = "done: \(s.steps) steps in \(Self.clock(s.seconds)) (training \(Self.clock(s.trainingSeconds)))"
            text += ", \(si(s.tokensPerSecond, 3)) tokens/s"
            if let mfu = s.mfu { text += ", MFU \(String(format: "%.1f", mfu * 100))%" }
            text += ", peak memory \(bytes(Double(s.peakMemoryBytes)))\(s.ranks > 1 ? " a rank (the largest)" : "")"
            text += "\n  final train loss \(String(format: "%.4f", s.finalTrainLoss))"
            if let v = s.finalValLoss { text += ", validation loss \(String(format: "%.4f", v))" }
            if let b = s.bestValLoss { text += " (best \(String(format: "%.4f", b)))" }
            text += "\n  metrics: \(s.runDirectory)/metrics.jsonl"
            Terminal.note(text)
        }
    }

    static func clock(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m"
    }
}

struct Evaluate: ParsableCommand {
    /// The split a checkpoint is evaluated on.
    enum Split: String, CaseIterable, ExpressibleByArgument {
        case val, train
    }

    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Mean cross-entropy of a checkpoint on consecutive, non-overlapping windows of a split.",
        discussion: """
        Window k has inputs t[kT..<kT+T] and targets t[kT+1..<kT+T+1] of the split's tokens t, T the recipe's \
        training.seq_len; the loss is the mean over all positions of all windows, in eval mode \
        (docs/checkpoint-format.md).
        """)

    @Argument(help: "A checkpoint (.h5).") var checkpoint: String
    @Option(help: "Which split: val or train.") var split: Split = .val
    @Option(parsing: .unconditional,
            help: "Micro-batches of windows (each the recipe's micro_batch windows; 1 to 2^40); default: the whole split, up to a million tokens.",
            transform: NumberArgument.whole(1...(1 << 40)))
    var batches: Int?
    @Option(parsing: .unconditional, help: "Exact number of windows, instead of --batches (1 to 2^40).",
            transform: NumberArgument.whole(1...(1 << 40)))
    var windows: Int?
    @Option(help: "The training data, if it moved since the checkpoint was written.") var data: String?
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var threads: ThreadOption

    mutating func run() throws {
        let loaded = try openCheckpoint(checkpoint, threads: threads.count)
        let trainingData: TrainingData
        do { trainingData = try loaded.trainingData(at: data) } catch { throw CommandFailure("gpt-train eval: \(error)", exitCode: 1) }
        let source = split == .val ? trainingData.val : trainingData.train
        let time = loaded.recipe.training.seqLen
        let wanted = windows ?? batches.map { $0 * loaded.recipe.training.microBatch }
            ?? WindowEvaluation.defaultWindows(tokens: source.count, time: time)
        guard wanted >= 1 else { throw CommandFailure.usage("gpt-train eval: ask for at least one window") }
        let (loss, count): (Double, Int)
        do { (loss, count, _) = try loaded.meanLoss(on: source, split: split.rawValue, windows: wanted) } catch let e as ActivationOverflow {
            throw CommandFailure("gpt-train eval: \(e)", exitCode: 1)
        }
        if json {
            let object: [String: Any] = ["checkpoint": checkpoint, "step": loaded.state.step, "split": split.rawValue,
                                         "windows": count, "seq_len": time, "tokens": count * time, "loss": loss]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("\(checkpoint) (step \(loaded.state.step)): \(split.rawValue) loss \(String(format: "%.6f", loss)) over "
                  + "\(count) windows of \(time) tokens" + (count < wanted ? " (all the split holds)" : ""))
        }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Step, tokens, losses, recipe summary and parameter table of a checkpoint.",
        discussion: """
        The whole file is verified first, as --resume would use it: every dataset's type, shape and checksum, \
        every weight and AdamW moment (finite, second moments not negative) and the training state's ranges; a \
        checkpoint that fails is refused with the dataset and the problem (exit status 1).
        """)

    @Argument(help: "A checkpoint (.h5).") var checkpoint: String

    mutating func run() throws {
        let loaded = try openCheckpoint(checkpoint, threads: 1, maxBatch: 1, maxTime: 1, verifyMoments: true)
        let unchecked: String?
        do { unchecked = try loaded.tokenizerMatchesData() } catch { throw CommandFailure("gpt-train inspect: \(error)", exitCode: 1) }
        let s = loaded.state, r = loaded.recipe
        func loss(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "none" }
        var out = "\(checkpoint)\n"
        out += "  step \(s.step) of \(r.training.steps), \(si(Double(s.tokensSeen), 4)) tokens seen\n"
        out += "  losses: last train \(loss(s.lastTrainLoss)), last validation \(loss(s.lastValLoss)), best validation \(loss(s.bestValLoss))\n"
        let m = r.model
        let family = m.family == .llama
            ? "llama (\(m.nKVHead) key/value heads, rope_theta \(m.ropeTheta), norm_eps \(m.normEps), \(m.tieEmbeddings ? "tied" : "untied") head) " : ""
        out += "  model: \(family)\(m.nLayer) layers × \(m.nHead) heads × d_model \(m.dModel), d_ff \(m.dFF), "
            + "context \(m.seqLen), vocabulary \(m.vocabSize), bias \(m.bias), dropout \(r.training.dropout)\n"
        out += "  training: batch \(r.training.batchSize) × \(r.training.seqLen) tokens, lr \(r.optimizer.lr) → \(r.optimizer.minLR) "
            + "(\(r.schedule.decay.rawValue), warmup \(r.schedule.warmupSteps)), seed \(r.training.seed)\n"
        out += "  data: \(s.dataPath) (\(loaded.tokenizer.kind.rawValue) tokenizer, \(loaded.tokenizer.vocabSize) tokens)\n"
        out += "  written with \(s.threads) threads, OpenBLAS \(s.blasCore), \(s.optimizerSteps) optimizer steps\n"
        out += "  verified: every weight and AdamW moment read back (types, shapes, checksums, finite values), the "
            + "state in range, " + (unchecked.map { "but \($0)" } ?? "and the tokenizer the same as its data's") + "\n\n"
        let width = loaded.model.layout.tensors.map(\.name.count).max() ?? 10
        out += "  " + "parameter".padding(toLength: width, withPad: " ", startingAt: 0) + "  shape           count\n"
        var total = 0
        for tensor in loaded.model.layout.tensors {
            let shape = tensor.shape.map(String.init).joined(separator: " × ")
            out += "  " + tensor.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                + shape.padding(toLength: 14, withPad: " ", startingAt: 0) + "  \(tensor.count)\n"
            total += tensor.count
        }
        out += "  " + "total".padding(toLength: width, withPad: " ", startingAt: 0) + "  "
            + "".padding(toLength: 14, withPad: " ", startingAt: 0) + "  \(total)\n"
        print(out, terminator: "")
    }
}

func openCheckpoint(_ path: String, threads: Int, maxBatch: Int? = nil, maxTime: Int? = nil,
                    verifyMoments: Bool = false) throws -> LoadedCheckpoint {
    guard FileManager.default.fileExists(atPath: path) else { throw CommandFailure.usage("gpt-train: \(path): no such file") }
    do {
        return try LoadedCheckpoint(path: path, threads: threads, maxBatch: maxBatch, maxTime: maxTime,
                                    verifyMoments: verifyMoments)
    } catch {
        throw CommandFailure("gpt-train: \(error)", exitCode: 1)
    }
}

Main.relaunchWithFastestBLASCore()
Main.run(GPTTrain.self)
