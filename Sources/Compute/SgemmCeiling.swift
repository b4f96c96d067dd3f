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
            a.base[i] = Float(i % 17) * 0.01 - 0.08
            b.base[i] = Float(i % 13) * 0.01 - 0.06
        }
        func product() {
            Matmul.gemm(pool, transA: false, transB: false, m: size, n: size, k: size,
                        a: a.base, lda: size, b: b.base, ldb: size, beta: 0, c: c.base, ldc: size)
        }
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
        return Measurement(flopsPerSecond: best, size: size, threads: pool.threadCount, blasCore: BLAS.coreName)
    }
}
