import Compute
import Foundation
import Durable

/// This machine's matrix-product ceilings, measured once per BLAS kernel, thread count and CPU and cached in
/// `$XDG_CACHE_HOME/swift-gpt/sgemm-ceiling.json` (`~/.cache/...`), so that planning stays instant and MFU is
/// always reported against the same number: the sgemm ceiling, and, where the CPU multiplies bf16 natively, the
/// bf16 ceiling next to it (an entry's optional `bf16` object; files written before it existed still load, and
/// the bf16 ceiling is measured the first time it is asked for). `gpt-bench ceiling --remeasure` refreshes both.
public enum MachineProfile {
    public static var cachePath: String {
        let base = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"]
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".cache")
        return (base as NSString).appendingPathComponent("swift-gpt/sgemm-ceiling.json")
    }

    static func key(threads: Int) -> String { "\(CPU.modelName) | \(BLAS.coreName) | \(threads) threads" }

    /// One cache entry: the sgemm measurement's own keys (the file's only content before bf16 was measured),
    /// and the bf16 measurement when there is one.
    struct Entry: Codable {
        var flopsPerSecond: Double
        var size: Int
        var threads: Int
        var blasCore: String
        var bf16: BF16Ceiling.Measurement?

        init(_ m: SgemmCeiling.Measurement, bf16: BF16Ceiling.Measurement?) {
            flopsPerSecond = m.flopsPerSecond
            size = m.size
            threads = m.threads
            blasCore = m.blasCore
            self.bf16 = bf16
        }

        var sgemm: SgemmCeiling.Measurement {
            SgemmCeiling.Measurement(flopsPerSecond: flopsPerSecond, size: size, threads: threads, blasCore: blasCore)
        }
    }

    static func readCache() -> [String: Entry] {
        (try? JSONDecoder().decode([String: Entry].self, from: Data(contentsOf: URL(fileURLWithPath: cachePath)))) ?? [:]
    }

    static func writeCache(_ cache: [String: Entry]) {
        guard let data = try? JSONEncoder().encode(cache) else { return }
        try? FileManager.default.createDirectory(atPath: (cachePath as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true)
        try? AtomicFile.write(data, to: cachePath)
    }

    public static func sgemmCeiling(pool: ThreadPool, remeasure: Bool = false) -> SgemmCeiling.Measurement {
        let key = key(threads: pool.threadCount)
        var cache = readCache()
        if !remeasure, let known = cache[key] { return known.sgemm }
        let measured = SgemmCeiling.measure(pool: pool)
        cache[key] = Entry(measured, bf16: cache[key]?.bf16)
        writeCache(cache)
        return measured
    }

    /// The bf16 ceiling (cached as the sgemm's), or nil where this CPU has no native bf16 products
    /// (`BF16Matmul.isAvailable`): nothing is measured then.
    public static func bf16Ceiling(pool: ThreadPool, remeasure: Bool = false) -> BF16Ceiling.Measurement? {
        guard BF16Matmul.isAvailable else { return nil }
        let key = key(threads: pool.threadCount)
        let sgemm = sgemmCeiling(pool: pool)
        var cache = readCache()
        if !remeasure, let known = cache[key]?.bf16, known.implementation == BF16Matmul.implementation {
            return known
        }
        let measured = BF16Ceiling.measure(pool: pool)
        cache[key] = Entry(cache[key]?.sgemm ?? sgemm, bf16: measured)
        writeCache(cache)
        return measured
    }

    /// "this machine: 2 threads, OpenBLAS SkylakeX sgemm 452 GFLOP/s measured on 2048³".
    public static func describe(_ m: SgemmCeiling.Measurement) -> String {
        "this machine: \(m.threads) thread\(m.threads == 1 ? "" : "s"), OpenBLAS \(m.blasCore) sgemm "
            + "\(Int(m.flopsPerSecond / 1e9)) GFLOP/s measured on \(m.size)³"
    }

    /// "this machine: 2 threads, oneDNN brg:avx512_core_bf16 bf16 matmul 430 GFLOP/s measured on 3072³".
    public static func describe(_ m: BF16Ceiling.Measurement) -> String {
        "this machine: \(m.threads) thread\(m.threads == 1 ? "" : "s"), oneDNN \(m.implementation) bf16 matmul "
            + "\(Int(m.flopsPerSecond / 1e9)) GFLOP/s measured on \(m.size)³"
    }

    /// Whether bf16 products should run natively (oneDNN, `BF16Products.native`) on this machine: where its bf16
    /// matmul is measured at least as fast as the sgemm; else they are emulated on the sgemm, the same bf16 operands
    /// and fp32 accumulation at the sgemm's rate.
    /// AVX512-BF16 without AMX on an Intel Emerald Rapids guest measured 0.53-0.59× the sgemm; on AMD
    /// Zen 4 it measured 1.96× (docs/benchmarks.md). `measure: false` decides from the cache alone and takes
    /// native when nothing is cached yet.
    public static func nativeBF16Pays(pool: ThreadPool, measure: Bool = true) -> Bool {
        guard BF16Matmul.isAvailable else { return false }
        let rates: (bf16: Double, sgemm: Double)
        if measure {
            guard let half = bf16Ceiling(pool: pool) else { return false }
            rates = (half.flopsPerSecond, sgemmCeiling(pool: pool).flopsPerSecond)
        } else {
            guard let entry = readCache()[key(threads: pool.threadCount)], let half = entry.bf16,
                  half.implementation == BF16Matmul.implementation else { return true }
            rates = (half.flopsPerSecond, entry.flopsPerSecond)
        }
        return rates.bf16 >= rates.sgemm
    }

    /// The ceiling MFU is measured against: the rate of the products a run actually uses.
    public struct Ceiling: Sendable, Equatable {
        public enum Kind: String, Sendable { case sgemm, bf16 }
        public var kind: Kind
        public var flopsPerSecond: Double
        /// What was measured, in words (`describe`).
        public var description: String
    }

    /// The ceiling of a run: the bf16 ceiling when its products are bf16 run natively by oneDNN
    /// (`nativeBF16Products`), else the sgemm ceiling (fp32, and bf16 emulated on the sgemm, which is no faster).
    public static func ceiling(pool: ThreadPool, nativeBF16Products: Bool) -> Ceiling {
        if nativeBF16Products, let m = bf16Ceiling(pool: pool) {
            return Ceiling(kind: .bf16, flopsPerSecond: m.flopsPerSecond, description: describe(m))
        }
        let m = sgemmCeiling(pool: pool)
        return Ceiling(kind: .sgemm, flopsPerSecond: m.flopsPerSecond, description: describe(m))
    }
}
