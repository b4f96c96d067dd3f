// swift-tools-version:6.0
import Foundation
import PackageDescription

/// The numerical targets are compiled for the build machine's vector unit, as `-march=native` would do for C:
/// AVX-512 where the CPU has it, else AVX2 + FMA, else the x86-64 baseline. `GPT_TARGET_CPU=<llvm cpu>` overrides
/// (an empty value means the compiler's default), for building on one machine and running on another.
func targetCPUFlags() -> [String] {
    if let cpu = ProcessInfo.processInfo.environment["GPT_TARGET_CPU"] {
        return cpu.isEmpty ? [] : ["-target-cpu", cpu]
    }
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [] }
    let lines = info.split(separator: "\n")
    let flags = Set(lines.first { $0.hasPrefix("flags") }?.split(separator: " ").map(String.init) ?? [])
    let amd = lines.contains { $0.hasPrefix("vendor_id") && $0.contains("AuthenticAMD") }
    if ["avx512f", "avx512bw", "avx512vl", "avx512dq"].allSatisfy(flags.contains) {
        return ["-target-cpu", amd ? "znver4" : "skylake-avx512"]
    }
    if ["avx2", "fma", "f16c", "bmi2"].allSatisfy(flags.contains) { return ["-target-cpu", "haswell"] }
    return []
}

/// Hot loops: vector code for this CPU and no overflow or bounds traps in release builds (the kernels index
/// unsafe buffers whose sizes are checked once, where the buffers are made).
let numericSettings: [SwiftSetting] = [
    .unsafeFlags(targetCPUFlags()),
    .unsafeFlags(["-Ounchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "swift-gpt",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gpt-plan", targets: ["gpt-plan"]),
        .executable(name: "gpt-train", targets: ["gpt-train"]),
        .executable(name: "gpt-data", targets: ["gpt-data"]),
        .executable(name: "gpt-sample", targets: ["gpt-sample"]),
        .executable(name: "gpt-bench", targets: ["gpt-bench"]),
        .library(name: "Planner", targets: ["Planner"]),
        .library(name: "Recipe", targets: ["Recipe"]),
        .library(name: "Trainer", targets: ["Trainer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "pkg-config"])]),
        .systemLibrary(
            name: "CHDF5", pkgConfig: "hdf5",
            providers: [.apt(["libhdf5-dev", "pkg-config"])]),

        // Libraries, bottom up.
        .target(name: "Durable"),
        .target(name: "Compute", dependencies: ["COpenBLAS"], swiftSettings: numericSettings),
        .target(name: "Planner"),
        .target(name: "Recipe", dependencies: ["Planner", "TOMLKit"]),
        .target(name: "Tokenizers", swiftSettings: numericSettings),
        .target(name: "Corpus", dependencies: ["Tokenizers", "Durable"], swiftSettings: numericSettings),
        .target(name: "Kernels", dependencies: ["Compute"], swiftSettings: numericSettings),
        .target(name: "GPT", dependencies: ["Kernels", "Compute"], swiftSettings: numericSettings),
        .target(name: "Checkpoint", dependencies: ["CHDF5", "Durable"]),
        .target(
            name: "Trainer",
            dependencies: ["GPT", "Compute", "Recipe", "Planner", "Corpus", "Tokenizers", "Checkpoint", "Durable"],
            swiftSettings: numericSettings),
        .target(name: "TensorBoard"),
        .target(name: "LinePlots"),
        .target(name: "RunReports", dependencies: ["TensorBoard", "LinePlots"]),
        .target(name: "TestFixtures", dependencies: ["Recipe", "Planner"], path: "Sources/TestFixtures"),
        // Counts heap allocations in the test binary (it replaces malloc and friends there); nothing else links it.
        .target(name: "AllocationCounter", path: "Tests/AllocationCounter"),
        .target(
            name: "CLISupport",
            dependencies: ["Compute", "Planner", "Durable",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // Executables: thin wrappers that parse arguments and decide how to show what the libraries report.
        .executableTarget(
            name: "gpt-plan",
            dependencies: ["Planner", "Recipe", "Corpus", "CLISupport",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "gpt-train",
            dependencies: ["Trainer", "Recipe", "CLISupport", "RunReports", "Durable",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "gpt-data",
            dependencies: ["Corpus", "Tokenizers", "CLISupport",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "gpt-sample",
            dependencies: ["Trainer", "CLISupport",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "gpt-bench",
            dependencies: ["Trainer", "Corpus", "Tokenizers", "CLISupport",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        .testTarget(name: "PlannerTests", dependencies: ["Planner"]),
        .testTarget(name: "RecipeTests", dependencies: ["Recipe", "Planner"]),
        .testTarget(name: "ComputeTests", dependencies: ["Compute", "COpenBLAS"]),
        .testTarget(name: "KernelTests", dependencies: ["Kernels", "Compute"]),
        .testTarget(name: "GPTTests", dependencies: ["GPT", "Kernels", "Compute", "Planner"]),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizers"]),
        .testTarget(name: "CorpusTests", dependencies: ["Corpus", "Tokenizers", "TestFixtures"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "Trainer", "TestFixtures", "Compute"]),
        .testTarget(name: "TrainerTests", dependencies: ["Trainer", "GPT", "Recipe", "Compute", "TestFixtures", "Kernels", "AllocationCounter"]),
        .testTarget(name: "TensorBoardTests", dependencies: ["TensorBoard", "RunReports"]),
        .testTarget(name: "LinePlotsTests", dependencies: ["LinePlots", "RunReports"]),
        .testTarget(name: "CLITests", dependencies: ["TestFixtures", "Checkpoint", "Trainer", "Recipe"]),
    ]
)
