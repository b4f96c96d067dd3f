import Collectives
import Compute
import Corpus
import Durable
import Foundation
import GPT
import GPTShape
import Recipe
import Runtime

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

/// Executes a recipe as nanoGPT's train.py does, top to bottom: build everything (`init`), then `run`, one loop
/// in the order learning rate → evaluate/checkpoint → accumulate → clip → step → log. The step's work is
/// `TrainingStep`'s, what a spike does `SpikePolicy`'s, the files `CheckpointStore`'s and `MetricsSink`'s; the
/// caller hears `TrainingEvent`s and may stop the run in answer to one.
public final class Trainer {
    public let recipe: Recipe
    public let options: TrainingOptions
    let steps: TrainingStep
    public let schedule: LearningRateSchedule
    let spikes: SpikePolicy
    let store: CheckpointStore
    public internal(set) var state: TrainingState
    let events: (TrainingEvent) -> TrainingResponse

    /// Reads and checks the recipe (refusing it, with every problem, before anything is allocated), loads the
    /// data and builds the model and optimizer. `handler` hears every event and answers it (`.stop` ends the run
    /// after the current step, checkpointed).
    public convenience init(recipePath: String, options: TrainingOptions, group: ProcessGroup = .single(),
                            handler: TrainingEventHandler) throws {
        let (recipe, warnings) = try RecipeLoader.loadValid(path: recipePath)
        let text = try String(contentsOfFile: recipePath, encoding: .utf8)
        let directory = URL(fileURLWithPath: recipePath).deletingLastPathComponent().path
        try self.init(recipe: recipe, recipeText: text, recipeDirectory: directory, options: options,
                      recipePath: recipePath, group: group, handler: handler)
        for warning in warnings { _ = handler.answer(.note(warning.description)) }
    }

    /// The same, for a caller that only listens.
    public convenience init(recipePath: String, options: TrainingOptions, group: ProcessGroup = .single(),
                            events: @escaping (TrainingEvent) -> Void = { _ in }) throws {
        try self.init(recipePath: recipePath, options: options, group: group, handler: TrainingEventHandler { event in
            events(event)
            return .proceed
        })
    }

    /// Builds the run of a recipe that has passed its checks (`RecipeLoader.loadValid`; `gpt-train` also checks
    /// that this machine can run it, `CPUTrainingCheck`).
    public init(recipe: Recipe, recipeText: String, recipeDirectory: String, options: TrainingOptions,
                recipePath: String? = nil, group: ProcessGroup = .single(),
                handler: TrainingEventHandler) throws {
        let events = handler.answer
        self.recipe = recipe
        self.options = options
        self.events = events
        let directory = RunDirectory(path: options.runDirectory, recipe: recipe, recipeText: recipeText, recipePath: recipePath)
        store = CheckpointStore(directory: directory, recipe: recipe, force: options.force) { _ = events(.note($0)) }
        let data = try TrainingData.load(recipe, relativeTo: recipeDirectory)
        BLAS.pinToOneThread()
        let pool = ThreadPool(threads: max(1, options.threads))
        let model = try GPT(shape: recipe.shape, maxBatch: recipe.training.microBatch, maxTime: recipe.training.seqLen,
                            pool: pool, precision: recipe.training.precision, bf16Products: options.bf16Products,
                            recompute: recipe.training.recompute)
        model.initialize(seed: UInt64(recipe.training.seed))
        if let initFrom = options.initFrom { try InitialWeights.load(initFrom, into: model, recipe: recipe, tokenizer: data.tokenizer) }
        let parallel = try DataParallel(group: group, parameterCount: model.layout.count,
                                        microBatchesPerStep: recipe.training.gradAccum * recipe.training.dataParallel,
                                        devices: recipe.training.dataParallel, zeroStage: recipe.training.zeroStage)
        let optimizer = AdamW(parameterCount: model.layout.count, beta1: Float(recipe.optimizer.beta1),
                              beta2: Float(recipe.optimizer.beta2), eps: Float(recipe.optimizer.eps),
                              weightDecay: Float(recipe.optimizer.weightDecay), gradClip: Float(recipe.optimizer.gradClip),
                              shard: parallel.optimizerShard)
        steps = TrainingStep(model: model, optimizer: optimizer, parallel: parallel, data: data, shape: StepShape(recipe))
        schedule = LearningRateSchedule(recipe)
        state = TrainingState(sampler: BatchSampler(seed: UInt64(recipe.training.seed)))
        spikes = SpikePolicy(recipe.stability ?? .nonFiniteOnly, parameterCount: model.layout.count,
                             momentCount: optimizer.shard.count, state: state)
    }

    /// The same, for a caller that only listens.
    public convenience init(recipe: Recipe, recipeText: String, recipeDirectory: String, options: TrainingOptions,
                            recipePath: String? = nil, group: ProcessGroup = .single(),
                            events: @escaping (TrainingEvent) -> Void = { _ in }) throws {
        try self.init(recipe: recipe, recipeText: recipeText, recipeDirectory: recipeDirectory, options: options,
                      recipePath: recipePath, group: group, handler: TrainingEventHandler { event in
            events(event)
            return .proceed
        })
    }

    public var model: GPT { steps.model }
    public var optimizer: AdamW { steps.optimizer }
    public var data: TrainingData { steps.data }
    public var parallel: DataParallel { steps.parallel }
    public var pool: ThreadPool { steps.model.pool }
    public var health: HealthSignals? { steps.health }
    public var directory: RunDirectory { store.directory }
    /// `[stability]`, or what a recipe without it does (a non-finite loss or gradient norm stops the run).
    public var stability: Recipe.Stability { spikes.rules }
    /// Micro-batches per optimizer step over all ranks (see `StepShape`).
    public var microSteps: Int { steps.shape.microSteps }
    /// Whether this process writes the run directory (metrics, checkpoints, the recipe copy): rank 0.
    public var writesFiles: Bool { parallel.group.rank == 0 }
    public var tokensPerStep: Int { steps.shape.tokensPerStep }
    /// 6N + 12·n_layer·d_model·T, for MFU.
    public var flopsPerToken: Double { recipe.shape.flopsPerTokenWithAttention(context: recipe.training.seqLen) }

    // MARK: The loop

    /// Trains from the current state to the recipe's last step (or `stopAfter`, or until the caller answers an
    /// event with `.stop`), evaluating, checkpointing and logging as the recipe says.
    @discardableResult
    public func run() throws -> RunSummary {
        let started = DispatchTime.now().uptimeNanoseconds
        let sink = try begin()
        // On any error the TensorBoard events written so far reach the disk too.
        defer { try? sink?.close() }
        let firstStep = state.step
        var progress = RunProgress(stop: min(recipe.training.steps, options.stopAfter ?? recipe.training.steps))
        var finished: Int?   // the step just done, whose evaluation and checkpoint are due
        while true {
            let lr = schedule.rate(at: state.step) * spikes.learningRateFactor(at: state.step, state)
            if let step = finished { try evaluateAndCheckpoint(after: step, &progress, sink) }
            guard state.step < progress.stop, !progress.stopRequested else { break }
            let t0 = DispatchTime.now().uptimeNanoseconds, communication = parallel.group.communicationSeconds
            let outcome = try trainStep(lr: lr, lastFinite: progress.lastFinite)   // accumulate, clip, step
            progress.clock.add(nanoseconds: DispatchTime.now().uptimeNanoseconds - t0, tokens: tokensPerStep)
            finished = try log(outcome, &progress, sink, communicationSince: communication)
        }
        try sink?.close()
        return try finish(&progress, started: started, firstStep: firstStep)
    }

    /// One optimizer step at the schedule's learning rate: `microSteps` forward/backward passes accumulating
    /// gradients, then AdamW. The loss and the gradient norm are checked for a spike before the weights are
    /// touched; a spike is skipped or rolled back as `[stability]` says, and one that ends the run is thrown.
    /// Allocates nothing unless there is a spike.
    @discardableResult
    public func trainStep() throws -> StepOutcome {
        let outcome = try trainStep(lr: schedule.rate(at: state.step) * spikes.learningRateFactor(at: state.step, state),
                                    lastFinite: nil)
        if case .stopped(_, let error) = outcome { throw error }
        return outcome
    }

    /// Accumulate → clip (the global norm AdamW clips to) → spike check → step.
    func trainStep(lr: Double, lastFinite: StepMetrics?) throws -> StepOutcome {
        let index = state.step
        let loss = try steps.accumulate(stepIndex: index, sampler: &state.sampler)
        func spike(_ reason: SpikeReason, norm: Double) -> StepOutcome {
            spikes.handle(reason, stepIndex: index, loss: loss, norm: norm, state: &state, step: steps,
                          lastFinite: lastFinite, resumedFrom: store.resumedFrom)
        }
        guard loss.isFinite else { return spike(.nonFiniteLoss, norm: .nan) }
        let norm = try steps.reduceGradients()
        if let reason = spikes.check(loss: loss, norm: norm) { return spike(reason, norm: norm) }
        try steps.update(stepIndex: index, lr: lr, norm: norm)
        spikes.accept(loss: loss, norm: norm)
        state.step += 1
        state.tokensSeen += tokensPerStep
        state.lastTrainLoss = loss
        if state.step % stability.snapshotInterval == 0 { spikes.takeSnapshot(model, optimizer, state) }
        return .trained(loss: loss, lr: lr, gradNorm: norm)
    }

    /// Mean loss over `eval.iters` (or `iterations`) micro-batches of validation windows (`TrainingStep.evaluate`).
    public func evaluate(iterations: Int? = nil) throws -> Double {
        try steps.evaluate(iterations: iterations ?? recipe.eval.iters)
    }

    /// Draws `n` micro-batches without training on them: what a rollback does with the batches around a spike
    /// (and a way to pass over data known to be bad).
    public func passOver(microBatches n: Int) {
        precondition(n >= 0)
        for _ in 0..<n { state.sampler.skip(in: data.train, batch: steps.shape.batch, time: steps.shape.time) }
        state.tokensSeen += n * steps.shape.batch * steps.shape.time
    }

    // MARK: The loop's parts

    /// What the loop keeps between steps.
    struct RunProgress {
        /// The step this process stops at.
        let stop: Int
        var clock = StepClock()
        var lastFinite: StepMetrics?
        /// Peak resident memory when the last training step ended (before the last checkpoint's scratch).
        var trainingPeak = 0
        var stopRequested = false
    }

    /// Before the first step: the run directory, the checkpoints (resumed from, or none there), metrics.jsonl,
    /// the started event and the first snapshot.
    private func begin() throws -> MetricsSink? {
        if writesFiles { try directory.create() }
        try prepareCheckpoints()
        var sink: MetricsSink?
        if writesFiles {
            try directory.copyRecipe()
            sink = try MetricsSink(runDirectory: directory.path, resumingAt: store.resumedFrom != nil ? state.step : nil)
        }
        let total = recipe.training.steps, stop = min(total, options.stopAfter ?? total)
        if stop <= state.step {
            try? sink?.close()
            throw RunDirectoryError(message: state.step >= total
                ? "the run is complete: it is at step \(state.step) of \(total)"
                : "--steps \(stop): the run is already at step \(state.step); give a later step (the recipe ends at \(total))")
        }
        _ = events(.started(RunInfo(
            parameters: model.layout.count, tokensPerStep: tokensPerStep, startStep: state.step, totalSteps: total,
            stopStep: stop, threads: pool.threadCount, ranks: parallel.group.size, blasCore: BLAS.coreName,
            flopsPerToken: flopsPerToken, ceilingFlops: options.ceilingFlops, data: data.summary,
            runDirectory: directory.path, resumedFrom: store.resumedFrom, bf16Products: model.bf16Products)))
        spikes.takeSnapshot(model, optimizer, state)
        return sink
    }

    /// Writes what a step came to: a spike line (and a note) for a spike, the step's metrics line when the
    /// recipe's interval says, its health line. Returns the step whose evaluation and checkpoint are now due (nil
    /// after a rollback, which trains the steps since the snapshot again); throws the error of a spike that ends
    /// the run, once its line is written.
    private func log(_ outcome: StepOutcome, _ progress: inout RunProgress, _ sink: MetricsSink?,
                     communicationSince before: Double) throws -> Int? {
        switch outcome {
        case .stopped(let spike, let error):
            try? sink?.spikeLine(spike)
            throw error
        case .recovered(let spike):
            try sink?.spikeLine(spike)
            _ = events(.note(spikes.note(for: spike, state)))
            if spike.action == .rollback { return nil }
        case .trained:
            break
        }
        // What training needs, before the last checkpoint's scratch (ZeRO-1 gathers whole moments on rank 0).
        if state.step == progress.stop { progress.trainingPeak = PeakMemory.bytes }
        // Which steps are logged depends only on the recipe, so an interrupted run logs what a straight one does.
        let step = state.step, total = recipe.training.steps
        let logged = step % recipe.logging.interval == 0 || step == total || step == 1
        let tps = progress.clock.windowTokensPerSecond(restart: logged)
        // A skipped step's loss was not trained on: its spike line stands for it.
        guard case .trained(let loss, let lr, let norm) = outcome else { return step }
        let metrics = StepMetrics(
            step: step, trainLoss: loss, lr: lr, gradNorm: norm, tokensPerSecond: tps,
            mfu: options.ceilingFlops.map { flopsPerToken * tps / $0 },
            eta: Double(progress.stop - step) * Double(tokensPerStep) / max(tps, 1e-9), logged: logged,
            communicationSeconds: parallel.isDistributed ? parallel.group.communicationSeconds - before : nil)
        if logged { try sink?.trainingLine(metrics) }
        if let health, health.step == step { try sink?.healthLine(health) }
        progress.lastFinite = metrics
        if events(.step(metrics)) == .stop {
            progress.stopRequested = true
            if progress.trainingPeak == 0 { progress.trainingPeak = PeakMemory.bytes }
        }
        return step
    }

    /// Evaluates and checkpoints after `step` when the recipe's intervals say (and at the end).
    private func evaluateAndCheckpoint(after step: Int, _ progress: inout RunProgress, _ sink: MetricsSink?) throws {
        if step % recipe.eval.interval == 0 || step == recipe.training.steps {
            let loss = try evaluate()
            state.lastValLoss = loss
            state.bestValLoss = min(state.bestValLoss ?? .infinity, loss)
            try sink?.validationLine(step: step, loss: loss)
            _ = events(.validation(step: step, loss: loss))
        }
        if step % recipe.checkpoint.interval == 0 || step == progress.stop || progress.stopRequested {
            try saveCheckpoint()
            try sink?.flush()
            spikes.takeSnapshot(model, optimizer, state)
        }
    }

    private func finish(_ progress: inout RunProgress, started: UInt64, firstStep: Int) throws -> RunSummary {
        let trainingSeconds = progress.clock.totalSeconds
        let tokensPerSecond = trainingSeconds > 0 ? Double((state.step - firstStep) * tokensPerStep) / trainingSeconds : 0
        let peak = parallel.isDistributed ? Int(try parallel.group.maximum(Double(progress.trainingPeak))) : progress.trainingPeak
        let summary = RunSummary(
            ranks: parallel.group.size, steps: state.step, finalTrainLoss: state.lastTrainLoss ?? .nan,
            finalValLoss: state.lastValLoss, bestValLoss: state.bestValLoss,
            seconds: Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9, trainingSeconds: trainingSeconds,
            tokensPerSecond: tokensPerSecond, mfu: options.ceilingFlops.map { flopsPerToken * tokensPerSecond / $0 },
            peakMemoryBytes: peak, runDirectory: directory.path)
        _ = events(.finished(summary))
        return summary
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
