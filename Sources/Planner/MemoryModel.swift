import GPTShape

/// Activation recomputation (Korthikanti et al. 2022): what the forward pass keeps for the backward pass. One type
/// with the trainer's activation layout (`GPTShape.Recompute`).
public typealias Recompute = GPTShape.Recompute

/// Bytes of model state and activations, term by term, as the papers count them.
public enum MemoryModel {
    /// Bytes a parameter costs in mixed-precision training with AdamW, split as the ZeRO paper splits them
    /// (Rajbhandari et al. 2020, §3.1): 2 for the bf16/fp16 weights, 2 for their gradients, and K = 12 for the
    /// optimizer (fp32 master weights, momentum and variance). Megatron-LM keeps fp32 gradients as well (4 more
    /// bytes, 18 in all); this planner counts 2 + 2 + 12, as the ZeRO paper does.
    public static let mixedWeightBytes = 2.0, mixedGradientBytes = 2.0, mixedOptimizerBytes = 12.0
    /// gpt-train on CPUs: float32 weights and gradients, and AdamW's two float32 moments.
    public static let float32WeightBytes = 4.0, float32GradientBytes = 4.0, float32OptimizerBytes = 8.0
    /// gpt-train with native bf16 products: the bf16 copy of the weights the products read, besides the float32
    /// master weights (`GPT`'s parameter halves).
    public static let bf16CopyBytes = 2.0

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
