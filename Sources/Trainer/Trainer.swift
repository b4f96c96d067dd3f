import Formatting
import Collectives
import Compute
import Corpus
import Durable
import Foundation
import GPT
import GPTShape
import Planner
import Recipe

/// How a run is executed, beyond what the recipe says.
public struct TrainingOptions: Sendable {
    /// Where metrics, checkpoints and the recipe copy go.
    public var runDirectory: String
    /// Threads for every parallel kernel (OpenBLAS itself is pinned to one). Results are bit-identical for the
    /// same recipe and thread count.
    public var threads: Int
    /// Stop when the run reaches this step (counted from the start of the run, not of this process; the schedule
    /// still spans the recipe's steps, so the run can be resumed and finished later exactly as if it had not stopped).
    public var stopAfter: Int?
    /// Matrix-product ceiling in FLOP/s, for MFU; nil leaves MFU out.
    public var ceilingFlops: Double?
    /// Continue from the newest valid checkpoint in the run directory.
    public var resume = false
    /// Resume even when the checkpoint's recipe differs from this one in what changes the run.
    public var force = false
    /// How a bf16 recipe's products run; nil: natively where this CPU has bf16 matmuls (`BF16Products.best`).
    /// `gpt-train` passes `.emulated` where the native ones are measured slower than the fp32 sgemm.
    public var bf16Products: BF16Products?
    /// A checkpoint whose weights replace the random initialisation (`gpt-train --init-from`, InitialWeights.swift).
    public var initFrom: String?

    public init(runDirectory: String, threads: Int) {
        self.runDirectory = runDirectory
        self.threads = threads
    }
}

/// Everything that changes as a run goes, besides the weights and optimizer moments.
public struct TrainingState: Sendable, Equatable {
    /// Optimizer updates done.
    public var step = 0
    public var tokensSeen = 0
    public var sampler: BatchSampler
    public var bestValLoss: Double?
    public var lastValLoss: Double?
    public var lastTrainLoss: Float?
    /// Steps whose update a spike discarded (`stability.action = "skip"`): AdamW has taken `step - skippedSteps`.
    public var skippedSteps = 0
    /// Spikes skipped or rolled back so far (at most `stability.max_recoveries`).
    public var recoveries = 0
    /// After a rollback, the learning rate is multiplied by `stability.lr_factor` through this step.
    public var lrFactorUntil = 0

    public init(sampler: BatchSampler) { self.sampler = sampler }
}

/// Executes a recipe: the model it describes, trained on its data with its optimizer, schedule, batch and
/// evaluation, as nanoGPT's train.py does, top to bottom: build everything (`init`), then `run`, a loop of
/// `trainStep` with logging, evaluation and checkpoints at the recipe's intervals. The files go to the
/// `RunDirectory`; saving and resuming are in Checkpointing.swift.
public final class Trainer {
    public let recipe: Recipe
    public let options: TrainingOptions
    public let directory: RunDirectory
    public let data: TrainingData
    public let pool: ThreadPool
    public let model: GPT
    public let optimizer: AdamW
    public let schedule: LearningRateSchedule
    /// The data-parallel ranks this process trains with (one process: itself alone).
    public let parallel: DataParallel
    public internal(set) var state: TrainingState
    /// `[stability]`, or what a recipe without it does (a non-finite loss or gradient norm stops the run).
    public let stability: Recipe.Stability
    /// The spike detector's window of accepted steps.
    var detector: SpikeDetector
    /// The state a rollback returns to (only with `stability.action = "rollback"`).
    let snapshot: StateSnapshot?
    /// The last health measurement (nil when `logging.health_interval` is 0).
    public let health: HealthSignals?
    let events: (TrainingEvent) -> Void
    /// The micro-batch being trained on or evaluated.
    let tokens: UnsafeMutablePointer<Int32>
    let targets: UnsafeMutablePointer<Int32>
    /// The checkpoint this run resumed from.
    var resumedFrom: String?
    /// Under ZeRO-1, rank 0 keeps the moments it read from a checkpoint until every rank has its shard of them.
    var loadedMoments: (m: FloatStorage, v: FloatStorage)?

    /// Reads and checks the recipe (refusing it, with every problem, before anything is allocated), loads the
    /// data and builds the model and optimizer.
    public convenience init(recipePath: String, options: TrainingOptions, group: ProcessGroup = .single(),
                            events: @escaping (TrainingEvent) -> Void = { _ in }) throws {
        let (recipe, warnings) = try RecipeLoader.loadValid(path: recipePath)
        let text = try String(contentsOfFile: recipePath, encoding: .utf8)
        let directory = URL(fileURLWithPath: recipePath).deletingLastPathComponent().path
        try self.init(recipe: recipe, recipeText: text, recipeDirectory: directory, options: options,
                      recipePath: recipePath, group: group, events: events)
        for warning in warnings { events(.note(warning.description)) }
    }

    public init(recipe: Recipe, recipeText: String, recipeDirectory: String, options: TrainingOptions,
                recipePath: String? = nil, group: ProcessGroup = .single(),
                events: @escaping (TrainingEvent) -> Void = { _ in }) throws {
        // gpt-train runs data parallelism (and ZeRO-1) only; the planner's other layouts are for GPU clusters.
        for (key, value) in [("tensor_parallel", recipe.training.tensorParallel), ("pipeline_parallel", recipe.training.pipelineParallel)]
        where value > 1 {
            throw DataError(key: "training.\(key)", "is \(value), but gpt-train trains data parallel only (one model replica a process)",
                            fix: "set training.\(key) = 1 (and training.devices to the data-parallel processes), or run this layout on a GPU framework")
        }
        if recipe.training.zeroStage > 1 {
            throw DataError(key: "training.zero_stage", "is \(recipe.training.zeroStage), but gpt-train implements ZeRO stages 0 and 1",
                            fix: "set training.zero_stage = 1 (optimizer state sharded over the data-parallel ranks) or 0")
        }
        if recipe.training.recompute != .none {
            throw DataError(key: "training.recompute", "is \"\(recipe.training.recompute.rawValue)\", but gpt-train keeps every activation",
                            fix: "set training.recompute = \"none\" (lower training.micro_batch if memory is short)")
        }
        self.recipe = recipe
        self.options = options
        self.events = events
        directory = RunDirectory(path: options.runDirectory, recipe: recipe, recipeText: recipeText, recipePath: recipePath)
        data = try TrainingData.load(recipe, relativeTo: recipeDirectory)
        // Every rank on this machine holds a replica (and, without ZeRO, all of AdamW's moments).
        let ranksHere = group.isDistributed ? group.launch.localSize : 1
        let products = recipe.training.precision == .bf16 ? options.bf16Products ?? .best : nil
        let needed = recipe.shape.trainingMemoryBytes(microBatch: recipe.training.microBatch, context: recipe.training.seqLen,
                                                      bf16Copies: products == .native, roundedWeights: products == .emulated)
            * Double(ranksHere)
        guard needed < 0.9 * Double(CPU.memoryBytes) else {
            throw DataError(key: "training.micro_batch", "the run needs \(bytes(needed)) for weights, gradients, AdamW "
                            + "moments and one micro-batch's activations\(ranksHere > 1 ? " on each of the \(ranksHere) ranks here" : ""); "
                            + "this machine has \(bytes(Double(CPU.memoryBytes)))",
                            fix: "lower training.micro_batch (and raise grad_accum to keep the batch), or train a smaller model")
        }
        BLAS.pinToOneThread()
        pool = ThreadPool(threads: max(1, options.threads))
        model = try GPT(shape: recipe.shape, maxBatch: recipe.training.microBatch, maxTime: recipe.training.seqLen, pool: pool,
                        precision: recipe.training.precision, bf16Products: options.bf16Products)
        switch model.bf16Products {
        case .emulated? where BF16Matmul.isAvailable:
            events(.note("training.precision = \"bf16\": this CPU's native bf16 products (oneDNN "
                         + "\(BF16Matmul.implementation ?? "?")) are measured slower than its fp32 sgemm (gpt-bench ceiling), "
                         + "so bf16 products are emulated exactly on the sgemm (the same bf16 operands, fp32 accumulation), "
                         + "a little slower than fp32; gpt-plan writes precision = \"fp32\" for this machine"))
        case .emulated?:
            events(.note("training.precision = \"bf16\": this CPU (\(CPU.modelName)) has no native bf16 products (no "
                         + "avx512_bf16 or amx_bf16, or oneDNN has no bf16 matmul for it), so bf16 products are emulated "
                         + "exactly on the fp32 sgemm and run slower than fp32"))
        case .native?:
            events(.note("training.precision = \"bf16\": products run on oneDNN's bf16 matmul "
                         + "(\(BF16Matmul.implementation ?? "?")), fp32 accumulation; master weights and moments stay fp32"))
        case nil: break
        }
        model.initialize(seed: UInt64(recipe.training.seed))
        if let initFrom = options.initFrom { try InitialWeights.load(initFrom, into: model, recipe: recipe, tokenizer: data.tokenizer) }
        parallel = try DataParallel(group: group, parameterCount: model.layout.count,
                                    microBatchesPerStep: recipe.training.gradAccum * recipe.training.dataParallel,
                                    devices: recipe.training.dataParallel, zeroStage: recipe.training.zeroStage)
        optimizer = AdamW(parameterCount: model.layout.count, beta1: Float(recipe.optimizer.beta1),
                          beta2: Float(recipe.optimizer.beta2), eps: Float(recipe.optimizer.eps),
                          weightDecay: Float(recipe.optimizer.weightDecay), gradClip: Float(recipe.optimizer.gradClip),
                          shard: parallel.optimizerShard)
        schedule = LearningRateSchedule(recipe)
        state = TrainingState(sampler: BatchSampler(seed: UInt64(recipe.training.seed)))
        stability = recipe.stability ?? .nonFiniteOnly
        detector = SpikeDetector(capacity: stability.window)
        health = recipe.logging.effectiveHealthInterval != nil ? HealthSignals(layout: model.layout) : nil
        snapshot = stability.action == .rollback
            ? StateSnapshot(parameterCount: model.layout.count, momentCount: optimizer.shard.count, state: state,
                            detector: detector)
            : nil
        let window = recipe.training.microBatch * recipe.training.seqLen
        tokens = .allocate(capacity: window)
        targets = .allocate(capacity: window)
        tokens.initialize(repeating: 0, count: window)
        targets.initialize(repeating: 0, count: window)
    }

    deinit {
        tokens.deallocate()
        targets.deallocate()
    }

    var batch: Int { recipe.training.microBatch }
    var time: Int { recipe.training.seqLen }
    /// Micro-batches per optimizer step over all ranks: grad_accum × data-parallel devices (a single process
    /// computes the other devices' shares itself; each rank of an `mpirun` job computes `parallel.ownMicroBatches`).
    public var microSteps: Int { recipe.training.gradAccum * recipe.training.dataParallel }
    /// Whether this process writes the run directory (metrics, checkpoints, the recipe copy): rank 0.
    public var writesFiles: Bool { parallel.group.rank == 0 }
    public var tokensPerStep: Int { batch * time * microSteps }
    /// 6N + 12·n_layer·d_model·T, for MFU.
    public var flopsPerToken: Double { recipe.shape.flopsPerTokenWithAttention(context: recipe.training.seqLen) }

    // MARK: The loop

    /// Trains from the current state to the recipe's last step (or `stopAfter`), evaluating, checkpointing and
    /// logging as the recipe says.
    @discardableResult
    public func run() throws -> RunSummary {
        let started = DispatchTime.now().uptimeNanoseconds
        if writesFiles { try directory.create() }
        try prepareCheckpoints()
        let metrics: MetricsLog?
        if writesFiles {
            try directory.copyRecipe()
            metrics = try directory.openMetrics(resumingAt: resumedFrom != nil ? state.step : nil)
        } else {
            metrics = nil
        }
        // On any error the TensorBoard events written so far reach the disk too.
        defer { try? metrics?.close() }
        let total = recipe.training.steps
        let stop = min(total, options.stopAfter ?? total)
        let firstStep = state.step
        if stop <= firstStep {
            throw RunDirectoryError(message: firstStep >= total
                ? "the run is complete: it is at step \(firstStep) of \(total)"
                : "--steps \(stop): the run is already at step \(firstStep); give a later step (the recipe ends at \(total))")
        }
        events(.started(RunInfo(
            parameters: model.layout.count, tokensPerStep: tokensPerStep, startStep: firstStep, totalSteps: total,
            stopStep: stop, threads: pool.threadCount, ranks: parallel.group.size, blasCore: BLAS.coreName, flopsPerToken: flopsPerToken,
            ceilingFlops: options.ceilingFlops, data: data.summary, runDirectory: directory.path,
            resumedFrom: resumedFrom)))

        var clock = StepClock()
        var lastFinite: StepMetrics?
        var trainingPeak = 0
        takeSnapshot()
        while state.step < stop {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let communicationBefore = parallel.group.communicationSeconds
            let (loss, lr, norm, spike): (Float, Double, Double, Spike?)
            do { (loss, lr, norm, spike) = try trainStep(lastFinite: lastFinite) } catch {
                // A spike that ends the run is logged too (a non-finite one without `[stability]` included).
                if let stop = error as? LossSpikeStop {
                    try? metrics?.spikeLine(stop.spike)
                } else if let nan = error as? NonFiniteLoss {
                    try? metrics?.spikeLine(nan.spike)
                }
                throw error
            }
            clock.add(nanoseconds: DispatchTime.now().uptimeNanoseconds - t0, tokens: tokensPerStep)
            if let spike {
                try metrics?.spikeLine(spike)
                events(.note(note(for: spike)))
                // A rollback trains the steps since the snapshot again: nothing to log, evaluate or save yet.
                if spike.action == .rollback { continue }
            }
            // What training needs, before the last checkpoint's scratch (ZeRO-1 gathers whole moments on rank 0).
            if state.step == stop { trainingPeak = PeakMemory.bytes }

            // Which steps are logged depends only on the recipe, so an interrupted run logs what a straight one does.
            let step = state.step
            let logged = step % recipe.logging.interval == 0 || step == total || step == 1
            let tps = clock.windowTokensPerSecond(restart: logged)
            let metricsNow = StepMetrics(
                step: step, trainLoss: loss, lr: lr, gradNorm: norm, tokensPerSecond: tps,
                mfu: options.ceilingFlops.map { flopsPerToken * tps / $0 },
                eta: Double(stop - step) * Double(tokensPerStep) / max(tps, 1e-9), logged: logged,
                communicationSeconds: parallel.isDistributed ? parallel.group.communicationSeconds - communicationBefore : nil)
            // A skipped step's loss was not trained on: its spike line stands for it.
            if spike == nil {
                if logged { try metrics?.trainingLine(metricsNow) }
                if let health, health.step == step { try metrics?.healthLine(health) }
                lastFinite = metricsNow
                events(.step(metricsNow))
            }

            if step % recipe.eval.interval == 0 || step == total {
                let loss = try evaluate()
                state.lastValLoss = loss
                state.bestValLoss = min(state.bestValLoss ?? .infinity, loss)
                try metrics?.validationLine(step: step, loss: loss)
                events(.validation(step: step, loss: loss))
            }
            if step % recipe.checkpoint.interval == 0 || step == stop {
                try saveCheckpoint()
                try metrics?.flush()
                takeSnapshot()
            }
        }
        try metrics?.close()

        let trainingSeconds = clock.totalSeconds
        let tokensPerSecond = trainingSeconds > 0 ? Double((state.step - firstStep) * tokensPerStep) / trainingSeconds : 0
        let summary = RunSummary(
            ranks: parallel.group.size, steps: state.step, finalTrainLoss: state.lastTrainLoss ?? .nan, finalValLoss: state.lastValLoss,
            bestValLoss: state.bestValLoss, seconds: Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9,
            trainingSeconds: trainingSeconds, tokensPerSecond: tokensPerSecond,
            mfu: options.ceilingFlops.map { flopsPerToken * tokensPerSecond / $0 },
            peakMemoryBytes: parallel.isDistributed ? Int(try parallel.group.maximum(Double(trainingPeak))) : trainingPeak,
            runDirectory: directory.path)
        events(.finished(summary))
        return summary
    }

    /// One optimizer step: `microSteps` forward/backward passes accumulating gradients, then AdamW. The loss and
    /// the gradient norm are checked for a spike before the weights are touched; a spike is stopped at, skipped or
    /// rolled back as `[stability]` says (and returned). Allocates nothing unless there is a spike (with native bf16
    /// products, oneDNN's own few allocations inside each execution aside: `BF16Matmul.allocationsPerExecution`).
    @discardableResult
    public func trainStep(lastFinite: StepMetrics? = nil) throws -> (loss: Float, lr: Double, norm: Double, spike: Spike?) {
        let stepIndex = state.step
        let lr = schedule.rate(at: stepIndex) * (stepIndex + 1 <= state.lrFactorUntil ? stability.lrFactor : 1)
        // A test's injected spike belongs to the batches an uninterrupted run draws at that step.
        let injected = stability.injectSpikeAt > 0
            && state.sampler.windowsDrawn == (stability.injectSpikeAt - 1) * batch * microSteps
        let factor: Float = injected ? 1000 : 1
        let scale = factor / Float(batch * time * microSteps)
        var lossSum: Float = 0
        let own = parallel.ownMicroBatches
        for micro in 0..<microSteps {
            // Every rank draws every window, so the sampler stays the single process's; it reads only its own.
            guard own.contains(micro) else {
                state.sampler.skip(in: data.train, batch: batch, time: time)
                continue
            }
            state.sampler.fill(from: data.train, batch: batch, time: time, tokens: tokens, targets: targets)
            let dropout = DropoutContext(probability: Float(recipe.training.dropout), seed: UInt64(recipe.training.seed),
                                         step: stepIndex, micro: micro)
            lossSum += factor * (try model.forward(tokens: tokens, targets: targets, batch: batch, time: time,
                                                   gradientScale: scale, dropout: dropout,
                                                   weightsUnchanged: micro > own.lowerBound))
            model.backward(accumulate: micro > own.lowerBound)
        }
        let loss = (parallel.isDistributed ? try parallel.sumLosses(lossSum) : lossSum) / Float(microSteps)
        // Every rank sees the same summed loss and global norm, so every rank takes the same decision.
        guard loss.isFinite else {
            return (loss, lr, .nan, try recover(from: .nonFiniteLoss, stepIndex: stepIndex, loss: loss, norm: .nan,
                                                lastFinite: lastFinite))
        }
        try parallel.reduceGradients(model.gradients.base)
        let norm = try parallel.gradientNorm(pool, gradients: model.gradients.base)
        let reason = norm.isFinite ? detector.check(loss: Double(loss), norm: norm, rules: stability) : .nonFiniteGradNorm
        if let reason {
            return (loss, lr, norm, try recover(from: reason, stepIndex: stepIndex, loss: loss, norm: norm,
                                                lastFinite: lastFinite))
        }
        let measuring = recipe.logging.effectiveHealthInterval.map { (stepIndex + 1) % $0 == 0 } ?? false
        if measuring {
            let sharded = parallel.isDistributed && parallel.zeroStage >= 1
            try health?.measureBeforeUpdate(model, tokens: tokens, batch: batch, time: time, step: stepIndex + 1,
                                            gradientShard: sharded ? parallel.optimizerShard : nil,
                                            group: sharded ? parallel.group : nil)
        }
        optimizer.step(model, lr: Float(lr), norm: norm)
        try parallel.shareUpdatedParameters(model.parameters.base)
        if measuring { health?.measureAfterUpdate(model) }
        detector.accept(loss: Double(loss), norm: norm)
        state.step += 1
        state.tokensSeen += tokensPerStep
        state.lastTrainLoss = loss
        if state.step % stability.snapshotInterval == 0 { takeSnapshot() }
        return (loss, lr, norm, nil)
    }

    /// Mean loss over `eval.iters` micro-batches of validation windows, in eval mode (no dropout). The windows
    /// come from a generator seeded afresh each time, so every evaluation of a run sees the same windows.
    public func evaluate(iterations: Int? = nil) throws -> Double {
        var sampler = BatchSampler(rng: Xoshiro256(seed: UInt64(recipe.training.seed), stream: 3), windowsDrawn: 0)
        let n = iterations ?? recipe.eval.iters
        var total = 0.0
        // Ranks take turns at the micro-batches (the same windows as one process), then add their sums in rank order.
        let group = parallel.group
        for i in 0..<n {
            guard i % group.size == group.rank else {
                sampler.skip(in: data.val, batch: batch, time: time)
                continue
            }
            sampler.fill(from: data.val, batch: batch, time: time, tokens: tokens, targets: targets)
            total += Double(try model.forward(tokens: tokens, targets: targets, batch: batch, time: time,
                                              weightsUnchanged: i >= group.size))
        }
        if group.isDistributed { total = try group.orderedSum(total) }
        return total / Double(n)
    }
}

/// Time spent in training steps: in total, and since the last logged line (so that logged speeds are stable).
struct StepClock {
    private var totalNanos: UInt64 = 0
    private var windowNanos: UInt64 = 0
    private var windowTokens = 0

    mutating func add(nanoseconds: UInt64, tokens: Int) {
        totalNanos += nanoseconds
        windowNanos += nanoseconds
        windowTokens += tokens
    }

    /// Tokens a second since the window began; `restart` begins a new window after this one.
    mutating func windowTokensPerSecond(restart: Bool) -> Double {
        let rate = Double(windowTokens) / (Double(windowNanos) * 1e-9)
        if restart {
            windowNanos = 0
            windowTokens = 0
        }
        return rate
    }

    var totalSeconds: Double { Double(totalNanos) * 1e-9 }
}

/// The process's peak resident memory (getrusage's ru_maxrss).
public enum PeakMemory {
    public static var bytes: Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }
}
