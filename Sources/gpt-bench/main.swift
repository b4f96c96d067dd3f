import ArgumentParser
import CLISupport
import Compute
import Corpus
import Foundation
import GPT
import GPTShape
import Runtime

struct GPTBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpt-bench",
        abstract: "Measure this machine: the sgemm and bf16 ceilings, training throughput and MFU, tokenizer speed.",
        subcommands: [TrainSpeed.self, Ceiling.self, TokenizerSpeed.self],
        defaultSubcommand: TrainSpeed.self)
}

struct Ceiling: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ceiling",
        abstract: "The matrix-product rates MFU is measured against: the sgemm's, and the bf16 matmul's where the CPU has it (cached; --remeasure refreshes them).")
    @OptionGroup var threadOption: ThreadOption
    var threads: Int { threadOption.count }
    @Flag(help: "Measure again instead of using the cached value.") var remeasure = false
    @Flag(help: "Also time square products of several sizes, without caching anything.") var sweep = false
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        guard !(sweep && json) else {
            throw CommandFailure.usage("gpt-bench ceiling: --sweep prints a table, not JSON; use one or the other")
        }
        BLAS.pinToOneThread()
        let pool = ThreadPool(threads: threads)
        if sweep {
            for size in [512, 1024, 1536, 2048, 3072, 4096] {
                let m = SgemmCeiling.measure(pool: pool, size: size, seconds: 2)
                let half = BF16Ceiling.measure(pool: pool, size: size, seconds: 2)
                print("  \(size)³: sgemm \(flopRate(m.flopsPerSecond))" + (half.map { ", bf16 \(flopRate($0.flopsPerSecond))" } ?? ""))
            }
        }
        let m = MachineProfile.sgemmCeiling(pool: pool, remeasure: remeasure)
        let half = MachineProfile.bf16Ceiling(pool: pool, remeasure: remeasure)
        if json {
            let object: [String: Any] = [
                "threads": threads, "cpu": CPU.modelName, "blas_core": m.blasCore,
                "sgemm_gflops": m.flopsPerSecond / 1e9, "sgemm_size": m.size,
                "bf16_gflops": half.map { $0.flopsPerSecond / 1e9 as Any } ?? NSNull(),
                "bf16_size": half.map { $0.size as Any } ?? NSNull(),
                "bf16_implementation": half.map { $0.implementation as Any } ?? NSNull(),
                "bf16_instructions": CPU.hasBF16, "cache": MachineProfile.cachePath,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("sgemm ceiling: \(flopRate(m.flopsPerSecond)) (\(MachineProfile.describe(m)); \(Main.blasDescription))")
        print(bf16CeilingLine(half, fp32: m.flopsPerSecond))
        print("cached in \(MachineProfile.cachePath)")
    }
}

/// The bf16 ceiling in words: oneDNN's rate and implementation where the CPU multiplies bf16 natively; else why
/// there is none, and that bf16 products then run at the sgemm's rate at best (emulated on it).
func bf16CeilingLine(_ m: BF16Ceiling.Measurement?, fp32: Double) -> String {
    if let m {
        return "bf16 ceiling: \(flopRate(m.flopsPerSecond)) (\(MachineProfile.describe(m)); "
            + String(format: "%.2f", m.flopsPerSecond / fp32) + "× the sgemm's)"
    }
    return CPU.hasBF16
        ? "bf16 ceiling: none (this CPU has bf16 instructions, but oneDNN offers only its reference bf16 matmul here: bf16 products are emulated on the fp32 sgemm, at \(flopRate(fp32)) at best)"
        : "bf16 ceiling: none (no bf16 instructions on this CPU: bf16 products are emulated on the fp32 sgemm, at \(flopRate(fp32)) at best, so bf16 is no faster than fp32)"
}

extension AttentionKernel: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {}
extension Recompute: ExpressibleByArgument {}

/// `gpt-bench train --config`: one of the three configurations compared with PyTorch, all three, or GPT-2 124M at
/// T 1024.
enum ConfigurationChoice: String, CaseIterable, ExpressibleByArgument {
    case a, b, c, d, l, all
}

/// `gpt-bench train --bf16-products`: gpt-train's rule (`auto`), or a path forced.
enum ProductsChoice: String, CaseIterable, ExpressibleByArgument {
    case auto, native, emulated
}

struct TrainSpeed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training throughput (tokens/s, GFLOP/s, MFU, peak memory) of the standard configurations (the default command).",
        discussion: """
        FLOPs per token are 6N + 12·n_layer·d_model·T, N the non-embedding parameters plus the tied head's matrix \
        (nanoGPT's estimate); MFU is against the ceiling of the products in use (gpt-bench ceiling): the bf16 matmul's \
        with --precision bf16 where the CPU multiplies bf16 natively, else the sgemm's. A step is a forward \
        pass, a backward pass, the gradient norm and an AdamW update on random tokens.
        """)

    @Option(help: "Which configurations: a, b, c, or all (the three compared with PyTorch); d, GPT-2 124M at T 1024; or l, a Llama-style model of its size (4 KV heads, SwiGLU 2048, tied) at T 1024.")
    var config: ConfigurationChoice = .all
    @Option(name: .customLong("micro-batch"), parsing: .unconditional,
            help: "Sequences a step, 1 to 4096, instead of the configuration's (for d and l: how far a micro-batch fits).",
            transform: NumberArgument.whole(1...4096))
    var microBatch: Int?
    @Option(parsing: .unconditional, help: "Timed steps per configuration, 1 to 100000 (default: 10; the median is reported).",
            transform: NumberArgument.whole(1...100_000))
    var steps: Int = 10
    @Option(parsing: .unconditional, help: "Untimed steps first, 0 to 100000 (default: 2).", transform: NumberArgument.whole(0...100_000))
    var warmup: Int = 2
    @OptionGroup var threadOption: ThreadOption
    var threads: Int { threadOption.count }
    @Flag(help: "Print one JSON object per configuration.") var json = false
    @Option(help: "Attention kernel: fused (flash-style, the default) or materialized (B·H·T² probabilities).")
    var attention: AttentionKernel = .fused
    @Option(help: "Matrix products' inputs: fp32 or bf16 (bf16 inputs, fp32 accumulation).")
    var precision: Precision = .fp32
    @Option(help: ArgumentHelp("How bf16 products run: auto (gpt-train's rule: native unless oneDNN's bf16 matmul is "
                               + "measured slower than the sgemm here), native (oneDNN), or emulated (bf16 operands on the sgemm)."))
    var bf16Products: ProductsChoice = .auto
    @Option(help: "Activation recomputation: none, selective (attention's core again in the backward pass) or full (each block's forward again).")
    var recompute: Recompute = .none

    func run() throws {
        let all = ThroughputBenchmark.Configuration.standard
        let chosen: [ThroughputBenchmark.Configuration]
        switch config {
        case .all: chosen = all
        case .a: chosen = [all[0]]
        case .b: chosen = [all[1]]
        case .c: chosen = [all[2]]
        case .d: chosen = [.fullContext]
        case .l: chosen = [.llamaFullContext]
        }
        let configurations = microBatch.map { b in chosen.map { $0.withBatch(b) } } ?? chosen
        BLAS.pinToOneThread()
        let pool = ThreadPool(threads: threads)
        let chosenProducts: BF16Products
        switch bf16Products {
        case .auto: chosenProducts = precision == .bf16 && !MachineProfile.nativeBF16Pays(pool: pool) ? .emulated : .native
        case .native:
            guard BF16Matmul.isAvailable else {
                throw CommandFailure.usage("gpt-bench: --bf16-products native: this CPU has no native bf16 matmul (oneDNN offers none); use auto or emulated")
            }
            chosenProducts = .native
        case .emulated: chosenProducts = .emulated
        }
        let native = precision == .bf16 && chosenProducts == .native
        let ceiling = MachineProfile.ceiling(pool: pool, nativeBF16Products: native)
        let products = precision == .fp32 ? "fp32 (OpenBLAS sgemm)"
            : native ? "bf16, native (oneDNN \(BF16Matmul.implementation!))"
            : BF16Matmul.isAvailable ? "bf16, emulated on the fp32 sgemm (\(bf16Products == .auto ? "oneDNN's bf16 matmul measured slower than the sgemm here" : "asked for"))"
            : "bf16, emulated on the fp32 sgemm"
        if !json {
            print("\(CPU.modelName), \(threads) threads, \(Main.blasDescription)")
            print("attention \(attention.rawValue), recompute \(recompute.rawValue), precision \(precision.rawValue): products \(products)")
            print("MFU against the \(ceiling.kind.rawValue) ceiling \(flopRate(ceiling.flopsPerSecond)) (\(ceiling.description))"
                  + (precision == .bf16 && !native ? ": bf16 products are emulated on the sgemm here, so its ceiling is theirs" : "")
                  + "\n")
        }
        for c in configurations {
            let r = try ThroughputBenchmark.run(c, threads: threads, steps: steps, warmup: warmup, attention: attention,
                                                precision: precision, bf16Products: precision == .bf16 ? chosenProducts : nil,
                                                recompute: recompute)
            let mfu = r.flopsPerSecond / ceiling.flopsPerSecond
            if json {
                let object: [String: Any] = [
                    "config": r.name, "batch": c.batch, "time": c.time, "threads": r.threads, "tokens_per_sec": r.tokensPerSecond,
                    "gflops": r.flopsPerSecond / 1e9, "mfu": mfu, "ceiling_gflops": ceiling.flopsPerSecond / 1e9,
                    "ceiling": ceiling.kind.rawValue,
                    "bf16_products": precision == .bf16 ? (native ? "native" : "emulated") as Any : NSNull(),
                    "step_ms": r.stepSeconds * 1e3, "forward_ms": r.forwardSeconds * 1e3,
                    "backward_ms": r.backwardSeconds * 1e3, "optimizer_ms": r.optimizerSeconds * 1e3,
                    "peak_memory_bytes": r.peakMemoryBytes, "blas_core": BLAS.coreName,
                    "cpu_ms_per_step": r.cpuSecondsPerStep * 1e3,
                    "attention": attention.rawValue, "precision": precision.rawValue, "recompute": recompute.rawValue,
                ]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(r.name)
                print(String(format: "  %.0f tokens/s, %.1f GFLOP/s, MFU %.1f%%, step %.1f ms (forward %.1f, backward %.1f, optimizer %.1f)",
                             r.tokensPerSecond, r.flopsPerSecond / 1e9, mfu * 100, r.stepSeconds * 1e3,
                             r.forwardSeconds * 1e3, r.backwardSeconds * 1e3, r.optimizerSeconds * 1e3)
                      + ", peak memory \(bytes(Double(r.peakMemoryBytes)))")
            }
        }
    }
}

struct TokenizerSpeed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer", abstract: "BPE training and encoding throughput on a corpus (files or folders of text).")
    @Argument(help: "Text files or folders.") var inputs: [String]
    @Option(name: .customLong("vocab-size"), parsing: .unconditional, help: "BPE vocabulary, 257 to 16777216 (default: 4096).",
            transform: NumberArgument.whole(257...(1 << 24)))
    var vocabSize: Int = 4096

    func run() throws {
        let r = try TokenizerBenchmark.run(inputs: inputs, vocabSize: vocabSize)
        print(String(format: "%d files, %.2f MB: BPE vocabulary %d trained in %.2f s (%.1f MB/s), encoded in %.2f s (%.1f MB/s, %.2f bytes/token)",
                     r.files, Double(r.bytes) / 1e6, r.vocabSize, r.trainSeconds, Double(r.bytes) / 1e6 / r.trainSeconds,
                     r.encodeSeconds, Double(r.bytes) / 1e6 / r.encodeSeconds, Double(r.bytes) / Double(r.tokens))
              + ", decoded back exactly: \(r.roundTrip ? "yes" : "NO")")
    }
}

Main.relaunchWithFastestBLASCore()
Main.run(GPTBench.self)
