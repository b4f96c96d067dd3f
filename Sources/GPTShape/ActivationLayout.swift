/// Which attention kernel a model runs, which decides what attention keeps for the backward pass.
public enum AttentionKernel: String, Sendable, Codable, CaseIterable {
    /// Flash-style tiles with an online softmax: one log-sum-exp per row is kept, B·H·T floats a layer.
    case fused
    /// Scores and probabilities as whole matrices: the B·H·T² probabilities are kept.
    case materialized
}

/// The number format of matrix products' inputs. Everything else (LayerNorm, softmax, GELU, the loss, the
/// optimizer, the master weights) is fp32 either way.
public enum Precision: String, Sendable, Codable, CaseIterable {
    case fp32
    /// bfloat16 inputs, fp32 accumulation.
    case bf16
}

/// Activation recomputation (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
/// Models", §4-5): what the forward pass keeps for the backward pass, and what the backward pass computes again.
/// The planner's memory model and the trainer share this one type.
public enum Recompute: String, Sendable, Equatable, CaseIterable, Codable {
    /// Keep every activation.
    case none
    /// Recompute the attention core (scores, softmax, dropout and the product with the values) in the backward
    /// pass from the kept q, k, v. With the fused kernel the core keeps, per layer, its output (B·T·C) and one
    /// log-sum-exp a row (B·H·T); with the materialized kernel the B·H·T² probabilities and its output. Those
    /// live in one shared region, rebuilt for each layer in the backward pass by running the attention forward
    /// kernel again.
    case selective
    /// Keep only each block's input (the residual stream entering it) and rebuild the block's activations in
    /// the backward pass by running its forward pass again, into one block's worth of shared activations.
    case full
}

/// Offsets of one block's activations.
///
/// GPT-2: `ln1`/`ln2` are the LayerNorm outputs with their `…Mean` and `…Rstd` statistics, `qkv` [B·T, 3C],
/// `fcPre` the MLP's pre-GELU product and `fcGelu` the GELU output.
/// Llama: `ln1`/`ln2` are the RMSNorm outputs with their `…Rstd` only (`ln1Mean`, `ln2Mean` are -1: RMSNorm keeps
/// no mean), `qkv` [B·T, C + 2K] (K = n_kv_head·head size, queries and keys after the rotary embedding), `fcPre`
/// the gate product, `up` the up product, `fcGelu` the SwiGLU output silu(gate) ⊙ up.
public struct LayerActivations: Sendable {
    /// `att` holds the attention probabilities [B, H, T, T] (materialized kernel) or the rows' log-sum-exp
    /// [B, H, T] (fused kernel).
    public var ln1 = 0, ln1Mean = 0, ln1Rstd = 0, qkv = 0, att = 0, attY = 0, residual2 = 0
    public var ln2 = 0, ln2Mean = 0, ln2Rstd = 0, fcPre = 0, fcGelu = 0, residual3 = 0
    /// Llama's up product [B·T, F] (-1 for GPT-2). The backward pass writes the up gradient over it.
    public var up = -1
    /// With bf16 copies (`ActivationLayout.bf16Copies`): where the bf16 forms of the four product inputs the
    /// backward pass reads again start, in the bf16 allocation (elements of 2 bytes).
    public var ln1Half = 0, attYHalf = 0, ln2Half = 0, fcGeluHalf = 0
}

/// Everything a forward pass keeps for the backward pass, and the backward pass's scratch, for micro-batches of
/// up to `batch` sequences of up to `time` tokens: one allocation, one named region per tensor. A smaller batch or
/// shorter sequence uses the start of each region.
///
/// `recompute` decides which regions are per block and which are shared by all blocks (the same offsets in every
/// `layers[l]`, rebuilt for one block at a time in the backward pass): with `.none` everything is per block; with
/// `.selective` attention's output and its log-sum-exp (or probabilities) are shared (and, with bf16 copies, the
/// attention output's bf16 form); with `.full` everything but `residual3`, the block's output and so the next
/// block's input, is shared.
///
/// The model allocates `count` floats from this layout, and the planner's memory estimate
/// (`ModelShape.activationFloats`) is the same `count`: the two cannot drift apart.
///
/// The Llama family keeps, per block, what its backward pass reads: the two RMSNorm outputs and their rstd (no
/// mean), qkv C + 2K wide (K = n_kv_head·head size), the attention output and log-sum-exp, the residual, the gate
/// and up products and the SwiGLU output (three B·T·F regions where GPT-2 has two), and the block's output; then the
/// final RMSNorm's output and rstd, the logits and the losses, and the backward scratch (the qkv gradient C + 2K
/// wide). The rotary table is not an activation (the model keeps it beside the parameters).
public struct ActivationLayout: Sendable {
    public let batch: Int, time: Int
    public let attention: AttentionKernel
    public let recompute: Recompute
    public private(set) var encoded = 0
    public private(set) var layers: [LayerActivations] = []
    /// `lnfMean` is -1 for Llama (RMSNorm).
    public private(set) var lnf = 0, lnfMean = 0, lnfRstd = 0, logits = 0, losses = 0
    // Backward scratch, reused by every layer (and, in the forward pass, as room for dropped-out branches).
    public private(set) var dResidual = 0, dLn = 0, dQKV = 0, dAttY = 0, dFc = 0
    /// Floats in the whole allocation.
    public private(set) var count = 0

    /// Whether the layout has a second, bf16 allocation: the model runs bf16 products natively (through oneDNN),
    /// which read bf16 operands. Each block's four product inputs are kept as bf16 for the backward pass, with the
    /// final LayerNorm's output, and one gradient at a time is converted into `gradientHalf` and its transpose
    /// into `gradientHalfTransposed` (each as large as the widest gradient a product reads: logits, MLP or qkv).
    /// Attention's products read one layer's q, k, v (`attentionQKVHalf`, [B, T, 3C], or [B, T, C + 2K] for Llama)
    /// and, in the backward pass, its output gradient (`attentionGradientHalf`, [B, T, C]), converted when the
    /// layer runs. They share the memory of `gradientHalf` and `gradientHalfTransposed` (each at least as wide as
    /// qkv): the forward pass uses no
    /// gradient, and in the backward pass the output projection's products are done with those two before
    /// attention's operands are converted, and the qkv gradient is converted into them only after attention.
    public let bf16Copies: Bool
    public private(set) var lnfHalf = 0, gradientHalf = 0, gradientHalfTransposed = 0
    public private(set) var attentionQKVHalf = 0, attentionGradientHalf = 0
    /// bf16 elements (2 bytes each) in the bf16 allocation; 0 without bf16 copies.
    public private(set) var halfCount = 0

    /// Bytes of both allocations.
    public var bytes: Int { 4 * count + 2 * halfCount }

    public init(_ shape: ModelShape, batch: Int, time: Int, attention: AttentionKernel = .fused, bf16Copies: Bool = false,
                recompute: Recompute = .none) {
        self.batch = batch
        self.time = time
        self.attention = attention
        self.bf16Copies = bf16Copies
        self.recompute = recompute
        let bt = batch * time, c = shape.dModel, f = shape.dFF
        let llama = shape.family == .llama
        // The fused qkv row: 3C for GPT-2, C + 2K with grouped-query attention.
        let s = c + 2 * shape.kvWidth
        var next = 0
        func place(_ count: Int) -> Int { defer { next += count }; return next }
        encoded = place(bt * c)
        // The shared regions (placed once, when the first block is laid out) and the per-block ones.
        var shared: LayerActivations?
        for _ in 0..<shape.nLayer {
            var l = LayerActivations()
            if let shared, recompute == .full {
                l = shared
            } else {
                l.ln1 = place(bt * c); l.ln1Mean = llama ? -1 : place(bt); l.ln1Rstd = place(bt)
                l.qkv = place(bt * s)
                if let shared, recompute == .selective {
                    l.att = shared.att; l.attY = shared.attY
                } else {
                    l.att = place(batch * shape.nHead * time * (attention == .fused ? 1 : time))
                    l.attY = place(bt * c)
                }
                l.residual2 = place(bt * c)
                l.ln2 = place(bt * c); l.ln2Mean = llama ? -1 : place(bt); l.ln2Rstd = place(bt)
                l.fcPre = place(bt * f)
                if llama { l.up = place(bt * f) }
                l.fcGelu = place(bt * f)
            }
            l.residual3 = place(bt * c)
            if shared == nil { shared = l }
            layers.append(l)
        }
        lnf = place(bt * c); lnfMean = llama ? -1 : place(bt); lnfRstd = place(bt)
        logits = place(bt * shape.vocabSize)
        losses = place(bt)
        dResidual = place(bt * c); dLn = place(bt * c); dQKV = place(bt * s); dAttY = place(bt * c); dFc = place(bt * f)
        count = next
        guard bf16Copies else { return }
        next = 0
        for l in layers.indices {
            if l > 0, recompute == .full {
                layers[l].ln1Half = layers[0].ln1Half; layers[l].attYHalf = layers[0].attYHalf
                layers[l].ln2Half = layers[0].ln2Half; layers[l].fcGeluHalf = layers[0].fcGeluHalf
                continue
            }
            layers[l].ln1Half = place(bt * c)
            layers[l].attYHalf = l > 0 && recompute == .selective ? layers[0].attYHalf : place(bt * c)
            layers[l].ln2Half = place(bt * c); layers[l].fcGeluHalf = place(bt * f)
        }
        lnfHalf = place(bt * c)
        let widest = bt * Swift.max(shape.vocabSize, f, s)
        gradientHalf = place(widest)
        gradientHalfTransposed = place(widest)
        attentionQKVHalf = gradientHalf
        attentionGradientHalf = gradientHalfTransposed
        halfCount = next
    }
}
