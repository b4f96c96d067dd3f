import Formatting
import GPTShape

/// Which memory model a device follows (the precision vocabulary is listed in GPTShape/CPUTrainer.swift): the
/// papers' mixed precision on GPUs, or the CPU trainer's own count (`CPUTrainer.memory`). Not the products' input
/// format, which is `Precision` (`Hardware.products`).
public enum TrainingPrecision: String, Sendable, Equatable, Codable {
    /// bf16 weights and gradients in the matrix products, fp32 master weights and AdamW moments (Micikevicius et
    /// al. 2018; the ZeRO paper's K = 12), activations as Korthikanti et al. 2022 count them.
    case mixed
    /// Everything in float32, as gpt-train runs on CPUs: 4 bytes each for weights, gradients and the two AdamW
    /// moments, and gpt-train's own activation buffers.
    case float32
}

/// The number format of the matrix products' inputs a plan trains with (`Precision`, `training.precision`), and
/// why. Master weights and AdamW moments are fp32 either way.
public struct PrecisionDecision: Sendable, Equatable {
    public enum Reason: Sendable, Equatable {
        /// A GPU preset: its peak is the datasheet's dense bf16 tensor-core rate and its memory model mixed
        /// precision (bf16 weights and gradients, fp32 master weights and moments).
        case tensorCores
        /// This CPU multiplies bf16 natively, faster than fp32: both ceilings measured.
        case nativeBF16(bf16Flops: Double, fp32Flops: Double)
        /// This CPU multiplies bf16 natively, but no faster than fp32 (both measured): fp32 is as fast and exact.
        case nativeBF16NotFaster(bf16Flops: Double, fp32Flops: Double)
        /// No native bf16 products (none measured): bf16 would be emulated on the sgemm, no faster than fp32.
        case noNativeBF16(fp32Flops: Double)
    }
    public var precision: Precision
    public var reason: Reason

    public init(precision: Precision, reason: Reason) {
        self.precision = precision
        self.reason = reason
    }

    /// The rule on a CPU, from its two matrix-product rates as measured (`gpt-bench ceiling`; the command measures
    /// them and passes them in, the planner measures nothing): the sgemm ceiling `fp32Flops`, and `bf16Flops` the
    /// ceiling of native bf16 products (bf16 inputs, fp32 accumulation, oneDNN), nil where the CPU has none. bf16
    /// where its native bf16 products are faster than its sgemm, else fp32. (How bf16 products then run, natively
    /// or emulated, is `BF16Products`, gpt-train's.)
    public static func rule(fp32Flops: Double, bf16Flops: Double?) -> PrecisionDecision {
        guard let bf16 = bf16Flops else { return PrecisionDecision(precision: .fp32, reason: .noNativeBF16(fp32Flops: fp32Flops)) }
        return bf16 > fp32Flops
            ? PrecisionDecision(precision: .bf16, reason: .nativeBF16(bf16Flops: bf16, fp32Flops: fp32Flops))
            : PrecisionDecision(precision: .fp32, reason: .nativeBF16NotFaster(bf16Flops: bf16, fp32Flops: fp32Flops))
    }

    /// Every GPU preset trains in bf16 on its tensor cores.
    public static let gpu = PrecisionDecision(precision: .bf16, reason: .tensorCores)
}

/// A kind of device and the machine it sits in: what the layout search and the time model need to know. The
/// presets' figures are the vendors' datasheet numbers (docs/planner.md names each document).
public struct Hardware: Sendable, Equatable {
    public var name: String
    /// Memory of one device, in bytes.
    public var memoryBytes: Double
    /// Dense peak FLOP/s of one device in the precision the run trains in (bf16 tensor cores for `.mixed`).
    public var peakFlops: Double
    /// Dense peak FLOP/s in plain float32 (information: what a float32 run would get).
    public var fp32Flops: Double
    public var devicesPerNode: Int
    /// Bytes a second one device can send to another device in its node (one direction).
    public var intraNodeBandwidth: Double
    /// Bytes a second one device can send to a device in another node (one direction, its share of the NICs).
    public var interNodeBandwidth: Double
    public var precision: TrainingPrecision
    /// The matrix products' input format (`peakFlops` is the rate in it) and why: bf16 on GPUs and on CPUs that
    /// multiply bf16 natively and faster, else fp32.
    public var products: PrecisionDecision
    /// Model FLOPs utilisation assumed when none is given.
    public var defaultMFU: Double
    /// A layout is feasible only when its per-device total stays under this share of `memoryBytes`.
    public var usableFraction: Double
    /// Bytes a device spends outside the model: runtime context, communication buffers, workspaces.
    public var reservedBytes: Double
    /// Where the figures come from, in a few words.
    public var source: String

    public init(name: String, memoryBytes: Double, peakFlops: Double, fp32Flops: Double, devicesPerNode: Int,
                intraNodeBandwidth: Double, interNodeBandwidth: Double, precision: TrainingPrecision,
                products: PrecisionDecision, defaultMFU: Double, usableFraction: Double, reservedBytes: Double,
                source: String) {
        self.name = name
        self.memoryBytes = memoryBytes
        self.peakFlops = peakFlops
        self.fp32Flops = fp32Flops
        self.devicesPerNode = devicesPerNode
        self.intraNodeBandwidth = intraNodeBandwidth
        self.interNodeBandwidth = interNodeBandwidth
        self.precision = precision
        self.products = products
        self.defaultMFU = defaultMFU
        self.usableFraction = usableFraction
        self.reservedBytes = reservedBytes
        self.source = source
    }

    /// Share of a GPU's memory a layout may plan to use: PyTorch's caching allocator fragments memory (the ZeRO
    /// paper, §3.2, reports running out of memory with over 30% free at worst; 10% headroom is the common rule).
    public static let gpuUsableFraction = 0.9
    /// CUDA/ROCm context, cuBLAS workspaces and NCCL buffers: about 1 GiB in practice; 2 GiB is allowed.
    public static let gpuReservedBytes = 2.0 * 0x1p30
    /// MFU assumed on GPUs: PaLM 540B trained at 46.2% (Chowdhery et al. 2022, Table 3), Megatron-LM's GPT-3 175B at
    /// 138 TFLOP/s of 312 on A100 (Narayanan et al. 2021, Table 1: 44%), Llama 3 405B at 38-43% (Dubey et al.
    /// 2024, Table 4).
    public static let gpuDefaultMFU = 0.4

    /// `memoryMiB` is the total the device itself reports (nvidia-smi's `memory.total`, ROCm's HIP
    /// `totalGlobalMem`), in MiB: the marketing "80 GB" of an A100 or H100 is 80 GiB of HBM, of which the driver
    /// reports 81,920 MiB (A100) or 81,559 MiB (H100), about 7% more than 80e9 bytes. CUDA's own `totalGlobalMem` is
    /// 0.4-0.6 GiB less than nvidia-smi's total (an H100: 81,106 MiB; an A100 40GB: 40,339 MiB), which the
    /// `gpuReservedBytes` allowance covers.
    static func gpu(_ name: String, memoryMiB: Double, bf16: Double, fp32: Double, perNode: Int, nvlink: Double,
                    network: Double, source: String) -> Hardware {
        Hardware(name: name, memoryBytes: memoryMiB * 0x1p20, peakFlops: bf16, fp32Flops: fp32, devicesPerNode: perNode,
                 intraNodeBandwidth: nvlink, interNodeBandwidth: network, precision: .mixed, products: .gpu,
                 defaultMFU: gpuDefaultMFU, usableFraction: gpuUsableFraction, reservedBytes: gpuReservedBytes,
                 source: source)
    }

    /// NVIDIA A100 40GB SXM: 312 TFLOP/s dense bf16, 19.5 fp32; NVLink 600 GB/s (300 each way); a DGX A100 has 8
    /// and eight 200 Gb/s HDR InfiniBand ports (25 GB/s a GPU). Memory: nvidia-smi reports 40,960 MiB (40 GiB;
    /// modal-labs/modal-client#2797 lists nvidia-smi's totals of its GPUs).
    public static let a100_40gb = gpu("a100-40gb", memoryMiB: 40_960, bf16: 312e12, fp32: 19.5e12, perNode: 8,
                                      nvlink: 300e9, network: 25e9,
                                      source: "NVIDIA A100 datasheet; DGX A100 datasheet; memory as nvidia-smi reports it")
    /// NVIDIA A100 80GB SXM: as the 40GB; nvidia-smi reports 81,920 MiB (80 GiB; modal-labs/modal-client#2797).
    public static let a100_80gb = gpu("a100-80gb", memoryMiB: 81_920, bf16: 312e12, fp32: 19.5e12, perNode: 8,
                                      nvlink: 300e9, network: 25e9,
                                      source: "NVIDIA A100 datasheet; DGX A100 datasheet; memory as nvidia-smi reports it")
    /// NVIDIA H100 SXM5 80GB: 989 TFLOP/s dense bf16, 67 fp32; NVLink 900 GB/s (450 each way); DGX H100: 8 GPUs,
    /// eight 400 Gb/s NDR ports (50 GB/s a GPU). Memory: nvidia-smi reports 81,559 MiB for "NVIDIA H100 80GB HBM3"
    /// (modal-labs/modal-client#2797; the same total in NVIDIA/nccl#1264 and wilicc/gpu-burn#114).
    public static let h100_sxm_80gb = gpu("h100-sxm-80gb", memoryMiB: 81_559, bf16: 989e12, fp32: 67e12, perNode: 8,
                                          nvlink: 450e9, network: 50e9,
                                          source: "NVIDIA H100 datasheet; DGX H100 datasheet; memory as nvidia-smi reports it")
    /// NVIDIA H200 SXM 141GB: the H100's compute (989 TFLOP/s dense bf16, 67 fp32) and NVLink (900 GB/s). Memory:
    /// nvidia-smi reports 143,771 MiB for "NVIDIA H200" (sgl-project/sglang#3196, an 8 × H200 node).
    public static let h200_141gb = gpu("h200-141gb", memoryMiB: 143_771, bf16: 989e12, fp32: 67e12, perNode: 8,
                                       nvlink: 450e9, network: 50e9,
                                       source: "NVIDIA H200 datasheet; memory as nvidia-smi reports it")
    /// AMD Instinct MI300X: 192 GB HBM3, 1307.4 TFLOP/s dense bf16, 163.4 fp32; 8 per platform over Infinity Fabric
    /// (7 links of 64 GB/s each way to the other 7 GPUs: 448 GB/s), one 400 Gb/s NIC a GPU. Memory: HIP's
    /// `totalGlobalMem` is 196,592 MiB on a bare-metal MI300X (a deviceQuery of four in thamada/nvidia-smi,
    /// nvsim/MI300X_x4_deviceQuery.py), i.e. 8 × 24,574 MiB, the size each of the 8 partitions has in CPX mode
    /// (ROCm/ROCm#4750: 25,767,706,624 bytes); cloud virtual functions ("MI300X VF") report 196,288 MiB.
    public static let mi300x = gpu("mi300x", memoryMiB: 196_592, bf16: 1307.4e12, fp32: 163.4e12, perNode: 8,
                                   nvlink: 448e9, network: 50e9,
                                   source: "AMD Instinct MI300X data sheet; memory as HIP reports it")

    /// The GPU presets, in the order `--gpu list` shows them.
    public static let gpuPresets: [Hardware] = [a100_40gb, a100_80gb, h100_sxm_80gb, h200_141gb, mi300x]

    /// The hardware a plan assumes when no flag names any and the run does not fit this machine.
    public static let defaultGPU = h100_sxm_80gb

    /// This machine as gpt-train uses it: one process, fp32 master weights, gradients and moments, `memoryBytes`
    /// of RAM, and the measured rate of the products the precision rule picks (`PrecisionDecision.rule`): the
    /// bf16 ceiling where the CPU multiplies bf16 natively and faster, else the sgemm's. The memory share is
    /// what gpt-train's own check allows (`CPUTrainer.usableFraction`); nothing else is reserved, as gpt-train's buffers are counted exactly.
    /// gpt-train has no communication (its `devices` are accumulated in one process), so none is modelled: the
    /// bandwidths are infinite.
    /// `fp32Flops` and `bf16Flops` are the measured ceilings `PrecisionDecision.rule` decides from.
    public static func cpu(memoryBytes: Double, fp32Flops: Double, bf16Flops: Double?, source: String) -> Hardware {
        let decision = PrecisionDecision.rule(fp32Flops: fp32Flops, bf16Flops: bf16Flops)
        return Hardware(name: "cpu", memoryBytes: memoryBytes,
                        peakFlops: decision.precision == .bf16 ? bf16Flops! : fp32Flops,
                        fp32Flops: fp32Flops, devicesPerNode: 1, intraNodeBandwidth: .infinity,
                        interNodeBandwidth: .infinity, precision: .float32, products: decision, defaultMFU: 0.4,
                        usableFraction: CPUTrainer.usableFraction, reservedBytes: 0, source: source)
    }

    /// A CPU known only by its sgemm rate: fp32 products.
    public static func cpu(memoryBytes: Double, flops: Double, source: String) -> Hardware {
        cpu(memoryBytes: memoryBytes, fp32Flops: flops, bf16Flops: nil, source: source)
    }

    public static func preset(named name: String) -> Hardware? { gpuPresets.first { $0.name == name } }
}

extension PrecisionDecision {
    /// The precision rule as it applied, with the numbers that went in (for the plan's table and rationale and the
    /// recipe's note on `training.precision`).
    public var explanation: String {
        switch reason {
        case .tensorCores:
            return "bf16: the device's peak is its dense bf16 tensor-core rate (datasheet); bf16 weights and gradients, "
                + "fp32 master weights and AdamW moments"
        case .nativeBF16(let bf16, let fp32):
            return "bf16: native bf16 products measured at \(flopRate(bf16)) vs \(flopRate(fp32)) for the fp32 sgemm "
                + "(gpt-bench ceiling); fp32 master weights and AdamW moments"
        case .nativeBF16NotFaster(let bf16, let fp32):
            return "fp32: native bf16 products measured at \(flopRate(bf16)), no faster than the fp32 sgemm's "
                + "\(flopRate(fp32)) (gpt-bench ceiling), so bf16 would only round"
        case .noNativeBF16(let fp32):
            return "fp32: no native bf16 products on this CPU (bf16 would be emulated on the fp32 sgemm, "
                + "\(flopRate(fp32)) at best, no faster than fp32)"
        }
    }

    /// Which rate the time estimate divides by, in words.
    public var ceilingName: String {
        switch reason {
        case .tensorCores: return "dense bf16 peak"
        case .nativeBF16: return "bf16 matmul ceiling"
        case .nativeBF16NotFaster, .noNativeBF16: return "sgemm ceiling"
        }
    }
}
