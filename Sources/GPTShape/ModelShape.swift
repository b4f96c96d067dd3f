/// The block design a model follows.
public enum ModelFamily: String, Sendable, Codable, CaseIterable {
    /// GPT-2: learned position embeddings, LayerNorm, a GELU MLP of two matrices, multi-head attention, the output
    /// head tied to the token embedding.
    case gpt2
    /// Llama (Touvron et al. 2023; Llama 3, Dubey et al. 2024): rotary positions (no position table), RMSNorm (a
    /// gain, no bias), a SwiGLU MLP of three matrices (gate, up, down), grouped-query attention (`nKVHead` key/value
    /// heads shared by groups of query heads), an untied output head by default.
    case llama
}

/// The shape of a decoder-only transformer of either `family`: `nLayer` pre-norm blocks (causal attention, an MLP
/// of width `dFF`), a final norm, and a language-model head.
///
/// GPT-2 (`.gpt2`): token and learned position embeddings, LayerNorm, GELU MLP, `nKVHead == nHead`, head tied to
/// the token embedding. Llama (`.llama`): rotary positions, RMSNorm, SwiGLU MLP, `nKVHead` dividing `nHead`.
public struct ModelShape: Sendable, Equatable, Codable {
    public var nLayer: Int
    public var nHead: Int
    public var dModel: Int
    public var dFF: Int
    /// Context length (GPT-2: the number of learned positions; Llama: the training context).
    public var seqLen: Int
    public var vocabSize: Int
    /// Biases in the linear layers (and, for GPT-2, the LayerNorms: GPT-2 has them; nanoGPT's `bias=False` drops
    /// them all). Llama has none; RMSNorm never has one.
    public var bias: Bool
    public var family: ModelFamily
    /// Key/value heads: `nHead` for multi-head attention (GPT-2 always), fewer for grouped-query attention (Llama 3:
    /// 8), dividing `nHead`. Multi-head attention follows `nHead` when it changes.
    public var nKVHead: Int {
        get { groupedKVHeads ?? nHead }
        set { groupedKVHeads = newValue == nHead ? nil : newValue }
    }
    /// The key/value heads when they differ from `nHead`; nil for multi-head attention.
    private var groupedKVHeads: Int?
    /// Rotary embedding base θ (Su et al. 2021; Llama 2: 10000, Llama 3: 500000). Llama only.
    public var ropeTheta: Double
    /// ε of the LayerNorm (GPT-2) or RMSNorm (Llama) denominators.
    public var normEps: Double
    /// Whether the output head is the token embedding (GPT-2) or a matrix of its own (Llama 2 and 3 7B-405B).
    public var tieEmbeddings: Bool

    /// A GPT-2 shape by default; for `.llama`, `nKVHead` defaults to `nHead` and the head is untied unless said.
    public init(nLayer: Int, nHead: Int, dModel: Int, dFF: Int, seqLen: Int, vocabSize: Int, bias: Bool,
                family: ModelFamily = .gpt2, nKVHead: Int? = nil, ropeTheta: Double = 10_000, normEps: Double = 1e-5,
                tieEmbeddings: Bool? = nil) {
        self.nLayer = nLayer
        self.nHead = nHead
        self.dModel = dModel
        self.dFF = dFF
        self.seqLen = seqLen
        self.vocabSize = vocabSize
        self.bias = bias
        self.family = family
        self.groupedKVHeads = nKVHead == nHead ? nil : nKVHead
        self.ropeTheta = ropeTheta
        self.normEps = normEps
        self.tieEmbeddings = tieEmbeddings ?? (family == .gpt2)
    }

    private enum CodingKeys: String, CodingKey {
        case nLayer, nHead, dModel, dFF, seqLen, vocabSize, bias, family, nKVHead, ropeTheta, normEps, tieEmbeddings
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(nLayer, forKey: .nLayer)
        try c.encode(nHead, forKey: .nHead)
        try c.encode(dModel, forKey: .dModel)
        try c.encode(dFF, forKey: .dFF)
        try c.encode(seqLen, forKey: .seqLen)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(bias, forKey: .bias)
        try c.encode(family, forKey: .family)
        try c.encode(nKVHead, forKey: .nKVHead)
        try c.encode(ropeTheta, forKey: .ropeTheta)
        try c.encode(normEps, forKey: .normEps)
        try c.encode(tieEmbeddings, forKey: .tieEmbeddings)
    }

    /// Reads shapes encoded before the family existed as GPT-2 shapes.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let family = try c.decodeIfPresent(ModelFamily.self, forKey: .family) ?? .gpt2
        self.init(nLayer: try c.decode(Int.self, forKey: .nLayer), nHead: try c.decode(Int.self, forKey: .nHead),
                  dModel: try c.decode(Int.self, forKey: .dModel), dFF: try c.decode(Int.self, forKey: .dFF),
                  seqLen: try c.decode(Int.self, forKey: .seqLen), vocabSize: try c.decode(Int.self, forKey: .vocabSize),
                  bias: try c.decode(Bool.self, forKey: .bias), family: family,
                  nKVHead: try c.decodeIfPresent(Int.self, forKey: .nKVHead),
                  ropeTheta: try c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? 10_000,
                  normEps: try c.decodeIfPresent(Double.self, forKey: .normEps) ?? 1e-5,
                  tieEmbeddings: try c.decodeIfPresent(Bool.self, forKey: .tieEmbeddings))
    }

    public var headSize: Int { dModel / nHead }

    /// Width of the keys (and of the values): `nKVHead` heads of `headSize` (d_model for multi-head attention).
    public var kvWidth: Int { nKVHead * headSize }

    /// Matrices in the MLP: two for GPT-2's GELU MLP (c_fc, c_proj), three for SwiGLU (gate, up, down).
    public var mlpMatrices: Int { family == .llama ? 3 : 2 }

    /// Parameters, counted exactly from the shape.
    public struct ParameterCount: Sendable, Equatable {
        /// Token embedding, vocab × d_model (also the output head when tied).
        public var tokenEmbedding: Int
        /// Position embedding, seq_len × d_model (GPT-2; 0 for Llama's rotary positions, which have no parameters).
        public var positionEmbedding: Int
        /// The untied output head, vocab × d_model (0 when tied).
        public var outputHead: Int = 0
        /// Everything in the blocks and the final norm (Kaplan et al.'s "non-embedding" N).
        public var nonEmbedding: Int
        /// All parameters, each tied tensor once: what Chinchilla's N counts (and what Hugging Face's
        /// `num_parameters()` and Meta's "8B" count).
        public var total: Int { tokenEmbedding + positionEmbedding + outputHead + nonEmbedding }
        /// Parameters that take part in matrix products: the blocks plus the output head, tied or not (nanoGPT's
        /// and PaLM's N for FLOP counting; the token and position embeddings are lookups).
        public var matmul: Int { nonEmbedding + (outputHead > 0 ? outputHead : tokenEmbedding) }
    }

    /// Per block. GPT-2: ln_1 and ln_2 (weight, and bias if any), c_attn (3d×d), attention c_proj (d×d), c_fc (ff×d),
    /// MLP c_proj (d×ff), and their biases if any. Llama: two RMSNorm gains (d each), q and o (d×d each), k and v
    /// (d × n_kv_head·head_size each), gate, up and down (d×ff each), and, with `bias`, the linear layers' biases.
    public var parametersPerLayer: Int {
        let d = dModel, ff = dFF
        switch family {
        case .gpt2:
            let weights = 2 * d * d + 2 * d * kvWidth + 2 * d * ff + 2 * d
            let biases = bias ? 2 * d + d + 2 * kvWidth + d + ff + d : 0
            return weights + biases
        case .llama:
            let weights = 2 * d * d + 2 * d * kvWidth + 3 * d * ff + 2 * d
            let biases = bias ? d + 2 * kvWidth + d + 2 * ff + d : 0
            return weights + biases
        }
    }

    public var parameterCount: ParameterCount {
        let finalNorm = bias && family == .gpt2 ? 2 * dModel : dModel
        return ParameterCount(
            tokenEmbedding: vocabSize * dModel,
            positionEmbedding: family == .gpt2 ? seqLen * dModel : 0,
            outputHead: tieEmbeddings ? 0 : vocabSize * dModel,
            nonEmbedding: nLayer * parametersPerLayer + finalNorm)
    }

    // MARK: FLOPs per token

    /// 6N with N all parameters: the C ≈ 6ND rule (2 FLOPs per parameter forward, 4 backward).
    public var flopsPerTokenSixN: Double { 6 * Double(parameterCount.total) }

    /// 6N' + 12·n_layer·n_head·head_size·T, with N' the parameters in matrix products (non-embedding plus the
    /// output head), as nanoGPT's MFU estimate and the PaLM paper (appendix B) count them. The second term is
    /// attention's score and value products (forward 4·T·n_head·head_size per layer per token, backward twice that)
    /// at context `tokens`, counted over the full T×T square as PaLM and Megatron-LM count them (a causal mask
    /// skips about half of it; the convention here is the papers'). Grouped-query attention does not change that
    /// term (every query head still scores T keys and averages T values of head_size); it only shrinks the key and
    /// value projections, to 2·d·n_kv_head·head_size parameters a layer, which N' already counts.
    public func flopsPerTokenWithAttention(context t: Int? = nil) -> Double {
        let t = Double(t ?? seqLen)
        return 6 * Double(parameterCount.matmul) + 12 * Double(nLayer) * Double(nHead * headSize) * t
    }

    /// The attention term of `flopsPerTokenWithAttention` alone: 12·n_layer·n_head·head_size·T.
    public func attentionFlopsPerToken(context t: Int? = nil) -> Double {
        12 * Double(nLayer) * Double(nHead * headSize) * Double(t ?? seqLen)
    }

    /// Hoffmann et al. (2022), Appendix F: the forward pass of one sequence counted operation by operation
    /// (embedding as a matrix product, QKV, scores, softmax, reduction, output projection, MLP, logits), backward
    /// twice the forward; divided by the sequence length.
    public func flopsPerTokenChinchilla(context t: Int? = nil) -> Double {
        let seq = Double(t ?? seqLen), d = Double(dModel), v = Double(vocabSize)
        let heads = Double(nHead), kv = Double(headSize) * heads, ff = Double(dFF), g = Double(kvWidth)
        let embeddings = 2 * seq * v * d
        let attention = 2 * seq * d * (kv + 2 * g) // query, key, value projections (keys and values n_kv_head wide)
            + 2 * seq * seq * kv                   // key @ query logits
            + 3 * heads * seq * seq                // softmax
            + 2 * seq * seq * kv                   // softmax @ value reductions
            + 2 * seq * kv * d                     // final linear
        let dense = 2 * seq * Double(mlpMatrices) * d * ff   // two matrices (GELU) or three (SwiGLU)
        let logits = 2 * seq * d * v
        let forward = embeddings + Double(nLayer) * (attention + dense) + logits
        return 3 * forward / seq
    }

    // MARK: Memory

    /// Floats of activation storage the model allocates for a micro-batch of `batch` sequences of `t` tokens:
    /// the size of its `ActivationLayout` (what the forward pass keeps for the backward pass, per layer ln_1, qkv,
    /// attention probabilities, attention output, residual, ln_2, MLP pre- and post-GELU, residual, and the
    /// LayerNorm statistics; the final LayerNorm, the logits and per-token losses; the backward pass's scratch,
    /// which is reused layer after layer). Attention keeps one log-sum-exp per row with the fused kernel (the
    /// default), the B·H·T² probabilities with the materialized one. Each thread also has attention scratch, left
    /// out: a few MB at most. `recompute` keeps less (`Recompute`).
    ///
    /// For the Llama family it is the Llama model's layout, counted the same way: per layer the two RMSNorm outputs
    /// and their rstd (B·T each, no mean), qkv of B·T·(C + 2K) with K = n_kv_head·head_size, the attention output
    /// and log-sum-exp, the residual, the gate and up products and the SwiGLU output (3·B·T·d_ff), the block's
    /// output; the final RMSNorm's output and rstd, the logits, the losses; and the backward scratch (its qkv
    /// gradient C + 2K wide). 4 bytes a float; the rotary table (seq_len·head_size floats) is kept beside the
    /// parameters, not counted here.
    public func activationFloats(batch: Int, context t: Int? = nil, attention: AttentionKernel = .fused,
                                 recompute: Recompute = .none) -> Int {
        ActivationLayout(self, batch: batch, time: t ?? seqLen, attention: attention, recompute: recompute).count
    }

    /// Bytes of activation storage, with the bf16 copies a model running bf16 products natively keeps besides
    /// (`ActivationLayout.bf16Copies`).
    public func activationBytes(batch: Int, context t: Int? = nil, attention: AttentionKernel = .fused,
                                bf16Copies: Bool = false, recompute: Recompute = .none) -> Int {
        ActivationLayout(self, batch: batch, time: t ?? seqLen, attention: attention, bf16Copies: bf16Copies,
                         recompute: recompute).bytes
    }

    /// Bytes of training state in one gpt-train process (`CPUTrainer.memory`, the one count): float32 weights,
    /// gradients and the two AdamW moments (16 bytes a parameter), and the activations of one micro-batch.
    /// With `bf16Copies` (native bf16 products), also the weights' bf16 copy (2 bytes a parameter) and the
    /// activations' bf16 copies; with `roundedWeights` (emulated bf16 products), the weights rounded to bf16 in a
    /// second fp32 copy (4 bytes a parameter).
    public func trainingMemoryBytes(microBatch: Int, context t: Int? = nil, bf16Copies: Bool = false,
                                    roundedWeights: Bool = false, recompute: Recompute = .none) -> Double {
        CPUTrainer.memory(self, microBatch: microBatch, context: t,
                          products: bf16Copies ? .native : roundedWeights ? .emulated : nil, recompute: recompute).total
    }
}

/// A shape no model can have.
public enum ModelShapeError: Error, Equatable, CustomStringConvertible {
    /// A dimension (`n_layer`, `n_head`, `d_model`, `d_ff`, `seq_len`, `vocab_size`) below its minimum of 1.
    case notPositive(field: String, value: Int)
    /// Attention heads split `d_model` evenly.
    case headsDoNotDivideWidth(dModel: Int, nHead: Int)
    /// Key/value heads must divide the query heads (each shared by a group of equal size).
    case kvHeadsDoNotDivideHeads(nHead: Int, nKVHead: Int)
    /// GPT-2 has multi-head attention only.
    case groupedQueryInGPT2(nHead: Int, nKVHead: Int)

    public var description: String {
        switch self {
        case let .notPositive(field, value): "\(field) = \(value); it must be at least 1"
        case let .headsDoNotDivideWidth(dModel, nHead): "d_model = \(dModel) is not a multiple of n_head = \(nHead)"
        case let .kvHeadsDoNotDivideHeads(nHead, nKVHead):
            "n_kv_head = \(nKVHead) does not divide n_head = \(nHead): each key/value head serves an equal group of query heads"
        case let .groupedQueryInGPT2(nHead, nKVHead):
            "n_kv_head = \(nKVHead) differs from n_head = \(nHead), but the gpt2 family has multi-head attention only "
                + "(use family = \"llama\" for grouped-query attention, or n_kv_head = n_head)"
        }
    }
}

extension ModelShape {
    /// Throws the first reason this shape cannot be built.
    public func validate() throws(ModelShapeError) {
        for (field, value) in [("n_layer", nLayer), ("n_head", nHead), ("d_model", dModel), ("d_ff", dFF),
                               ("seq_len", seqLen), ("vocab_size", vocabSize), ("n_kv_head", nKVHead)] where value < 1 {
            throw .notPositive(field: field, value: value)
        }
        guard dModel % nHead == 0 else { throw .headsDoNotDivideWidth(dModel: dModel, nHead: nHead) }
        guard nHead % nKVHead == 0 else { throw .kvHeadsDoNotDivideHeads(nHead: nHead, nKVHead: nKVHead) }
        guard family == .llama || nKVHead == nHead else { throw .groupedQueryInGPT2(nHead: nHead, nKVHead: nKVHead) }
    }
}
