import Formatting
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
    public internal(set) var state: TrainingState
    let events: (TrainingEvent) -> Void
    /// The micro-batch being trained on or evaluated.
    let tokens: UnsafeMutablePointer<Int32>
    let targets: UnsafeMutablePointer<Int32>
    /// The checkpoint this run resumed from.
    var resumedFrom: String?

    /// Reads and checks the recipe (refusing it, with every problem, before anything is allocated), loads the
    /// data and builds the model and optimizer.
    public convenience init(recipePath: String, options: TrainingOptions,
                            events: @escaping (TrainingEvent) -> Void = { _ in }) throws {
        let (recipe, warnings) = try RecipeLoader.loadValid(path: recipePath)
        let text = try String(contentsOfFile: recipePath, encoding: .utf8)
        let directory = URL(fileURLWithPath: recipePath).deletingLastPathComponent().path
        try self.init(recipe: recipe, recipeText: text, recipeDirectory: directory, options: options,
                      recipePath: recipePath, events: events)
        for warning in warnings { events(.note(warning.description)) }
    }

    public init(recipe: Recipe, recipeText: String, recipeDirectory: String, options: TrainingOptions,
                recipePath: String? = nil, events: @escaping (TrainingEvent) -> Void = { _ in }) throws {
        self.recipe = recipe
        self.options = options
        self.events = events
        directory = RunDirectory(path: options.runDirectory, recipe: recipe, recipeText: recipeText, recipePath: recipePath)
        data = try TrainingData.load(recipe, relativeTo: recipeDirectory)
        let needed = recipe.shape.trainingMemoryBytes(microBatch: recipe.training.microBatch, context: recipe.training.seqLen)
        guard needed < 0.9 * Double(CPU.memoryBytes) else {
            throw DataError(key: "training.micro_batch", "the run needs \(bytes(needed)) for weights, gradients, AdamW "
                            + "moments and one micro-batch's activations; this machine has \(bytes(Double(CPU.memoryBytes)))",
                            fix: "lower training.micro_batch (and raise grad_accum to keep the batch), or train a smaller model")
        }
        BLAS.pinToOneThread()
        pool = ThreadPool(threads: max(1, options.threads))
        model = try GPT(shape: recipe.shape, maxBatch: recipe.training.microBatch, maxTime: recipe.training.seqLen, pool: pool,
                        precision: recipe.training.precision)
        if recipe.training.precision == .bf16 && !CPU.hasBF16 {
            events(.note("training.precision = \"bf16\": this CPU (\(CPU.modelName)) has no bf16 instructions (no avx512_bf16 "
                         + "or amx_bf16), so bf16 products are emulated exactly on the fp32 sgemm and run slower than fp32"))
        }
        model.initialize(seed: UInt64(recipe.training.seed))
        optimizer = AdamW(parameterCount: model.layout.count, beta1: Float(recipe.optimizer.beta1),
                          beta2: Float(recipe.optimizer.beta2), eps: Float(recipe.optimizer.eps),
                          weightDecay: Float(recipe.optimizer.weightDecay), gradClip: Float(recipe.optimizer.gradClip))
        schedule = LearningRateSchedule(recipe)
        state = TrainingState(sampler: BatchSampler(seed: UInt64(recipe.training.seed)))
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
    /// Micro-batches per optimizer step: grad_accum × devices (other devices' shares are accumulated here).
    public var microSteps: Int { recipe.training.gradAccum * recipe.training.devices }
    public var tokensPerStep: Int { batch * time * microSteps }
    /// 6N + 12·n_layer·d_model·T, for MFU.
    public var flopsPerToken: Double { recipe.shape.flopsPerTokenWithAttention(context: recipe.training.seqLen) }

    // MARK: The loop

    /// Trains from the current state to the recipe's last step (or `stopAfter`), evaluating, checkpointing and
    /// logging as the recipe says.
    @discardableResult
    public func run() throws -> RunSummary {
        let started = DispatchTime.now().uptimeNanoseconds
        try directory.create()
        try prepareCheckpoints()
        try directory.copyRecipe()
        let metrics = try directory.openMetrics(resumingAt: resumedFrom != nil ? state.step : nil)
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
            stopStep: stop, threads: pool.threadCount, blasCore: BLAS.coreName, flopsPerToken: flopsPerToken,
            ceilingFlops: options.ceilingFlops, data: data.summary, runDirectory: directory.path,
            resumedFrom: resumedFrom)))

        var clock = StepClock()
        var lastFinite: StepMetrics?
        while state.step < stop {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let (loss, lr, norm) = try trainStep(lastFinite: lastFinite)
            clock.add(nanoseconds: DispatchTime.now().uptimeNanoseconds - t0, tokens: tokensPerStep)

            // Which steps are logged depends only on the recipe, so an interrupted run logs what a straight one does.
            let step = state.step
            let logged = step % recipe.logging.interval == 0 || step == total || step == 1
            let tps = clock.windowTokensPerSecond(restart: logged)
            let metricsNow = StepMetrics(
                step: step, trainLoss: loss, lr: lr, gradNorm: norm, tokensPerSecond: tps,
                mfu: options.ceilingFlops.map { flopsPerToken * tps / $0 },
                eta: Double(stop - step) * Double(tokensPerStep) / max(tps, 1e-9), logged: logged)
            if logged { try metrics.trainingLine(metricsNow) }
            lastFinite = metricsNow
            events(.step(metricsNow))

            if step % recipe.eval.interval == 0 || step == total {
                let loss = try evaluate()
                state.lastValLoss = loss
                state.bestValLoss = min(state.bestValLoss ?? .infinity, loss)
                try metrics.validationLine(step: step, loss: loss)
                events(.validation(step: step, loss: loss))
            }
            if step % recipe.checkpoint.interval == 0 || step == stop {
                try saveCheckpoint()
            }
        }

        let trainingSeconds = clock.totalSeconds
        let tokensPerSecond = trainingSeconds > 0 ? Double((state.step - firstStep) * tokensPerStep) / trainingSeconds : 0
        let summary = RunSummary(
            steps: state.step, finalTrainLoss: state.lastTrainLoss ?? .nan, finalValLoss: state.lastValLoss,
            bestValLoss: state.bestValLoss, seconds: Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9,
            trainingSeconds: trainingSeconds, tokensPerSecond: tokensPerSecond,
            mfu: options.ceilingFlops.map { flopsPerToken * tokensPerSecond / $0 },
            peakMemoryBytes: PeakMemory.bytes, runDirectory: directory.path)
        events(.finished(summary))
        return summary
    }

    /// One optimizer step: `microSteps` forward/backward passes accumulating gradients, then AdamW. The loss and
    /// the gradient norm are checked before the weights are touched. Allocates nothing.
    @discardableResult
    public func trainStep(lastFinite: StepMetrics? = nil) throws -> (loss: Float, lr: Double, norm: Double) {
        let stepIndex = state.step
        let lr = schedule.rate(at: stepIndex)
        let scale = 1 / Float(batch * time * microSteps)
        var lossSum: Float = 0
        for micro in 0..<microSteps {
            state.sampler.fill(from: data.train, batch: batch, time: time, tokens: tokens, targets: targets)
            let dropout = DropoutContext(probability: Float(recipe.training.dropout), seed: UInt64(recipe.training.seed),
                                         step: stepIndex, micro: micro)
            lossSum += try model.forward(tokens: tokens, targets: targets, batch: batch, time: time,
                                     gradientScale: scale, dropout: dropout)
            model.backward(accumulate: micro > 0)
        }
        let loss = lossSum / Float(microSteps)
        guard loss.isFinite else {
            throw NonFiniteLoss(step: stepIndex + 1, what: "the training loss (\(loss))", lastFinite: lastFinite)
        }
        let norm = optimizer.gradientNorm(model)
        guard norm.isFinite else {
            throw NonFiniteLoss(step: stepIndex + 1, what: "the gradient norm (\(norm))", lastFinite: lastFinite)
        }
        optimizer.step(model, lr: Float(lr), norm: norm)
        state.step += 1
        state.tokensSeen += tokensPerStep
        state.lastTrainLoss = loss
        return (loss, lr, norm)
    }

    /// Mean loss over `eval.iters` micro-batches of validation windows, in eval mode (no dropout). The windows
    /// come from a generator seeded afresh each time, so every evaluation of a run sees the same windows.
    public func evaluate(iterations: Int? = nil) throws -> Double {
        var sampler = BatchSampler(rng: Xoshiro256(seed: UInt64(recipe.training.seed), stream: 3), windowsDrawn: 0)
        let n = iterations ?? recipe.eval.iters
        var total = 0.0
        for _ in 0..<n {
            sampler.fill(from: data.val, batch: batch, time: time, tokens: tokens, targets: targets)
            total += Double(try model.forward(tokens: tokens, targets: targets, batch: batch, time: time))
        }
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
