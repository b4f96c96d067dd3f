import Compute

/// A linear layer in `nn.Linear`'s layout: `out[rows, O] = inp[rows, I] · weight[O, I]ᵀ + bias[O]`.
public enum Linear {
    /// With `accumulate`, the product is added to what `out` holds (a residual stream, say) instead of replacing it.
    public static func forward(_ pool: ThreadPool, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, rows: Int,
                               inFeatures: Int, outFeatures: Int, accumulate: Bool = false) {
        if let bias { startFromBias(pool, out: out, bias: bias, rows: rows, outFeatures: outFeatures, accumulate: accumulate) }
        Matmul.gemm(pool, transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures,
                    a: inp, lda: inFeatures, b: weight, ldb: inFeatures,
                    beta: bias != nil || accumulate ? 1 : 0, c: out, ldc: outFeatures)
    }

    /// `dinp (+)= dout · weight`, `dweight (+)= doutᵀ · inp`, `dbias (+)= column sums of dout`; "+=" where the
    /// matching `accumulate` flag is set, "=" otherwise (the first micro-batch of a step writes, the rest add).
    /// `dinp` may be nil when the input needs no gradient.
    public static func backward(_ pool: ThreadPool, dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>,
                                dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                                weight: UnsafePointer<Float>, rows: Int, inFeatures: Int, outFeatures: Int,
                                accumulateInput: Bool, accumulateParameters: Bool) {
        if let dinp {
            Matmul.gemm(pool, transA: false, transB: false, m: rows, n: inFeatures, k: outFeatures,
                        a: dout, lda: outFeatures, b: weight, ldb: inFeatures,
                        beta: accumulateInput ? 1 : 0, c: dinp, ldc: inFeatures)
        }
        Matmul.gemm(pool, transA: true, transB: false, m: outFeatures, n: inFeatures, k: rows,
                    a: dout, lda: outFeatures, b: inp, ldb: inFeatures,
                    beta: accumulateParameters ? 1 : 0, c: dweight, ldc: inFeatures)
        if let dbias {
            columnSums(pool, into: dbias, of: dout, rows: rows, columns: outFeatures, accumulate: accumulateParameters)
        }
    }

    /// `out[r, :] = bias` (or `+= bias` when accumulating), the start that a product with beta = 1 adds onto.
    static func startFromBias(_ pool: ThreadPool, out: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>,
                              rows: Int, outFeatures: Int, accumulate: Bool) {
        // Start from the bias (added to what is there when accumulating), then let sgemm add the product.
        pool.parallelFor(rows, serialBelow: 64, (out, bias, outFeatures, accumulate)) { a, range in
            let (out, bias, outFeatures, accumulate) = a
            for row in range {
                let o = out + row * outFeatures
                var j = 0
                while j + 16 <= outFeatures {
                    store(accumulate ? load(o + j) + load(bias + j) : load(bias + j), o + j)
                    j += 16
                }
                while j < outFeatures { o[j] = accumulate ? o[j] + bias[j] : bias[j]; j += 1 }
            }
        }
    }

    // MARK: bf16 operands (native bf16 products, `BF16Matmul`)

    /// `forward` with bf16 operands: `inp` and `weight` hold bf16 patterns, the product accumulates in fp32.
    public static func forward(_ pool: ThreadPool, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<UInt16>,
                               weight: UnsafePointer<UInt16>, bias: UnsafePointer<Float>?, rows: Int,
                               inFeatures: Int, outFeatures: Int, accumulate: Bool = false) {
        if let bias { startFromBias(pool, out: out, bias: bias, rows: rows, outFeatures: outFeatures, accumulate: accumulate) }
        BF16Matmul.gemm(pool, transB: true, m: rows, n: outFeatures, k: inFeatures, a: inp, lda: inFeatures,
                        b: weight, ldb: inFeatures, beta: bias != nil || accumulate ? 1 : 0, c: out, ldc: outFeatures)
    }

    /// `backward` with bf16 operands: `dout` [rows, O] and its transpose `doutTransposed` [O, rows] (which the
    /// weight gradient reads row-major, oneDNN's fast layout), `inp` and `weight` as bf16 patterns; `doutValues`,
    /// the same gradient in fp32 (rounded to bf16 like the patterns), gives the bias gradient.
    public static func backward(_ pool: ThreadPool, dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>,
                                dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<UInt16>,
                                doutTransposed: UnsafePointer<UInt16>, doutValues: UnsafePointer<Float>,
                                inp: UnsafePointer<UInt16>, weight: UnsafePointer<UInt16>, rows: Int, inFeatures: Int,
                                outFeatures: Int, accumulateInput: Bool, accumulateParameters: Bool) {
        if let dinp {
            BF16Matmul.gemm(pool, transB: false, m: rows, n: inFeatures, k: outFeatures, a: dout, lda: outFeatures,
                            b: weight, ldb: inFeatures, beta: accumulateInput ? 1 : 0, c: dinp, ldc: inFeatures)
        }
        BF16Matmul.gemm(pool, transB: false, m: outFeatures, n: inFeatures, k: rows, a: doutTransposed, lda: rows,
                        b: inp, ldb: inFeatures, beta: accumulateParameters ? 1 : 0, c: dweight, ldc: inFeatures)
        if let dbias {
            columnSums(pool, into: dbias, of: doutValues, rows: rows, columns: outFeatures, accumulate: accumulateParameters)
        }
    }

    /// `sums[j] (+)= Σ_r m[r, j]`. Split over columns, rows added in order: independent of the thread count.
    public static func columnSums(_ pool: ThreadPool, into sums: UnsafeMutablePointer<Float>, of m: UnsafePointer<Float>,
                                  rows: Int, columns: Int, accumulate: Bool) {
        pool.parallelFor(columns, grain: 16, serialBelow: 64, (sums, m, rows, columns, accumulate)) { a, range in
            let (sums, m, rows, columns, accumulate) = a
            if !accumulate { for j in range { sums[j] = 0 } }
            for r in 0..<rows {
                let row = m + r * columns
                var j = range.lowerBound
                while j + 16 <= range.upperBound { store(load(sums + j) + load(row + j), sums + j); j += 16 }
                while j < range.upperBound { sums[j] += row[j]; j += 1 }
            }
        }
    }
}
