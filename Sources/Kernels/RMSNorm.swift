import Compute

/// RMSNorm over the last dimension (Zhang & Sennrich 2019; Llama's and Hugging Face `LlamaRMSNorm`'s form):
/// `out = x · rstd · gain`, rstd = 1/sqrt(mean(x²) + ε), ε inside the square root, no mean subtraction, no bias.
/// ε is the recipe's `norm_eps` (Hugging Face's `rms_norm_eps`).
public enum RMSNorm {
    /// - Parameters: `out`, `inp` [rows, C]; `rstd` [rows] (kept for the backward pass); `weight` [C], the gain.
    ///   `out` may be `inp`.
    public static func forward(_ pool: ThreadPool, out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                               inp: UnsafePointer<Float>, weight: UnsafePointer<Float>, rows: Int, channels c: Int,
                               epsilon: Float) {
        pool.parallelFor(rows, serialBelow: 16, (out, rstd, inp, weight, c, epsilon)) { a, range in
            let (out, rstd, inp, weight, c, epsilon) = a
            for row in range {
                let x = inp + row * c, o = out + row * c
                var acc = FloatVector(repeating: 0)
                var i = 0
                while i + 16 <= c { let v = load(x + i); acc += v * v; i += 16 }
                var sq = horizontalSum(acc)
                while i < c { sq += x[i] * x[i]; i += 1 }
                let s = 1 / (sq / Float(c) + epsilon).squareRoot()
                let sv = FloatVector(repeating: s)
                i = 0
                while i + 16 <= c { store(load(x + i) * sv * load(weight + i), o + i); i += 16 }
                while i < c { o[i] = x[i] * s * weight[i]; i += 1 }
                rstd[row] = s
            }
        }
    }

    /// Floats of scratch `backward` needs: per-thread partial sums of the gain's gradient.
    public static func scratchCount(threads: Int, channels c: Int) -> Int { threads * c }

    /// Adds the input gradient into `dinp` (or writes it, with `accumulateInput` false) and the gain gradient into
    /// `dweight` (or writes it, with `accumulateParameters` false):
    /// `dinp = rstd·(dnorm − norm·mean(dnorm ⊙ norm))` with norm = x·rstd and dnorm = dout ⊙ gain, and
    /// `dweight = Σ_rows dout ⊙ norm`. As in `LayerNorm`, each thread sums its rows' gain gradient into its own
    /// slice of `scratch` and the slices are added in thread order: the result depends only on the thread count.
    /// `dinp` may be `dout` when not accumulating.
    public static func backward(_ pool: ThreadPool, dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>,
                                dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                rstd: UnsafePointer<Float>, rows: Int, channels c: Int,
                                scratch: UnsafeMutablePointer<Float>, accumulateInput: Bool, accumulateParameters: Bool) {
        let threads = pool.threadCount
        scratch.update(repeating: 0, count: threads * c)
        pool.parallelChunks(rows, serialBelow: 16, (dinp, dout, inp, weight, rstd, c, scratch, accumulateInput)) { a, thread, range in
            let (dinp, dout, inp, weight, rstd, c, scratch, accumulateInput) = a
            let dw = scratch + thread * c
            for row in range {
                let x = inp + row * c, g = dout + row * c, d = dinp + row * c
                let r = rstd[row], s = FloatVector(repeating: r)
                var acc = FloatVector(repeating: 0)
                var i = 0
                while i + 16 <= c { acc += load(g + i) * load(weight + i) * (load(x + i) * s); i += 16 }
                var sum = horizontalSum(acc)
                while i < c { sum += g[i] * weight[i] * (x[i] * r); i += 1 }
                let meanDN = sum / Float(c), mv = FloatVector(repeating: meanDN)
                i = 0
                while i + 16 <= c {
                    let norm = load(x + i) * s
                    let go = load(g + i)
                    let v = (go * load(weight + i) - norm * mv) * s
                    store(load(dw + i) + go * norm, dw + i)
                    store(accumulateInput ? load(d + i) + v : v, d + i)
                    i += 16
                }
                while i < c {
                    let norm = x[i] * r
                    let go = g[i]
                    let v = (go * weight[i] - norm * meanDN) * r
                    dw[i] += go * norm
                    d[i] = accumulateInput ? d[i] + v : v
                    i += 1
                }
            }
        }
        for j in 0..<c {
            var w: Float = accumulateParameters ? dweight[j] : 0
            for t in 0..<threads { w += scratch[t * c + j] }
            dweight[j] = w
        }
    }
}
