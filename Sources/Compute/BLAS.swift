import COpenBLAS
import Foundation

/// The OpenBLAS library this process runs on.
public enum BLAS {
    /// The kernel family OpenBLAS selected for this CPU ("Haswell", "SkylakeX", ...).
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// Pins OpenBLAS to one thread. All parallelism comes from `ThreadPool`, which splits products into
    /// single-threaded sgemm calls; OpenBLAS's own threads would spin beside ours. Debian's OpenBLAS ignores
    /// `OMP_NUM_THREADS`, so this has to be done in code, before the first product.
    public static func pinToOneThread() {
        openblas_set_num_threads(1)
    }

    /// The OpenBLAS kernel family worth restarting for, when it differs from the one this process runs.
    ///
    /// OpenBLAS 0.3.21 (Debian 12) does not know AMD Zen 5 and falls back to its AVX2 "Haswell" kernels (this
    /// machine's environment also pins `OPENBLAS_CORETYPE=Haswell`), although the CPU has AVX-512; the
    /// "SkylakeX" kernels compute the same products (checked against a double-precision reference) about twice
    /// as fast. OpenBLAS reads `OPENBLAS_CORETYPE` only when it loads, so an executable that wants other kernels
    /// has to start again with the variable set (`CLISupport.Main.relaunchWithFastestBLASCore`).
    ///
    /// `GPT_BLAS_CORE` decides: unset or `auto` picks SkylakeX on AVX-512 CPUs when OpenBLAS chose an AVX2 or
    /// older kernel; `keep` leaves OpenBLAS's choice (and `OPENBLAS_CORETYPE`) alone; any other value names the
    /// kernel to use. Returns nil when no restart is needed.
    public static func preferredCoreType() -> String? {
        let environment = ProcessInfo.processInfo.environment
        let current = coreName.lowercased()
        switch environment["GPT_BLAS_CORE"] {
        case "keep":
            return nil
        case let name? where name != "auto" && !name.isEmpty:
            return name.lowercased() == current ? nil : name
        default:
            let avx512Cores: Set<String> = ["skylakex", "cooperlake", "sapphirerapids"]
            if avx512Cores.contains(current) { return nil }
            return CPU.hasAVX512 ? "SkylakeX" : nil
        }
    }

    /// When this process was restarted to change kernels: the `OPENBLAS_CORETYPE` it had before, so that
    /// executables can say what they overrode.
    public static var overriddenCoreType: String? {
        ProcessInfo.processInfo.environment["GPT_BLAS_ORIGINAL_CORETYPE"]
    }
}

/// What this CPU offers, read from /proc/cpuinfo.
public enum CPU {
    public static let flags: Set<String> = {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
        else { return [] }
        return Set(line.split(separator: " ").map(String.init))
    }()

    /// AVX-512 with the subsets OpenBLAS's SkylakeX kernels use.
    public static var hasAVX512: Bool {
        ["avx512f", "avx512bw", "avx512vl", "avx512dq"].allSatisfy(flags.contains)
    }

    /// bf16 matrix instructions: AVX512-BF16 (Zen 4/5, Cooper Lake, Sapphire Rapids) or AMX-BF16 tiles (Sapphire
    /// and Emerald Rapids). Without them a bf16 product is emulated on the fp32 sgemm and runs no faster than fp32.
    public static var hasBF16: Bool { flags.contains("avx512_bf16") || flags.contains("amx_bf16") }

    public static var modelName: String {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let colon = line.firstIndex(of: ":")
        else { return "unknown CPU" }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }

    /// Logical CPUs this process may run on.
    public static var count: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// Physical memory in bytes.
    public static var memoryBytes: UInt64 { ProcessInfo.processInfo.physicalMemory }
}
