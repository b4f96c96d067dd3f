import GPTShape

/// Activation recomputation (Korthikanti et al. 2022): what the forward pass keeps for the backward pass. One type
/// with the trainer's activation layout (`GPTShape.Recompute`).
public typealias Recompute = GPTShape.Recompute

/// Bytes a parameter costs on a GPU in mixed-precision training with AdamW: the convention a memory estimate
/// states (papers and calculators differ on the gradients).
public struct MemoryConventions: Sendable, Equatable {
    public var weightBytes: Double
    public var gradientBytes: Double
    public var optimizerBytes: Double

    public init(weightBytes: Double, gradientBytes: Double, optimizerBytes: Double) {
        self.weightBytes = weightBytes
        self.gradientBytes = gradientBytes
        self.optimizerBytes = optimizerBytes
    }

    /// The ZeRO paper's 2 + 2 + 12 (bf16 weights and gradients; fp32 master weights, momentum and variance).
    public static let zeroPaper = MemoryConventions(weightBytes: 2, gradientBytes: 2, optimizerBytes: 12)
    /// 2 + 4 + 12: gradients accumulated in fp32, as Megatron-LM keeps them (its main_grad) and as EleutherAI's
    /// cookbook (calc_transformer_mem.py) counts them by default.
    public static let fp32Gradients = MemoryConventions(weightBytes: 2, gradientBytes: 4, optimizerBytes: 12)
}

/// Bytes of model state and activations, term by term, as the papers count them.
public enum MemoryModel {
    /// Bytes a parameter costs in mixed-precision training with AdamW, split as the ZeRO paper splits them
    /// (Rajbhandari et al. 2020, §3.1): 2 for the bf16/fp16 weights, 2 for their gradients, and K = 12 for the
    /// optimizer (fp32 master weights, momentum and variance). Megatron-LM keeps fp32 gradients as well (4 more
    /// bytes, 18 in all); this planner counts 2 + 2 + 12, as the ZeRO paper does.
    public static let mixedWeightBytes = 2.0, mixedGradientBytes = 2.0, mixedOptimizerBytes = 12.0
    /// gpt-train on CPUs: float32 weights and gradients, and AdamW's two float32 moments.
    public static let float32WeightBytes = CPUTrainer.weightBytes, float32GradientBytes = CPUTrainer.gradientBytes,
                      float32OptimizerBytes = CPUTrainer.optimizerBytes
    /// gpt-train with native bf16 products: the bf16 copy of the weights the products read, besides the float32
    /// master weights (`GPT`'s parameter halves).
    public static let bf16CopyBytes = CPUTrainer.bf16CopyBytes

    public struct ModelState: Sendable, Equatable {
        public var weights: Double
        public var gradients: Double
        public var optimizer: Double
        public var total: Double { weights + gradients + optimizer }
    }

    /// Model state per device for `params` parameters (Ψ, those on the device after tensor and pipeline
    /// parallelism), ZeRO `stage` over `dataParallel` ranks: stage 1 partitions the optimizer (4Ψ + KΨ/d with
    /// K = 12), stage 2 the gradients too (2Ψ + (2 + K)Ψ/d), stage 3 the weights too ((4 + K)Ψ/d). Rajbhandari et al.
    /// 2020, Figure 1.
    public static func modelState(params: Double, zeroStage stage: Int, dataParallel d: Int,
                                  weightBytes: Double = mixedWeightBytes, gradientBytes: Double = mixedGradientBytes,
                                  optimizerBytes k: Double = mixedOptimizerBytes) -> ModelState {
        let dp = Double(max(1, d))
        return ModelState(weights: weightBytes * params / (stage >= 3 ? dp : 1),
                          gradients: gradientBytes * params / (stage >= 2 ? dp : 1),
                          optimizer: k * params / (stage >= 1 ? dp : 1))
    }

    /// Activation bytes of one transformer layer for a micro-batch of `b` sequences of `s` tokens, width `h`,
    /// `a` heads, tensor-parallel width `t`: Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
    /// Transformer Models", Table 2 (16-bit activations, 1-byte dropout masks):
    /// - no parallelism: sbh(34 + 5as/h)
    /// - tensor parallel without sequence parallelism: sbh(10 + 24/t + 5as/(ht)); with it: sbh/t · (34 + 5as/h)
    /// - selective recomputation: sbh(10 + 24/t) without sequence parallelism, 34·sbh/t with it
    /// - full recomputation: 2sbh (the layer's input).
    public static func activationBytesPerLayer(s: Int, b: Int, h: Int, a: Int, t: Int = 1,
                                               sequenceParallel: Bool = true, recompute: Recompute) -> Double {
        let sbh = Double(s) * Double(b) * Double(h), tp = Double(t)
        let attention = 5 * Double(a) * Double(s) / Double(h)
        switch (recompute, sequenceParallel) {
        case (.none, true): return sbh / tp * (34 + attention)
        case (.none, false): return sbh * (10 + 24 / tp + attention / tp)
        case (.selective, true): return sbh * 34 / tp
        case (.selective, false): return sbh * (10 + 24 / tp)
        case (.full, _): return 2 * sbh
        }
    }

    /// Activation bytes of one block of `shape` (either family) for `b` sequences of `s` tokens, tensor-parallel
    /// width `t` with sequence parallelism when t > 1 (every term divided by t), by the method of Korthikanti et al.
    /// 2022 §4.1: 2 bytes for every 16-bit tensor the backward pass reads, 1 byte for every dropout mask, attention
    /// scores materialised (a flash-attention kernel keeps none: that is what selective recomputation counts).
    /// With h = d_model, f = d_ff, g = n_kv_head·head_size, a = n_head:
    /// - GPT-2 (LayerNorm, GELU, dropout): attention 11sbh + 5as²b (QKV input 2, Q and K 4, V 2, projection input
    ///   2, dropout mask 1; softmax output 2, its dropout mask 1 and output 2 per score), MLP 2sbh + 4sbf + sbh
    ///   (input, GELU input and output, mask), two LayerNorm inputs 4sbh: sbh(18 + 4f/h) + 5as²b, which is Table 2's
    ///   sbh(34 + 5as/h) at f = 4h.
    /// - Llama (RMSNorm, rotary, SwiGLU, grouped-query attention, no dropout): attention 2sbh (QKV input) + 2sbh (Q
    ///   after rotary) + 2sbg (K after rotary) + 2sbg (V) + 2sbh (output projection input) + 2as²b (softmax output,
    ///   no dropout); the rotary backward is a fixed rotation and needs nothing kept. MLP 2sbh (input of gate and up)
    ///   + 4sbf (gate and up outputs, from which SiLU and the product's backward are computed, as Megatron's fused
    ///   SwiGLU keeps them) + 2sbf (the product, the down projection's input). Two RMSNorm inputs 4sbh. In all
    ///   sbh(12 + 4g/h + 6f/h) + 2as²b. Grouped-query attention saves 4sb(h − g) a layer.
    /// Selective recomputation drops the as²b terms; full keeps the block's input, 2sbh (not divided by t:
    /// Korthikanti et al. keep it whole).
    public static func activationBytesPerLayer(_ shape: ModelShape, b: Int, t: Int = 1, recompute: Recompute) -> Double {
        let s = Double(shape.seqLen), h = Double(shape.dModel), f = Double(shape.dFF), g = Double(shape.kvWidth)
        let a = Double(shape.nHead), sbh = s * Double(b) * h, tp = Double(t)
        let linear: Double, scores: Double
        switch shape.family {
        case .gpt2: linear = sbh * (18 + 4 * f / h); scores = 5 * a * s * s * Double(b)
        case .llama: linear = sbh * (12 + 4 * g / h + 6 * f / h); scores = 2 * a * s * s * Double(b)
        }
        switch recompute {
        case .none: return (linear + scores) / tp
        case .selective: return linear / tp
        case .full: return 2 * sbh
        }
    }

    /// Activations outside the layers (Korthikanti et al. 2022, §4.3): the input embedding's dropout mask,
    /// 4·sbh·p/t on the first pipeline stage (p micro-batches in flight), and the final LayerNorm, output
    /// projection and fp32 cross-entropy, 4·sbh/t·(1 + v/h), on the last.
    public static func embeddingActivationBytes(s: Int, b: Int, h: Int, t: Int, inFlight: Int) -> Double {
        4 * Double(s) * Double(b) * Double(h) * Double(inFlight) / Double(t)
    }

    public static func outputActivationBytes(s: Int, b: Int, h: Int, t: Int, vocab v: Int) -> Double {
        4 * Double(s) * Double(b) * Double(h) / Double(t) * (1 + Double(v) / Double(h))
    }
}
