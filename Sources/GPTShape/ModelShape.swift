/// The shape of a GPT-2 style decoder: token and learned position embeddings, `nLayer` pre-LayerNorm blocks
/// (causal multi-head attention, a GELU MLP of width `dFF`), a final LayerNorm, and a language-model head tied to
/// the token embedding.
public struct ModelShape: Sendable, Equatable, Codable {
    public var nLayer: Int
    public var nHead: Int
    public var dModel: Int
    public var dFF: Int
    /// Context length: the number of learned positions.
    public var seqLen: Int
    public var vocabSize: Int
    /// Biases in the linear layers and LayerNorms (GPT-2 has them; nanoGPT's `bias=False` drops them all).
    public var bias: Bool

    public init(nLayer: Int, nHead: Int, dModel: Int, dFF: Int, seqLen: Int, vocabSize: Int, bias: Bool) {
        self.nLayer = nLayer
        self.nHead = nHead
        self.dModel = dModel
        self.dFF = dFF
        self.seqLen = seqLen
        self.vocabSize = vocabSize
        self.bias = bias
    }

    public var headSize: Int { dModel / nHead }

    /// Parameters, counted exactly from the shape.
    public struct ParameterCount: Sendable, Equatable {
        /// Token embedding, vocab × d_model (also the tied output head).
        public var tokenEmbedding: Int
        /// Position embedding, seq_len × d_model.
        public var positionEmbedding: Int
        /// Everything in the blocks and the final LayerNorm (Kaplan et al.'s "non-embedding" N).
        public var nonEmbedding: Int
        /// All parameters, each tied tensor once: what Chinchilla's N counts.
        public var total: Int { tokenEmbedding + positionEmbedding + nonEmbedding }
        /// Parameters that take part in matrix products: the blocks plus the tied head (nanoGPT's and PaLM's N
        /// for FLOP counting; only the position embedding is left out).
        public var matmul: Int { nonEmbedding + tokenEmbedding }
    }

    /// Per block: ln_1 and ln_2 (weight, and bias if any), c_attn (3d×d), attention c_proj (d×d), c_fc (ff×d),
    /// MLP c_proj (d×ff), and their biases if any.
    public var parametersPerLayer: Int {
        let d = dModel, ff = dFF
        let weights = 4 * d * d + 2 * d * ff + 2 * d
        let biases = bias ? 2 * d + 3 * d + d + ff + d : 0
        return weights + biases
    }

    public var parameterCount: ParameterCount {
        let finalNorm = bias ? 2 * dModel : dModel
        return ParameterCount(
            tokenEmbedding: vocabSize * dModel,
            positionEmbedding: seqLen * dModel,
            nonEmbedding: nLayer * parametersPerLayer + finalNorm)
    }

    // MARK: FLOPs per token

    /// 6N with N all parameters: the C ≈ 6ND rule (2 FLOPs per parameter forward, 4 backward).
    public var flopsPerTokenSixN: Double { 6 * Double(parameterCount.total) }

    /// 6N + 12·n_layer·d_model·T, with N the parameters in matrix products (non-embedding plus the tied head),
    /// as nanoGPT's MFU estimate and the PaLM paper count them. The second term is attention's score and value
    /// products (forward 4·T·d per layer per token, backward twice that) at context `tokens`.
    public func flopsPerTokenWithAttention(context t: Int? = nil) -> Double {
        let t = Double(t ?? seqLen)
        return 6 * Double(parameterCount.matmul) + 12 * Double(nLayer) * Double(dModel) * t
    }

    /// Hoffmann et al. (2022), Appendix F: the forward pass of one sequence counted operation by operation
    /// (embedding as a matrix product, QKV, scores, softmax, reduction, output projection, MLP, logits), backward
    /// twice the forward; divided by the sequence length.
    public func flopsPerTokenChinchilla(context t: Int? = nil) -> Double {
        let seq = Double(t ?? seqLen), d = Double(dModel), v = Double(vocabSize)
        let heads = Double(nHead), kv = Double(headSize) * heads, ff = Double(dFF)
        let embeddings = 2 * seq * v * d
        let attention = 2 * 3 * seq * d * kv      // key, query, value projections
            + 2 * seq * seq * kv                   // key @ query logits
            + 3 * heads * seq * seq                // softmax
            + 2 * seq * seq * kv                   // softmax @ value reductions
            + 2 * seq * kv * d                     // final linear
        let dense = 2 * seq * (d * ff + d * ff)
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

    /// Bytes of training state: float32 weights, gradients and the two AdamW moments (16 bytes a parameter), and
    /// the activations of one micro-batch.
    /// With `bf16Copies` (native bf16 products), also the weights' bf16 copy (2 bytes a parameter) and the
    /// activations' bf16 copies; with `roundedWeights` (emulated bf16 products), the weights rounded to bf16 in a
    /// second fp32 copy (4 bytes a parameter).
    public func trainingMemoryBytes(microBatch: Int, context t: Int? = nil, bf16Copies: Bool = false,
                                    roundedWeights: Bool = false, recompute: Recompute = .none) -> Double {
        (16 + (bf16Copies ? 2 : 0) + (roundedWeights ? 4 : 0)) * Double(parameterCount.total)
            + Double(activationBytes(batch: microBatch, context: t, bf16Copies: bf16Copies, recompute: recompute))
    }
}

/// A shape no model can have.
public enum ModelShapeError: Error, Equatable, CustomStringConvertible {
    /// A dimension (`n_layer`, `n_head`, `d_model`, `d_ff`, `seq_len`, `vocab_size`) below its minimum of 1.
    case notPositive(field: String, value: Int)
    /// Attention heads split `d_model` evenly.
    case headsDoNotDivideWidth(dModel: Int, nHead: Int)

    public var description: String {
        switch self {
        case let .notPositive(field, value): "\(field) = \(value); it must be at least 1"
        case let .headsDoNotDivideWidth(dModel, nHead): "d_model = \(dModel) is not a multiple of n_head = \(nHead)"
        }
    }
}

extension ModelShape {
    /// Throws the first reason this shape cannot be built.
    public func validate() throws(ModelShapeError) {
        for (field, value) in [("n_layer", nLayer), ("n_head", nHead), ("d_model", dModel), ("d_ff", dFF),
                               ("seq_len", seqLen), ("vocab_size", vocabSize)] where value < 1 {
            throw .notPositive(field: field, value: value)
        }
        guard dModel % nHead == 0 else { throw .headsDoNotDivideWidth(dModel: dModel, nHead: nHead) }
    }
}
