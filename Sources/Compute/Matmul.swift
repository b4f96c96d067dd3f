import COpenBLAS

/// Row-major matrix products through OpenBLAS's `cblas_sgemm`.
///
/// `C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C`, where `op(X)` is `X` or its transpose; leading dimensions
/// are row strides in elements, so a matrix can be a strided view into a larger buffer (attention reads q, k and v
/// straight out of the fused qkv activation this way).
public enum Matmul {
    /// Products smaller than this many multiply-adds run on the calling thread: splitting them costs more than
    /// it saves.
    public static let parallelThreshold = 1 << 18

    /// One product, split over the pool's threads: by rows of C when there are enough of them, else by columns.
    /// Each part is an independent single-threaded sgemm, so every element of C is computed by the same kernel
    /// whatever the split, and the result depends only on the pool's thread count.
    public static func gemm(
        _ pool: ThreadPool,
        transA: Bool, transB: Bool,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let product = Product(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                              b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        if pool.threadCount == 1 || m * n * k < parallelThreshold {
            product.run(part: 0, of: 1)
        } else {
            pool.run(product)
        }
    }

    /// One product as parallel work: part i of p computes the i-th chunk of C's rows (when there are at least
    /// 32 a part, or more rows than columns) or else of its columns.
    struct Product: ParallelWork {
        let transA: Bool, transB: Bool
        let m: Int, n: Int, k: Int
        let alpha: Float
        let a: UnsafePointer<Float>, lda: Int
        let b: UnsafePointer<Float>, ldb: Int
        let beta: Float
        let c: UnsafeMutablePointer<Float>, ldc: Int

        func run(part: Int, of parts: Int) {
            guard let p = ProductPart(part, of: parts, m: m, n: n, transA: transA, transB: transB, lda: lda, ldb: ldb,
                                      ldc: ldc) else { return }
            serial(transA: transA, transB: transB, m: p.m, n: p.n, k: k, alpha: alpha, a: a + p.aOffset, lda: lda,
                   b: b + p.bOffset, ldb: ldb, beta: beta, c: c + p.cOffset, ldc: ldc)
        }
    }

    /// One product on the calling thread (for use inside a parallel region, or for small products).
    @inline(__always)
    public static func serial(
        transA: Bool, transB: Bool,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            // sgemm with k = 0 only scales C; do it here so that callers need not special-case empty sums.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

/// Part `part` of `parts` of an m×n product C = op(A)·op(B) over row-major buffers: a chunk of C's rows when there
/// are at least 32 a part or more rows than columns, else a chunk of its columns (chunks on multiples of 16). The
/// sgemm and the bf16 matmul both split this way, so a product's result depends only on the thread count.
struct ProductPart {
    /// The block's size and where its operands start (element offsets into A, B and C).
    let m: Int, n: Int, aOffset: Int, bOffset: Int, cOffset: Int

    /// nil when this part is empty.
    init?(_ part: Int, of parts: Int, m: Int, n: Int, transA: Bool, transB: Bool, lda: Int, ldb: Int, ldc: Int) {
        if m >= 32 * parts || m >= n {
            let rows = ThreadPool.chunk(part, of: parts, count: m, grain: 16)
            guard !rows.isEmpty else { return nil }
            (self.m, self.n) = (rows.count, n)
            aOffset = transA ? rows.lowerBound : rows.lowerBound * lda
            bOffset = 0
            cOffset = rows.lowerBound * ldc
        } else {
            let cols = ThreadPool.chunk(part, of: parts, count: n, grain: 16)
            guard !cols.isEmpty else { return nil }
            (self.m, self.n) = (m, cols.count)
            aOffset = 0
            bOffset = transB ? cols.lowerBound * ldb : cols.lowerBound
            cOffset = cols.lowerBound
        }
    }
}
