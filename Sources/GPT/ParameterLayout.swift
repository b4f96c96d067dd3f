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
public struct LayerOffsets: Sendable {
    public var ln1Weight = 0, ln1Bias = -1
    public var qkvWeight = 0, qkvBias = -1
    public var attnProjWeight = 0, attnProjBias = -1
    public var ln2Weight = 0, ln2Bias = -1
    public var fcWeight = 0, fcBias = -1
    public var mlpProjWeight = 0, mlpProjBias = -1
}

/// Where every parameter lives in one allocation. Tensors that AdamW decays (the embeddings and all matrices)
/// come first and the rest (LayerNorm weights and biases, linear biases) after them, so the optimizer makes two
/// passes over two contiguous ranges; `tensors` lists them in nanoGPT's state_dict order.
public struct ParameterLayout: Sendable {
    public let shape: ModelShape
    public private(set) var tensors: [TensorView] = []
    public private(set) var layers: [LayerOffsets] = []
    public private(set) var wte = 0, wpe = 0, lnfWeight = 0, lnfBias = -1
    /// Parameters `0..<decayedCount` are decayed, `decayedCount..<count` are not.
    public private(set) var decayedCount = 0
    public private(set) var count = 0

    public init(_ shape: ModelShape) {
        self.shape = shape
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

    public func tensor(named name: String) -> TensorView? { tensors.first { $0.name == name } }
}
