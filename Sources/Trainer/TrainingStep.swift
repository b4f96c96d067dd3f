import Collectives
import Compute
import Corpus
import GPT
import Kernels
import Recipe
import Runtime

/// The sizes one step works with, from the recipe.
struct StepShape: Sendable {
    /// Sequences a micro-batch, and tokens a sequence.
    var batch: Int
    var time: Int
    /// Micro-batches per optimizer step over all ranks: grad_accum × data-parallel devices (a single process
    /// computes the other devices' shares itself; each rank of an `mpirun` job computes its own).
    var microSteps: Int
    var dropout: Float
    var seed: UInt64
    /// Steps between health measurements (nil: never).
    var healthInterval: Int?

    init(_ recipe: Recipe) {
        batch = recipe.training.microBatch
        time = recipe.training.seqLen
        microSteps = recipe.training.gradAccum * recipe.training.dataParallel
        dropout = Float(recipe.training.dropout)
        seed = UInt64(recipe.training.seed)
        healthInterval = recipe.logging.effectiveHealthInterval
    }

    var tokensPerStep: Int { batch * time * microSteps }
}

/// The token windows of the micro-batch being trained on or evaluated: one allocation each, for the whole run.
final class MicroBatchBuffer {
    let tokens: UnsafeMutablePointer<Int32>
    let targets: UnsafeMutablePointer<Int32>

    init(count: Int) {
        tokens = .allocate(capacity: count)
        targets = .allocate(capacity: count)
        tokens.initialize(repeating: 0, count: count)
        targets.initialize(repeating: 0, count: count)
    }

    deinit {
        tokens.deallocate()
        targets.deallocate()
    }
}

/// The work of one optimizer step on the model, in the order of nanoGPT's loop: `accumulate` gradients over the
/// step's micro-batches, `reduceGradients` over the ranks and measure their global norm (what AdamW clips to),
/// `update` the weights. Whether the step is a spike is decided between the last two (`SpikePolicy`). Allocates
/// nothing (with native bf16 products, oneDNN's own few allocations inside each execution aside:
/// `BF16Matmul.allocationsPerExecution`).
final class TrainingStep {
    let model: GPT
    let optimizer: AdamW
    /// The data-parallel ranks this process trains with (one process: itself alone).
    let parallel: DataParallel
    let data: TrainingData
    /// The last health measurement (nil when `logging.health_interval` is 0).
    let health: HealthSignals?
    let shape: StepShape
    let buffer: MicroBatchBuffer

    init(model: GPT, optimizer: AdamW, parallel: DataParallel, data: TrainingData, shape: StepShape) {
        self.model = model
        self.optimizer = optimizer
        self.parallel = parallel
        self.data = data
        self.shape = shape
        health = shape.healthInterval != nil ? HealthSignals(layout: model.layout) : nil
        buffer = MicroBatchBuffer(count: shape.batch * shape.time)
    }

    /// Forward and backward passes over the step's micro-batches, gradients accumulating, each scaled so that
    /// their sum is the gradient of the step's mean loss. Every rank draws every window, so the sampler stays the
    /// single process's; it reads and computes only its own. Returns the step's mean loss over all ranks.
    func accumulate(stepIndex: Int, sampler: inout BatchSampler) throws -> Float {
        let (batch, time) = (shape.batch, shape.time)
        let scale = 1 / Float(shape.tokensPerStep)
        var lossSum: Float = 0
        let own = parallel.ownMicroBatches
        for micro in 0..<shape.microSteps {
            guard own.contains(micro) else {
                sampler.skip(in: data.train, batch: batch, time: time)
                continue
            }
            sampler.fill(from: data.train, batch: batch, time: time, tokens: buffer.tokens, targets: buffer.targets)
            let dropout = DropoutContext(probability: shape.dropout, seed: shape.seed, step: stepIndex, micro: micro)
            lossSum += try model.forward(tokens: buffer.tokens, targets: buffer.targets, batch: batch, time: time,
                                         gradientScale: scale, dropout: dropout, weightsUnchanged: micro > own.lowerBound)
            model.backward(accumulate: micro > own.lowerBound)
        }
        // Every rank sees the same summed loss (and, below, the same global norm), so every rank decides alike.
        return (parallel.isDistributed ? try parallel.sumLosses(lossSum) : lossSum) / Float(shape.microSteps)
    }

    /// Sums the gradients over the ranks; returns their global L2 norm before clipping.
    func reduceGradients() throws -> Double {
        try parallel.reduceGradients(model.gradients.base)
        return try parallel.gradientNorm(model.pool, gradients: model.gradients.base)
    }

    /// AdamW with learning rate `lr`, the gradients clipped to `optimizer.gradClip` from their norm `norm`; the
    /// health signals are measured around it when `logging.health_interval` says.
    func update(stepIndex: Int, lr: Double, norm: Double) throws {
        let measuring = shape.healthInterval.map { (stepIndex + 1) % $0 == 0 } ?? false
        if measuring {
            let sharded = parallel.isDistributed && parallel.zeroStage >= 1
            try health?.measureBeforeUpdate(model, tokens: buffer.tokens, batch: shape.batch, time: shape.time,
                                            step: stepIndex + 1, gradientShard: sharded ? parallel.optimizerShard : nil,
                                            group: sharded ? parallel.group : nil)
        }
        optimizer.step(model, lr: Float(lr), norm: norm)
        try parallel.shareUpdatedParameters(model.parameters.base)
        if measuring { health?.measureAfterUpdate(model) }
    }

    /// Mean loss over `iterations` micro-batches of validation windows, in eval mode (no dropout). The windows
    /// come from a generator seeded afresh each time, so every evaluation of a run sees the same windows. Ranks
    /// take turns at the micro-batches (the same windows as one process), then add their sums in rank order.
    func evaluate(iterations n: Int) throws -> Double {
        var sampler = BatchSampler(rng: Xoshiro256(seed: shape.seed, stream: 3), windowsDrawn: 0)
        let (batch, time) = (shape.batch, shape.time)
        var total = 0.0
        let group = parallel.group
        for i in 0..<n {
            guard i % group.size == group.rank else {
                sampler.skip(in: data.val, batch: batch, time: time)
                continue
            }
            sampler.fill(from: data.val, batch: batch, time: time, tokens: buffer.tokens, targets: buffer.targets)
            total += Double(try model.forward(tokens: buffer.tokens, targets: buffer.targets, batch: batch, time: time,
                                              weightsUnchanged: i >= group.size))
        }
        if group.isDistributed { total = try group.orderedSum(total) }
        return total / Double(n)
    }

    /// The kernels the products run on, as checkpoints record them (`blas_core`): OpenBLAS's kernel family, and
    /// with native bf16 products oneDNN's implementation too. A resume on other kernels is not bit-identical (other
    /// summation orders), and says so.
    var productKernels: String {
        model.bf16Products == .native ? "OpenBLAS \(BLAS.coreName) and oneDNN \(BF16Matmul.implementation ?? "?")"
            : "OpenBLAS \(BLAS.coreName)"
    }
}
