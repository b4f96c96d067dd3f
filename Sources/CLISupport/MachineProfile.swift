import Compute
import Foundation
import Durable

/// This machine's matrix-product ceiling, measured once per BLAS kernel, thread count and CPU and cached in
/// `$XDG_CACHE_HOME/swift-gpt/sgemm-ceiling.json` (`~/.cache/...`), so that planning stays instant and MFU is
/// always reported against the same number. `gpt-bench ceiling --remeasure` refreshes it.
public enum MachineProfile {
    public static var cachePath: String {
        let base = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"]
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".cache")
        return (base as NSString).appendingPathComponent("swift-gpt/sgemm-ceiling.json")
    }

    static func key(threads: Int) -> String { "\(CPU.modelName) | \(BLAS.coreName) | \(threads) threads" }

    public static func sgemmCeiling(pool: ThreadPool, remeasure: Bool = false) -> SgemmCeiling.Measurement {
        let key = key(threads: pool.threadCount)
        var cache = (try? JSONDecoder().decode([String: SgemmCeiling.Measurement].self,
                                               from: Data(contentsOf: URL(fileURLWithPath: cachePath)))) ?? [:]
        if !remeasure, let known = cache[key] { return known }
        let measured = SgemmCeiling.measure(pool: pool)
        cache[key] = measured
        if let data = try? JSONEncoder().encode(cache) {
            try? FileManager.default.createDirectory(atPath: (cachePath as NSString).deletingLastPathComponent,
                                                     withIntermediateDirectories: true)
            try? AtomicFile.write(data, to: cachePath)
        }
        return measured
    }

    /// "2 threads, SkylakeX sgemm 452 GFLOP/s (measured)".
    public static func describe(_ m: SgemmCeiling.Measurement) -> String {
        "this machine: \(m.threads) thread\(m.threads == 1 ? "" : "s"), OpenBLAS \(m.blasCore) sgemm "
            + "\(Int(m.flopsPerSecond / 1e9)) GFLOP/s measured on \(m.size)³"
    }
}
