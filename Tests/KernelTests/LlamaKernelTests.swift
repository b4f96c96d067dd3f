import Compute
import Foundation
import Kernels
import XCTest

// The Llama-style elementwise kernels (RMSNorm, rotary embedding, SwiGLU) against double-precision forward passes
// written here and central finite differences of them, as KernelTests.swift does for GPT-2's kernels: the scalar
// L = Σ out ⊙ w with random w, so dL/dout = w is what the backward pass receives.

/// Double-precision references of the Llama-style operations, independent of the kernels (`LlamaReference` in
/// GPTTests composes the same formulas into a whole block).
enum LlamaOps {
    static func rmsNorm(_ x: [Double], _ w: [Double], rows: Int, c: Int, epsilon: Double) -> [Double] {
        var out = [Double](repeating: 0, count: rows * c)
        for r in 0..<rows {
            var sq = 0.0
            for j in 0..<c { sq += x[r * c + j] * x[r * c + j] }
            let rstd = 1 / (sq / Double(c) + epsilon).squareRoot()
            for j in 0..<c { out[r * c + j] = x[r * c + j] * rstd * w[j] }
        }
        return out
    }

    /// Hugging Face's angles: `inv_freq` and position · inv_freq in float32 (LlamaRotaryEmbedding), then cos and sin
    /// of that float32 angle. Written out here from the formula, not read from the kernel's table.
    static func angle(position: Int, frequency i: Int, headSize d: Int, theta: Double) -> Double {
        let exponent = Float(2 * i) / Float(d)
        let inverse: Float = 1 / Float(pow(Double(Float(theta)), Double(exponent)))
        return Double(inverse * Float(position))
    }

    /// rotate_half: out = x·cos + rotate_half(x)·sin, rotate_half(x) = cat(−x[d/2...], x[..<d/2]), on `vectors`
    /// head vectors at the start of each row of `stride`, position firstPosition + row % time; the rest copied.
    static func rotary(_ x: [Double], rows: Int, time: Int, firstPosition: Int = 0, stride: Int, vectors: Int,
                       headSize d: Int, theta: Double) -> [Double] {
        var out = x
        let half = d / 2
        for r in 0..<rows {
            let position = firstPosition + r % time
            for v in 0..<vectors {
                let base = r * stride + v * d
                for i in 0..<half {
                    let a = angle(position: position, frequency: i, headSize: d, theta: theta)
                    let c = Double(Float(cos(a))), s = Double(Float(sin(a)))
                    let x1 = x[base + i], x2 = x[base + half + i]
                    out[base + i] = x1 * c - x2 * s
                    out[base + half + i] = x2 * c + x1 * s
                }
            }
        }
        return out
    }

    static func silu(_ x: Double) -> Double { x / (1 + exp(-x)) }

    static func swiGLU(gate: [Double], up: [Double]) -> [Double] { zip(gate, up).map { silu($0) * $1 } }
}

final class RMSNormTests: XCTestCase {
    func run(_ x: [Float], _ w: [Float], _ g: [Float], rows: Int, c: Int, epsilon: Float, threads: Int = 2,
             accumulate: Bool = false, start: Float = 0) -> (out: [Float], rstd: [Float], dinp: [Float], dweight: [Float]) {
        let pool = ThreadPool(threads: threads)
        var arrays = [x, w, g, [Float](repeating: .nan, count: rows * c), [Float](repeating: .nan, count: rows),
                      [Float](repeating: start, count: rows * c), [Float](repeating: start, count: c),
                      [Float](repeating: .nan, count: RMSNorm.scratchCount(threads: threads, channels: c))]
        withPointers(&arrays) { p in
            RMSNorm.forward(pool, out: p[3], rstd: p[4], inp: p[0], weight: p[1], rows: rows, channels: c, epsilon: epsilon)
            RMSNorm.backward(pool, dinp: p[5], dweight: p[6], dout: p[2], inp: p[0], weight: p[1], rstd: p[4], rows: rows,
                             channels: c, scratch: p[7], accumulateInput: accumulate, accumulateParameters: accumulate)
        }
        return (arrays[3], arrays[4], arrays[5], arrays[6])
    }

    func testForwardAndBackwardAgainstFiniteDifferences() {
        // Row lengths with and without a vector tail; Llama 2's ε (1e-5) and Llama 3's (1e-6); one thread and three.
        for (c, epsilon, threads) in [(37, 1e-5, 2), (16, 1e-6, 1), (5, 1e-5, 3), (64, 1e-6, 2)] {
            let rows = 6
            var random = TestRandom(UInt64(c) + 100)
            let x = random.floats(rows * c, scale: 2), w = random.floats(c), g = random.floats(rows * c)
            let result = run(x, w, g, rows: rows, c: c, epsilon: Float(epsilon), threads: threads)
            let expected = LlamaOps.rmsNorm(x.doubles, w.doubles, rows: rows, c: c, epsilon: epsilon)
            // A sum of C squares, a square root and two products in float32: a few ulps of relative error.
            for i in 0..<expected.count {
                XCTAssertEqual(Double(result.out[i]), expected[i], accuracy: 1e-6 * max(1, abs(expected[i])), "out[\(i)] C=\(c)")
            }
            for r in 0..<rows {
                var sq = 0.0
                for j in 0..<c { sq += Double(x[r * c + j]) * Double(x[r * c + j]) }
                XCTAssertEqual(Double(result.rstd[r]), 1 / (sq / Double(c) + epsilon).squareRoot(), accuracy: 1e-6 * Double(result.rstd[r]))
            }
            func loss(_ x: [Double], _ w: [Double]) -> Double {
                zip(LlamaOps.rmsNorm(x, w, rows: rows, c: c, epsilon: epsilon), g.doubles).map(*).reduce(0, +)
            }
            assertGradientsMatch(result.dinp, numericalGradient(x.doubles) { loss($0, w.doubles) }, "rmsnorm dinp C=\(c)")
            assertGradientsMatch(result.dweight, numericalGradient(w.doubles) { loss(x.doubles, $0) }, "rmsnorm dweight C=\(c)")
        }
    }

    /// ε sits inside the square root (Hugging Face's `torch.rsqrt(variance + eps)`): a row of zeros-but-tiny values
    /// normalises to x/sqrt(ε), not to x/(rms + ε).
    func testEpsilonIsInsideTheSquareRoot() {
        let c = 16, epsilon: Float = 1e-6
        let x = [Float](repeating: 1e-4, count: c), w = [Float](repeating: 1, count: c), g = [Float](repeating: 0, count: c)
        let result = run(x, w, g, rows: 1, c: c, epsilon: epsilon)
        let expected = 1e-4 / (1e-8 + 1e-6).squareRoot()
        XCTAssertEqual(Double(result.out[0]), expected, accuracy: 1e-6 * expected)
    }

    func testAccumulateAddsToWhatIsThereAndThreadsOnlyChangeTheGainSumOrder() {
        let rows = 40, c = 48
        var random = TestRandom(12)
        let x = random.floats(rows * c), w = random.floats(c), g = random.floats(rows * c)
        let written = run(x, w, g, rows: rows, c: c, epsilon: 1e-5)
        let added = run(x, w, g, rows: rows, c: c, epsilon: 1e-5, accumulate: true, start: 1)
        for i in 0..<(rows * c) { XCTAssertEqual(added.dinp[i], written.dinp[i] + 1, accuracy: 1e-6) }
        for j in 0..<c { XCTAssertEqual(added.dweight[j], written.dweight[j] + 1, accuracy: 1e-5) }
        // The same thread count gives the same bits; rows are independent, so dinp does not depend on it at all.
        let again = run(x, w, g, rows: rows, c: c, epsilon: 1e-5)
        XCTAssertEqual(again.dweight.map(\.bitPattern), written.dweight.map(\.bitPattern))
        let one = run(x, w, g, rows: rows, c: c, epsilon: 1e-5, threads: 1)
        XCTAssertEqual(one.dinp.map(\.bitPattern), written.dinp.map(\.bitPattern))
        XCTAssertEqual(one.out.map(\.bitPattern), written.out.map(\.bitPattern))
    }
}

final class RotaryTests: XCTestCase {
    func table(positions: Int, headSize: Int, theta: Double) -> [Float] {
        var table = [Float](repeating: .nan, count: Rotary.tableCount(positions: positions, headSize: headSize))
        table.withUnsafeMutableBufferPointer {
            Rotary.fillTable($0.baseAddress!, positions: positions, headSize: headSize, theta: theta)
        }
        return table
    }

    /// Rotates `x` (forward) and rotates `g` back (backward), out of place.
    func run(_ x: [Float], _ g: [Float], layout: Rotary.Layout, theta: Double, positions: Int,
             threads: Int = 2) -> (out: [Float], dinp: [Float]) {
        let pool = ThreadPool(threads: threads)
        var arrays = [x, g, x.map { _ in Float(-7) }, g.map { _ in Float(-7) },
                      table(positions: positions, headSize: layout.headSize, theta: theta)]
        withPointers(&arrays) { p in
            Rotary.forward(pool, out: p[2], inp: p[0], layout: layout, table: p[4], positions: positions)
            Rotary.backward(pool, dinp: p[3], dout: p[1], layout: layout, table: p[4], positions: positions)
        }
        return (arrays[2], arrays[3])
    }

    func testTableFollowsHuggingFacesFloat32Angles() {
        let d = 64, positions = 2048, theta = 500_000.0
        let t = table(positions: positions, headSize: d, theta: theta)
        let half = d / 2
        for p in [0, 1, 7, 1000, 2047] { for i in [0, 1, 5, 31] {
            let a = LlamaOps.angle(position: p, frequency: i, headSize: d, theta: theta)
            XCTAssertEqual(t[p * half + i], Float(cos(a)), "cos p=\(p) i=\(i)")
            XCTAssertEqual(t[positions * half + p * half + i], Float(sin(a)), "sin p=\(p) i=\(i)")
        } }
        // The float32 angle is what Hugging Face rotates by, and it differs from the exact one visibly at long range:
        // position 2047 at frequency 1 (inv_freq = 500000^(−1/32) ≈ 0.66).
        let exact = 2047 * pow(theta, -2.0 / 64)
        let float32 = LlamaOps.angle(position: 2047, frequency: 1, headSize: d, theta: theta)
        XCTAssertGreaterThan(abs(exact - float32), 1e-6)
        XCTAssertEqual(t[0], 1)
        XCTAssertEqual(t[positions * half], 0)
    }

    /// The table against PyTorch running Hugging Face's `LlamaRotaryEmbedding` formula (float32 `inv_freq`, float32
    /// angles): cos and sin within one float32 ulp (PyTorch's vectorised cos/sin are not always correctly
    /// rounded; ours are), inv_freq bit for bit.
    func testTableAgainstPyTorch() throws {
        let d = 16, positions = 600, theta = 10_000.0
        let script = """
        import sys
        try:
            import torch
        except ImportError:
            sys.exit(3)
        d, n, theta = \(d), \(positions), \(theta)
        inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).to(dtype=torch.float) / d))
        t = torch.arange(n, dtype=torch.int64).float()
        freqs = (inv[:, None].float() @ t[None, :].float()).transpose(0, 1)
        print(" ".join(str(x) for x in inv.view(torch.int32).tolist()))
        print(" ".join(repr(x) for x in freqs.cos().flatten().tolist()))
        print(" ".join(repr(x) for x in freqs.sin().flatten().tolist()))
        """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        let pipe = Pipe(), errors = Pipe()
        process.standardOutput = pipe
        process.standardError = errors
        do { try process.run() } catch { throw XCTSkip("python3 is not available: \(error)") }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        _ = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        if process.terminationStatus == 3 { throw XCTSkip("the torch Python package is not installed") }
        XCTAssertEqual(process.terminationStatus, 0)
        let lines = output.split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        guard lines.count == 3 else { return }
        let inverse = lines[0].split(separator: " ").map { Float(bitPattern: UInt32(bitPattern: Int32($0)!)) }
        XCTAssertEqual(inverse, (0..<(d / 2)).map { Rotary.inverseFrequency($0, headSize: d, theta: theta) })
        let cosines = lines[1].split(separator: " ").map { Float(Double($0)!) }
        let sines = lines[2].split(separator: " ").map { Float(Double($0)!) }
        let t = table(positions: positions, headSize: d, theta: theta), half = d / 2
        var differing = 0
        for p in 0..<positions { for i in 0..<half {
            let c = t[p * half + i], s = t[positions * half + p * half + i]
            XCTAssertEqual(c, cosines[p * half + i], accuracy: max(c.ulp, cosines[p * half + i].ulp), "cos p=\(p) i=\(i)")
            XCTAssertEqual(s, sines[p * half + i], accuracy: max(s.ulp, sines[p * half + i].ulp), "sin p=\(p) i=\(i)")
            if c != cosines[p * half + i] || s != sines[p * half + i] { differing += 1 }
        } }
        XCTAssertLessThan(differing, positions * half / 10, "most entries should be the same float32")
    }

    func testForwardAndBackwardAgainstFiniteDifferences() {
        // A qkv-like row: 3 query heads and 1 key head rotated, the value head after them left alone; head sizes
        // with a vector tail (40: 16 + 4 per half), one without (32), and a tiny one.
        for (headSize, vectors, stride, threads) in [(40, 4, 200, 2), (32, 3, 128, 1), (6, 2, 14, 3)] {
            let batch = 2, time = 5, rows = batch * time, theta = 10_000.0
            var random = TestRandom(UInt64(headSize) + 7)
            let x = random.floats(rows * stride), g = random.floats(rows * stride)
            let layout = Rotary.Layout(rows: rows, time: time, rowStride: stride, vectors: vectors, headSize: headSize)
            let result = run(x, g, layout: layout, theta: theta, positions: time, threads: threads)
            let expected = LlamaOps.rotary(x.doubles, rows: rows, time: time, stride: stride, vectors: vectors,
                                           headSize: headSize, theta: theta)
            let rotated = vectors * headSize
            for i in 0..<expected.count where i % stride < rotated {
                // Two products and a sum of float32 values: within 2 ulps of the largest term.
                XCTAssertEqual(Double(result.out[i]), expected[i], accuracy: 3e-7 * max(1, abs(expected[i])), "out[\(i)]")
            }
            // Features past the rotated vectors are not written.
            for i in 0..<expected.count where i % stride >= rotated { XCTAssertEqual(result.out[i], -7) }
            let numeric = numericalGradient(x.doubles) {
                var l = 0.0
                let y = LlamaOps.rotary($0, rows: rows, time: time, stride: stride, vectors: vectors, headSize: headSize, theta: theta)
                for i in 0..<y.count where i % stride < rotated { l += y[i] * Double(g[i]) }
                return l
            }
            var dinp = result.dinp
            for i in 0..<dinp.count where i % stride >= rotated { dinp[i] = 0 }
            assertGradientsMatch(dinp, numeric, "rotary dinp hs=\(headSize)")
        }
    }

    /// The backward pass is the inverse rotation: rotating back what was rotated gives the input again (to float32
    /// rounding: cos² + sin² of the table is 1 within 2 ulps), and a rotation keeps each pair's norm.
    func testBackwardInvertsForwardAndInPlaceMatchesOutOfPlace() {
        let headSize = 64, vectors = 6, stride = 8 * 64, batch = 2, time = 33, rows = batch * time, theta = 500_000.0
        var random = TestRandom(5)
        let x = random.floats(rows * stride)
        let layout = Rotary.Layout(rows: rows, time: time, rowStride: stride, vectors: vectors, headSize: headSize)
        let forward = run(x, x, layout: layout, theta: theta, positions: 40)
        let back = run(forward.out, forward.out, layout: layout, theta: theta, positions: 40)
        for i in 0..<x.count where i % stride < vectors * headSize {
            XCTAssertEqual(back.dinp[i], x[i], accuracy: 1e-6 * max(1, abs(x[i])))
        }
        // In place: the same bits as out of place.
        let pool = ThreadPool(threads: 2)
        var arrays = [x, table(positions: 40, headSize: headSize, theta: theta)]
        withPointers(&arrays) { p in
            Rotary.forward(pool, out: p[0], inp: p[0], layout: layout, table: p[1], positions: 40)
        }
        for i in 0..<x.count {
            let expected = i % stride < vectors * headSize ? forward.out[i] : x[i]
            XCTAssertEqual(arrays[0][i].bitPattern, expected.bitPattern, "in place [\(i)]")
        }
    }

    /// Rows of a later window (`firstPosition`, as generation with a KV cache rotates one new position): the same
    /// values as those rows of one long sequence.
    func testFirstPositionOffsetsTheTable() {
        let headSize = 16, stride = 48, vectors = 2, theta = 10_000.0
        var random = TestRandom(6)
        let long = random.floats(20 * stride)
        let whole = run(long, long, layout: Rotary.Layout(rows: 20, time: 20, rowStride: stride, vectors: vectors,
                                                          headSize: headSize), theta: theta, positions: 20)
        let tail = Array(long[(13 * stride)...])
        let window = run(tail, tail, layout: Rotary.Layout(rows: 7, time: 7, firstPosition: 13, rowStride: stride,
                                                           vectors: vectors, headSize: headSize), theta: theta, positions: 20)
        for i in 0..<tail.count where i % stride < vectors * headSize {
            XCTAssertEqual(window.out[i].bitPattern, whole.out[13 * stride + i].bitPattern)
        }
    }
}

final class SwiGLUTests: XCTestCase {
    func testSigmoidIsAccurate() {
        var worst = 0.0
        for i in 0..<100_000 {
            let x = -87.0 + Double(i) * (107.0 / 100_000)
            let exact = 1 / (1 + exp(-Double(Float(x))))
            worst = max(worst, abs(Double(fastSigmoid(Float(x))) - exact) / exact)
        }
        // vexp's 4 ulps, one addition and one division: a few 1e-7.
        XCTAssertLessThan(worst, 5e-7)
        XCTAssertEqual(fastSigmoid(100), 1)
        XCTAssertEqual(fastSigmoid(0), 0.5)
        XCTAssertGreaterThanOrEqual(fastSigmoid(-200), 0)
        XCTAssertLessThan(fastSigmoid(-200), 1e-37)
    }

    func run(gate: [Float], up: [Float], dout: [Float], threads: Int = 2) -> (out: [Float], dgate: [Float], dup: [Float]) {
        let n = gate.count
        let pool = ThreadPool(threads: threads)
        var arrays = [gate, up, dout, [Float](repeating: .nan, count: n), [Float](repeating: .nan, count: n),
                      [Float](repeating: .nan, count: n)]
        withPointers(&arrays) { p in
            SwiGLU.forward(pool, out: p[3], gate: p[0], up: p[1], count: n)
            SwiGLU.backward(pool, dgate: p[4], dup: p[5], gate: p[0], up: p[1], dout: p[2], count: n)
        }
        return (arrays[3], arrays[4], arrays[5])
    }

    func testForwardAndBackwardAgainstFiniteDifferences() {
        // 61 elements (three vectors and a tail) and 5000 (split over the threads).
        for n in [61, 5000] {
            var random = TestRandom(UInt64(n))
            let gate = random.floats(n, scale: 3), up = random.floats(n), g = random.floats(n)
            let result = run(gate: gate, up: up, dout: g)
            let expected = LlamaOps.swiGLU(gate: gate.doubles, up: up.doubles)
            for i in 0..<n { XCTAssertEqual(Double(result.out[i]), expected[i], accuracy: 1e-6 * max(1, abs(expected[i])), "out[\(i)]") }
            let indices = n > 100 ? Array(stride(from: 0, to: n, by: 37)) : nil
            func loss(_ gate: [Double], _ up: [Double]) -> Double {
                zip(LlamaOps.swiGLU(gate: gate, up: up), g.doubles).map(*).reduce(0, +)
            }
            let dgate = numericalGradient(gate.doubles, indices: indices) { loss($0, up.doubles) }
            let dup = numericalGradient(up.doubles, indices: indices) { loss(gate.doubles, $0) }
            assertGradientsMatch(result.dgate, dgate, "swiglu dgate n=\(n)")
            assertGradientsMatch(result.dup, dup, "swiglu dup n=\(n)")
        }
    }

    func testLargeGatesStayFiniteAndInPlaceMatches() {
        let gate: [Float] = [-200, -90, -20, 0, 20, 90, 200] + [Float](repeating: 1.5, count: 20)
        let up = [Float](repeating: 2, count: gate.count), g = [Float](repeating: 1, count: gate.count)
        let result = run(gate: gate, up: up, dout: g)
        XCTAssertTrue(result.out.allSatisfy(\.isFinite))
        XCTAssertTrue(result.dgate.allSatisfy(\.isFinite))
        XCTAssertEqual(result.out[6], 400)
        XCTAssertEqual(result.dgate[6], 2)
        XCTAssertEqual(result.out[3], 0)
        XCTAssertEqual(result.dgate[3], 1)  // σ(0)·(1 + 0)·up = 0.5·2
        // dgate into gate and dup into up (in place) give the same bits.
        let pool = ThreadPool(threads: 2)
        var arrays = [gate, up, g]
        withPointers(&arrays) { p in
            SwiGLU.backward(pool, dgate: p[0], dup: p[1], gate: p[0], up: p[1], dout: p[2], count: gate.count)
        }
        XCTAssertEqual(arrays[0].map(\.bitPattern), result.dgate.map(\.bitPattern))
        XCTAssertEqual(arrays[1].map(\.bitPattern), result.dup.map(\.bitPattern))
    }
}
