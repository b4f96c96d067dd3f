import Compute
import Foundation
import Kernels
import XCTest

/// Grouped-query attention in the fused kernel: against a double-precision reference and finite differences,
/// against multi-head attention on K/V heads repeated, against the pre-grouping kernel bit for bit when
/// n_kv_head = n_head, and in bf16.
final class GroupedQueryAttentionTests: XCTestCase {
    struct Run {
        var out: [Float], lse: [Float], dqkv: [Float]
    }

    /// Forward and backward of today's fused kernel (or, with `frozen`, of the kernel before grouping).
    static func fused(_ qkv: [Float], _ g: [Float], _ s: Attention.Shape, tiles: FusedAttention.Tiles,
                      dropout: DropoutMask? = nil, threads: Int = 2, bf16: Bool = false, native: Bool = false,
                      frozen: Bool = false) -> Run {
        precondition(qkv.count == s.batch * s.time * s.qkvStride)
        let pool = ThreadPool(threads: threads)
        var arrays = [qkv, g, [Float](repeating: .nan, count: s.batch * s.time * s.channels),
                      [Float](repeating: .nan, count: s.batch * s.heads * s.time), [Float](repeating: .nan, count: qkv.count),
                      [Float](repeating: .nan, count: threads * FusedAttention.scratchPerThread(tiles: tiles))]
        var qkvBits = qkv.map(BFloat16.bits), gBits = g.map(BFloat16.bits)
        var tileBits = [UInt16](repeating: 0x7FC1, count: threads * FusedAttention.halfScratchPerThread(tiles: tiles))
        withPointers(&arrays) { p in
            qkvBits.withUnsafeMutableBufferPointer { qb in gBits.withUnsafeMutableBufferPointer { gb in
                tileBits.withUnsafeMutableBufferPointer { tb in
                    let operands = native ? FusedAttention.NativeBF16(qkv: qb.baseAddress!, dout: gb.baseAddress!,
                                                                      tiles: tb.baseAddress!) : nil
                    if frozen {
                        FrozenFusedAttention.forward(pool, out: p[2], lse: p[3], qkv: p[0], shape: s, tiles: tiles,
                                                     scratch: p[5], dropout: dropout, bf16Inputs: bf16 || native, native: operands)
                        FrozenFusedAttention.backward(pool, dqkv: p[4], dout: p[1], out: p[2], lse: p[3], qkv: p[0], shape: s,
                                                      tiles: tiles, scratch: p[5], dropout: dropout,
                                                      bf16Inputs: bf16 || native, native: operands)
                    } else {
                        FusedAttention.forward(pool, out: p[2], lse: p[3], qkv: p[0], shape: s, tiles: tiles, scratch: p[5],
                                               dropout: dropout, bf16Inputs: bf16 || native, native: operands)
                        FusedAttention.backward(pool, dqkv: p[4], dout: p[1], out: p[2], lse: p[3], qkv: p[0], shape: s,
                                                tiles: tiles, scratch: p[5], dropout: dropout, bf16Inputs: bf16 || native,
                                                native: operands)
                    }
                }
            }}
        }
        return Run(out: arrays[2], lse: arrays[3], dqkv: arrays[4])
    }

    /// Causal grouped-query attention in double precision (query head h uses key/value head h / (H/Hkv)), with an
    /// optional dropout mask on the probabilities (index (b·H + h)·T² + i·T + j, as the kernels use).
    static func reference(_ qkv: [Double], _ s: Attention.Shape, dropout: DropoutMask? = nil) -> (out: [Double], lse: [Double]) {
        let t = s.time, c = s.channels, hs = s.headSize, stride = s.qkvStride, ckv = s.kvChannels
        var out = [Double](repeating: 0, count: s.batch * t * c)
        var lse: [Double] = []
        for b in 0..<s.batch { for h in 0..<s.heads {
            let kv = h / (s.heads / s.kvHeads)
            for i in 0..<t {
                var scores = [Double](repeating: 0, count: i + 1)
                for j in 0...i {
                    var dot = 0.0
                    for d in 0..<hs { dot += qkv[(b * t + i) * stride + h * hs + d] * qkv[(b * t + j) * stride + c + kv * hs + d] }
                    scores[j] = dot / Double(hs).squareRoot()
                }
                let m = scores.max()!
                let e = scores.map { exp($0 - m) }
                let sum = e.reduce(0, +)
                lse.append(m + log(sum))
                for j in 0...i {
                    var p = e[j] / sum
                    if let dropout {
                        p = dropout.keeps(((b * s.heads + h) * t + i) * t + j) ? p * Double(dropout.scale) : 0
                    }
                    for d in 0..<hs {
                        out[(b * t + i) * c + h * hs + d] += p * qkv[(b * t + j) * stride + c + ckv + kv * hs + d]
                    }
                }
            }
        } }
        return (out, lse)
    }

    func checkAgainstFiniteDifferences(_ s: Attention.Shape, tiles: FusedAttention.Tiles, dropout: DropoutMask? = nil,
                                       threads: Int = 2, sampled: Int? = nil) {
        var random = TestRandom(UInt64(s.time * 13 + s.heads * 3 + s.kvHeads))
        let qkv = random.floats(s.batch * s.time * s.qkvStride), g = random.floats(s.batch * s.time * s.channels)
        let run = Self.fused(qkv, g, s, tiles: tiles, dropout: dropout, threads: threads)
        let expected = Self.reference(qkv.doubles, s, dropout: dropout)
        let label = "H \(s.heads) Hkv \(s.kvHeads) T \(s.time) \(tiles) dropout \(dropout != nil)"
        for i in 0..<expected.out.count { XCTAssertEqual(Double(run.out[i]), expected.out[i], accuracy: 2e-5, "\(label) out[\(i)]") }
        for i in 0..<expected.lse.count { XCTAssertEqual(Double(run.lse[i]), expected.lse[i], accuracy: 2e-5, "\(label) lse[\(i)]") }
        var indices: [Int]? = nil
        if let sampled {
            var r = Xoshiro256(seed: 9)
            indices = (0..<sampled).map { _ in Int(r.next(below: UInt64(qkv.count))) }
        }
        let numeric = numericalGradient(qkv.doubles, indices: indices) {
            zip(Self.reference($0, s, dropout: dropout).out, g.doubles).map(*).reduce(0, +)
        }
        assertGradientsMatch(run.dqkv, numeric, "gqa dqkv \(label)")
    }

    func testGroupedAgainstFiniteDifferences() {
        // Two query heads per key/value head; one tile, then many small ragged tiles (online softmax).
        checkAgainstFiniteDifferences(.init(batch: 2, time: 7, channels: 16, heads: 4, kvHeads: 2), tiles: .standard)
        checkAgainstFiniteDifferences(.init(batch: 2, time: 11, channels: 16, heads: 4, kvHeads: 2),
                                      tiles: .init(queries: 4, keys: 3), threads: 3)
        // Multi-query attention (one key/value head for all six query heads), head size 4, one thread.
        checkAgainstFiniteDifferences(.init(batch: 1, time: 9, channels: 24, heads: 6, kvHeads: 1),
                                      tiles: .init(queries: 3, keys: 5), threads: 1)
        // Dropout on the attention weights.
        checkAgainstFiniteDifferences(.init(batch: 2, time: 9, channels: 24, heads: 6, kvHeads: 3),
                                      tiles: .init(queries: 4, keys: 2), dropout: DropoutMask(key: 44, probability: 0.3))
    }

    func testLongSequenceAgainstFiniteDifferences() {
        // T = 300 > 256: keys stream through the online softmax with the standard tiles.
        checkAgainstFiniteDifferences(.init(batch: 1, time: 300, channels: 8, heads: 4, kvHeads: 2), tiles: .standard,
                                      sampled: 150)
    }

    /// The qkv of multi-head attention whose heads' keys and values are the grouped ones repeated (Hugging Face's
    /// `repeat_kv`).
    static func repeated(_ qkv: [Float], _ s: Attention.Shape) -> [Float] {
        let c = s.channels, hs = s.headSize, stride = s.qkvStride
        var out = [Float](repeating: 0, count: s.batch * s.time * 3 * c)
        for row in 0..<(s.batch * s.time) {
            for i in 0..<c { out[row * 3 * c + i] = qkv[row * stride + i] }
            for h in 0..<s.heads {
                let kv = h / s.groupSize
                for d in 0..<hs {
                    out[row * 3 * c + c + h * hs + d] = qkv[row * stride + c + kv * hs + d]
                    out[row * 3 * c + 2 * c + h * hs + d] = qkv[row * stride + c + s.kvChannels + kv * hs + d]
                }
            }
        }
        return out
    }

    /// Grouped attention computes multi-head attention on repeated K/V: the same outputs, log-sum-exps and query
    /// gradients (the same products on the same values, read through other strides), and each key/value head's
    /// gradient is the sum of its query heads' (the kernel adds them in query-head order; the check adds the
    /// multi-head gradients in double precision, so only float32 rounding of a sum over the group's 2–4 heads
    /// separates them: 1e-6 of the largest gradient).
    func testMatchesMultiHeadAttentionOnRepeatedKeysAndValues() {
        for (s, tiles, dropout) in [
            (Attention.Shape(batch: 2, time: 150, channels: 64, heads: 4, kvHeads: 2), FusedAttention.Tiles.standard, DropoutMask?.none),
            (Attention.Shape(batch: 1, time: 70, channels: 96, heads: 6, kvHeads: 2), FusedAttention.Tiles(queries: 16, keys: 24),
             DropoutMask(key: 10, probability: 0.2)),
            (Attention.Shape(batch: 2, time: 40, channels: 64, heads: 4, kvHeads: 1), FusedAttention.Tiles(queries: 8, keys: 8), nil),
        ] {
            var random = TestRandom(17)
            let qkv = random.floats(s.batch * s.time * s.qkvStride), g = random.floats(s.batch * s.time * s.channels)
            let mhaShape = Attention.Shape(batch: s.batch, time: s.time, channels: s.channels, heads: s.heads)
            let grouped = Self.fused(qkv, g, s, tiles: tiles, dropout: dropout)
            let multi = Self.fused(Self.repeated(qkv, s), g, mhaShape, tiles: tiles, dropout: dropout)
            let label = "H \(s.heads) Hkv \(s.kvHeads) T \(s.time) \(tiles)"
            let scale = multi.dqkv.map(abs).max()!
            for i in 0..<grouped.out.count { XCTAssertEqual(grouped.out[i], multi.out[i], accuracy: 1e-6, "\(label) out[\(i)]") }
            for i in 0..<grouped.lse.count { XCTAssertEqual(grouped.lse[i], multi.lse[i], accuracy: 1e-6, "\(label) lse[\(i)]") }
            let c = s.channels, hs = s.headSize, stride = s.qkvStride
            for row in 0..<(s.batch * s.time) {
                for i in 0..<c {
                    XCTAssertEqual(grouped.dqkv[row * stride + i], multi.dqkv[row * 3 * c + i], accuracy: 1e-6 * scale, "\(label) dq")
                }
                for kv in 0..<s.kvHeads { for d in 0..<hs {
                    var dk = 0.0, dv = 0.0
                    for h in (kv * s.groupSize)..<((kv + 1) * s.groupSize) {
                        dk += Double(multi.dqkv[row * 3 * c + c + h * hs + d])
                        dv += Double(multi.dqkv[row * 3 * c + 2 * c + h * hs + d])
                    }
                    XCTAssertEqual(Double(grouped.dqkv[row * stride + c + kv * hs + d]), dk, accuracy: 1e-6 * Double(scale), "\(label) dk")
                    XCTAssertEqual(Double(grouped.dqkv[row * stride + c + s.kvChannels + kv * hs + d]), dv,
                                   accuracy: 1e-6 * Double(scale), "\(label) dv")
                } }
            }
        }
    }

    /// With n_kv_head = n_head the kernel is the one before grouping existed, bit for bit: fp32 with one tile and
    /// with the online softmax over many, dropout, emulated bf16, and oneDNN's bf16 products where the CPU has them.
    func testWithoutGroupingBitIdenticalToThePreGroupingKernel() {
        var cases: [(Attention.Shape, FusedAttention.Tiles, DropoutMask?, Bool, Bool, Int)] = [
            (Attention.Shape(batch: 2, time: 150, channels: 48, heads: 3), .standard, nil, false, false, 2),
            (Attention.Shape(batch: 3, time: 70, channels: 32, heads: 2), FusedAttention.Tiles(queries: 16, keys: 24),
             DropoutMask(key: 9, probability: 0.2), false, false, 3),
            (Attention.Shape(batch: 2, time: 300, channels: 16, heads: 2), .standard, nil, false, false, 1),
            (Attention.Shape(batch: 2, time: 80, channels: 32, heads: 2), FusedAttention.Tiles(queries: 32, keys: 32), nil, true, false, 2),
        ]
        if BF16Matmul.isAvailable {
            cases.append((Attention.Shape(batch: 2, time: 150, channels: 64, heads: 2), .standard, nil, false, true, 2))
        }
        for (s, tiles, dropout, bf16, native, threads) in cases {
            var random = TestRandom(23)
            var qkv = random.floats(s.batch * s.time * 3 * s.channels), g = random.floats(s.batch * s.time * s.channels)
            if bf16 || native { qkv = qkv.map(BFloat16.round); g = g.map(BFloat16.round) }
            let label = "T \(s.time) H \(s.heads) \(tiles) dropout \(dropout != nil) bf16 \(bf16) native \(native)"
            let today = Self.fused(qkv, g, s, tiles: tiles, dropout: dropout, threads: threads, bf16: bf16, native: native)
            let before = Self.fused(qkv, g, s, tiles: tiles, dropout: dropout, threads: threads, bf16: bf16, native: native,
                                    frozen: true)
            Self.assertSameBits(today.out, before.out, "\(label) out")
            Self.assertSameBits(today.lse, before.lse, "\(label) lse")
            Self.assertSameBits(today.dqkv, before.dqkv, "\(label) dqkv")
            XCTAssertFalse(today.dqkv.contains { !$0.isFinite }, label)
        }
    }

    /// A (batch, key/value head) group is one task whichever thread runs it: 1, 2 and 3 threads give the same bits,
    /// and so do two runs.
    func testGroupedGradientsAreTheSameForAnyThreadCount() {
        let s = Attention.Shape(batch: 3, time: 40, channels: 32, heads: 4, kvHeads: 2)
        var random = TestRandom(4)
        let qkv = random.floats(s.batch * s.time * s.qkvStride), g = random.floats(s.batch * s.time * s.channels)
        let tiles = FusedAttention.Tiles(queries: 16, keys: 16)
        let runs = [1, 2, 3, 2].map { Self.fused(qkv, g, s, tiles: tiles, threads: $0) }
        for run in runs.dropFirst() {
            Self.assertSameBits(run.out, runs[0].out, "out")
            Self.assertSameBits(run.dqkv, runs[0].dqkv, "dqkv")
        }
    }

    /// Equal bit patterns element by element; on failure, names the first element that differs and how many do.
    static func assertSameBits(_ a: [Float], _ b: [Float], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, label, file: file, line: line)
        let differing = zip(a, b).enumerated().filter { $0.element.0.bitPattern != $0.element.1.bitPattern }
        if let first = differing.first {
            XCTFail("\(label): \(differing.count) of \(a.count) elements differ, first [\(first.offset)] \(first.element.0) vs \(first.element.1)",
                    file: file, line: line)
        }
    }

    /// Grouped bf16 against grouped fp32 on the same bf16-representable inputs, with FusedAttentionTests' bound:
    /// each output element within u·Σ_j p_ij·|v_j| (u = 2⁻⁸, the probabilities' rounding), the gradients within 4u
    /// in relative norm. And oneDNN's products against the emulation, within u/4 in norm (FusedAttentionTests
    /// explains both bounds).
    func testBF16WithinTheRoundingBound() throws {
        let s = Attention.Shape(batch: 2, time: 80, channels: 64, heads: 4, kvHeads: 2)
        var random = TestRandom(22)
        let qkv = random.floats(s.batch * s.time * s.qkvStride).map(BFloat16.round)
        let g = random.floats(s.batch * s.time * s.channels).map(BFloat16.round)
        let tiles = FusedAttention.Tiles(queries: 32, keys: 32)
        let exact = Self.fused(qkv, g, s, tiles: tiles)
        let bf16 = Self.fused(qkv, g, s, tiles: tiles, bf16: true)
        let u = Double(BFloat16.unitRoundoff), t = s.time, c = s.channels, hs = s.headSize, stride = s.qkvStride
        let lse = Self.reference(qkv.doubles, s).lse
        var worst = 0.0
        for b in 0..<s.batch { for h in 0..<s.heads {
            let kv = h / s.groupSize
            for i in 0..<t {
                let l = lse[(b * s.heads + h) * t + i]
                var weights = [Double](repeating: 0, count: i + 1)
                for j in 0...i {
                    var score = 0.0
                    for e in 0..<hs { score += Double(qkv[(b * t + i) * stride + h * hs + e]) * Double(qkv[(b * t + j) * stride + c + kv * hs + e]) }
                    weights[j] = exp(score / Double(hs).squareRoot() - l)
                }
                for d in 0..<hs {
                    var bound = 0.0
                    for j in 0...i { bound += weights[j] * abs(Double(qkv[(b * t + j) * stride + c + s.kvChannels + kv * hs + d])) }
                    let index = (b * t + i) * c + h * hs + d
                    let error = abs(Double(bf16.out[index]) - Double(exact.out[index]))
                    worst = max(worst, error / (u * bound + 1e-5))
                    XCTAssertLessThanOrEqual(error, u * bound + 1e-5, "out[\(index)]")
                }
            }
        } }
        XCTAssertGreaterThan(worst, 0.01, "bf16 rounding should be visible in the output")
        func norm(_ x: [Float]) -> Double { x.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot() }
        let relative = norm(zip(bf16.dqkv, exact.dqkv).map { $0 - $1 }) / norm(exact.dqkv)
        XCTAssertLessThanOrEqual(relative, 4 * u)
        XCTAssertGreaterThan(relative, 0)

        try XCTSkipUnless(BF16Matmul.isAvailable, "\(CPU.modelName) has no native bf16 products")
        let native = Self.fused(qkv, g, s, tiles: tiles, native: true)
        let nativeRelative = norm(zip(native.dqkv, bf16.dqkv).map { $0 - $1 }) / norm(bf16.dqkv)
        XCTAssertLessThanOrEqual(nativeRelative, u / 4)
        let outRelative = norm(zip(native.out, bf16.out).map { $0 - $1 }) / norm(bf16.out)
        XCTAssertLessThanOrEqual(outRelative, u / 4)
    }
}
