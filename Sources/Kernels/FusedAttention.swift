import Compute
import Foundation

/// Flash-style causal multi-head self-attention (Dao et al. 2022, "FlashAttention", Algorithm 1 forward and
/// Algorithm 2 backward, in the FlashAttention-2 loop order) on the same fused qkv activation as `Attention`.
///
/// Queries are taken in tiles of `Tiles.queries` rows, and each query tile meets the keys it can see in tiles of
/// `Tiles.keys` columns. Scores of one tile live in per-thread scratch only; an online softmax keeps each row's
/// running maximum and sum and rescales the output rows already accumulated when a later key tile raises the
/// maximum. The forward pass keeps one number per row, the log-sum-exp of its scores, instead of the B·H·T²
/// probabilities; the backward pass recomputes each tile's probabilities from it (`exp(score − lse)`) and uses
/// `D_i = Σ_d dout_i·out_i` for the softmax's row dot product, so memory is O(T) per row. Products are
/// single-threaded sgemms on strided views, one (batch, head) pair per task as in `Attention`.
///
/// Dropout on the attention weights uses the same mask indices as `Attention` (pair·T² + i·T + j), so both kernels
/// compute the same function. With `bf16Inputs`, the two operands of every product inside attention are rounded to
/// bfloat16 (round to nearest even) before the fp32 sgemm: q, k, v and dout must arrive rounded (the model rounds
/// them), and the kernel rounds the probabilities and the score gradients it makes. With `native` operands as well
/// (bf16 copies of q, k, v and dout, and per-thread bf16 tiles), the same rounded operands are multiplied by
/// oneDNN's bf16 matmul (`BF16Matmul.serial`) instead of the fp32 sgemm: the same products up to the order of
/// each fp32 sum.
///
/// Grouped-query attention (`shape.kvHeads` < `shape.heads`): the qkv row is [q: H·hs | k: Hkv·hs | v: Hkv·hs]
/// and query head h reads key/value head h / (H/Hkv) where it lies, through the same strided sgemms (no copies).
/// The forward pass still runs one (batch, query head) pair per task. The backward pass runs one (batch, key/value
/// head) group per task: the group's query heads one after another on one thread, each adding into the group's dk
/// and dv (zeroed once), so no two threads write the same dk/dv and the sums run in a fixed order (the same bits
/// for the same thread count). With Hkv = H a group is a pair, and every product, operand and order is what the
/// kernel computed before grouping existed (KernelTests' GroupedQueryAttentionTests check the bits).
public enum FusedAttention {
    /// bf16 copies of attention's product operands, for native bf16 products: `qkv` [B, T, 3C] and, for the
    /// backward pass, `dout` [B, T, C], holding the bf16 patterns of the (rounded) fp32 inputs at the same offsets,
    /// and `tiles`, `halfScratchPerThread` bf16 elements for each pool thread.
    public struct NativeBF16: @unchecked Sendable {
        public var qkv: UnsafePointer<UInt16>
        public var dout: UnsafePointer<UInt16>?
        public var tiles: UnsafeMutablePointer<UInt16>

        public init(qkv: UnsafePointer<UInt16>, dout: UnsafePointer<UInt16>? = nil, tiles: UnsafeMutablePointer<UInt16>) {
            self.qkv = qkv
            self.dout = dout
            self.tiles = tiles
        }
    }

    /// bf16 elements of per-thread scratch for native products: the weights tile and the score-gradient tile.
    public static func halfScratchPerThread(tiles: Tiles) -> Int { 2 * tiles.queries * tiles.keys }

    /// Tile sizes. The standard tiles make T ≤ 256 one key tile per query tile (the whole visible row, so no
    /// rescaling), and longer sequences stream keys through the online softmax.
    public struct Tiles: Sendable, Equatable {
        public var queries: Int
        public var keys: Int

        public init(queries: Int, keys: Int) {
            precondition(queries >= 1 && keys >= 1, "attention tiles need at least one row and one column")
            self.queries = queries
            self.keys = keys
        }

        public static let standard = Tiles(queries: 64, keys: 256)
    }

    /// Floats of per-thread scratch: three query×key tiles (scores or probabilities, their gradient, dropped or
    /// rounded weights) and two numbers per query row.
    public static func scratchPerThread(tiles: Tiles) -> Int { 3 * tiles.queries * tiles.keys + 2 * tiles.queries }

    /// `out` [B, T, C] receives the heads' outputs side by side, `lse` [B, H, T] each row's log-sum-exp of its
    /// scaled scores (what the backward pass needs).
    public static func forward(_ pool: ThreadPool, out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                               qkv: UnsafePointer<Float>, shape s: Attention.Shape, tiles: Tiles = .standard,
                               scratch: UnsafeMutablePointer<Float>, dropout: DropoutMask?, bf16Inputs: Bool = false,
                               native: NativeBF16? = nil) {
        precondition(native == nil || bf16Inputs, "FusedAttention: native bf16 products need bf16Inputs")
        let perThread = scratchPerThread(tiles: tiles), halfPerThread = halfScratchPerThread(tiles: tiles)
        pool.parallelChunks(s.batch * s.heads, (out, lse, qkv, s, tiles, scratch, dropout, bf16Inputs, perThread, native, halfPerThread)) { a, thread, pairs in
            let (out, lse, qkv, s, tiles, scratch, dropout, bf16Inputs, perThread, native, halfPerThread) = a
            let t = s.time, c = s.channels, hs = s.headSize, c3 = s.qkvStride, ckv = s.kvChannels
            let br = tiles.queries, bc = tiles.keys
            let scores = scratch + thread * perThread
            let weightsTile = scores + 2 * br * bc
            let rowMax = weightsTile + br * bc, rowSum = rowMax + br
            let weightBits = native.map { $0.tiles + thread * halfPerThread }
            for pair in pairs {
                let b = pair / s.heads, h = pair % s.heads
                // Query head h reads key/value head h / groupSize in place (h itself without grouping).
                let offset = b * t * c3 + h * hs, kvOffset = b * t * c3 + c + (h / s.groupSize) * hs
                let q = qkv + offset, k = qkv + kvOffset, v = k + ckv
                let qh = native.map { $0.qkv + offset }, kh = native.map { $0.qkv + kvOffset }, vh = kh.map { $0 + ckv }
                let o = out + b * t * c + h * hs
                let rowLSE = lse + pair * t
                var r0 = 0
                while r0 < t {
                    let r1 = min(t, r0 + br), rows = r1 - r0
                    var c0 = 0
                    while c0 < r1 {
                        let c1 = min(r1, c0 + bc), cols = c1 - c0
                        product(transB: true, m: rows, n: cols, k: hs, alpha: s.scale, a: q + r0 * c3,
                                bf16: qh.map { $0 + r0 * c3 }, lda: c3, b: k + c0 * c3, bf16: kh.map { $0 + c0 * c3 },
                                ldb: c3, beta: 0, c: scores, ldc: bc)
                        for r in 0..<rows {
                            let row = scores + r * bc
                            let visible = min(cols, r0 + r - c0 + 1)
                            guard visible > 0 else {
                                row.update(repeating: 0, count: cols)
                                continue
                            }
                            let tileMax = maximum(row, count: visible)
                            let first = c0 == 0
                            let mNew = first ? tileMax : max(rowMax[r], tileMax)
                            let sum = exponentiate(row, count: visible, minus: mNew, width: cols)
                            if first {
                                rowSum[r] = sum
                            } else {
                                let correction = fastExp(rowMax[r] - mNew)
                                rowSum[r] = rowSum[r] * correction + sum
                                if correction != 1 { scale(o + (r0 + r) * c, count: hs, by: correction) }
                            }
                            rowMax[r] = mNew
                        }
                        let weights = valueWeights(scores, scratch: weightsTile, rows: rows, cols: cols, ld: bc,
                                                   dropout: dropout, base: pair * t * t + r0 * t + c0, time: t, bf16: bf16Inputs)
                        product(transB: false, m: rows, n: hs, k: cols, a: weights,
                                bf16: weightBits.map { bits(of: weights, into: $0, rows: rows, cols: cols, ld: bc) },
                                lda: bc, b: v + c0 * c3, bf16: vh.map { $0 + c0 * c3 }, ldb: c3,
                                beta: c0 == 0 ? 0 : 1, c: o + r0 * c, ldc: c)
                        c0 = c1
                    }
                    for r in 0..<rows {
                        scale(o + (r0 + r) * c, count: hs, by: 1 / rowSum[r])
                        rowLSE[r0 + r] = rowMax[r] + log(rowSum[r])
                    }
                    r0 = r1
                }
            }
        }
    }

    /// Writes `dqkv` [B, T, 3C] (every element: it need not be cleared) from `dout` [B, T, C], given the forward
    /// pass's `out` and `lse`.
    public static func backward(_ pool: ThreadPool, dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                out: UnsafePointer<Float>, lse: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                                shape s: Attention.Shape, tiles: Tiles = .standard,
                                scratch: UnsafeMutablePointer<Float>, dropout: DropoutMask?, bf16Inputs: Bool = false,
                                native: NativeBF16? = nil) {
        precondition(native == nil || (bf16Inputs && native!.dout != nil),
                     "FusedAttention: native bf16 products need bf16Inputs and dout's bf16 copy")
        let perThread = scratchPerThread(tiles: tiles), halfPerThread = halfScratchPerThread(tiles: tiles)
        pool.parallelChunks(s.batch * s.kvHeads, (dqkv, dout, out, lse, qkv, s, tiles, scratch, dropout, bf16Inputs, perThread, native, halfPerThread)) { a, thread, groups in
            let (dqkv, dout, out, lse, qkv, s, tiles, scratch, dropout, bf16Inputs, perThread, native, halfPerThread) = a
            let t = s.time, c = s.channels, hs = s.headSize, c3 = s.qkvStride, ckv = s.kvChannels
            let br = tiles.queries, bc = tiles.keys
            let probabilities = scratch + thread * perThread
            let dScores = probabilities + br * bc
            let weightsTile = dScores + br * bc
            let rowDot = weightsTile + br * bc
            let weightBits = native.map { $0.tiles + thread * halfPerThread }
            let dScoreBits = weightBits.map { $0 + br * bc }
            for group in groups {
                // One task per (batch, key/value head): its query heads run one after another on this thread, so
                // dk and dv collect from all of them in a fixed order, without races (no other task writes them).
                let b = group / s.kvHeads, kv = group % s.kvHeads
                let kvOffset = b * t * c3 + c + kv * hs
                let k = qkv + kvOffset, v = k + ckv
                let kh = native.map { $0.qkv + kvOffset }, vh = kh.map { $0 + ckv }
                let dk = dqkv + kvOffset, dv = dk + ckv
                // dk and dv collect from every query tile of every query head of the group.
                for j in 0..<t {
                    (dk + j * c3).update(repeating: 0, count: hs)
                    (dv + j * c3).update(repeating: 0, count: hs)
                }
                for h in (kv * s.groupSize)..<((kv + 1) * s.groupSize) {
                    let pair = b * s.heads + h
                    let offset = b * t * c3 + h * hs
                    let q = qkv + offset
                    let qh = native.map { $0.qkv + offset }
                    let dq = dqkv + offset
                    let dy = dout + b * t * c + h * hs, y = out + b * t * c + h * hs
                    let dyh = native.map { $0.dout! + b * t * c + h * hs }
                    let rowLSE = lse + pair * t
                    var r0 = 0
                    while r0 < t {
                        let r1 = min(t, r0 + br), rows = r1 - r0
                        for r in 0..<rows { rowDot[r] = dot(dy + (r0 + r) * c, y + (r0 + r) * c, count: hs) }
                        var c0 = 0
                        while c0 < r1 {
                            let c1 = min(r1, c0 + bc), cols = c1 - c0
                            // Probabilities again, from the saved log-sum-exp.
                            product(transB: true, m: rows, n: cols, k: hs, alpha: s.scale, a: q + r0 * c3,
                                    bf16: qh.map { $0 + r0 * c3 }, lda: c3, b: k + c0 * c3, bf16: kh.map { $0 + c0 * c3 },
                                    ldb: c3, beta: 0, c: probabilities, ldc: bc)
                            for r in 0..<rows {
                                let visible = max(0, min(cols, r0 + r - c0 + 1))
                                _ = exponentiate(probabilities + r * bc, count: visible, minus: rowLSE[r0 + r], width: cols)
                            }
                            let weights = valueWeights(probabilities, scratch: weightsTile, rows: rows, cols: cols, ld: bc,
                                                       dropout: dropout, base: pair * t * t + r0 * t + c0, time: t, bf16: bf16Inputs)
                            // dv += weightsᵀ · dout.
                            product(transA: true, transB: false, m: cols, n: hs, k: rows, a: weights,
                                    bf16: weightBits.map { bits(of: weights, into: $0, rows: rows, cols: cols, ld: bc) },
                                    lda: bc, b: dy + r0 * c, bf16: dyh.map { $0 + r0 * c }, ldb: c, beta: 1,
                                    c: dv + c0 * c3, ldc: c3)
                            // d(weights) = dout · vᵀ, back through dropout, then the softmax: p ⊙ (dp − D).
                            product(transB: true, m: rows, n: cols, k: hs, a: dy + r0 * c, bf16: dyh.map { $0 + r0 * c },
                                    lda: c, b: v + c0 * c3, bf16: vh.map { $0 + c0 * c3 }, ldb: c3, beta: 0,
                                    c: dScores, ldc: bc)
                            for r in 0..<rows {
                                let visible = max(0, min(cols, r0 + r - c0 + 1))
                                let p = probabilities + r * bc, g = dScores + r * bc
                                if let dropout {
                                    let base = pair * t * t + (r0 + r) * t + c0
                                    for j in 0..<visible { g[j] = dropout.keeps(base + j) ? g[j] * dropout.scale : 0 }
                                }
                                softmaxGradient(g, p, count: visible, rowDot: rowDot[r], width: cols, bf16: bf16Inputs)
                            }
                            // dq (+)= scale · dS · k; dk += scale · dSᵀ · q.
                            let dSh = dScoreBits.map { bits(of: dScores, into: $0, rows: rows, cols: cols, ld: bc) }
                            product(transB: false, m: rows, n: hs, k: cols, alpha: s.scale, a: dScores, bf16: dSh,
                                    lda: bc, b: k + c0 * c3, bf16: kh.map { $0 + c0 * c3 }, ldb: c3,
                                    beta: c0 == 0 ? 0 : 1, c: dq + r0 * c3, ldc: c3)
                            product(transA: true, transB: false, m: cols, n: hs, k: rows, alpha: s.scale, a: dScores,
                                    bf16: dSh, lda: bc, b: q + r0 * c3, bf16: qh.map { $0 + r0 * c3 }, ldb: c3, beta: 1,
                                    c: dk + c0 * c3, ldc: c3)
                            c0 = c1
                        }
                        r0 = r1
                    }
                }
            }
        }
    }

    /// One product of the kernel: on the fp32 operands through the sgemm, or, when both bf16 copies are given
    /// (native bf16), on those through oneDNN.
    @inline(__always)
    static func product(transA: Bool = false, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                        a: UnsafePointer<Float>, bf16 ah: UnsafePointer<UInt16>?, lda: Int,
                        b: UnsafePointer<Float>, bf16 bh: UnsafePointer<UInt16>?, ldb: Int,
                        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        precondition((ah == nil) == (bh == nil), "FusedAttention: a native product needs both operands in bf16")
        if let ah, let bh {
            BF16Matmul.serial(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: ah, lda: lda,
                              b: bh, ldb: ldb, beta: beta, c: c, ldc: ldc)
        } else {
            Matmul.serial(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b,
                          ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
    }

    /// The bf16 patterns of a rows×cols tile of already-rounded values (row stride `ld` in both), into `bits`.
    @inline(__always)
    static func bits(of tile: UnsafePointer<Float>, into bits: UnsafeMutablePointer<UInt16>, rows: Int, cols: Int,
                     ld: Int) -> UnsafePointer<UInt16> {
        for r in 0..<rows { BFloat16.convertSerial(bits: bits + r * ld, rounded: nil, tile + r * ld, count: cols) }
        return UnsafePointer(bits)
    }

    // MARK: Row operations

    @inline(__always) static func maximum(_ row: UnsafePointer<Float>, count n: Int) -> Float {
        var mv = FloatVector(repeating: -.infinity)
        var j = 0
        while j + 16 <= n { mv = vmax(mv, load(row + j)); j += 16 }
        var m = horizontalMax(mv)
        while j < n { m = max(m, row[j]); j += 1 }
        return m
    }

    /// `row[j] = e^(row[j] − shift)` for j < count, zeros from there to `width`; returns the sum.
    @inline(__always)
    static func exponentiate(_ row: UnsafeMutablePointer<Float>, count n: Int, minus shift: Float, width: Int) -> Float {
        let sv = FloatVector(repeating: shift)
        var acc = FloatVector(repeating: 0)
        var j = 0
        while j + 16 <= n { let e = vexp(load(row + j) - sv); store(e, row + j); acc += e; j += 16 }
        if j < n {
            let rest = n - j
            let e = vexp(loadPartial(row + j, rest, fill: 0) - sv).replacing(with: 0, where: Attention.mask(rest))
            storePartial(e, row + j, rest)
            acc += e
        }
        if n < width { (row + n).update(repeating: 0, count: width - n) }
        return horizontalSum(acc)
    }

    @inline(__always) static func scale(_ row: UnsafeMutablePointer<Float>, count n: Int, by factor: Float) {
        let f = FloatVector(repeating: factor)
        var j = 0
        while j + 16 <= n { store(load(row + j) * f, row + j); j += 16 }
        while j < n { row[j] *= factor; j += 1 }
    }

    @inline(__always) static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> Float {
        var acc = FloatVector(repeating: 0)
        var j = 0
        while j + 16 <= n { acc += load(a + j) * load(b + j); j += 16 }
        var s = horizontalSum(acc)
        while j < n { s += a[j] * b[j]; j += 1 }
        return s
    }

    /// `g[j] = p[j]·(g[j] − rowDot)` for j < count (rounded to bf16 if asked), zeros from there to `width`.
    @inline(__always)
    static func softmaxGradient(_ g: UnsafeMutablePointer<Float>, _ p: UnsafePointer<Float>, count n: Int,
                                rowDot: Float, width: Int, bf16: Bool) {
        let d = FloatVector(repeating: rowDot)
        var j = 0
        while j + 16 <= n {
            let x = load(p + j) * (load(g + j) - d)
            store(bf16 ? BFloat16.round(x) : x, g + j)
            j += 16
        }
        while j < n { let x = p[j] * (g[j] - rowDot); g[j] = bf16 ? BFloat16.round(x) : x; j += 1 }
        if n < width { (g + n).update(repeating: 0, count: width - n) }
    }

    /// The weights that multiply v: the probabilities themselves, or, with dropout or bf16, the probabilities
    /// through the dropout mask (index `base + r·T + j`) and rounded to bf16, written into `out`.
    @inline(__always)
    static func valueWeights(_ p: UnsafeMutablePointer<Float>, scratch out: UnsafeMutablePointer<Float>, rows: Int,
                             cols: Int, ld: Int, dropout: DropoutMask?, base: Int, time t: Int,
                             bf16: Bool) -> UnsafePointer<Float> {
        guard dropout != nil || bf16 else { return UnsafePointer(p) }
        for r in 0..<rows {
            let src = p + r * ld, dst = out + r * ld
            if let dropout {
                let scale = dropout.scale, rowBase = base + r * t
                for j in 0..<cols { dst[j] = dropout.keeps(rowBase + j) ? src[j] * scale : 0 }
                if bf16 { BFloat16.roundSerial(out: dst, dst, count: cols) }
            } else {
                BFloat16.roundSerial(out: dst, src, count: cols)
            }
        }
        return UnsafePointer(out)
    }
}
