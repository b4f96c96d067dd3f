import Compute
import Foundation
import Kernels
import XCTest

/// The flash-style kernel against the double-precision reference, finite differences, and the materialized kernel.
final class FusedAttentionTests: XCTestCase {
    struct Run {
        var out: [Float], lse: [Float], dqkv: [Float]
    }

    /// Forward and backward of the fused kernel with a given upstream gradient.
    func fused(_ qkv: [Float], _ g: [Float], _ s: Attention.Shape, tiles: FusedAttention.Tiles, dropout: DropoutMask?,
               threads: Int = 2, bf16: Bool = false, native: Bool = false) -> Run {
        let pool = ThreadPool(threads: threads)
        let n = qkv.count
        var arrays = [qkv, g, [Float](repeating: .nan, count: s.batch * s.time * s.channels),
                      [Float](repeating: .nan, count: s.batch * s.heads * s.time), [Float](repeating: .nan, count: n),
                      [Float](repeating: .nan, count: threads * FusedAttention.scratchPerThread(tiles: tiles))]
        // Native products read bf16 copies of q, k, v and dout (already bf16 values here) and per-thread tiles
        // (filled with a NaN pattern, so that reading a tile element no tile ever wrote shows).
        var qkvBits = qkv.map(BFloat16.bits), gBits = g.map(BFloat16.bits)
        var tileBits = [UInt16](repeating: 0x7FC1, count: threads * FusedAttention.halfScratchPerThread(tiles: tiles))
        withPointers(&arrays) { p in
            qkvBits.withUnsafeMutableBufferPointer { qb in gBits.withUnsafeMutableBufferPointer { gb in
                tileBits.withUnsafeMutableBufferPointer { tb in
                    let operands = native ? FusedAttention.NativeBF16(qkv: qb.baseAddress!, dout: gb.baseAddress!,
                                                                      tiles: tb.baseAddress!) : nil
                    FusedAttention.forward(pool, out: p[2], lse: p[3], qkv: p[0], shape: s, tiles: tiles, scratch: p[5],
                                           dropout: dropout, bf16Inputs: bf16 || native, native: operands)
                    FusedAttention.backward(pool, dqkv: p[4], dout: p[1], out: p[2], lse: p[3], qkv: p[0], shape: s,
                                            tiles: tiles, scratch: p[5], dropout: dropout, bf16Inputs: bf16 || native,
                                            native: operands)
                }
            }}
        }
        return Run(out: arrays[2], lse: arrays[3], dqkv: arrays[4])
    }

    func materialized(_ qkv: [Float], _ g: [Float], _ s: Attention.Shape, dropout: DropoutMask?) -> Run {
        let pool = ThreadPool(threads: 2)
        var arrays = [qkv, g, [Float](repeating: 0, count: s.batch * s.time * s.channels),
                      [Float](repeating: 0, count: s.batch * s.heads * s.time * s.time), [Float](repeating: .nan, count: qkv.count),
                      [Float](repeating: 0, count: 2 * Attention.scratchPerThread(time: s.time, dropout: dropout != nil))]
        withPointers(&arrays) { p in
            Attention.forward(pool, out: p[2], att: p[3], qkv: p[0], shape: s, scratch: p[5], dropout: dropout)
            Attention.backward(pool, dqkv: p[4], dout: p[1], att: p[3], qkv: p[0], shape: s, scratch: p[5], dropout: dropout)
        }
        return Run(out: arrays[2], lse: [], dqkv: arrays[4])
    }

    /// Log-sum-exp of each row's scaled causal scores, in double precision.
    func referenceLSE(_ qkv: [Double], _ s: Attention.Shape) -> [Double] {
        let t = s.time, c = s.channels, hs = s.headSize
        var lse: [Double] = []
        for b in 0..<s.batch { for h in 0..<s.heads { for i in 0..<t {
            var scores = [Double](repeating: 0, count: i + 1)
            for j in 0...i {
                var dot = 0.0
                for d in 0..<hs {
                    let q: Double = qkv[(b * t + i) * 3 * c + h * hs + d]
                    let k: Double = qkv[(b * t + j) * 3 * c + c + h * hs + d]
                    dot += q * k
                }
                scores[j] = dot / Double(hs).squareRoot()
            }
            let m = scores.max()!
            lse.append(m + log(scores.map { exp($0 - m) }.reduce(0, +)))
        } } }
        return lse
    }

    func checkAgainstFiniteDifferences(_ s: Attention.Shape, tiles: FusedAttention.Tiles, dropout: DropoutMask?,
                                       sampled: Int? = nil, threads: Int = 2) {
        var random = TestRandom(UInt64(s.time * 17 + s.channels))
        let qkv = random.floats(s.batch * s.time * 3 * s.channels), g = random.floats(s.batch * s.time * s.channels)
        let run = fused(qkv, g, s, tiles: tiles, dropout: dropout, threads: threads)
        let expected = AttentionTests.reference(qkv.doubles, s, dropout: dropout)
        for i in 0..<expected.count { XCTAssertEqual(Double(run.out[i]), expected[i], accuracy: 2e-5, "out[\(i)]") }
        let lse = referenceLSE(qkv.doubles, s)
        for i in 0..<lse.count { XCTAssertEqual(Double(run.lse[i]), lse[i], accuracy: 2e-5, "lse[\(i)]") }
        var indices: [Int]? = nil
        if let sampled {
            var r = Xoshiro256(seed: 7)
            indices = (0..<sampled).map { _ in Int(r.next(below: UInt64(qkv.count))) }
        }
        let numeric = numericalGradient(qkv.doubles, indices: indices) {
            zip(AttentionTests.reference($0, s, dropout: dropout), g.doubles).map(*).reduce(0, +)
        }
        assertGradientsMatch(run.dqkv, numeric, "fused dqkv T=\(s.time) tiles \(tiles) dropout=\(dropout != nil)")
    }

    func testOneTileAgainstFiniteDifferences() {
        checkAgainstFiniteDifferences(.init(batch: 2, time: 7, channels: 8, heads: 2), tiles: .standard, dropout: nil)
        checkAgainstFiniteDifferences(.init(batch: 1, time: 20, channels: 32, heads: 2), tiles: .standard, dropout: nil, threads: 1)
    }

    func testOnlineSoftmaxOverManyTilesAgainstFiniteDifferences() {
        // Key tiles narrower than query tiles (rows that see nothing of a tile), wider ones, and ragged last tiles:
        // the running maximum and sum are rescaled across tiles.
        let s = Attention.Shape(batch: 2, time: 11, channels: 8, heads: 2)
        checkAgainstFiniteDifferences(s, tiles: .init(queries: 4, keys: 3), dropout: nil)
        checkAgainstFiniteDifferences(s, tiles: .init(queries: 3, keys: 5), dropout: nil)
        checkAgainstFiniteDifferences(s, tiles: .init(queries: 1, keys: 1), dropout: nil, threads: 3)
    }

    func testDropoutAgainstFiniteDifferences() {
        let s = Attention.Shape(batch: 2, time: 9, channels: 8, heads: 2)
        checkAgainstFiniteDifferences(s, tiles: .standard, dropout: DropoutMask(key: 42, probability: 0.3))
        checkAgainstFiniteDifferences(s, tiles: .init(queries: 4, keys: 2), dropout: DropoutMask(key: 43, probability: 0.5))
    }

    func testLongSequenceAgainstFiniteDifferences() {
        // T = 300 > 256: the standard tiles stream keys through the online softmax.
        checkAgainstFiniteDifferences(.init(batch: 1, time: 300, channels: 4, heads: 2), tiles: .standard, dropout: nil,
                                      sampled: 120)
    }

    /// Both kernels compute the same function: outputs and gradients agree to float32 rounding (sums of at most T
    /// terms of size ≤ 1 in different orders: a few 1e-6).
    func testAgreesWithTheMaterializedKernel() {
        for (s, tiles, dropout) in [
            (Attention.Shape(batch: 2, time: 150, channels: 48, heads: 3), FusedAttention.Tiles.standard, DropoutMask?.none),
            (Attention.Shape(batch: 2, time: 150, channels: 48, heads: 3), FusedAttention.Tiles(queries: 32, keys: 48), nil),
            (Attention.Shape(batch: 1, time: 70, channels: 32, heads: 2), FusedAttention.Tiles(queries: 16, keys: 24),
             DropoutMask(key: 9, probability: 0.2)),
        ] {
            var random = TestRandom(11)
            let qkv = random.floats(s.batch * s.time * 3 * s.channels), g = random.floats(s.batch * s.time * s.channels)
            let a = fused(qkv, g, s, tiles: tiles, dropout: dropout), b = materialized(qkv, g, s, dropout: dropout)
            for i in 0..<a.out.count { XCTAssertEqual(a.out[i], b.out[i], accuracy: 1e-5, "out[\(i)] \(tiles)") }
            let scale = b.dqkv.map(abs).max()!
            for i in 0..<a.dqkv.count { XCTAssertEqual(a.dqkv[i], b.dqkv[i], accuracy: 1e-5 * scale, "dqkv[\(i)] \(tiles)") }
        }
    }

    func testSameThreadCountIsBitIdentical() {
        let s = Attention.Shape(batch: 3, time: 40, channels: 16, heads: 2)
        var random = TestRandom(3)
        let qkv = random.floats(s.batch * s.time * 3 * s.channels), g = random.floats(s.batch * s.time * s.channels)
        let tiles = FusedAttention.Tiles(queries: 16, keys: 16)
        let a = fused(qkv, g, s, tiles: tiles, dropout: nil, threads: 2)
        let b = fused(qkv, g, s, tiles: tiles, dropout: nil, threads: 2)
        let c = fused(qkv, g, s, tiles: tiles, dropout: nil, threads: 1)
        XCTAssertEqual(a.out, b.out)
        XCTAssertEqual(a.dqkv, b.dqkv)
        // A (batch, head) pair is computed the same way whichever thread runs it.
        XCTAssertEqual(a.dqkv, c.dqkv)
    }

    /// bf16 attention against fp32 attention on the same bf16-representable q, k, v and dout.
    ///
    /// First-order error analysis, u = 2⁻⁸ (bf16's unit roundoff): a score is a dot product of exactly
    /// representable operands, so it is the fp32 score (no new error); each probability is rounded (relative u)
    /// before multiplying v, so |Δout_i| ≤ u·Σ_j p_ij·|v_j| + fp32 noise. In the backward pass, the rounded
    /// probabilities perturb dv by ≤ u·Σ_i p_ij|dout_i|, and the rounded score gradient dS (relative u, plus the
    /// D_i it was made from, computed from the rounded output) perturbs dq and dk by a few u of their own
    /// magnitude: asserted as a relative norm error ≤ 4u.
    func testBF16AgainstFP32WithinTheRoundingBound() {
        let s = Attention.Shape(batch: 2, time: 80, channels: 32, heads: 2)
        var random = TestRandom(21)
        let qkv = random.floats(s.batch * s.time * 3 * s.channels).map(BFloat16.round)
        let g = random.floats(s.batch * s.time * s.channels).map(BFloat16.round)
        let tiles = FusedAttention.Tiles(queries: 32, keys: 32)
        let exact = fused(qkv, g, s, tiles: tiles, dropout: nil)
        let bf16 = fused(qkv, g, s, tiles: tiles, dropout: nil, bf16: true)
        let u = Double(BFloat16.unitRoundoff), t = s.time, c = s.channels, hs = s.headSize
        // Σ_j p_ij |v_j| per output element, with p from the double reference's log-sum-exp.
        let lse = referenceLSE(qkv.doubles, s)
        var worst = 0.0
        for b in 0..<s.batch { for h in 0..<s.heads { for i in 0..<t {
            let l = lse[(b * s.heads + h) * t + i]
            for d in 0..<hs {
                var bound = 0.0
                for j in 0...i {
                    var score = 0.0
                    for e in 0..<hs {
                        let q = Double(qkv[(b * t + i) * 3 * c + h * hs + e])
                        let k = Double(qkv[(b * t + j) * 3 * c + c + h * hs + e])
                        score += q * k
                    }
                    let value = Double(qkv[(b * t + j) * 3 * c + 2 * c + h * hs + d])
                    bound += exp(score / Double(hs).squareRoot() - l) * abs(value)
                }
                let index = (b * t + i) * c + h * hs + d
                let error = abs(Double(bf16.out[index]) - Double(exact.out[index]))
                worst = max(worst, error / (u * bound + 1e-5))
                XCTAssertLessThanOrEqual(error, u * bound + 1e-5, "out[\(index)]")
            }
        } } }
        XCTAssertGreaterThan(worst, 0.01, "bf16 rounding should be visible in the output")
        func norm(_ x: [Float]) -> Double { x.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot() }
        let difference = zip(bf16.dqkv, exact.dqkv).map { $0 - $1 }
        let relative = norm(difference) / norm(exact.dqkv)
        XCTAssertLessThanOrEqual(relative, 4 * u)
        XCTAssertGreaterThan(relative, 0, "bf16 rounding should be visible in the gradients")
    }

    /// Native bf16 products (oneDNN) against the exact emulation on the same bf16 operands, over one tile, many
    /// tiles with ragged edges and the online softmax, dropout, and both thread counts.
    ///
    /// Both multiply the same bf16 values exactly (oneDNN's kernels flush denormals, far below these values) and
    /// accumulate in fp32; only the order of each sum differs (each within (k−1)·2⁻²⁴·Σ|terms| of the exact sum,
    /// Higham eq. 3.5). The kernel then rounds the probabilities to bf16, and one that lands within that difference
    /// of a rounding tie rounds the other way: one bf16 ulp, at most 2u of it (u = 2⁻⁸). So each output element is
    /// within 2u·Σ_j p_ij·|v_j| (every weight that multiplies v flipped, the worst case) plus fp32 noise, asserted
    /// element by element. The gradients go through dS = p·(dp − D) too, whose subtraction can cancel, so a small
    /// dS can move by several of its ulps: no elementwise bound is derived for them. Flips need a value within
    /// about k·2⁻²⁴ (relative) of a tie, about one rounding in 2¹⁶/k, so the gradients should agree far better
    /// than u in norm: asserted ≤ u/4, an empirical margin (measured 2e-5u to 2e-4u on these shapes). oneDNN must
    /// have run every product: 2 per (batch, head) pair, query tile and visible key tile forward, 5 backward.
    func testNativeBF16ProductsAgreeWithTheEmulation() throws {
        try XCTSkipUnless(BF16Matmul.isAvailable, "\(CPU.modelName) has no native bf16 products")
        let u = Double(BFloat16.unitRoundoff)
        for (s, tiles, dropout, threads) in [
            (Attention.Shape(batch: 2, time: 150, channels: 64, heads: 2), FusedAttention.Tiles.standard, DropoutMask?.none, 2),
            (Attention.Shape(batch: 2, time: 150, channels: 48, heads: 3), FusedAttention.Tiles(queries: 32, keys: 48), nil, 1),
            (Attention.Shape(batch: 1, time: 70, channels: 32, heads: 2), FusedAttention.Tiles(queries: 16, keys: 24),
             DropoutMask(key: 9, probability: 0.2), 2),
        ] {
            var random = TestRandom(31)
            let qkv = random.floats(s.batch * s.time * 3 * s.channels, scale: 2).map(BFloat16.round)
            let g = random.floats(s.batch * s.time * s.channels).map(BFloat16.round)
            let before = BF16Matmul.executionCount
            let native = fused(qkv, g, s, tiles: tiles, dropout: dropout, threads: threads, native: true)
            var tilePairs = 0
            for r0 in stride(from: 0, to: s.time, by: tiles.queries) {
                tilePairs += (min(s.time, r0 + tiles.queries) + tiles.keys - 1) / tiles.keys
            }
            XCTAssertEqual(BF16Matmul.executionCount - before, 7 * s.batch * s.heads * tilePairs,
                           "every product through oneDNN")
            let emulated = fused(qkv, g, s, tiles: tiles, dropout: dropout, threads: threads, bf16: true)
            let label = "T \(s.time) C \(s.channels) H \(s.heads) \(tiles) dropout \(dropout != nil)"
            // Σ_j p_ij·|v_j| from the emulated run's log-sum-exp (its scores are exact products of bf16 values).
            let t = s.time, c = s.channels, hs = s.headSize, keep = 1 / (1 - (dropout?.probability ?? 0))
            var identical = true
            for b in 0..<s.batch { for h in 0..<s.heads { for i in 0..<t {
                let l = Double(emulated.lse[(b * s.heads + h) * t + i])
                var weights = [Double](repeating: 0, count: i + 1)
                for j in 0...i {
                    var score = 0.0
                    for e in 0..<hs {
                        score += Double(qkv[(b * t + i) * 3 * c + h * hs + e]) * Double(qkv[(b * t + j) * 3 * c + c + h * hs + e])
                    }
                    weights[j] = exp(score / Double(hs).squareRoot() - l) * Double(keep)
                }
                for d in 0..<hs {
                    var bound = 0.0
                    for j in 0...i { bound += weights[j] * abs(Double(qkv[(b * t + j) * 3 * c + 2 * c + h * hs + d])) }
                    let index = (b * t + i) * c + h * hs + d
                    let error = abs(Double(native.out[index]) - Double(emulated.out[index]))
                    XCTAssertLessThanOrEqual(error, 2 * u * bound + 1e-5, "\(label) out[\(index)]")
                    if native.out[index] != emulated.out[index] { identical = false }
                }
                let lseError = abs(Double(native.lse[(b * s.heads + h) * t + i]) - l)
                XCTAssertLessThanOrEqual(lseError, 1e-5 * max(1, abs(l)), "\(label) lse")
            } } }
            XCTAssertFalse(identical, "\(label): bit-identical to the emulation, so oneDNN's sums were not used")
            func norm(_ x: [Float]) -> Double { x.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot() }
            let relative = norm(zip(native.dqkv, emulated.dqkv).map { $0 - $1 }) / norm(emulated.dqkv)
            XCTAssertLessThanOrEqual(relative, u / 4, "\(label) dqkv")
            XCTAssertFalse(native.dqkv.contains { !$0.isFinite }, "\(label) dqkv")
        }
    }
}

final class BFloat16Tests: XCTestCase {
    func testRoundToNearestEven() {
        // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: ties go to the even significand (1).
        XCTAssertEqual(BFloat16.round(1 + 0x1p-8), 1)
        // 1 + 3·2⁻⁸ is halfway between 1 + 2⁻⁷ and 1 + 2⁻⁶: ties go to even (1 + 2⁻⁶).
        XCTAssertEqual(BFloat16.round(1 + 3 * 0x1p-8), 1 + 0x1p-6)
        XCTAssertEqual(BFloat16.round(1 + 0x1p-8 + 0x1p-20), 1 + 0x1p-7)
        XCTAssertEqual(BFloat16.round(-(1 + 0x1p-8 + 0x1p-20)), -(1 + 0x1p-7))
        XCTAssertEqual(BFloat16.round(Float.greatestFiniteMagnitude), .infinity)
        XCTAssertEqual(BFloat16.round(.infinity), .infinity)
        XCTAssertTrue(BFloat16.round(.nan).isNaN)
        XCTAssertEqual(BFloat16.round(3.140625), 3.140625)
        // Vector and scalar agree, and the result has 8 significant bits.
        var random = TestRandom(1)
        let x = random.floats(1000, scale: 100)
        var arrays = [x, [Float](repeating: 0, count: 1000)]
        withPointers(&arrays) { p in BFloat16.round(ThreadPool(threads: 2), out: p[1], p[0], count: 1000) }
        for i in 0..<1000 {
            XCTAssertEqual(arrays[1][i], BFloat16.round(x[i]))
            XCTAssertEqual(arrays[1][i].bitPattern & 0xFFFF, 0)
            XCTAssertLessThanOrEqual(abs(arrays[1][i] - x[i]), abs(x[i]) * BFloat16.unitRoundoff)
        }
    }

    /// A bf16-input product against the exact product: |C̃ − C| ≤ (2u + u² + k·2⁻²⁴)·(|A||B|) elementwise, u = 2⁻⁸
    /// (each operand's rounding, then fp32 accumulation over k terms), and the emulation is exactly the fp32
    /// sgemm of the rounded operands.
    func testEmulatedProductWithinTheBound() {
        let m = 13, n = 17, k = 300
        var random = TestRandom(2)
        let a = random.floats(m * k), b = random.floats(k * n)
        let ra = a.map(BFloat16.round), rb = b.map(BFloat16.round)
        var arrays = [ra, rb, [Float](repeating: 0, count: m * n)]
        withPointers(&arrays) { p in
            Matmul.gemm(ThreadPool(threads: 1), transA: false, transB: false, m: m, n: n, k: k, a: p[0], lda: k,
                        b: p[1], ldb: n, beta: 0, c: p[2], ldc: n)
        }
        let u = Double(BFloat16.unitRoundoff)
        let factor = 2 * u + u * u + Double(k) * 0x1p-24
        var worst = 0.0
        for i in 0..<m { for j in 0..<n {
            var exact = 0.0, magnitude = 0.0, roundedExact = 0.0
            for l in 0..<k {
                exact += Double(a[i * k + l]) * Double(b[l * n + j])
                roundedExact += Double(ra[i * k + l]) * Double(rb[l * n + j])
                magnitude += abs(Double(a[i * k + l]) * Double(b[l * n + j]))
            }
            let c = Double(arrays[2][i * n + j])
            XCTAssertLessThanOrEqual(abs(c - exact), factor * magnitude)
            // Only the summation's rounding separates the emulation from the exact product of the rounded operands.
            XCTAssertLessThanOrEqual(abs(c - roundedExact), Double(k) * 0x1p-24 * magnitude)
            worst = max(worst, abs(c - exact) / magnitude)
        } }
        XCTAssertGreaterThan(worst, 1e-4, "the inputs' rounding should show")
    }
}
