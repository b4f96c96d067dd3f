import Compute
import Foundation
import Kernels
import XCTest

// Each kernel's backward pass is checked against central finite differences of a double-precision forward pass
// written here, independently of the kernel, for the scalar L = Σ out ⊙ w with random weights w (so that
// dL/dout = w is what the backward pass receives).

final class VectorMathTests: XCTestCase {
    func testExpIsAccurateToAFewUlps() {
        var worst = 0.0
        for i in 0..<200_000 {
            let x = -87.0 + Double(i) * (175.0 / 200_000)
            let approx = Double(fastExp(Float(x))), exact = exp(Double(Float(x)))
            worst = max(worst, abs(approx - exact) / exact)
        }
        // Cephes' expf polynomial is good to about 1 ulp (6e-8 relative); allow 4 ulps.
        XCTAssertLessThan(worst, 2.4e-7)
    }

    func testTanhIsAccurateInAbsoluteTerms() {
        var worst = 0.0
        for i in 0..<100_000 {
            let x = -20.0 + Double(i) * 40.0 / 100_000
            worst = max(worst, abs(Double(fastTanh(Float(x))) - tanh(Double(Float(x)))))
        }
        // 1 − 2/(e^{2x} + 1): the division and subtraction add a few float32 roundings near |tanh| = 1.
        XCTAssertLessThan(worst, 4e-7)
        XCTAssertEqual(fastTanh(50), 1)
        XCTAssertEqual(fastTanh(-50), -1)
    }
}

/// `vexp` and `vtanh` must be inlined into the kernels: called out of line, Swift passes a SIMD16<Float> as four
/// SSE registers and the body ran on 128-bit quarters without fusing, 3-4× slower per element. `@inline(__always)`
/// did not inline them (GELU's `vtanh` was 12% of a step of configuration (a) on Intel, 5.7% of (b); `@_transparent`
/// took (a) from 22k to 25-26k tokens/s, docs/benchmarks.md). This reads the test binary's own machine code.
final class VectorMathInliningTests: XCTestCase {
    #if DEBUG
    static let isDebugBuild = true
    #else
    static let isDebugBuild = false
    #endif

    func testExpAndTanhAreInlinedEverywhere() throws {
        if Self.isDebugBuild {
            throw XCTSkip("a release-build property: a debug build (the AddressSanitizer run) inlines nothing")
        }
        let objdump = ["/usr/bin/objdump", "/bin/objdump"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let objdump else { throw XCTSkip("objdump (binutils) is not installed") }
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: objdump)
        process.arguments = ["-d", "--no-show-raw-insn", binary]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        // The kernels that use them are in this binary (so finding no call means something).
        XCTAssertTrue(text.contains("GELU"), "no GELU kernel in \(binary)")
        XCTAssertTrue(text.contains("SwiGLU"), "no SwiGLU kernel in \(binary)")
        for symbol in ["$s7Kernels4vexpys6SIMD16VySfGAEF", "$s7Kernels5vtanhys6SIMD16VySfGAEF",
                       "$s7Kernels8vsigmoidys6SIMD16VySfGAEF"] {
            let calls = text.split(separator: "\n").filter { $0.contains("call") && $0.contains("<\(symbol)>") }
            XCTAssertEqual(calls.count, 0, "\(symbol) is called out of line:\n\(calls.prefix(5).joined(separator: "\n"))")
        }
    }
}

final class LayerNormTests: XCTestCase {
    func reference(_ x: [Double], _ w: [Double], _ b: [Double]?, rows: Int, c: Int) -> [Double] {
        var out = [Double](repeating: 0, count: rows * c)
        for r in 0..<rows {
            let row = x[(r * c)..<((r + 1) * c)]
            let mean = row.reduce(0, +) / Double(c)
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(c)
            for j in 0..<c {
                out[r * c + j] = (x[r * c + j] - mean) / (variance + 1e-5).squareRoot() * w[j] + (b?[j] ?? 0)
            }
        }
        return out
    }

    func testForwardAndBackwardAgainstFiniteDifferences() {
        for (c, withBias) in [(37, true), (16, false), (5, true)] {
            let rows = 6
            var random = TestRandom(UInt64(c))
            let x = random.floats(rows * c, scale: 2), w = random.floats(c), b = random.floats(c), g = random.floats(rows * c)
            let pool = ThreadPool(threads: 2)
            var arrays = [x, w, b, g, [Float](repeating: 0, count: rows * c), [Float](repeating: 0, count: rows),
                          [Float](repeating: 0, count: rows), [Float](repeating: 7, count: rows * c),
                          [Float](repeating: 0, count: c), [Float](repeating: 0, count: c),
                          [Float](repeating: 0, count: LayerNorm.scratchCount(threads: 2, channels: c))]
            withPointers(&arrays) { p in
                LayerNorm.forward(pool, out: p[4], mean: p[5], rstd: p[6], inp: p[0], weight: p[1],
                                  bias: withBias ? p[2] : nil, rows: rows, channels: c)
                LayerNorm.backward(pool, dinp: p[7], dweight: p[8], dbias: withBias ? p[9] : nil, dout: p[3],
                                   inp: p[0], weight: p[1], mean: p[5], rstd: p[6], rows: rows, channels: c,
                                   scratch: p[10], accumulateInput: false, accumulateParameters: false)
            }
            let out = arrays[4], dinp = arrays[7], dw = arrays[8], db = arrays[9]
            let expected = reference(x.doubles, w.doubles, withBias ? b.doubles : nil, rows: rows, c: c)
            for i in 0..<expected.count { XCTAssertEqual(Double(out[i]), expected[i], accuracy: 1e-5) }

            func loss(_ x: [Double], _ w: [Double], _ b: [Double]) -> Double {
                zip(reference(x, w, withBias ? b : nil, rows: rows, c: c), g.doubles).map(*).reduce(0, +)
            }
            assertGradientsMatch(dinp, numericalGradient(x.doubles) { loss($0, w.doubles, b.doubles) }, "dinp C=\(c)")
            assertGradientsMatch(dw, numericalGradient(w.doubles) { loss(x.doubles, $0, b.doubles) }, "dweight C=\(c)")
            if withBias {
                assertGradientsMatch(db, numericalGradient(b.doubles) { loss(x.doubles, w.doubles, $0) }, "dbias C=\(c)")
            }
        }
    }

    func testAccumulateAddsToWhatIsThere() {
        let rows = 4, c = 20
        var random = TestRandom(9)
        let x = random.floats(rows * c), w = random.floats(c), g = random.floats(rows * c)
        let pool = ThreadPool(threads: 2)
        func run(accumulate: Bool) -> ([Float], [Float]) {
            var arrays = [x, w, g, [Float](repeating: 0, count: rows * c), [Float](repeating: 0, count: rows),
                          [Float](repeating: 0, count: rows), [Float](repeating: 1, count: rows * c),
                          [Float](repeating: 1, count: c), [Float](repeating: 0, count: 4 * c)]
            withPointers(&arrays) { p in
                LayerNorm.forward(pool, out: p[3], mean: p[4], rstd: p[5], inp: p[0], weight: p[1], bias: nil,
                                  rows: rows, channels: c)
                LayerNorm.backward(pool, dinp: p[6], dweight: p[7], dbias: nil, dout: p[2], inp: p[0], weight: p[1],
                                   mean: p[4], rstd: p[5], rows: rows, channels: c, scratch: p[8],
                                   accumulateInput: accumulate, accumulateParameters: accumulate)
            }
            return (arrays[6], arrays[7])
        }
        let written = run(accumulate: false), added = run(accumulate: true)
        for i in 0..<(rows * c) { XCTAssertEqual(added.0[i], written.0[i] + 1, accuracy: 1e-6) }
        for j in 0..<c { XCTAssertEqual(added.1[j], written.1[j] + 1, accuracy: 1e-6) }
    }
}

final class LinearAndGELUTests: XCTestCase {
    func testLinearAgainstFiniteDifferences() {
        let rows = 7, n = 19, m = 23
        var random = TestRandom(2)
        let x = random.floats(rows * n), w = random.floats(m * n), b = random.floats(m), g = random.floats(rows * m)
        func reference(_ x: [Double], _ w: [Double], _ b: [Double]) -> [Double] {
            var out = [Double](repeating: 0, count: rows * m)
            for r in 0..<rows { for o in 0..<m {
                var s = b[o]
                for i in 0..<n { s += x[r * n + i] * w[o * n + i] }
                out[r * m + o] = s
            } }
            return out
        }
        let pool = ThreadPool(threads: 2)
        var arrays = [x, w, b, g, [Float](repeating: 0, count: rows * m), [Float](repeating: 0, count: rows * n),
                      [Float](repeating: 0, count: m * n), [Float](repeating: 0, count: m)]
        withPointers(&arrays) { p in
            Linear.forward(pool, out: p[4], inp: p[0], weight: p[1], bias: p[2], rows: rows, inFeatures: n, outFeatures: m)
            Linear.backward(pool, dinp: p[5], dweight: p[6], dbias: p[7], dout: p[3], inp: p[0], weight: p[1],
                            rows: rows, inFeatures: n, outFeatures: m, accumulateInput: false, accumulateParameters: false)
        }
        let expected = reference(x.doubles, w.doubles, b.doubles)
        for i in 0..<expected.count { XCTAssertEqual(Double(arrays[4][i]), expected[i], accuracy: 1e-5) }
        func loss(_ out: [Double]) -> Double { zip(out, g.doubles).map(*).reduce(0, +) }
        assertGradientsMatch(arrays[5], numericalGradient(x.doubles) { loss(reference($0, w.doubles, b.doubles)) }, "dinp")
        assertGradientsMatch(arrays[6], numericalGradient(w.doubles) { loss(reference(x.doubles, $0, b.doubles)) }, "dweight")
        assertGradientsMatch(arrays[7], numericalGradient(b.doubles) { loss(reference(x.doubles, w.doubles, $0)) }, "dbias")
    }

    func testGELUAgainstFiniteDifferences() {
        var random = TestRandom(3)
        let x = random.floats(61, scale: 3), g = random.floats(61)
        func reference(_ x: [Double]) -> [Double] {
            x.map { 0.5 * $0 * (1 + tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }
        }
        let pool = ThreadPool(threads: 2)
        var arrays = [x, g, [Float](repeating: 0, count: 61), [Float](repeating: 0, count: 61)]
        withPointers(&arrays) { p in
            GELU.forward(pool, out: p[2], inp: p[0], count: 61)
            GELU.backward(pool, dinp: p[3], inp: p[0], dout: p[1], count: 61)
        }
        let expected = reference(x.doubles)
        for i in 0..<61 { XCTAssertEqual(Double(arrays[2][i]), expected[i], accuracy: 1e-6) }
        assertGradientsMatch(arrays[3], numericalGradient(x.doubles) { zip(reference($0), g.doubles).map(*).reduce(0, +) }, "gelu")
    }
}

final class AttentionTests: XCTestCase {
    /// Causal attention in double precision, with an optional dropout mask on the probabilities.
    static func reference(_ qkv: [Double], _ s: Attention.Shape, dropout: DropoutMask? = nil) -> [Double] {
        let t = s.time, c = s.channels, hs = s.headSize
        var out = [Double](repeating: 0, count: s.batch * t * c)
        for b in 0..<s.batch { for h in 0..<s.heads { for i in 0..<t {
            var scores = [Double](repeating: 0, count: i + 1)
            for j in 0...i {
                var dot = 0.0
                for d in 0..<hs { dot += qkv[(b * t + i) * 3 * c + h * hs + d] * qkv[(b * t + j) * 3 * c + c + h * hs + d] }
                scores[j] = dot / Double(hs).squareRoot()
            }
            let m = scores.max()!
            let e = scores.map { exp($0 - m) }
            let sum = e.reduce(0, +)
            for j in 0...i {
                var p = e[j] / sum
                if let dropout {
                    p = dropout.keeps(((b * s.heads + h) * t + i) * t + j) ? p * Double(dropout.scale) : 0
                }
                for d in 0..<hs { out[(b * t + i) * c + h * hs + d] += p * qkv[(b * t + j) * 3 * c + 2 * c + h * hs + d] }
            }
        } } }
        return out
    }

    func check(_ s: Attention.Shape, dropout: DropoutMask?, sampled: Int? = nil, threads: Int = 2) {
        var random = TestRandom(UInt64(s.time * 31 + s.channels))
        let n = s.batch * s.time * 3 * s.channels
        let qkv = random.floats(n), g = random.floats(s.batch * s.time * s.channels)
        let pool = ThreadPool(threads: threads)
        let scratch = threads * Attention.scratchPerThread(time: s.time, dropout: dropout != nil)
        var arrays = [qkv, g, [Float](repeating: 0, count: s.batch * s.time * s.channels),
                      [Float](repeating: 0, count: s.batch * s.heads * s.time * s.time),
                      [Float](repeating: .nan, count: n), [Float](repeating: 0, count: scratch)]
        withPointers(&arrays) { p in
            Attention.forward(pool, out: p[2], att: p[3], qkv: p[0], shape: s, scratch: p[5], dropout: dropout)
            Attention.backward(pool, dqkv: p[4], dout: p[1], att: p[3], qkv: p[0], shape: s, scratch: p[5], dropout: dropout)
        }
        let expected = Self.reference(qkv.doubles, s, dropout: dropout)
        for i in 0..<expected.count { XCTAssertEqual(Double(arrays[2][i]), expected[i], accuracy: 2e-5, "out[\(i)]") }
        // Probabilities: rows sum to 1, nothing above the diagonal.
        let att = arrays[3]
        for row in 0..<(s.batch * s.heads * s.time) {
            let i = row % s.time
            let values = att[(row * s.time)..<((row + 1) * s.time)]
            XCTAssertEqual(values.reduce(0, +), 1, accuracy: 1e-5)
            XCTAssertTrue(values.dropFirst(i + 1).allSatisfy { $0 == 0 })
        }
        var indices: [Int]? = nil
        if let sampled {
            var r = Xoshiro256(seed: 5)
            indices = (0..<sampled).map { _ in Int(r.next(below: UInt64(n))) }
        }
        let numeric = numericalGradient(qkv.doubles, indices: indices) {
            zip(Self.reference($0, s, dropout: dropout), g.doubles).map(*).reduce(0, +)
        }
        assertGradientsMatch(arrays[4], numeric, "dqkv T=\(s.time) dropout=\(dropout != nil)")
    }

    func testSmallAgainstFiniteDifferences() {
        check(.init(batch: 2, time: 7, channels: 8, heads: 2), dropout: nil)
        check(.init(batch: 1, time: 20, channels: 32, heads: 2), dropout: nil, threads: 1)
    }

    func testCausalBlocksAgainstFiniteDifferences() {
        // T > 128 takes the blocked path (blocks of 64 rows, the last one short).
        check(.init(batch: 1, time: 150, channels: 4, heads: 2), dropout: nil, sampled: 200)
    }

    func testDropoutAgainstFiniteDifferences() {
        check(.init(batch: 2, time: 6, channels: 8, heads: 2), dropout: DropoutMask(key: 42, probability: 0.3))
    }
}

final class LossAndEmbeddingTests: XCTestCase {
    func testCrossEntropyAgainstFiniteDifferences() {
        let rows = 5, v = 37
        var random = TestRandom(4)
        let logits = random.floats(rows * v, scale: 3), targets = random.ints(rows, below: v)
        func reference(_ l: [Double]) -> [Double] {
            (0..<rows).map { r in
                let row = Array(l[(r * v)..<((r + 1) * v)])
                let m = row.max()!
                return log(row.map { exp($0 - m) }.reduce(0, +)) + m - row[Int(targets[r])]
            }
        }
        let pool = ThreadPool(threads: 2)
        var arrays = [logits, [Float](repeating: 0, count: rows)]
        targets.withUnsafeBufferPointer { t in
            withPointers(&arrays) { p in
                CrossEntropy.forward(pool, losses: p[1], logits: p[0], targets: t.baseAddress!, rows: rows, vocab: v,
                                     gradientScale: 1 / Float(rows))
            }
        }
        let expected = reference(logits.doubles)
        for r in 0..<rows { XCTAssertEqual(Double(arrays[1][r]), expected[r], accuracy: 1e-5) }
        assertGradientsMatch(arrays[0], numericalGradient(logits.doubles) { reference($0).reduce(0, +) / Double(rows) }, "dlogits")

        // Without a gradient scale the logits are left alone.
        var untouched = [logits, [Float](repeating: 0, count: rows)]
        targets.withUnsafeBufferPointer { t in
            withPointers(&untouched) { p in
                CrossEntropy.forward(pool, losses: p[1], logits: p[0], targets: t.baseAddress!, rows: rows, vocab: v,
                                     gradientScale: nil)
            }
        }
        XCTAssertEqual(untouched[0], logits)
        XCTAssertEqual(untouched[1], arrays[1])
    }

    func testEncoderAgainstFiniteDifferences() {
        let b = 2, t = 3, c = 20, v = 5
        var random = TestRandom(6)
        let wte = random.floats(v * c), wpe = random.floats(t * c), g = random.floats(b * t * c)
        let tokens: [Int32] = [1, 3, 1, 4, 1, 0]  // token 1 three times: its gradient rows add up
        func reference(_ wte: [Double], _ wpe: [Double]) -> [Double] {
            (0..<(b * t * c)).map { i in
                let row = i / c, j = i % c
                return wte[Int(tokens[row]) * c + j] + wpe[(row % t) * c + j]
            }
        }
        let pool = ThreadPool(threads: 2)
        var arrays = [wte, wpe, g, [Float](repeating: 0, count: b * t * c), [Float](repeating: 0, count: v * c),
                      [Float](repeating: 9, count: t * c)]
        tokens.withUnsafeBufferPointer { tk in
            withPointers(&arrays) { p in
                Encoder.forward(pool, out: p[3], tokens: tk.baseAddress!, wte: p[0], wpe: p[1], batch: b, time: t, channels: c)
                Encoder.backward(pool, dwte: p[4], dwpe: p[5], dout: p[2], tokens: tk.baseAddress!, batch: b, time: t,
                                 channels: c, accumulate: false)
            }
        }
        XCTAssertEqual(arrays[3].doubles, reference(wte.doubles, wpe.doubles).map { Double(Float($0)) })
        func loss(_ out: [Double]) -> Double { zip(out, g.doubles).map(*).reduce(0, +) }
        assertGradientsMatch(arrays[4], numericalGradient(wte.doubles) { loss(reference($0, wpe.doubles)) }, "dwte")
        assertGradientsMatch(arrays[5], numericalGradient(wpe.doubles) { loss(reference(wte.doubles, $0)) }, "dwpe")
    }
}

final class DropoutAndOptimizerKernelTests: XCTestCase {
    func testDropoutMasksAreDeterministicAndKeepTheRightShare() {
        let mask = DropoutMask(key: DropoutMask.key(seed: 1, step: 3, micro: 0, layer: 2, site: 1), probability: 0.25)
        let kept = (0..<200_000).filter { mask.keeps($0) }.count
        // Binomial(200000, 0.75): standard deviation 194, so ±1000 is over five of them.
        XCTAssertEqual(Double(kept), 150_000, accuracy: 1000)
        XCTAssertEqual((0..<1000).map { mask.keeps($0) }, (0..<1000).map { mask.keeps($0) })
        let other = DropoutMask(key: DropoutMask.key(seed: 1, step: 4, micro: 0, layer: 2, site: 1), probability: 0.25)
        XCTAssertNotEqual((0..<1000).map { mask.keeps($0) }, (0..<1000).map { other.keeps($0) })
        XCTAssertEqual(mask.scale, 4.0 / 3.0)
    }

    func testSumOfSquaresIsIndependentOfSplitWithinRounding() {
        var random = TestRandom(8)
        let x = random.floats(300_001)
        let exact = x.doubles.map { $0 * $0 }.reduce(0, +)
        for threads in [1, 2, 3] {
            let pool = ThreadPool(threads: threads)
            let s = x.withUnsafeBufferPointer { Reductions.sumOfSquares(pool, $0.baseAddress!, count: x.count) }
            // Each float square carries 6e-8 relative error, summed in 1024-element float blocks: 1e-6 overall.
            XCTAssertEqual(s / exact, 1, accuracy: 1e-6)
        }
    }
}

final class MatmulTests: XCTestCase {
    func naive(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transA: Bool, transB: Bool) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var s = 0.0
            for p in 0..<k {
                let x = transA ? a[p * m + i] : a[i * k + p]
                let y = transB ? b[j * k + p] : b[p * n + j]
                s += Double(x) * Double(y)
            }
            c[i * n + j] = s
        } }
        return c
    }

    func testSplitProductsMatchAPlainProduct() {
        var random = TestRandom(10)
        for (m, n, k) in [(100, 70, 64), (7, 300, 129), (301, 5, 200)] {
            for transA in [false, true] { for transB in [false, true] {
                let a = random.floats(m * k), b = random.floats(k * n)
                let expected = naive(a, b, m: m, n: n, k: k, transA: transA, transB: transB)
                for threads in [1, 2, 3] {
                    let pool = ThreadPool(threads: threads)
                    var c = [Float](repeating: 0, count: m * n)
                    a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                        Matmul.gemm(pool, transA: transA, transB: transB, m: m, n: n, k: k,
                                    a: ap.baseAddress!, lda: transA ? m : k, b: bp.baseAddress!, ldb: transB ? k : n,
                                    beta: 0, c: cp.baseAddress!, ldc: n)
                    } } }
                    // Sums of k ≤ 200 products of unit normals: float32 error ≲ sqrt(k)·6e-8·|terms| ≈ 1e-5.
                    for i in 0..<(m * n) { XCTAssertEqual(Double(c[i]), expected[i], accuracy: 2e-4) }
                }
            } }
        }
    }

    func testSameThreadCountGivesTheSameBits() {
        var random = TestRandom(11)
        let m = 257, n = 300, k = 190
        let a = random.floats(m * k), b = random.floats(k * n)
        func product() -> [Float] {
            let pool = ThreadPool(threads: 2)
            var c = [Float](repeating: 0, count: m * n)
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                Matmul.gemm(pool, transA: false, transB: true, m: m, n: n, k: k, a: ap.baseAddress!, lda: k,
                            b: bp.baseAddress!, ldb: k, beta: 0, c: cp.baseAddress!, ldc: n)
            } } }
            return c
        }
        XCTAssertEqual(product(), product())
    }
}
