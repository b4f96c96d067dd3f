import Compute
import Foundation

/// The AdamW update, PyTorch's formulation (torch.optim.AdamW, non-fused):
///   g ← g · gradScale (global-norm clipping)
///   m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
///   p ← p·(1 − lr·wd) − (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + ε)
public enum AdamWKernel {
    public struct Step: Sendable {
        public var lr: Float
        public var beta1: Float
        public var beta2: Float
        public var eps: Float
        public var weightDecay: Float
        /// The step number t, counted from 1, for the bias corrections.
        public var t: Int
        /// Multiplies every gradient first (1 when not clipping).
        public var gradScale: Float

        public init(lr: Float, beta1: Float, beta2: Float, eps: Float, weightDecay: Float, t: Int, gradScale: Float) {
            self.lr = lr
            self.beta1 = beta1
            self.beta2 = beta2
            self.eps = eps
            self.weightDecay = weightDecay
            self.t = t
            self.gradScale = gradScale
        }
    }

    public static func update(_ pool: ThreadPool, params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>,
                              m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, count: Int, step: Step) {
        let bc1 = 1 - pow(Double(step.beta1), Double(step.t))
        let bc2 = 1 - pow(Double(step.beta2), Double(step.t))
        let stepSize = Float(Double(step.lr) / bc1)
        let bc2Root = Float(bc2.squareRoot())
        let decay = 1 - step.lr * step.weightDecay
        pool.parallelFor(count, grain: 16, serialBelow: 4096, (params, grads, m, v, step, stepSize, bc2Root, decay)) { a, range in
            let (params, grads, m, v, step, stepSize, bc2Root, decay) = a
            let b1 = FloatVector(repeating: step.beta1), b2 = FloatVector(repeating: step.beta2)
            let c1 = FloatVector(repeating: 1 - step.beta1), c2 = FloatVector(repeating: 1 - step.beta2)
            let scale = FloatVector(repeating: step.gradScale), eps = FloatVector(repeating: step.eps)
            let size = FloatVector(repeating: stepSize), root = FloatVector(repeating: bc2Root), keep = FloatVector(repeating: decay)
            var i = range.lowerBound
            while i + 16 <= range.upperBound {
                let g = load(grads + i) * scale
                let mi = b1 * load(m + i) + c1 * g
                let vi = b2 * load(v + i) + c2 * g * g
                store(mi, m + i)
                store(vi, v + i)
                let p = load(params + i) * keep
                store(p - size * mi / (vi.squareRoot() / root + eps), params + i)
                i += 16
            }
            while i < range.upperBound {
                let g = grads[i] * step.gradScale
                m[i] = step.beta1 * m[i] + (1 - step.beta1) * g
                v[i] = step.beta2 * v[i] + (1 - step.beta2) * g * g
                params[i] = params[i] * decay - stepSize * m[i] / (v[i].squareRoot() / bc2Root + step.eps)
                i += 1
            }
        }
    }
}

/// Sums over large buffers, in double precision where the count is large.
public enum Reductions {
    /// Σ x² over `count` floats: 1024-float blocks are summed in float vectors, blocks in double, and each
    /// thread's share is added in thread order (so the result depends only on the thread count).
    public static func sumOfSquares(_ pool: ThreadPool, _ x: UnsafePointer<Float>, count: Int) -> Double {
        withUnsafeTemporaryAllocation(of: Double.self, capacity: pool.threadCount) { partials in
            let out = partials.baseAddress!
            out.initialize(repeating: 0, count: pool.threadCount)
            pool.parallelChunks(count, grain: 1024, serialBelow: 1 << 16, (x, out)) { a, thread, range in
                let (x, out) = a
                var total = 0.0
                var i = range.lowerBound
                while i < range.upperBound {
                    let end = min(range.upperBound, i + 1024)
                    var acc = FloatVector(repeating: 0)
                    while i + 16 <= end { let v = load(x + i); acc += v * v; i += 16 }
                    var block = Double(horizontalSum(acc))
                    while i < end { block += Double(x[i] * x[i]); i += 1 }
                    total += block
                }
                out[thread] = total
            }
            return partials.reduce(0, +)
        }
    }
}
