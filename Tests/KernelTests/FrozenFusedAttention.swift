import Compute
import Foundation
import Kernels

// The fused attention kernel as it was before grouped-query attention (commit 4e8eeba's
// Sources/Kernels/FusedAttention.swift, forward and backward bodies unchanged; the helpers it used from the Kernels
// module copied below, operation for operation). GroupedQueryAttentionTests checks that today's kernel with
// n_kv_head == n_head gives the same bits as this one: grouping must not change the arithmetic of multi-head
// attention. Only the test uses it.

@inline(__always) private func load(_ p: UnsafePointer<Float>) -> FloatVector {
    UnsafeRawPointer(p).loadUnaligned(as: FloatVector.self)
}

@inline(__always) private func load(_ p: UnsafeMutablePointer<Float>) -> FloatVector {
    UnsafeRawPointer(p).loadUnaligned(as: FloatVector.self)
}

@inline(__always) private func store(_ v: FloatVector, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: FloatVector.self)
}

@inline(__always) private func loadPartial(_ p: UnsafePointer<Float>, _ count: Int, fill: Float) -> FloatVector {
    var v = FloatVector(repeating: fill)
    for i in 0..<count { v[i] = p[i] }
    return v
}

@inline(__always) private func storePartial(_ v: FloatVector, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
    for i in 0..<count { p[i] = v[i] }
}

@inline(__always) private func horizontalSum(_ v: FloatVector) -> Float {
    let a = v.lowHalf + v.highHalf
    let b = a.lowHalf + a.highHalf
    let c = b.lowHalf + b.highHalf
    return c[0] + c[1]
}

@inline(__always) private func horizontalMax(_ v: FloatVector) -> Float {
    let a = vmax(FloatVector(lowHalf: v.highHalf, highHalf: v.lowHalf), v)
    var m = a[0]
    for i in 1..<8 { m = Swift.max(m, a[i]) }
    return m
}

@inline(__always) private func vmax(_ a: FloatVector, _ b: FloatVector) -> FloatVector { a.replacing(with: b, where: a .< b) }

@inline(__always) private func frozenMask(_ count: Int) -> SIMDMask<SIMD16<Int32>> {
    SIMD16<Int32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) .>= SIMD16<Int32>(repeating: Int32(count))
}

@inline(__always) private func frozenRoundSerial(out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, count n: Int) {
    var j = 0
    while j + 16 <= n { store(BFloat16.round(load(inp + j)), out + j); j += 16 }
    while j < n { out[j] = BFloat16.round(inp[j]); j += 1 }
}

@inline(__always) private func frozenConvertSerial(bits: UnsafeMutablePointer<UInt16>, rounded: UnsafeMutablePointer<Float>?,
                                                   _ inp: UnsafePointer<Float>, count n: Int) {
    for j in 0..<n {
        let r = BFloat16.round(inp[j])
        rounded?[j] = r
        bits[j] = UInt16(truncatingIfNeeded: r.bitPattern >> 16)
    }
}

enum FrozenFusedAttention {
    /// bf16 elements of per-thread scratch for native products: the weights tile and the score-gradient tile.
    static func halfScratchPerThread(tiles: FusedAttention.Tiles) -> Int { 2 * tiles.queries * tiles.keys }

    /// Floats of per-thread scratch: three query×key tiles (scores or probabilities, their gradient, dropped or
    /// rounded weights) and two numbers per query row.
    static func scratchPerThread(tiles: FusedAttention.Tiles) -> Int { 3 * tiles.queries * tiles.keys + 2 * tiles.queries }

    /// `out` [B, T, C] receives the heads' outputs side by side, `lse` [B, H, T] each row's log-sum-exp of its
    /// scaled scores (what the backward pass needs).
    static func forward(_ pool: ThreadPool, out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                               qkv: UnsafePointer<Float>, shape s: Attention.Shape, tiles: FusedAttention.Tiles = .standard,
                               scratch: UnsafeMutablePointer<Float>, dropout: DropoutMask?, bf16Inputs: Bool = false,
                               native: FusedAttention.NativeBF16? = nil) {
        precondition(native == nil || bf16Inputs, "FusedAttention: native bf16 products need bf16Inputs")
        let perThread = scratchPerThread(tiles: tiles), halfPerThread = halfScratchPerThread(tiles: tiles)
        pool.parallelChunks(s.batch * s.heads, (out, lse, qkv, s, tiles, scratch, dropout, bf16Inputs, perThread, native, halfPerThread)) { a, thread, pairs in
            let (out, lse, qkv, s, tiles, scratch, dropout, bf16Inputs, perThread, native, halfPerThread) = a
            let t = s.time, c = s.channels, hs = s.headSize, c3 = 3 * c
            let br = tiles.queries, bc = tiles.keys
            let scores = scratch + thread * perThread
            let weightsTile = scores + 2 * br * bc
            let rowMax = weightsTile + br * bc, rowSum = rowMax + br
            let weightBits = native.map { $0.tiles + thread * halfPerThread }
            for pair in pairs {
                let b = pair / s.heads, h = pair % s.heads
                let offset = b * t * c3 + h * hs
                let q = qkv + offset, k = q + c, v = q + 2 * c
                let qh = native.map { $0.qkv + offset }, kh = qh.map { $0 + c }, vh = qh.map { $0 + 2 * c }
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
    static func backward(_ pool: ThreadPool, dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                out: UnsafePointer<Float>, lse: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                                shape s: Attention.Shape, tiles: FusedAttention.Tiles = .standard,
                                scratch: UnsafeMutablePointer<Float>, dropout: DropoutMask?, bf16Inputs: Bool = false,
                                native: FusedAttention.NativeBF16? = nil) {
        precondition(native == nil || (bf16Inputs && native!.dout != nil),
                     "FusedAttention: native bf16 products need bf16Inputs and dout's bf16 copy")
        let perThread = scratchPerThread(tiles: tiles), halfPerThread = halfScratchPerThread(tiles: tiles)
        pool.parallelChunks(s.batch * s.heads, (dqkv, dout, out, lse, qkv, s, tiles, scratch, dropout, bf16Inputs, perThread, native, halfPerThread)) { a, thread, pairs in
            let (dqkv, dout, out, lse, qkv, s, tiles, scratch, dropout, bf16Inputs, perThread, native, halfPerThread) = a
            let t = s.time, c = s.channels, hs = s.headSize, c3 = 3 * c
            let br = tiles.queries, bc = tiles.keys
            let probabilities = scratch + thread * perThread
            let dScores = probabilities + br * bc
            let weightsTile = dScores + br * bc
            let rowDot = weightsTile + br * bc
            let weightBits = native.map { $0.tiles + thread * halfPerThread }
            let dScoreBits = weightBits.map { $0 + br * bc }
            for pair in pairs {
                let b = pair / s.heads, h = pair % s.heads
                let offset = b * t * c3 + h * hs
                let q = qkv + offset, k = q + c, v = q + 2 * c
                let qh = native.map { $0.qkv + offset }, kh = qh.map { $0 + c }, vh = qh.map { $0 + 2 * c }
                let dq = dqkv + offset, dk = dq + c, dv = dq + 2 * c
                let dy = dout + b * t * c + h * hs, y = out + b * t * c + h * hs
                let dyh = native.map { $0.dout! + b * t * c + h * hs }
                let rowLSE = lse + pair * t
                // dk and dv collect from every query tile.
                for j in 0..<t {
                    (dk + j * c3).update(repeating: 0, count: hs)
                    (dv + j * c3).update(repeating: 0, count: hs)
                }
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
        for r in 0..<rows { frozenConvertSerial(bits: bits + r * ld, rounded: nil, tile + r * ld, count: cols) }
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
            let e = vexp(loadPartial(row + j, rest, fill: 0) - sv).replacing(with: 0, where: frozenMask(rest))
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
                if bf16 { frozenRoundSerial(out: dst, dst, count: cols) }
            } else {
                frozenRoundSerial(out: dst, src, count: cols)
            }
        }
        return UnsafePointer(out)
    }
}
