import Compute

/// GELU, tanh form (GPT-2's): 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))).
public enum GELU {
    static let s: Float = 0.797_884_560_802_865_4  // sqrt(2/π)
    static let k: Float = 0.044715

    public static func forward(_ pool: ThreadPool, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        pool.parallelFor(count, grain: 16, serialBelow: 4096, (out, inp)) { a, range in
            let (out, inp) = a
            let sv = FloatVector(repeating: s), kv = FloatVector(repeating: k), half = FloatVector(repeating: 0.5), one = FloatVector(repeating: 1)
            var i = range.lowerBound
            while i + 16 <= range.upperBound {
                let x = load(inp + i)
                let t = vtanh(sv * (x + kv * x * x * x))
                store(half * x * (one + t), out + i)
                i += 16
            }
            while i < range.upperBound {
                let x = inp[i]
                out[i] = 0.5 * x * (1 + fastTanh(s * (x + k * x * x * x)))
                i += 1
            }
        }
    }

    /// `dinp = dout · gelu'(inp)`; `dinp` may be `dout` itself.
    public static func backward(_ pool: ThreadPool, dinp: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                                dout: UnsafePointer<Float>, count: Int) {
        pool.parallelFor(count, grain: 16, serialBelow: 4096, (dinp, inp, dout)) { a, range in
            let (dinp, inp, dout) = a
            let sv = FloatVector(repeating: s), kv = FloatVector(repeating: k), k3 = FloatVector(repeating: 3 * k)
            let half = FloatVector(repeating: 0.5), one = FloatVector(repeating: 1)
            var i = range.lowerBound
            while i + 16 <= range.upperBound {
                let x = load(inp + i)
                let x2 = x * x
                let t = vtanh(sv * (x + kv * x2 * x))
                // d/dx = 0.5(1 + t) + 0.5·x·(1 − t²)·s·(1 + 3k·x²)
                let grad = half * (one + t) + half * x * (one - t * t) * sv * (one + k3 * x2)
                store(grad * load(dout + i), dinp + i)
                i += 16
            }
            while i < range.upperBound {
                let x = inp[i]
                let t = fastTanh(s * (x + k * x * x * x))
                let grad = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * s * (1 + 3 * k * x * x)
                dinp[i] = grad * dout[i]
                i += 1
            }
        }
    }
}

/// Copies and sums of whole activations.
public enum Elementwise {
    /// `out = inp`.
    public static func copy(_ pool: ThreadPool, out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, count: Int) {
        pool.parallelFor(count, grain: 16, serialBelow: 8192, (out, inp)) { a, range in
            let (out, inp) = a
            (out + range.lowerBound).update(from: inp + range.lowerBound, count: range.count)
        }
    }
}

/// Inverted dropout with counter-based masks: element `i` of a site is kept when a hash of (site key, i) says so,
/// so a mask is recomputed in the backward pass instead of stored, and does not depend on how the work was split
/// over threads. Kept elements are scaled by 1/(1 − p).
public struct DropoutMask: Sendable {
    public let key: UInt64
    public let probability: Float

    public init(key: UInt64, probability: Float) {
        self.key = key
        self.probability = probability
    }

    /// The key of one use of dropout: a seed, then the step, micro-batch, layer and place in the layer.
    public static func key(seed: UInt64, step: Int, micro: Int, layer: Int, site: Int) -> UInt64 {
        var h = SplitMix64.mix(seed ^ 0x6472_6F70_6F75_7421)
        h = SplitMix64.mix(h ^ UInt64(truncatingIfNeeded: step))
        h = SplitMix64.mix(h ^ UInt64(truncatingIfNeeded: micro))
        h = SplitMix64.mix(h ^ UInt64(truncatingIfNeeded: layer))
        return SplitMix64.mix(h ^ UInt64(truncatingIfNeeded: site))
    }

    public var scale: Float { 1 / (1 - probability) }

    /// The 24 top bits of the hash as a uniform number in [0, 1), compared with p.
    @inline(__always) public func keeps(_ index: Int) -> Bool {
        let h = SplitMix64.mix(key &+ UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9_7F4A_7C15)
        return Float(h >> 40) * 0x1p-24 >= probability
    }

    /// The same as `apply`, on the calling thread (for use inside a parallel region).
    @inline(__always)
    public func applySerial(out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, count: Int, offset: Int) {
        let scale = self.scale
        for i in 0..<count { out[i] = keeps(offset + i) ? inp[i] * scale : 0 }
    }

    /// `out[i] = keeps(offset + i) ? inp[i]·scale : 0`; `out` may be `inp`.
    public func apply(_ pool: ThreadPool, out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, count: Int,
                      offset: Int = 0) {
        pool.parallelFor(count, grain: 16, serialBelow: 8192, (self, out, inp, offset)) { a, range in
            let (mask, out, inp, offset) = a
            mask.applySerial(out: out + range.lowerBound, inp + range.lowerBound, count: range.count,
                             offset: offset + range.lowerBound)
        }
    }

    /// `out[i] = a[i] + mask(b)[i]`: a residual connection around a dropped-out branch.
    public func addMasked(_ pool: ThreadPool, out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>,
                          _ b: UnsafePointer<Float>, count: Int) {
        pool.parallelFor(count, grain: 16, serialBelow: 8192, (self, out, a, b)) { args, range in
            let (mask, out, a, b) = args
            for i in range { out[i] = a[i] + (mask.keeps(i) ? b[i] * mask.scale : 0) }
        }
    }
}
