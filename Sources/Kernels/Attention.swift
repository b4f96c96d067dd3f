import Compute

/// Causal multi-head self-attention on a fused qkv activation.
///
/// `qkv` is [B, T, 3C]: for each position the C query features, then the C keys, then the C values; head h owns
/// features h·hs..<(h+1)·hs of each. Every product is an sgemm that reads q, k and v in place through row strides
/// (3C), one (batch, head) pair per task, pairs split over the threads. Causality is used to skip work: rows are
/// taken in blocks, and a block of rows only multiplies the keys it can see.
public enum Attention {
    /// With grouped-query attention (`kvHeads` < `heads`, Ainslie et al. 2023), a row of the fused qkv
    /// activation is [queries: heads·hs | keys: kvHeads·hs | values: kvHeads·hs], and query head h reads key/value
    /// head h / (heads/kvHeads) (Hugging Face's `repeat_kv` order). Only `FusedAttention` takes kvHeads < heads.
    public struct Shape: Sendable {
        public var batch: Int
        public var time: Int
        public var channels: Int
        public var heads: Int
        /// Key/value heads: `heads` (multi-head attention) or a divisor of it.
        public var kvHeads: Int

        public init(batch: Int, time: Int, channels: Int, heads: Int, kvHeads: Int? = nil) {
            let kvHeads = kvHeads ?? heads
            precondition(kvHeads >= 1 && heads % kvHeads == 0,
                         "Attention.Shape: n_kv_head (\(kvHeads)) must divide n_head (\(heads))")
            self.batch = batch
            self.time = time
            self.channels = channels
            self.heads = heads
            self.kvHeads = kvHeads
        }

        public var headSize: Int { channels / heads }
        /// Features of the keys (and of the values) of one position: kvHeads·hs.
        public var kvChannels: Int { kvHeads * headSize }
        /// Floats of one row of the fused qkv activation: C + 2·kvHeads·hs (3C without grouping).
        public var qkvStride: Int { channels + 2 * kvChannels }
        /// Query heads that share one key/value head.
        public var groupSize: Int { heads / kvHeads }
        public var scale: Float { 1 / Float(headSize).squareRoot() }
        /// Rows per causal block: the whole sequence when it is short, else 64.
        var block: Int { time <= 128 ? time : 64 }
    }

    /// Floats of per-thread scratch: a T×T matrix for the backward pass, and one more when dropout is on.
    public static func scratchPerThread(time: Int, dropout: Bool) -> Int { time * time * (dropout ? 2 : 1) }

    /// `att` [B, H, T, T] receives the attention probabilities (zero above the diagonal), `out` [B, T, C] the
    /// heads' outputs side by side. With dropout, the probabilities are dropped before they weight the values
    /// (as `nn.Dropout` on the attention matrix does); `att` keeps them undropped for the backward pass.
    public static func forward(_ pool: ThreadPool, out: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>,
                               qkv: UnsafePointer<Float>, shape s: Shape, scratch: UnsafeMutablePointer<Float>,
                               dropout: DropoutMask?) {
        precondition(s.kvHeads == s.heads, "Attention: grouped-query attention (n_kv_head < n_head) runs in FusedAttention")
        let perThread = scratchPerThread(time: s.time, dropout: dropout != nil)
        pool.parallelChunks(s.batch * s.heads, (out, att, qkv, s, scratch, dropout, perThread)) { a, thread, pairs in
            let (out, att, qkv, s, scratch, dropout, perThread) = a
            let t = s.time, c = s.channels, hs = s.headSize, c3 = 3 * c, block = s.block
            let dropped = scratch + thread * perThread
            for pair in pairs {
                let b = pair / s.heads, h = pair % s.heads
                let q = qkv + b * t * c3 + h * hs, k = q + c, v = q + 2 * c
                let a = att + pair * t * t
                var r0 = 0
                while r0 < t {
                    let r1 = min(t, r0 + block)
                    Matmul.serial(transA: false, transB: true, m: r1 - r0, n: r1, k: hs, alpha: s.scale,
                                  a: q + r0 * c3, lda: c3, b: k, ldb: c3, beta: 0, c: a + r0 * t, ldc: t)
                    r0 = r1
                }
                for i in 0..<t { softmaxCausalRow(a + i * t, row: i, time: t) }
                var weights = UnsafePointer(a)
                if let dropout {
                    dropout.applySerial(out: dropped, a, count: t * t, offset: pair * t * t)
                    weights = UnsafePointer(dropped)
                }
                r0 = 0
                while r0 < t {
                    let r1 = min(t, r0 + block)
                    Matmul.serial(transA: false, transB: false, m: r1 - r0, n: hs, k: r1,
                                  a: weights + r0 * t, lda: t, b: v, ldb: c3, beta: 0,
                                  c: out + (b * t + r0) * c + h * hs, ldc: c)
                    r0 = r1
                }
            }
        }
    }

    /// Writes `dqkv` [B, T, 3C] (every element: it need not be cleared) from `dout` [B, T, C].
    public static func backward(_ pool: ThreadPool, dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                att: UnsafePointer<Float>, qkv: UnsafePointer<Float>, shape s: Shape,
                                scratch: UnsafeMutablePointer<Float>, dropout: DropoutMask?) {
        precondition(s.kvHeads == s.heads, "Attention: grouped-query attention (n_kv_head < n_head) runs in FusedAttention")
        let perThread = scratchPerThread(time: s.time, dropout: dropout != nil)
        pool.parallelChunks(s.batch * s.heads, (dqkv, dout, att, qkv, s, scratch, dropout, perThread)) { a, thread, pairs in
            let (dqkv, dout, att, qkv, s, scratch, dropout, perThread) = a
            let t = s.time, c = s.channels, hs = s.headSize, c3 = 3 * c, block = s.block
            let datt = scratch + thread * perThread
            let dropped = datt + t * t
            for pair in pairs {
                let b = pair / s.heads, h = pair % s.heads
                let q = qkv + b * t * c3 + h * hs, k = q + c, v = q + 2 * c
                let dq = dqkv + b * t * c3 + h * hs, dk = dq + c, dv = dq + 2 * c
                let dy = dout + b * t * c + h * hs
                let a = att + pair * t * t
                var weights = a
                if let dropout {
                    dropout.applySerial(out: dropped, a, count: t * t, offset: pair * t * t)
                    weights = UnsafePointer(dropped)
                }
                // datt = dy · vᵀ (only the visible keys of each row block are needed).
                var r0 = 0
                while r0 < t {
                    let r1 = min(t, r0 + block)
                    Matmul.serial(transA: false, transB: true, m: r1 - r0, n: r1, k: hs,
                                  a: dy + r0 * c, lda: c, b: v, ldb: c3, beta: 0, c: datt + r0 * t, ldc: t)
                    r0 = r1
                }
                // dv = weightsᵀ · dy: value j receives from the queries i ≥ j.
                var c0 = 0
                while c0 < t {
                    let c1 = min(t, c0 + block)
                    Matmul.serial(transA: true, transB: false, m: c1 - c0, n: hs, k: t - c0,
                                  a: weights + c0 * t + c0, lda: t, b: dy + c0 * c, ldb: c, beta: 0,
                                  c: dv + c0 * c3, ldc: c3)
                    c0 = c1
                }
                // Through dropout, then the softmax: dpre = p ⊙ (datt − Σ p ⊙ datt), in place.
                for i in 0..<t {
                    let row = datt + i * t
                    if let dropout {
                        let base = pair * t * t + i * t
                        for j in 0...i { row[j] = dropout.keeps(base + j) ? row[j] * dropout.scale : 0 }
                    }
                    softmaxBackwardCausalRow(row, probabilities: a + i * t, row: i, time: t)
                }
                // dq = scale · dpre · k; dk = scale · dpreᵀ · q.
                r0 = 0
                while r0 < t {
                    let r1 = min(t, r0 + block)
                    Matmul.serial(transA: false, transB: false, m: r1 - r0, n: hs, k: r1, alpha: s.scale,
                                  a: datt + r0 * t, lda: t, b: k, ldb: c3, beta: 0, c: dq + r0 * c3, ldc: c3)
                    r0 = r1
                }
                c0 = 0
                while c0 < t {
                    let c1 = min(t, c0 + block)
                    Matmul.serial(transA: true, transB: false, m: c1 - c0, n: hs, k: t - c0, alpha: s.scale,
                                  a: datt + c0 * t + c0, lda: t, b: q + c0 * c3, ldb: c3, beta: 0,
                                  c: dk + c0 * c3, ldc: c3)
                    c0 = c1
                }
            }
        }
    }

    /// Softmax of `row[0...i]` in place (the scores of position i over the keys it can see), zeros after it.
    @inline(__always)
    public static func softmaxCausalRow(_ row: UnsafeMutablePointer<Float>, row i: Int, time t: Int) {
        let n = i + 1
        var mv = FloatVector(repeating: -.infinity)
        var j = 0
        while j + 16 <= n { mv = vmax(mv, load(row + j)); j += 16 }
        var m = horizontalMax(mv)
        while j < n { m = max(m, row[j]); j += 1 }
        let mvec = FloatVector(repeating: m)
        var acc = FloatVector(repeating: 0)
        j = 0
        while j + 16 <= n { let e = vexp(load(row + j) - mvec); store(e, row + j); acc += e; j += 16 }
        if j < n {
            let rest = n - j
            let e = vexp(loadPartial(row + j, rest, fill: -.infinity) - mvec)
            storePartial(e, row + j, rest)
            acc += e.replacing(with: 0, where: mask(rest))
        }
        let inv = FloatVector(repeating: 1 / horizontalSum(acc))
        j = 0
        while j + 16 <= n { store(load(row + j) * inv, row + j); j += 16 }
        while j < n { row[j] *= inv[0]; j += 1 }
        if n < t { (row + n).update(repeating: 0, count: t - n) }
    }

    /// Lanes at and after `count` set: used to drop the padding lanes of a partial vector.
    @inline(__always) static func mask(_ count: Int) -> SIMDMask<SIMD16<Int32>> {
        SIMD16<Int32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) .>= SIMD16<Int32>(repeating: Int32(count))
    }

    /// `row[j] = p[j]·(row[j] − Σ_k p[k]·row[k])` for j ≤ i, zeros after.
    @inline(__always)
    static func softmaxBackwardCausalRow(_ row: UnsafeMutablePointer<Float>, probabilities p: UnsafePointer<Float>,
                                         row i: Int, time t: Int) {
        let n = i + 1
        var acc = FloatVector(repeating: 0)
        var j = 0
        while j + 16 <= n { acc += load(p + j) * load(row + j); j += 16 }
        var dot = horizontalSum(acc)
        while j < n { dot += p[j] * row[j]; j += 1 }
        let dv = FloatVector(repeating: dot)
        j = 0
        while j + 16 <= n { store(load(p + j) * (load(row + j) - dv), row + j); j += 16 }
        while j < n { row[j] = p[j] * (row[j] - dot); j += 1 }
        if n < t { (row + n).update(repeating: 0, count: t - n) }
    }
}
