import GPTShape

/// One named tensor: a view of `count` floats at `offset` in the parameter allocation (and at the same offset in
/// the gradient and AdamW moment allocations).
public struct TensorView: Sendable, Equatable {
    /// nanoGPT's state_dict name, e.g. `transformer.h.0.attn.c_attn.weight`.
    public var name: String
    /// PyTorch shape; linear weights are (out, in) as in `nn.Linear`.
    public var shape: [Int]
    public var offset: Int
    public var count: Int { shape.reduce(1, *) }
    /// AdamW decays tensors with two or more dimensions (matrices and embeddings), not biases or LayerNorms.
    public var decays: Bool { shape.count >= 2 }
}

/// Offsets of one block's tensors (biases are -1 when the model has none).
///
/// GPT-2: `qkvWeight` is c_attn [3C, C], `fcWeight` c_fc [F, C], `mlpProjWeight` c_proj [C, F].
/// Llama: `qkvWeight` is q_proj [C, C], k_proj [K, C] and v_proj [K, C] stacked in that order (K = n_kv_head ·
/// head size), one [C + 2K, C] matrix whose product is the fused qkv row that `Attention.Shape.qkvStride`
/// describes; `fcWeight` is gate_proj [F, C], `upWeight` up_proj [F, C], `mlpProjWeight` down_proj [C, F];
/// `ln1Weight`/`ln2Weight` are the RMSNorm gains input_layernorm and post_attention_layernorm.
public struct LayerOffsets: Sendable {
    public var ln1Weight = 0, ln1Bias = -1
    public var qkvWeight = 0, qkvBias = -1
    public var attnProjWeight = 0, attnProjBias = -1
    public var ln2Weight = 0, ln2Bias = -1
    public var fcWeight = 0, fcBias = -1
    /// Llama's up_proj (-1 for GPT-2).
    public var upWeight = -1
    public var mlpProjWeight = 0, mlpProjBias = -1
}

/// Where every parameter lives in one allocation. Tensors that AdamW decays (the embeddings and all matrices)
/// come first and the rest (LayerNorm weights and biases, linear biases) after them, so the optimizer makes two
/// passes over two contiguous ranges; `tensors` lists them in nanoGPT's state_dict order (GPT-2) or Hugging Face
/// `LlamaForCausalLM`'s (Llama: `model.embed_tokens`, `model.layers.i.…`, `model.norm`, `lm_head` when untied).
public struct ParameterLayout: Sendable {
    public let shape: ModelShape
    public private(set) var tensors: [TensorView] = []
    public private(set) var layers: [LayerOffsets] = []
    /// `wpe` is -1 for Llama (rotary positions, no table); `lmHead` is the untied output head [V, C], or -1 when
    /// the head is the token embedding (GPT-2, and Llama with `tie_embeddings`).
    public private(set) var wte = 0, wpe = -1, lnfWeight = 0, lnfBias = -1, lmHead = -1
    /// Parameters `0..<decayedCount` are decayed, `decayedCount..<count` are not.
    public private(set) var decayedCount = 0
    public private(set) var count = 0

    public init(_ shape: ModelShape) {
        self.shape = shape
        switch shape.family {
        case .gpt2: placeGPT2()
        case .llama: placeLlama()
        }
    }

    private mutating func placeGPT2() {
        let c = shape.dModel, f = shape.dFF
        var next = 0
        func place(_ count: Int) -> Int { defer { next += count }; return next }

        // Storage order: decayed tensors, then the rest.
        wte = place(shape.vocabSize * c)
        wpe = place(shape.seqLen * c)
        layers = Array(repeating: LayerOffsets(), count: shape.nLayer)
        for l in 0..<shape.nLayer {
            layers[l].qkvWeight = place(3 * c * c)
            layers[l].attnProjWeight = place(c * c)
            layers[l].fcWeight = place(f * c)
            layers[l].mlpProjWeight = place(c * f)
        }
        decayedCount = next
        for l in 0..<shape.nLayer {
            layers[l].ln1Weight = place(c)
            layers[l].ln2Weight = place(c)
            if shape.bias {
                layers[l].ln1Bias = place(c)
                layers[l].qkvBias = place(3 * c)
                layers[l].attnProjBias = place(c)
                layers[l].ln2Bias = place(c)
                layers[l].fcBias = place(f)
                layers[l].mlpProjBias = place(c)
            }
        }
        lnfWeight = place(c)
        if shape.bias { lnfBias = place(c) }
        count = next

        // Names and shapes in state_dict order.
        var list: [TensorView] = [
            TensorView(name: "transformer.wte.weight", shape: [shape.vocabSize, c], offset: wte),
            TensorView(name: "transformer.wpe.weight", shape: [shape.seqLen, c], offset: wpe),
        ]
        for (l, o) in layers.enumerated() {
            let p = "transformer.h.\(l)."
            list.append(TensorView(name: p + "ln_1.weight", shape: [c], offset: o.ln1Weight))
            if shape.bias { list.append(TensorView(name: p + "ln_1.bias", shape: [c], offset: o.ln1Bias)) }
            list.append(TensorView(name: p + "attn.c_attn.weight", shape: [3 * c, c], offset: o.qkvWeight))
            if shape.bias { list.append(TensorView(name: p + "attn.c_attn.bias", shape: [3 * c], offset: o.qkvBias)) }
            list.append(TensorView(name: p + "attn.c_proj.weight", shape: [c, c], offset: o.attnProjWeight))
            if shape.bias { list.append(TensorView(name: p + "attn.c_proj.bias", shape: [c], offset: o.attnProjBias)) }
            list.append(TensorView(name: p + "ln_2.weight", shape: [c], offset: o.ln2Weight))
            if shape.bias { list.append(TensorView(name: p + "ln_2.bias", shape: [c], offset: o.ln2Bias)) }
            list.append(TensorView(name: p + "mlp.c_fc.weight", shape: [f, c], offset: o.fcWeight))
            if shape.bias { list.append(TensorView(name: p + "mlp.c_fc.bias", shape: [f], offset: o.fcBias)) }
            list.append(TensorView(name: p + "mlp.c_proj.weight", shape: [c, f], offset: o.mlpProjWeight))
            if shape.bias { list.append(TensorView(name: p + "mlp.c_proj.bias", shape: [c], offset: o.mlpProjBias)) }
        }
        list.append(TensorView(name: "transformer.ln_f.weight", shape: [c], offset: lnfWeight))
        if shape.bias { list.append(TensorView(name: "transformer.ln_f.bias", shape: [c], offset: lnfBias)) }
        tensors = list
    }

    /// Llama (Hugging Face `LlamaForCausalLM`'s names and shapes): no biases, no position table; q, k, v stacked
    /// into one matrix per block (one product gives the fused qkv row), gate and up side by side.
    private mutating func placeLlama() {
        let c = shape.dModel, f = shape.dFF, k = shape.kvWidth, v = shape.vocabSize
        var next = 0
        func place(_ count: Int) -> Int { defer { next += count }; return next }

        wte = place(v * c)
        if !shape.tieEmbeddings { lmHead = place(v * c) }
        layers = Array(repeating: LayerOffsets(), count: shape.nLayer)
        for l in 0..<shape.nLayer {
            layers[l].qkvWeight = place((c + 2 * k) * c)
            layers[l].attnProjWeight = place(c * c)
            layers[l].fcWeight = place(f * c)
            layers[l].upWeight = place(f * c)
            layers[l].mlpProjWeight = place(c * f)
        }
        decayedCount = next
        for l in 0..<shape.nLayer {
            layers[l].ln1Weight = place(c)
            layers[l].ln2Weight = place(c)
        }
        lnfWeight = place(c)
        count = next

        var list = [TensorView(name: "model.embed_tokens.weight", shape: [v, c], offset: wte)]
        for (l, o) in layers.enumerated() {
            let p = "model.layers.\(l)."
            list += [
                TensorView(name: p + "self_attn.q_proj.weight", shape: [c, c], offset: o.qkvWeight),
                TensorView(name: p + "self_attn.k_proj.weight", shape: [k, c], offset: o.qkvWeight + c * c),
                TensorView(name: p + "self_attn.v_proj.weight", shape: [k, c], offset: o.qkvWeight + (c + k) * c),
                TensorView(name: p + "self_attn.o_proj.weight", shape: [c, c], offset: o.attnProjWeight),
                TensorView(name: p + "mlp.gate_proj.weight", shape: [f, c], offset: o.fcWeight),
                TensorView(name: p + "mlp.up_proj.weight", shape: [f, c], offset: o.upWeight),
                TensorView(name: p + "mlp.down_proj.weight", shape: [c, f], offset: o.mlpProjWeight),
                TensorView(name: p + "input_layernorm.weight", shape: [c], offset: o.ln1Weight),
                TensorView(name: p + "post_attention_layernorm.weight", shape: [c], offset: o.ln2Weight),
            ]
        }
        list.append(TensorView(name: "model.norm.weight", shape: [c], offset: lnfWeight))
        if lmHead >= 0 { list.append(TensorView(name: "lm_head.weight", shape: [v, c], offset: lmHead)) }
        tensors = list
    }

    public func tensor(named name: String) -> TensorView? { tensors.first { $0.name == name } }
}
