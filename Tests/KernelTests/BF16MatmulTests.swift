import Compute
import Foundation
import Kernels
import XCTest

/// oneDNN's native bf16 products against the exact emulation: the same operands rounded to bf16 and multiplied by
/// the fp32 sgemm. Both multiply exact bf16 values (each product of two 8-bit significands is exact in fp32) and
/// accumulate in fp32, so they differ only in the order of the k-term sum: each order's result is within
/// (k−1)·2⁻²⁴·Σ|aᵢbᵢ| of the exact sum (Higham, Accuracy and Stability, eq. 3.5), so two orders differ by at most
/// twice that. That bound is asserted element by element, and the results must not be fp32's on the unrounded
/// operands (the rounding really happens).
final class BF16MatmulTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(BF16Matmul.isAvailable,
                          "\(CPU.modelName) has no native bf16 products (no avx512_bf16 or amx_bf16), nothing to compare")
    }

    struct Case {
        var transA: Bool, transB: Bool, m: Int, n: Int, k: Int, pad: Int, accumulate: Bool
    }

    func testNativeProductsMatchTheEmulationWithinTheSummationBound() {
        var cases: [Case] = []
        for transA in [false, true] {
            for transB in [false, true] {
                for accumulate in [false, true] {
                    // Small (one thread), odd sizes, padded rows, and large enough to be split by rows and by columns.
                    cases.append(Case(transA: transA, transB: transB, m: 7, n: 5, k: 3, pad: 0, accumulate: accumulate))
                    cases.append(Case(transA: transA, transB: transB, m: 33, n: 47, k: 65, pad: 3, accumulate: accumulate))
                    cases.append(Case(transA: transA, transB: transB, m: 200, n: 96, k: 150, pad: 5, accumulate: accumulate))
                    cases.append(Case(transA: transA, transB: transB, m: 40, n: 300, k: 130, pad: 0, accumulate: accumulate))
                }
            }
        }
        cases.append(Case(transA: false, transB: true, m: 64, n: 100, k: 0, pad: 0, accumulate: false))
        cases.append(Case(transA: false, transB: true, m: 64, n: 100, k: 0, pad: 0, accumulate: true))
        var random = TestRandom(11)
        for threads in [1, 2] {
            let pool = ThreadPool(threads: threads)
            for c in cases {
                let label = "\(c) threads \(threads)"
                // Row-major storage of A (m×k, or k×m when transposed) and B (k×n, or n×k) with padded rows.
                let aRows = c.transA ? c.k : c.m, aCols = c.transA ? c.m : c.k, lda = aCols + c.pad
                let bRows = c.transB ? c.n : c.k, bCols = c.transB ? c.k : c.n, ldb = bCols + c.pad
                let ldc = c.n + c.pad
                let a = random.floats(aRows * lda), b = random.floats(bRows * ldb)
                let start = random.floats(c.m * ldc)
                let aBits = a.map(BFloat16.bits), bBits = b.map(BFloat16.bits)
                let aRounded = aBits.map(BFloat16.value), bRounded = bBits.map(BFloat16.value)

                var native = start, emulated = start, unrounded = start
                aBits.withUnsafeBufferPointer { ab in bBits.withUnsafeBufferPointer { bb in
                    native.withUnsafeMutableBufferPointer { cb in
                        BF16Matmul.gemm(pool, transA: c.transA, transB: c.transB, m: c.m, n: c.n, k: c.k,
                                        a: ab.baseAddress!, lda: lda, b: bb.baseAddress!, ldb: ldb,
                                        beta: c.accumulate ? 1 : 0, c: cb.baseAddress!, ldc: ldc)
                    }
                }}
                func sgemm(_ x: [Float], _ y: [Float], into out: inout [Float]) {
                    x.withUnsafeBufferPointer { xb in y.withUnsafeBufferPointer { yb in
                        out.withUnsafeMutableBufferPointer { cb in
                            Matmul.gemm(pool, transA: c.transA, transB: c.transB, m: c.m, n: c.n, k: c.k,
                                        a: xb.baseAddress!, lda: lda, b: yb.baseAddress!, ldb: ldb,
                                        beta: c.accumulate ? 1 : 0, c: cb.baseAddress!, ldc: ldc)
                        }
                    }}
                }
                sgemm(aRounded, bRounded, into: &emulated)
                sgemm(a, b, into: &unrounded)
                var differsFromFP32 = false
                for i in 0..<c.m {
                    for j in 0..<c.n {
                        var magnitude = c.accumulate ? Double(abs(start[i * ldc + j])) : 0
                        for p in 0..<c.k {
                            let x = c.transA ? aRounded[p * lda + i] : aRounded[i * lda + p]
                            let y = c.transB ? bRounded[j * ldb + p] : bRounded[p * ldb + j]
                            magnitude += Double(abs(x * y))
                        }
                        let bound = 2 * Double(max(c.k, 1)) * 0x1p-24 * magnitude
                        let got = native[i * ldc + j], want = emulated[i * ldc + j]
                        XCTAssertLessThanOrEqual(Double(abs(got - want)), bound, "\(label) C[\(i),\(j)]")
                        if got != unrounded[i * ldc + j] { differsFromFP32 = true }
                    }
                    // Padding between rows of C is never written.
                    for j in c.n..<ldc { XCTAssertEqual(native[i * ldc + j], start[i * ldc + j], "\(label) padding") }
                }
                if c.k > 0 { XCTAssertTrue(differsFromFP32, "\(label): identical to fp32, so nothing was rounded") }
                if c.k == 0 {
                    for i in 0..<c.m { for j in 0..<c.n {
                        XCTAssertEqual(native[i * ldc + j], c.accumulate ? start[i * ldc + j] : 0, "\(label) k = 0")
                    }}
                }
            }
        }
    }

    /// The same product twice, with other shapes in between (other cached primitives), gives the same bits; so does
    /// another pool of the same size (its worker thread is new, so that part's primitives are created afresh). The split depends
    /// on the thread count only.
    func testProductsRepeatExactly() {
        var random = TestRandom(3)
        let m = 130, n = 120, k = 70
        let a = random.floats(m * k).map(BFloat16.bits), b = random.floats(n * k).map(BFloat16.bits)
        func product(_ pool: ThreadPool, m: Int) -> [Float] {
            var c = [Float](repeating: 0, count: m * n)
            a.withUnsafeBufferPointer { ab in b.withUnsafeBufferPointer { bb in c.withUnsafeMutableBufferPointer { cb in
                BF16Matmul.gemm(pool, transB: true, m: m, n: n, k: k, a: ab.baseAddress!, lda: k, b: bb.baseAddress!,
                                ldb: k, beta: 0, c: cb.baseAddress!, ldc: n)
            }}}
            return c
        }
        let pool = ThreadPool(threads: 2)
        let first = product(pool, m: m)
        _ = product(pool, m: 90)
        XCTAssertEqual(product(pool, m: m).map(\.bitPattern), first.map(\.bitPattern))
        XCTAssertEqual(product(ThreadPool(threads: 2), m: m).map(\.bitPattern), first.map(\.bitPattern))
    }
}

/// The conversions need no bf16 instructions: tested everywhere.
final class BFloat16ConversionTests: XCTestCase {
    /// Conversions: bits are the high half of the rounded value, and the transpose moves every element.
    func testConversionAndTranspose() {
        var random = TestRandom(5)
        let rows = 150, columns = 130   // above both kernels' serial thresholds: the parallel paths
        let x = random.floats(rows * columns)
        var bits = [UInt16](repeating: 0, count: x.count), rounded = [Float](repeating: 0, count: x.count)
        var transposed = [UInt16](repeating: 0, count: x.count)
        let pool = ThreadPool(threads: 2)
        x.withUnsafeBufferPointer { xb in bits.withUnsafeMutableBufferPointer { bb in
            rounded.withUnsafeMutableBufferPointer { rb in
                BFloat16.convert(pool, bits: bb.baseAddress!, rounded: rb.baseAddress!, xb.baseAddress!, count: x.count)
            }
            transposed.withUnsafeMutableBufferPointer { tb in
                BFloat16.transpose(pool, transposed: tb.baseAddress!, bb.baseAddress!, rows: rows, columns: columns)
            }
        }}
        for i in 0..<rows {
            for j in 0..<columns {
                let e = i * columns + j
                XCTAssertEqual(rounded[e], BFloat16.round(x[e]))
                XCTAssertEqual(bits[e], UInt16(truncatingIfNeeded: BFloat16.round(x[e]).bitPattern >> 16))
                XCTAssertEqual(BFloat16.value(bits[e]), rounded[e])
                XCTAssertEqual(transposed[j * rows + i], bits[e])
            }
        }
    }
}
