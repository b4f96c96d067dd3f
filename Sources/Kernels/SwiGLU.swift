import Compute

/// σ(x) = 1/(1 + e^−x) on sixteen lanes, through `vexp` (relative error a few 1e-8 where σ is not tiny; `vexp`'s
/// clamp to [−87, 88] makes σ(x) about 6e-39 rather than 0 below x = −88, and exactly 1 above x ≈ 17).
/// `@_transparent` for the reason `vexp` is (VectorMathInliningTests).
@_transparent public func vsigmoid(_ x: FloatVector) -> FloatVector {
    FloatVector(repeating: 1) / (FloatVector(repeating: 1) + vexp(-x))
}

/// Scalar version, for tails and tests.
@inline(__always) public func fastSigmoid(_ x: Float) -> Float { vsigmoid(FloatVector(repeating: x))[0] }

/// The elementwise part of Llama's SwiGLU MLP (Shazeer 2020, "GLU Variants Improve Transformer", eq. 6):
/// `out = silu(gate) ⊙ up`, silu(x) = x·σ(x) (PyTorch's `F.silu`, Hugging Face's `hidden_act = "silu"`), where
/// gate and up are the products of the MLP's input with `gate_proj` and `up_proj` (computed by the model, as is
/// `down_proj` after this).
public enum SwiGLU {
    /// `out[i] = gate[i]·σ(gate[i])·up[i]` over `count` elements. `out` may be `gate` or `up`.
    public static func forward(_ pool: ThreadPool, out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>,
                               up: UnsafePointer<Float>, count: Int) {
        pool.parallelFor(count, grain: 16, serialBelow: 4096, (out, gate, up)) { a, range in
            let (out, gate, up) = a
            var i = range.lowerBound
            while i + 16 <= range.upperBound {
                let g = load(gate + i)
                store(g * vsigmoid(g) * load(up + i), out + i)
                i += 16
            }
            while i < range.upperBound {
                let g = gate[i]
                out[i] = g * fastSigmoid(g) * up[i]
                i += 1
            }
        }
    }

    /// `dgate = dout ⊙ up ⊙ σ(gate)·(1 + gate·(1 − σ(gate)))` and `dup = dout ⊙ silu(gate)`. Every element is read
    /// before its outputs are written, so `dgate` may be `gate` or `dout`, and `dup` may be `up` or `dout`
    /// (not both the same buffer).
    public static func backward(_ pool: ThreadPool, dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>,
                                gate: UnsafePointer<Float>, up: UnsafePointer<Float>, dout: UnsafePointer<Float>,
                                count: Int) {
        precondition(dgate != dup, "SwiGLU.backward: dgate and dup must be different buffers")
        pool.parallelFor(count, grain: 16, serialBelow: 4096, (dgate, dup, gate, up, dout)) { a, range in
            let (dgate, dup, gate, up, dout) = a
            let one = FloatVector(repeating: 1)
            var i = range.lowerBound
            while i + 16 <= range.upperBound {
                let g = load(gate + i), u = load(up + i), d = load(dout + i)
                let s = vsigmoid(g)
                let silu = g * s
                store(d * u * (s * (one + g * (one - s))), dgate + i)
                store(d * silu, dup + i)
                i += 16
            }
            while i < range.upperBound {
                let g = gate[i], u = up[i], d = dout[i]
                let s = fastSigmoid(g)
                dgate[i] = d * u * (s * (1 + g * (1 - s)))
                dup[i] = d * (g * s)
                i += 1
            }
        }
    }
}
