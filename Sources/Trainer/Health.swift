import Collectives
import Compute
import GPT
import Kernels
import Runtime

/// The signals that warn of trouble before the loss shows it, measured every `logging.health_interval` steps:
/// the gradient norm of every parameter tensor (before clipping, summed over all micro-batches and ranks), the
/// update-to-weight ratio ‖Δw‖/‖w‖ of every tensor, the largest |logit| and the largest |activation| entering each
/// block. The last two come from an eval-mode forward pass of the model before the update over the step's last
/// micro-batch (rank 0's, in a data-parallel run). Buffers are allocated once; measuring allocates nothing (but
/// oneDNN's few allocations inside each of its executions, with native bf16 products).
public final class HealthSignals {
    /// The parameter tensors, in the order of `gradientNorms` and `updateRatios`.
    public let tensors: [TensorView]
    /// The step measured (counted from 1); 0 before the first measurement.
    public internal(set) var step = 0
    public internal(set) var gradientNorms: [Double]
    /// ‖update‖/‖weight‖ per tensor (infinite for a tensor whose weights are all zero, such as a fresh bias).
    public internal(set) var updateRatios: [Double]
    public internal(set) var maxAbsLogit = 0.0
    /// Largest |x| of the residual stream entering each block.
    public internal(set) var blockInputMaxAbs: [Double]
    /// The weights before the update.
    let before: FloatStorage

    init(layout: ParameterLayout) {
        tensors = layout.tensors
        gradientNorms = Array(repeating: 0, count: layout.tensors.count)
        updateRatios = Array(repeating: 0, count: layout.tensors.count)
        blockInputMaxAbs = Array(repeating: 0, count: layout.shape.nLayer)
        before = FloatStorage(count: layout.count)
    }

    static func maxAbs(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var m: Float = 0
        for i in 0..<count { m = max(m, abs(x[i])) }
        return Double(m)
    }

    /// Before the optimizer step: per-tensor gradient norms, the weights, and a probe forward pass over the
    /// micro-batch in `tokens` (it overwrites the activations, which the backward pass no longer needs).
    /// - Parameters: `gradientShard`, `group`: under ZeRO-1 on several ranks each rank holds summed gradients for
    ///   its shard only; the per-tensor squares are then summed over the shards of every rank (a collective: every
    ///   rank calls this at the same steps).
    func measureBeforeUpdate(_ model: GPT, tokens: UnsafePointer<Int32>, batch: Int, time: Int, step: Int,
                             gradientShard: Range<Int>? = nil, group: ProcessGroup? = nil) throws {
        self.step = step
        for (i, t) in tensors.enumerated() {
            var range = t.offset..<(t.offset + t.count)
            if let gradientShard { range = range.clamped(to: gradientShard) }
            gradientNorms[i] = range.isEmpty ? 0
                : Reductions.sumOfSquares(model.pool, model.gradients.base + range.lowerBound, count: range.count)
        }
        if let group, gradientShard != nil {
            try gradientNorms.withUnsafeMutableBufferPointer { try group.allReduce($0) }
        }
        for i in gradientNorms.indices { gradientNorms[i] = gradientNorms[i].squareRoot() }
        before.base.update(from: model.parameters.base, count: model.layout.count)
        _ = try model.forward(tokens: tokens, targets: nil, batch: batch, time: time)
        maxAbsLogit = Self.maxAbs(model.logits, count: batch * time * model.layout.shape.vocabSize)
        for l in 0..<blockInputMaxAbs.count {
            blockInputMaxAbs[l] = Self.maxAbs(model.blockInput(l), count: batch * time * model.layout.shape.dModel)
        }
    }

    /// After the optimizer step: ‖w_after − w_before‖ / ‖w_before‖ per tensor.
    func measureAfterUpdate(_ model: GPT) {
        let now = model.parameters.base, then = before.base
        for (i, t) in tensors.enumerated() {
            var delta = 0.0, weight = 0.0
            for j in t.offset..<(t.offset + t.count) {
                let d = Double(now[j]) - Double(then[j])
                delta += d * d
                weight += Double(then[j]) * Double(then[j])
            }
            updateRatios[i] = weight > 0 ? (delta / weight).squareRoot() : (delta > 0 ? .infinity : 0)
        }
    }
}
