import Collectives
import Compute
import GPT
import Kernels
import Runtime

/// Data parallelism over the ranks of an `mpirun` job, as the recipe's `training.devices` asks: every rank holds
/// the whole model, computes the gradients of its own micro-batches of each step, and the ranks sum gradients
/// before the update.
///
/// - Each step's `grad_accum × devices` micro-batches are the ones a single process would draw, in the same order;
///   rank r computes the contiguous block r·grad_accum ..< (r+1)·grad_accum of them. Every rank draws every
///   window's offset (so the sampler's state is the same on all ranks, and a checkpoint's state resumes on any
///   number of ranks) but reads only its own windows.
/// - Gradients are summed in a fixed rank order (`FloatReducer`), so every rank gets the same bits and a K-rank run
///   repeats exactly. Each rank scales its losses by 1/(tokens of the whole step), as the single process does, so
///   the sum is the gradient of the step's mean loss.
/// - ZeRO stage 1 (Rajbhandari et al. 2020): gradients are reduce-scattered, each rank keeps AdamW moments for its
///   shard of the parameters only and updates that shard, and the updated parameters are all-gathered. Optimizer
///   memory per rank falls from 8 bytes a parameter to 8/K.
public final class DataParallel {
    public let group: ProcessGroup
    public let zeroStage: Int
    public let parameterCount: Int
    /// The micro-batches of each step that this rank computes.
    public let ownMicroBatches: Range<Int>
    let reducer: FloatReducer

    /// - Parameters: `microBatchesPerStep`: grad_accum × devices; `devices`: the recipe's data-parallel width,
    ///   which must equal the group's size unless the group is a single process (which then computes every
    ///   device's micro-batches itself).
    public init(group: ProcessGroup, parameterCount: Int, microBatchesPerStep: Int, devices: Int, zeroStage: Int) throws {
        self.group = group
        self.zeroStage = zeroStage
        self.parameterCount = parameterCount
        if group.size == 1 {
            ownMicroBatches = 0..<microBatchesPerStep
        } else {
            guard group.size == devices else { throw DataParallelError.rankCountMismatch(ranks: group.size, devices: devices) }
            let accum = microBatchesPerStep / devices
            ownMicroBatches = group.rank * accum ..< (group.rank + 1) * accum
        }
        reducer = try FloatReducer(group: group, count: parameterCount)
    }

    public var isDistributed: Bool { group.isDistributed }

    /// The parameters whose AdamW moments this rank keeps: its shard under ZeRO-1, else all.
    public var optimizerShard: Range<Int> { zeroStage >= 1 ? reducer.myShard : 0..<parameterCount }

    /// The step's summed training loss, from each rank's sum over its own micro-batches (fixed order).
    public func sumLosses(_ local: Float) throws -> Float {
        Float(try group.orderedSum(Double(local)))
    }

    /// Sums the gradients over ranks: all of them (plain data parallel), or only this rank's shard (ZeRO-1; the
    /// rest of the buffer is then stale and must not be read).
    public func reduceGradients(_ gradients: UnsafeMutablePointer<Float>) throws {
        guard group.isDistributed else { return }
        if zeroStage >= 1 { try reducer.reduceScatter(gradients) } else { try reducer.allReduce(gradients) }
    }

    /// The global gradient norm after `reduceGradients`: computed locally when every rank has every gradient,
    /// else from each rank's shard, the squares summed over ranks in rank order.
    public func gradientNorm(_ pool: ThreadPool, gradients: UnsafePointer<Float>) throws -> Double {
        guard group.isDistributed, zeroStage >= 1 else {
            return Reductions.sumOfSquares(pool, gradients, count: parameterCount).squareRoot()
        }
        let shard = reducer.myShard
        let local = Reductions.sumOfSquares(pool, gradients + shard.lowerBound, count: shard.count)
        return try group.orderedSum(local).squareRoot()
    }

    /// After the update: under ZeRO-1 each rank has updated only its shard; this gives every rank all of them.
    public func shareUpdatedParameters(_ parameters: UnsafeMutablePointer<Float>) throws {
        guard group.isDistributed, zeroStage >= 1 else { return }
        try reducer.allGather(parameters)
    }

    /// Collects a sharded optimizer moment into `whole` on rank 0 (for a checkpoint).
    public func gatherOptimizerState(_ shard: UnsafePointer<Float>, into whole: UnsafeMutablePointer<Float>?) throws {
        try reducer.gather(shard: shard, into: whole, root: 0)
    }

    /// Gives each rank its shard of a moment that rank 0 holds whole (on resume).
    public func scatterOptimizerState(_ whole: UnsafePointer<Float>?, into shard: UnsafeMutablePointer<Float>) throws {
        try reducer.scatter(whole, intoShard: shard, root: 0)
    }

    /// Rank 0's parameters on every rank.
    public func broadcastParameters(_ parameters: UnsafeMutablePointer<Float>) throws {
        try reducer.broadcast(parameters, root: 0)
    }
}

/// Why a data-parallel run cannot start or go on.
public enum DataParallelError: Error, Equatable, CustomStringConvertible {
    case rankCountMismatch(ranks: Int, devices: Int)

    public var description: String {
        switch self {
        case .rankCountMismatch(let ranks, let devices):
            return "training.devices: the recipe asks for \(devices) data-parallel devices but mpirun started \(ranks) ranks. "
                + "Fix: run `mpirun -np \(devices) …`, or set training.devices = \(ranks) (and adjust grad_accum to keep the batch)"
        }
    }
}
