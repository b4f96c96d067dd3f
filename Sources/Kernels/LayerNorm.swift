import Compute

/// LayerNorm over the last dimension: `out = (x − mean) · rstd · weight + bias`, rstd = 1/sqrt(var + 1e-5) with
/// the biased variance, as PyTorch computes it.
public enum LayerNorm {
    public static let epsilon: Float = 1e-5

    /// - Parameters: `out`, `inp` [rows, C]; `mean`, `rstd` [rows] (kept for the backward pass); `bias` may be nil.
    public static func forward(_ pool: ThreadPool, out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                               rstd: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                               bias: UnsafePointer<Float>?, rows: Int, channels c: Int) {
        pool.parallelFor(rows, serialBelow: 16, (out, mean, rstd, inp, weight, bias, c)) { a, range in
            let (out, mean, rstd, inp, weight, bias, c) = a
            for row in range {
                let x = inp + row * c, o = out + row * c
                // Two passes (mean, then squared deviations) for accuracy.
                var acc = FloatVector(repeating: 0)
                var i = 0
                while i + 16 <= c { acc += load(x + i); i += 16 }
                var sum = horizontalSum(acc)
                while i < c { sum += x[i]; i += 1 }
                let m = sum / Float(c)
                let mv = FloatVector(repeating: m)
                acc = FloatVector(repeating: 0)
                i = 0
                while i + 16 <= c { let d = load(x + i) - mv; acc += d * d; i += 16 }
                var sq = horizontalSum(acc)
                while i < c { let d = x[i] - m; sq += d * d; i += 1 }
                let s = 1 / (sq / Float(c) + epsilon).squareRoot()
                let sv = FloatVector(repeating: s)
                i = 0
                if let bias {
                    while i + 16 <= c {
                        store((load(x + i) - mv) * sv * load(weight + i) + load(bias + i), o + i)
                        i += 16
                    }
                    while i < c { o[i] = (x[i] - m) * s * weight[i] + bias[i]; i += 1 }
                } else {
                    while i + 16 <= c { store((load(x + i) - mv) * sv * load(weight + i), o + i); i += 16 }
                    while i < c { o[i] = (x[i] - m) * s * weight[i]; i += 1 }
                }
                mean[row] = m
                rstd[row] = s
            }
        }
    }

    /// Floats of scratch `backward` needs: per-thread partial sums of the weight and bias gradients.
    public static func scratchCount(threads: Int, channels c: Int) -> Int { threads * 2 * c }

    /// Adds the input gradient into `dinp` (or writes it, with `accumulateInput` false) and the weight and bias
    /// gradients into `dweight`/`dbias` (or writes them, with `accumulateParameters` false). Each thread sums its
    /// rows' parameter gradients into its own slice of `scratch`, and the slices are added in thread order, so the
    /// result depends only on the thread count.
    public static func backward(_ pool: ThreadPool, dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>,
                                dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                                weight: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                rows: Int, channels c: Int, scratch: UnsafeMutablePointer<Float>,
                                accumulateInput: Bool, accumulateParameters: Bool) {
        let threads = pool.threadCount
        scratch.update(repeating: 0, count: threads * 2 * c)
        pool.parallelChunks(rows, serialBelow: 16, (dinp, dout, inp, weight, mean, rstd, c, scratch, accumulateInput)) { a, thread, range in
            let (dinp, dout, inp, weight, mean, rstd, c, scratch, accumulateInput) = a
            let dw = scratch + thread * 2 * c, db = dw + c
            for row in range {
                let x = inp + row * c, g = dout + row * c, d = dinp + row * c
                let m = FloatVector(repeating: mean[row]), s = FloatVector(repeating: rstd[row])
                // dnorm = g·w; dinp = (dnorm − mean(dnorm) − norm·mean(dnorm·norm))·rstd.
                var a1 = FloatVector(repeating: 0), a2 = FloatVector(repeating: 0)
                var i = 0
                while i + 16 <= c {
                    let norm = (load(x + i) - m) * s
                    let dnorm = load(g + i) * load(weight + i)
                    a1 += dnorm
                    a2 += dnorm * norm
                    i += 16
                }
                var sum1 = horizontalSum(a1), sum2 = horizontalSum(a2)
                while i < c {
                    let norm = (x[i] - mean[row]) * rstd[row]
                    let dnorm = g[i] * weight[i]
                    sum1 += dnorm
                    sum2 += dnorm * norm
                    i += 1
                }
                let meanD = FloatVector(repeating: sum1 / Float(c)), meanDN = FloatVector(repeating: sum2 / Float(c))
                i = 0
                while i + 16 <= c {
                    let norm = (load(x + i) - m) * s
                    let go = load(g + i)
                    let dnorm = go * load(weight + i)
                    let v = (dnorm - meanD - norm * meanDN) * s
                    store(accumulateInput ? load(d + i) + v : v, d + i)
                    store(load(dw + i) + go * norm, dw + i)
                    store(load(db + i) + go, db + i)
                    i += 16
                }
                while i < c {
                    let norm = (x[i] - mean[row]) * rstd[row]
                    let dnorm = g[i] * weight[i]
                    let v = (dnorm - meanD[0] - norm * meanDN[0]) * rstd[row]
                    d[i] = accumulateInput ? d[i] + v : v
                    dw[i] += g[i] * norm
                    db[i] += g[i]
                    i += 1
                }
            }
        }
        for j in 0..<c {
            var w: Float = accumulateParameters ? dweight[j] : 0
            var b: Float = accumulateParameters ? (dbias?[j] ?? 0) : 0
            for t in 0..<threads {
                w += scratch[t * 2 * c + j]
                b += scratch[t * 2 * c + c + j]
            }
            dweight[j] = w
            dbias?[j] = b
        }
    }
}
