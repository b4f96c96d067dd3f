import Foundation

/// This machine's matrix-product ceiling: the sustained rate of a large square sgemm split over the pool the way
/// the trainer splits its products. MFU is reported against it.
public enum SgemmCeiling {
    public struct Measurement: Sendable, Codable, Equatable {
        /// Sustained multiply-add rate, in FLOP/s (2 per multiply-add).
        public var flopsPerSecond: Double
        public var size: Int
        public var threads: Int
        public var blasCore: String

        public init(flopsPerSecond: Double, size: Int, threads: Int, blasCore: String) {
            self.flopsPerSecond = flopsPerSecond
            self.size = size
            self.threads = threads
            self.blasCore = blasCore
        }
    }

    /// The ceiling: the best rate over square products of 2048 and 3072 (OpenBLAS is at its fastest from about
    /// 2048 on), about a second each.
    public static func measure(pool: ThreadPool) -> Measurement {
        [2048, 3072].map { measure(pool: pool, size: $0, seconds: 1.0) }.max { $0.flopsPerSecond < $1.flopsPerSecond }!
    }

    /// Times repeated `size`×`size`×`size` products for about `seconds` after one warm-up product, and reports
    /// the best of three equal slices of that time (the least disturbed by anything else on the machine).
    public static func measure(pool: ThreadPool, size: Int, seconds: Double) -> Measurement {
        let a = FloatStorage(count: size * size), b = FloatStorage(count: size * size)
        let c = FloatStorage(count: size * size)
        for i in 0..<(size * size) {
            a.base[i] = CeilingOperands.a(i)
            b.base[i] = CeilingOperands.b(i)
        }
        let rate = CeilingOperands.sustainedRate(size: size, seconds: seconds) {
            Matmul.gemm(pool, transA: false, transB: false, m: size, n: size, k: size,
                        a: a.base, lda: size, b: b.base, ldb: size, beta: 0, c: c.base, ldc: size)
        }
        return Measurement(flopsPerSecond: rate, size: size, threads: pool.threadCount, blasCore: BLAS.coreName)
    }
}

/// The bf16 ceiling: the sustained rate of a large square bf16 × bf16 → fp32 product through oneDNN
/// (`BF16Matmul.gemm`), split over the pool the way the model splits its bf16 products. MFU of a run whose
/// products are native bf16 is reported against it; nil where the CPU has no native bf16 products.
public enum BF16Ceiling {
    public struct Measurement: Sendable, Codable, Equatable {
        /// Sustained multiply-add rate, in FLOP/s (2 per multiply-add).
        public var flopsPerSecond: Double
        public var size: Int
        public var threads: Int
        /// oneDNN's implementation of the product (`BF16Matmul.implementation`), e.g. "brg:avx512_core_bf16".
        public var implementation: String
    }

    /// The ceiling, as `SgemmCeiling.measure`: the best rate over squares of 2048 and 3072, about a second each;
    /// nil where `BF16Matmul.isAvailable` is false (bf16 products are then emulated on the sgemm, whose ceiling
    /// applies).
    public static func measure(pool: ThreadPool) -> Measurement? {
        guard BF16Matmul.isAvailable else { return nil }
        return [2048, 3072].map { measure(pool: pool, size: $0, seconds: 1.0)! }.max { $0.flopsPerSecond < $1.flopsPerSecond }!
    }

    /// Times repeated `size`³ bf16 products as `SgemmCeiling.measure(pool:size:seconds:)` does (the warm-up
    /// product also creates each part's oneDNN primitive); nil without native bf16 products.
    public static func measure(pool: ThreadPool, size: Int, seconds: Double) -> Measurement? {
        guard let implementation = BF16Matmul.implementation else { return nil }
        let a = UnsafeMutablePointer<UInt16>.allocate(capacity: size * size)
        let b = UnsafeMutablePointer<UInt16>.allocate(capacity: size * size)
        defer { a.deallocate(); b.deallocate() }
        let c = FloatStorage(count: size * size)
        // The same operands as the sgemm's, truncated to bf16 (their top 16 bits).
        for i in 0..<(size * size) {
            a[i] = UInt16(truncatingIfNeeded: CeilingOperands.a(i).bitPattern >> 16)
            b[i] = UInt16(truncatingIfNeeded: CeilingOperands.b(i).bitPattern >> 16)
        }
        let rate = CeilingOperands.sustainedRate(size: size, seconds: seconds) {
            BF16Matmul.gemm(pool, transA: false, transB: false, m: size, n: size, k: size,
                            a: a, lda: size, b: b, ldb: size, beta: 0, c: c.base, ldc: size)
        }
        return Measurement(flopsPerSecond: rate, size: size, threads: pool.threadCount, implementation: implementation)
    }
}

/// What both ceilings share: their operands and their timing.
enum CeilingOperands {
    static func a(_ i: Int) -> Float { Float(i % 17) * 0.01 - 0.08 }
    static func b(_ i: Int) -> Float { Float(i % 13) * 0.01 - 0.06 }

    /// FLOP/s of `product`, a `size`³ product: one warm-up call, then repeated calls for about `seconds`, and the
    /// best of three equal slices of that time (the least disturbed by anything else on the machine).
    static func sustainedRate(size: Int, seconds: Double, _ product: () -> Void) -> Double {
        product()
        let flops = 2.0 * Double(size) * Double(size) * Double(size)
        var best = 0.0
        for _ in 0..<3 {
            var reps = 0
            let start = DispatchTime.now().uptimeNanoseconds
            var elapsed = 0.0
            repeat {
                product()
                reps += 1
                elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            } while elapsed < seconds / 3
            best = max(best, Double(reps) * flops / elapsed)
        }
        return best
    }
}
