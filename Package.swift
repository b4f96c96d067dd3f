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

/// Hot loops: vector code for this CPU. Release builds keep Swift's checks (`-O`, not `-Ounchecked`): preconditions
/// hold in every build, and the kernels, which index unsafe buffers, pay nothing for them (docs/benchmarks.md).
///
/// `-target-cpu` is an unsafe flag, and SwiftPM refuses a dependency whose products contain one: so the products
/// below are the executables and the libraries without it (`GPTShape`, `Planner`, `Recipe`), and the numerical
/// libraries are built for the machine only as part of this package.
///
/// `-fno-math-errno` lets `squareRoot()` on vectors compile to the vector square root: with errno semantics (the
/// default on Linux) every lane became a scalar `vsqrtss` plus a branch to `sqrtf` for negative inputs, and that
/// made AdamW (one square root per parameter) compute-bound (docs/benchmarks.md). A square root is correctly rounded
/// either way; errno, which nothing reads, is no longer set, and LLVM may treat libm calls as pure (fold or
/// simplify them), which changes no value these targets compute.
let numericSettings: [SwiftSetting] = [.unsafeFlags(targetCPUFlags() + ["-Xcc", "-fno-math-errno"])]

let package = Package(
    name: "swift-gpt",
    products: [
        .executable(name: "gpt-plan", targets: ["gpt-plan"]),
        .executable(name: "gpt-train", targets: ["gpt-train"]),
        .executable(name: "gpt-data", targets: ["gpt-data"]),
        .executable(name: "gpt-sample", targets: ["gpt-sample"]),
        .executable(name: "gpt-bench", targets: ["gpt-bench"]),
        .library(name: "GPTShape", targets: ["GPTShape"]),
        .library(name: "Planner", targets: ["Planner"]),
        .library(name: "Recipe", targets: ["Recipe"]),
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
        // oneDNN (Debian's libdnnl-dev ships no pkg-config file; its header and library are on the default paths).
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(
            name: "CMPI", pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin", "pkg-config"])]),

        // Libraries, bottom up.
        .target(name: "Durable"),
        .target(name: "Collectives", dependencies: ["CMPI"], swiftSettings: numericSettings),
        .target(name: "Compute", dependencies: ["COpenBLAS", "CDNNL"], swiftSettings: numericSettings),
        // Numbers in words for messages (significant digits, SI prefixes, byte sizes); CLISupport re-exports it.
        .target(name: "Formatting"),
        // The model's shape, which the planner, the recipe and the model share, and what the CPU trainer can run
        // (`CPUTrainer`: its layouts, memory and usable share), which the planner, gpt-plan check and gpt-train share.
        .target(name: "GPTShape", dependencies: ["Formatting"]),
        .target(name: "Planner", dependencies: ["GPTShape", "Formatting"]),
        .target(name: "Recipe", dependencies: ["GPTShape", "Formatting", "TOMLKit"]),
        .target(name: "Tokenizers", dependencies: ["Durable", "Formatting"], swiftSettings: numericSettings),
        .target(name: "Corpus", dependencies: ["Tokenizers", "Durable"], swiftSettings: numericSettings),
        .target(name: "Kernels", dependencies: ["Compute"], swiftSettings: numericSettings),
        .target(name: "GPT", dependencies: ["GPTShape", "Kernels", "Compute"], swiftSettings: numericSettings),
        .target(name: "Checkpoint", dependencies: ["CHDF5", "Durable"]),
        // The recipe compiler: a plan becomes a recipe (`Recipe.from(plan:)`), and a recipe becomes the configuration
        // and data of Megatron-LM, nanoGPT or llm.c (docs/export.md). Planner → RecipeCompiler → Recipe.
        .target(name: "RecipeCompiler", dependencies: ["Planner", "Recipe", "GPTShape", "Corpus", "Tokenizers", "Durable", "Formatting"]),
        // A model outside the training loop, and what the loop shares with gpt-sample and gpt-bench: a recipe's data,
        // AdamW, checkpoints read into a model (and their tensors' names), window evaluation, the step benchmark.
        .target(
            name: "Runtime",
            dependencies: ["GPT", "GPTShape", "Kernels", "Compute", "Recipe", "Corpus", "Tokenizers", "Checkpoint"],
            swiftSettings: numericSettings),
        // The training loop: a recipe executed step by step, its spike policy, checkpoint store and metrics sink.
        .target(
            name: "Trainer",
            dependencies: ["Runtime", "GPT", "GPTShape", "Kernels", "Compute", "Recipe", "Corpus", "Tokenizers", "Checkpoint",
                           "Durable", "Collectives", "Metrics"],
            swiftSettings: numericSettings),
        // Hugging Face (safetensors, config.json) and llm.c model files, both ways (docs/interchange.md).
        .target(
            name: "Interchange",
            dependencies: ["GPT", "GPTShape", "Tokenizers", "Corpus", "Checkpoint", "Recipe", "Runtime", "Durable", "Compute", "Formatting"]),
        .target(name: "TensorBoard"),
        // metrics.jsonl's line (`MetricsLine`, written and read by this one type) and its TensorBoard mirror.
        .target(name: "Metrics", dependencies: ["TensorBoard", "Formatting"]),
        .target(name: "LinePlots"),
        .target(name: "RunReports", dependencies: ["Metrics", "TensorBoard", "LinePlots"]),
        .target(name: "TestFixtures", dependencies: ["Compute", "Recipe", "Planner"], path: "Sources/TestFixtures"),
        // Counts heap allocations in the test binary (it replaces malloc and friends there); nothing else links it.
        .target(name: "AllocationCounter", path: "Tests/AllocationCounter"),
        .target(
            name: "CLISupport",
            dependencies: ["Compute", "Durable", "Formatting", "Planner",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // Executables: thin wrappers that parse arguments and decide how to show what the libraries report.
        .executableTarget(
            name: "gpt-plan",
            dependencies: ["Planner", "GPTShape", "Recipe", "Corpus", "Compute", "Durable", "CLISupport", "LinePlots", "Metrics", "RecipeCompiler",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "gpt-train",
            dependencies: ["Trainer", "Runtime", "GPT", "GPTShape", "Recipe", "Planner", "Compute", "CLISupport", "Metrics", "RunReports", "Durable", "Collectives", "Interchange",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "gpt-data",
            dependencies: ["Corpus", "Tokenizers", "Planner", "CLISupport", "Durable",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "gpt-sample",
            dependencies: ["Runtime", "GPT", "Tokenizers", "Compute", "CLISupport",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "gpt-bench",
            dependencies: ["Runtime", "GPT", "GPTShape", "Corpus", "Compute", "Planner", "CLISupport",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        .testTarget(name: "CollectivesTests", dependencies: ["Collectives"]),
        .testTarget(name: "PlannerTests", dependencies: ["Planner", "GPTShape"]),
        .testTarget(name: "RecipeTests", dependencies: ["Recipe", "RecipeCompiler", "Planner", "GPTShape", "Formatting"]),
        .testTarget(name: "ComputeTests", dependencies: ["Compute", "COpenBLAS"]),
        .testTarget(name: "KernelTests", dependencies: ["Kernels", "Compute"]),
        .testTarget(name: "GPTTests", dependencies: ["GPT", "GPTShape", "Kernels", "Compute", "Planner"]),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizers"]),
        .testTarget(name: "CorpusTests", dependencies: ["Corpus", "Tokenizers", "TestFixtures"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "Runtime", "Trainer", "TestFixtures", "Compute"]),
        .testTarget(name: "TrainerTests", dependencies: ["Trainer", "Runtime", "GPT", "GPTShape", "Recipe", "Compute", "TestFixtures", "Kernels", "AllocationCounter"]),
        .testTarget(name: "TensorBoardTests", dependencies: ["TensorBoard", "Metrics", "RunReports"]),
        .testTarget(name: "LinePlotsTests", dependencies: ["LinePlots", "Metrics", "RunReports"]),
        .testTarget(name: "RecipeCompilerTests", dependencies: ["RecipeCompiler", "Recipe", "GPTShape", "Corpus", "Tokenizers", "Runtime", "Trainer", "TestFixtures"],
                    exclude: ["Python"]),
        .testTarget(name: "CLITests", dependencies: ["TestFixtures", "Checkpoint", "CHDF5", "Runtime", "Trainer", "Recipe", "Compute", "TensorBoard",
                                                     "Interchange", "Corpus", "GPT", "Tokenizers"]),
    ]
)
