import Compute
import GPT
import Kernels

/// AdamW with decoupled weight decay on the model's matrices and embeddings only, and global-norm clipping.
/// The two moments live in one allocation each, laid out like the parameters — or like one shard of them, when
/// ZeRO stage 1 spreads the optimizer state over data-parallel ranks and each updates only its shard.
public final class AdamW {
    public var beta1: Float
    public var beta2: Float
    public var eps: Float
    public var weightDecay: Float
    /// Clip the global gradient norm to this; 0 turns clipping off.
    public var gradClip: Float
    /// The parameters whose moments this optimizer holds and updates (all of them unless the state is sharded).
    public let shard: Range<Int>
    /// First and second moments of `shard`'s parameters: `m.base[i]` belongs to parameter `shard.lowerBound + i`.
    public let m: FloatStorage
    public let v: FloatStorage
    /// Updates taken so far (the t of the bias corrections is `stepsTaken + 1` for the next one).
    public var stepsTaken = 0

    public init(parameterCount: Int, beta1: Float, beta2: Float, eps: Float, weightDecay: Float, gradClip: Float,
                shard: Range<Int>? = nil) {
        let shard = shard ?? 0..<parameterCount
        precondition(shard.lowerBound >= 0 && shard.upperBound <= parameterCount)
        self.shard = shard
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        self.gradClip = gradClip
        m = FloatStorage(count: shard.count)
        v = FloatStorage(count: shard.count)
    }

    /// The global L2 norm of all gradients.
    public func gradientNorm(_ model: GPT) -> Double {
        Reductions.sumOfSquares(model.pool, model.gradients.base, count: model.gradients.count).squareRoot()
    }

    /// The factor gradients are multiplied by before the update: clip / (norm + 1e-6) when the norm exceeds the
    /// clip, else 1 (torch.nn.utils.clip_grad_norm_).
    public func clipScale(norm: Double) -> Float {
        guard gradClip > 0 else { return 1 }
        let factor = Double(gradClip) / (norm + 1e-6)
        return factor < 1 ? Float(factor) : 1
    }

    /// One update with learning rate `lr`, given the gradient norm before clipping (`gradientNorm`).
    public func step(_ model: GPT, lr: Float, norm: Double) {
        let scale = clipScale(norm: norm)
        stepsTaken += 1
        let layout = model.layout
        // Matrices and embeddings (decayed) are stored first, biases and LayerNorm parameters after them.
        update(model, 0..<layout.decayedCount, lr: lr, weightDecay: weightDecay, gradScale: scale)
        update(model, layout.decayedCount..<layout.count, lr: lr, weightDecay: 0, gradScale: scale)
    }

    private func update(_ model: GPT, _ whole: Range<Int>, lr: Float, weightDecay: Float, gradScale: Float) {
        let range = whole.clamped(to: shard)
        guard !range.isEmpty else { return }
        let state = range.lowerBound - shard.lowerBound
        let s = AdamWKernel.Step(lr: lr, beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay,
                                 t: stepsTaken, gradScale: gradScale)
        AdamWKernel.update(model.pool, params: model.parameters.base + range.lowerBound,
                           grads: model.gradients.base + range.lowerBound, m: m.base + state,
                           v: v.base + state, count: range.count, step: s)
    }
}
