import Compute
import GPTShape
import Kernels

/// Dropout in one training forward/backward pass (a training setting, not part of the model's shape): the
/// probability, and where the masks come from: the run's seed and the pass's step and micro-batch, so that a
/// resumed run draws the same masks.
public struct DropoutContext: Sendable {
    public var probability: Float
    public var seed: UInt64
    public var step: Int
    public var micro: Int

    public init(probability: Float, seed: UInt64, step: Int, micro: Int) {
        self.probability = probability
        self.seed = seed
        self.step = step
        self.micro = micro
    }
}

/// Input the model cannot run on. Checked in every build, before any buffer is touched.
public enum GPTInputError: Error, Equatable, CustomStringConvertible {
    case invalidShape(ModelShapeError)
    /// The activation buffers are sized for at most `maxTime` positions, which cannot exceed the context.
    case bufferLongerThanContext(maxTime: Int, seqLen: Int)
    case emptyBuffers(maxBatch: Int, maxTime: Int)
    /// A micro-batch larger than the activation buffers (or empty).
    case batchOutOfRange(batch: Int, time: Int, maxBatch: Int, maxTime: Int)
    /// Input token `index` (row-major in the batch) is not a vocabulary id.
    case tokenOutOfRange(index: Int, token: Int32, vocabSize: Int)
    /// Target `index` is not a vocabulary id.
    case targetOutOfRange(index: Int, target: Int32, vocabSize: Int)
    /// bf16 products run inside the fused attention kernel only.
    case bf16NeedsFusedAttention
    /// Native bf16 products were asked for on a CPU where oneDNN has none.
    case nativeBF16Unavailable
    /// The Llama family's grouped-query attention and rotary embedding run in the fused attention kernel only.
    case llamaNeedsFusedAttention
    /// The rotary embedding rotates pairs of features (i, i + d/2) of each head: the head size must be even.
    case rotaryNeedsEvenHeadSize(headSize: Int)

    public var description: String {
        switch self {
        case let .invalidShape(error): "invalid model shape: \(error)"
        case let .bufferLongerThanContext(maxTime, seqLen):
            "sequences of \(maxTime) tokens do not fit the model's context of \(seqLen)"
        case let .emptyBuffers(maxBatch, maxTime): "buffers for \(maxBatch) sequences of \(maxTime) tokens hold nothing"
        case let .batchOutOfRange(batch, time, maxBatch, maxTime):
            "a micro-batch of \(batch) sequences of \(time) tokens; the model's buffers hold 1...\(maxBatch) sequences of 1...\(maxTime)"
        case let .tokenOutOfRange(index, token, vocabSize):
            "token \(token) at position \(index) is not below the vocabulary size \(vocabSize)"
        case let .targetOutOfRange(index, target, vocabSize):
            "target \(target) at position \(index) is not below the vocabulary size \(vocabSize)"
        case .bf16NeedsFusedAttention: "bf16 precision runs with the fused attention kernel, not the materialized one"
        case .nativeBF16Unavailable: "this CPU has no native bf16 matrix products (oneDNN offers none); use the emulated ones"
        case let .rotaryNeedsEvenHeadSize(headSize):
            "the llama family's rotary embedding needs an even head size (d_model / n_head = \(headSize)); change n_head or d_model"
        case .llamaNeedsFusedAttention:
            "the llama family runs with the fused attention kernel, not the materialized one (use attention = \"fused\")"
        }
    }
}

/// How bf16 products run (`GPTShape.BF16Products`, where the CPU trainer's memory rule can name it).
public typealias BF16Products = GPTShape.BF16Products

extension BF16Products {
    /// Native where this CPU has it, else emulated.
    public static var best: BF16Products { BF16Matmul.isAvailable ? .native : .emulated }
}

/// A decoder-only transformer of either family (`ModelShape.family`) with hand-written forward and backward passes.
///
/// GPT-2: token plus learned position embedding, LayerNorm, a GELU MLP, multi-head attention, the head tied to the
/// token embedding. Llama (Hugging Face `LlamaForCausalLM`'s function, its parameters as `ParameterLayout` places
/// them): token embedding only; per block RMSNorm (ε = `normEps`), one product with q_proj, k_proj and v_proj
/// stacked (the fused qkv row, C + 2K wide), the rotary embedding on the queries and keys in place (one table of
/// cos/sin for `seqLen` positions, made at init with `ropeTheta`), fused grouped-query attention reading the
/// shared key/value heads in place, o_proj added to the residual; RMSNorm, the gate and up products, SwiGLU,
/// down_proj added to the residual; a final RMSNorm and the head (lm_head, or the token embedding when
/// `tieEmbeddings`). No biases. The materialized attention kernel is GPT-2's only.
///
/// Parameters, gradients and activations each live in one allocation made here (with native bf16 products, the
/// weights' and activations' bf16 copies in one more each); a training step allocates nothing of its own (oneDNN
/// makes a few small allocations inside each execution: `BF16Matmul.allocationsPerExecution`). Layers are
/// forward/backward pairs of kernels over those buffers; matrix products are OpenBLAS sgemms, or oneDNN bf16
/// matmuls for the linear layers with native bf16 products.
///
/// `attention` picks the attention kernel (`FusedAttention`, the default, or the materialized `Attention`), and
/// `precision` the number format of the matrix products' inputs. In bf16, every product (the linear layers of
/// each block, four for GPT-2 and five for Llama, attention's score and value products, the head) takes operands
/// rounded to bfloat16 and
/// accumulates in fp32: the weights are rounded into a second copy at the start of a forward pass (unless the
/// caller says they have not changed, `weightsUnchanged`), and the
/// activations and gradients that only feed products (the LayerNorm outputs, qkv, the attention output, the GELU
/// output, the logits' gradient, ...) are rounded in place; the rounding is exact emulation of a bf16 matmul (see
/// `BFloat16`). LayerNorm, softmax, GELU, the loss and the parameters and their gradients stay fp32 (for Llama
/// also RMSNorm, SwiGLU and the rotary embedding: q and k are rounded after their rotation, and their gradients
/// rotated back in fp32 before the qkv product's gradient is rounded).
///
/// Where the CPU multiplies bf16 natively (`BF16Products.native`), the linear layers and the head run on oneDNN
/// instead: the weights are converted to a bf16 copy (in place of the rounded fp32 one), each product input is
/// rounded in place as above and also written as bf16 into a second allocation (`ActivationLayout.bf16Copies`),
/// and each gradient a product reads is converted with its transpose just before the product. Both paths compute
/// the same function up to the order of fp32 summation. Attention's two products stay on the emulated path: they
/// are small tiles inside the fused kernel.
///
/// `recompute` trades compute for activation memory (`Recompute`, Korthikanti et al. 2022): with `.selective`
/// the backward pass runs each layer's attention forward kernel again from the kept q, k, v before back-propagating
/// through it; with `.full` it runs each block's forward pass again from the kept block input (up to the MLP's
/// GELU or SwiGLU: the block's output is kept, it is the next block's input). The recomputation runs the same kernels on
/// the same inputs with the same thread pool, and dropout masks are counter-based (`DropoutMask`, keyed by seed,
/// step, micro-batch, layer and site), so every recomputed activation is bit-identical to the one the forward
/// pass computed and gradients are the same bits in every mode.
public final class GPT {
    public let shape: ModelShape
    public let layout: ParameterLayout
    public let pool: ThreadPool
    public let parameters: FloatStorage
    public let gradients: FloatStorage
    /// Largest micro-batch and sequence length the activation buffers hold.
    public let maxBatch: Int
    public let maxTime: Int
    public let attention: AttentionKernel
    public let precision: Precision
    /// How bf16 products run (nil in fp32).
    public let bf16Products: BF16Products?
    /// Tiles of the fused attention kernel.
    public let attentionTiles: FusedAttention.Tiles
    /// Which activations the backward pass computes again instead of keeping.
    public let recompute: Recompute

    let acts: ActivationLayout
    /// The parameters rounded to bf16 (emulated bf16 products only), what the sgemms read as weights.
    let roundedParameters: FloatStorage?
    /// Native bf16 products only: the parameters as bf16, and the activations' bf16 allocation.
    let parameterHalves: UnsafeMutablePointer<UInt16>?
    let activationHalves: UnsafeMutablePointer<UInt16>?
    /// Fused attention's per-thread bf16 tiles (native bf16 products only).
    let attentionTileHalves: UnsafeMutablePointer<UInt16>?
    let activations: FloatStorage
    let attentionScratch: FloatStorage
    let normScratch: FloatStorage
    /// Llama only: the rotary embedding's cos/sin table for `shape.seqLen` positions (`Rotary.fillTable`).
    let rotaryTable: FloatStorage?
    let tokenBuffer: UnsafeMutablePointer<Int32>
    let targetBuffer: UnsafeMutablePointer<Int32>
    /// Batch and length of the last forward pass, which the backward pass continues.
    private var lastBatch = 0, lastTime = 0
    /// Whether the bf16 copy of the weights (rounded or converted) has been made by an earlier forward pass.
    private var weightCopyMade = false
    private var lastDropout: DropoutContext?

    public init(shape: ModelShape, maxBatch: Int, maxTime: Int, pool: ThreadPool, attention: AttentionKernel = .fused,
                precision: Precision = .fp32, attentionTiles: FusedAttention.Tiles = .standard,
                bf16Products: BF16Products? = nil, recompute: Recompute = .none) throws(GPTInputError) {
        do { try shape.validate() } catch { throw .invalidShape(error) }
        guard shape.family == .gpt2 || attention == .fused else { throw .llamaNeedsFusedAttention }
        guard shape.family == .gpt2 || shape.headSize % 2 == 0 else { throw .rotaryNeedsEvenHeadSize(headSize: shape.headSize) }
        guard precision == .fp32 || attention == .fused else { throw .bf16NeedsFusedAttention }
        let products = precision == .bf16 ? bf16Products ?? .best : nil
        guard products != .native || BF16Matmul.isAvailable else { throw .nativeBF16Unavailable }
        guard maxTime <= shape.seqLen else { throw .bufferLongerThanContext(maxTime: maxTime, seqLen: shape.seqLen) }
        guard maxBatch >= 1, maxTime >= 1 else { throw .emptyBuffers(maxBatch: maxBatch, maxTime: maxTime) }
        self.shape = shape
        self.layout = ParameterLayout(shape)
        self.pool = pool
        self.maxBatch = maxBatch
        self.maxTime = maxTime
        self.attention = attention
        self.precision = precision
        self.bf16Products = products
        self.attentionTiles = attentionTiles
        self.recompute = recompute
        parameters = FloatStorage(count: layout.count)
        roundedParameters = products == .emulated ? FloatStorage(count: layout.count) : nil
        gradients = FloatStorage(count: layout.count)
        acts = ActivationLayout(shape, batch: maxBatch, time: maxTime, attention: attention,
                                bf16Copies: products == .native, recompute: recompute)
        activations = FloatStorage(count: acts.count)
        if products == .native {
            func halves(_ count: Int) -> UnsafeMutablePointer<UInt16> {
                let p = UnsafeMutableRawPointer.allocate(byteCount: 2 * count, alignment: 64)
                    .bindMemory(to: UInt16.self, capacity: count)
                p.initialize(repeating: 0, count: count)
                return p
            }
            parameterHalves = halves(layout.count)
            activationHalves = halves(acts.halfCount)
            attentionTileHalves = halves(pool.threadCount * FusedAttention.halfScratchPerThread(tiles: attentionTiles))
        } else {
            parameterHalves = nil
            activationHalves = nil
            attentionTileHalves = nil
        }
        // Room for attention dropout too: whether a pass drops out is up to its caller.
        let perThread = attention == .fused ? FusedAttention.scratchPerThread(tiles: attentionTiles)
            : Attention.scratchPerThread(time: maxTime, dropout: true)
        attentionScratch = FloatStorage(count: pool.threadCount * perThread)
        normScratch = FloatStorage(count: Swift.max(LayerNorm.scratchCount(threads: pool.threadCount, channels: shape.dModel),
                                                    RMSNorm.scratchCount(threads: pool.threadCount, channels: shape.dModel)))
        if shape.family == .llama {
            let table = FloatStorage(count: Rotary.tableCount(positions: shape.seqLen, headSize: shape.headSize))
            Rotary.fillTable(table.base, positions: shape.seqLen, headSize: shape.headSize, theta: shape.ropeTheta)
            rotaryTable = table
        } else {
            rotaryTable = nil
        }
        tokenBuffer = .allocate(capacity: maxBatch * maxTime)
        targetBuffer = .allocate(capacity: maxBatch * maxTime)
        tokenBuffer.initialize(repeating: 0, count: maxBatch * maxTime)
        targetBuffer.initialize(repeating: 0, count: maxBatch * maxTime)
    }

    deinit {
        tokenBuffer.deallocate()
        targetBuffer.deallocate()
        parameterHalves?.deallocate()
        activationHalves?.deallocate()
        attentionTileHalves?.deallocate()
    }

    /// The residual stream entering block `layer` in the last forward pass, [batch·time, d_model] row-major (the
    /// embeddings for block 0). Valid until the next forward or backward pass.
    public func blockInput(_ layer: Int) -> UnsafePointer<Float> {
        precondition(layer >= 0 && layer < shape.nLayer, "block \(layer) of \(shape.nLayer)")
        return UnsafePointer(layer == 0 ? act(acts.encoded) : act(acts.layers[layer - 1].residual3))
    }

    /// The fused qkv rows block `layer`'s attention read in the last forward pass, [batch·time, C + 2K] row-major
    /// (`Attention.Shape.qkvStride`): for Llama the queries and keys after the rotary embedding, and in bf16 every
    /// value rounded to bf16 (after the rotation). Valid until the next forward or backward pass; with `.full`
    /// recomputation only for the last block.
    public func attentionInput(_ layer: Int) -> UnsafePointer<Float> {
        precondition(layer >= 0 && layer < shape.nLayer, "block \(layer) of \(shape.nLayer)")
        return UnsafePointer(act(acts.layers[layer].qkv))
    }

    /// Floats in the activation allocation (what `ModelShape.activationFloats` predicts).
    public var activationCount: Int { acts.count }

    /// GPT-2: nanoGPT's initialisation: normal(0, 0.02) for embeddings and linear weights, 0.02/sqrt(2·n_layer)
    /// for the two residual output projections of each block, zero biases, LayerNorm weights 1.
    ///
    /// Llama: Hugging Face's `LlamaPreTrainedModel._init_weights` (transformers' `modeling_llama.py`, the
    /// initialisation `LlamaForCausalLM(config)` trains from): normal(0, `initializer_range` = 0.02) for the token
    /// embedding, every linear weight (q, k, v, o, gate, up, down, the untied lm_head alike) and RMSNorm gains 1.
    /// Chosen over nanoGPT's residual scaling (0.02/sqrt(2·n_layer) on o_proj and down_proj) because it is the
    /// family's reference implementation, the one our export loads into: a model initialised here and one made by
    /// `LlamaForCausalLM(config)` draw from the same distribution. (Meta's published Llama code is inference only;
    /// torchtitan's depth-scaled truncated normal is a third, later choice.)
    ///
    /// Tensors are drawn in state_dict order (`layout.tensors`: nanoGPT's, or Hugging Face's) from one generator.
    public func initialize(seed: UInt64) {
        var rng = Xoshiro256(seed: seed, stream: 1)
        weightCopyMade = false
        let p = parameters.base
        parameters.zero()
        if shape.family == .llama {
            for tensor in layout.tensors {
                if tensor.shape.count >= 2 {
                    for i in 0..<tensor.count { p[tensor.offset + i] = Float(rng.nextNormal() * 0.02) }
                } else {
                    (p + tensor.offset).update(repeating: 1, count: tensor.count)
                }
            }
            return
        }
        let residualStd = 0.02 / (2.0 * Double(shape.nLayer)).squareRoot()
        for tensor in layout.tensors {
            if tensor.name.hasSuffix("ln_1.weight") || tensor.name.hasSuffix("ln_2.weight") || tensor.name.hasSuffix("ln_f.weight") {
                (p + tensor.offset).update(repeating: 1, count: tensor.count)
            } else if tensor.shape.count >= 2 {
                let std = tensor.name.hasSuffix("c_proj.weight") ? residualStd : 0.02
                for i in 0..<tensor.count { p[tensor.offset + i] = Float(rng.nextNormal() * std) }
            }
        }
    }

    // MARK: Views

    @inline(__always) func param(_ offset: Int) -> UnsafeMutablePointer<Float> { parameters.base + offset }
    @inline(__always) func grad(_ offset: Int) -> UnsafeMutablePointer<Float> { gradients.base + offset }
    @inline(__always) func optionalParam(_ offset: Int) -> UnsafeMutablePointer<Float>? { offset < 0 ? nil : parameters.base + offset }
    @inline(__always) func optionalGrad(_ offset: Int) -> UnsafeMutablePointer<Float>? { offset < 0 ? nil : gradients.base + offset }
    @inline(__always) func act(_ offset: Int) -> UnsafeMutablePointer<Float> { activations.base + offset }
    /// A weight as the sgemms read it: rounded to bf16 with emulated bf16 products, else the parameter itself.
    @inline(__always) func weight(_ offset: Int) -> UnsafeMutablePointer<Float> { (roundedParameters ?? parameters).base + offset }

    @inline(__always) func half(_ offset: Int) -> UnsafeMutablePointer<UInt16> { activationHalves! + offset }
    @inline(__always) func weightHalf(_ offset: Int) -> UnsafeMutablePointer<UInt16> { parameterHalves! + offset }

    /// Rounds `count` floats at `p` to bf16 in place when products take bf16 inputs; with native products and a
    /// `half` offset, also writes them into that bf16 copy (what the linear layers read).
    @inline(__always) private func productInput(_ p: UnsafeMutablePointer<Float>, count: Int, half: Int? = nil) {
        switch bf16Products {
        case nil: return
        case .native? where half != nil: BFloat16.convert(pool, bits: self.half(half!), rounded: p, p, count: count)
        default: BFloat16.round(pool, out: p, p, count: count)
        }
    }

    /// Attention's bf16 operands when products run natively: the layer's q, k, v (and output gradient) as
    /// converted into the bf16 allocation, and the per-thread tiles.
    private func nativeAttention(withGradient: Bool) -> FusedAttention.NativeBF16? {
        guard bf16Products == .native, let attentionTileHalves else { return nil }
        return FusedAttention.NativeBF16(qkv: half(acts.attentionQKVHalf),
                                         dout: withGradient ? UnsafePointer(half(acts.attentionGradientHalf)) : nil,
                                         tiles: attentionTileHalves)
    }

    /// A gradient that a linear layer's backward products read: rounded in place in bf16, and with native products
    /// also converted into the gradient's bf16 copy.
    @inline(__always) private func gradientInput(_ p: UnsafeMutablePointer<Float>, count: Int) {
        productInput(p, count: count, half: bf16Products == .native ? acts.gradientHalf : nil)
    }

    /// `out (+)= inp · weightᵀ + bias` for the weight at parameter offset `weight`: on the bf16 copies (`inpHalf`)
    /// with native bf16 products, else on fp32 buffers.
    private func linear(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, inpHalf: Int, weight: Int,
                        bias: UnsafePointer<Float>?, rows: Int, inFeatures: Int, outFeatures: Int, accumulate: Bool = false) {
        if bf16Products == .native {
            Linear.forward(pool, out: out, inp: half(inpHalf), weight: weightHalf(weight), bias: bias, rows: rows,
                           inFeatures: inFeatures, outFeatures: outFeatures, accumulate: accumulate)
        } else {
            Linear.forward(pool, out: out, inp: inp, weight: self.weight(weight), bias: bias, rows: rows,
                           inFeatures: inFeatures, outFeatures: outFeatures, accumulate: accumulate)
        }
    }

    /// `Linear.backward` for the weight at offset `weight`. With native bf16 products, `dout` has been through
    /// `gradientInput` (or `branchGradient`): its transpose is written next to its bf16 copy here, and the products
    /// read the copies.
    private func linearBackward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>,
                                dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                                inpHalf: Int, weight: Int, rows: Int, inFeatures: Int, outFeatures: Int,
                                accumulateInput: Bool, accumulateParameters: Bool) {
        if bf16Products == .native {
            BFloat16.transpose(pool, transposed: half(acts.gradientHalfTransposed), half(acts.gradientHalf), rows: rows,
                               columns: outFeatures)
            Linear.backward(pool, dinp: dinp, dweight: dweight, dbias: dbias, dout: half(acts.gradientHalf),
                            doutTransposed: half(acts.gradientHalfTransposed), doutValues: dout, inp: half(inpHalf),
                            weight: weightHalf(weight), rows: rows, inFeatures: inFeatures, outFeatures: outFeatures,
                            accumulateInput: accumulateInput, accumulateParameters: accumulateParameters)
        } else {
            Linear.backward(pool, dinp: dinp, dweight: dweight, dbias: dbias, dout: dout, inp: inp,
                            weight: self.weight(weight), rows: rows, inFeatures: inFeatures, outFeatures: outFeatures,
                            accumulateInput: accumulateInput, accumulateParameters: accumulateParameters)
        }
    }

    /// The logits of the last forward pass, [batch·time, vocab] (or their gradient after a training pass).
    public var logits: UnsafeMutablePointer<Float> { act(acts.logits) }

    /// Offset of the output head's weight [V, C]: Llama's untied lm_head, else the token embedding.
    var headWeight: Int { layout.lmHead >= 0 ? layout.lmHead : layout.wte }

    /// RMSNorm's ε (Llama).
    var normEpsilon: Float { Float(shape.normEps) }

    // MARK: Forward

    /// Runs the model on `batch` sequences of `time` tokens (row-major in `tokens`) and returns the mean
    /// cross-entropy against `targets`. With `gradientScale`, the logits are turned into the loss gradient
    /// (scaled so that summing micro-batches gives the gradient of the mean over the whole batch), ready for
    /// `backward`. Without targets, only the logits are computed and the result is 0.
    ///
    /// In bf16, each pass first makes the products' bf16 copy of the weights. `weightsUnchanged` promises that
    /// `parameters` have not been written since the last forward pass (the later micro-batches of a step, the
    /// batches of one evaluation), and then that copy is reused: a pass over every parameter saved per micro-batch.
    ///
    /// Throws, before touching any buffer, when the micro-batch does not fit the buffers or a token or target is
    /// not below the vocabulary size.
    @discardableResult
    public func forward(tokens: UnsafePointer<Int32>, targets: UnsafePointer<Int32>?, batch: Int, time: Int,
                        gradientScale: Float? = nil, dropout: DropoutContext? = nil,
                        weightsUnchanged: Bool = false) throws(GPTInputError) -> Float {
        guard (1...maxBatch).contains(batch), (1...maxTime).contains(time) else {
            throw .batchOutOfRange(batch: batch, time: time, maxBatch: maxBatch, maxTime: maxTime)
        }
        let bt = batch * time, c = shape.dModel, v = shape.vocabSize
        if let bad = Self.firstOutOfRange(tokens, count: bt, below: v) {
            throw .tokenOutOfRange(index: bad, token: tokens[bad], vocabSize: v)
        }
        if let targets, let bad = Self.firstOutOfRange(targets, count: bt, below: v) {
            throw .targetOutOfRange(index: bad, target: targets[bad], vocabSize: v)
        }
        tokenBuffer.update(from: tokens, count: bt)
        if let targets { targetBuffer.update(from: targets, count: bt) }
        lastBatch = batch
        lastTime = time
        let drop = (dropout?.probability ?? 0) > 0 ? dropout : nil
        lastDropout = drop
        let attentionShape = Attention.Shape(batch: batch, time: time, channels: c, heads: shape.nHead, kvHeads: shape.nKVHead)
        if !(weightsUnchanged && weightCopyMade) {
            if let rounded = roundedParameters {
                BFloat16.round(pool, out: rounded.base, parameters.base, count: layout.count)
            }
            if let parameterHalves {
                BFloat16.convert(pool, bits: parameterHalves, rounded: nil, parameters.base, count: layout.count)
            }
            weightCopyMade = true
        }

        if shape.family == .llama {
            TokenEmbedding.forward(pool, out: act(acts.encoded), tokens: tokenBuffer, wte: param(layout.wte), rows: bt, channels: c)
        } else {
            Encoder.forward(pool, out: act(acts.encoded), tokens: tokenBuffer, wte: param(layout.wte), wpe: param(layout.wpe),
                            batch: batch, time: time, channels: c)
        }
        if let drop { mask(drop, layer: -1, site: 0).apply(pool, out: act(acts.encoded), act(acts.encoded), count: bt * c) }

        var residual = act(acts.encoded)
        for l in 0..<shape.nLayer {
            blockForward(l, residual: residual, dropout: drop, attentionShape: attentionShape, throughOutput: true)
            residual = act(acts.layers[l].residual3)
        }
        if shape.family == .llama {
            RMSNorm.forward(pool, out: act(acts.lnf), rstd: act(acts.lnfRstd), inp: residual, weight: param(layout.lnfWeight),
                            rows: bt, channels: c, epsilon: normEpsilon)
        } else {
            LayerNorm.forward(pool, out: act(acts.lnf), mean: act(acts.lnfMean), rstd: act(acts.lnfRstd), inp: residual,
                              weight: param(layout.lnfWeight), bias: optionalParam(layout.lnfBias), rows: bt, channels: c)
        }
        productInput(act(acts.lnf), count: bt * c, half: acts.lnfHalf)
        // logits = lnf · headᵀ, the head being the token embedding when tied.
        linear(out: act(acts.logits), inp: act(acts.lnf), inpHalf: acts.lnfHalf, weight: headWeight, bias: nil,
               rows: bt, inFeatures: c, outFeatures: v)
        guard targets != nil else { return 0 }
        CrossEntropy.forward(pool, losses: act(acts.losses), logits: act(acts.logits), targets: targetBuffer,
                             rows: bt, vocab: v, gradientScale: gradientScale)
        var sum = 0.0
        let losses = act(acts.losses)
        for i in 0..<bt { sum += Double(losses[i]) }
        return Float(sum / Double(bt))
    }

    /// Block `l`'s forward pass from its input `residual`. Without `throughOutput` it stops after the MLP's GELU
    /// (and its bf16 rounding): all that full recomputation needs again, the block's output being kept.
    private func blockForward(_ l: Int, residual: UnsafeMutablePointer<Float>, dropout drop: DropoutContext?,
                              attentionShape: Attention.Shape, throughOutput: Bool) {
        if shape.family == .llama {
            llamaBlockForward(l, residual: residual, dropout: drop, attentionShape: attentionShape, throughOutput: throughOutput)
            return
        }
        let a = acts.layers[l], o = layout.layers[l]
        let bt = attentionShape.batch * attentionShape.time, c = shape.dModel, f = shape.dFF
        LayerNorm.forward(pool, out: act(a.ln1), mean: act(a.ln1Mean), rstd: act(a.ln1Rstd), inp: residual,
                          weight: param(o.ln1Weight), bias: optionalParam(o.ln1Bias), rows: bt, channels: c)
        productInput(act(a.ln1), count: bt * c, half: a.ln1Half)
        linear(out: act(a.qkv), inp: act(a.ln1), inpHalf: a.ln1Half, weight: o.qkvWeight, bias: optionalParam(o.qkvBias),
               rows: bt, inFeatures: c, outFeatures: 3 * c)
        if bf16Products == .native {
            BFloat16.convert(pool, bits: half(acts.attentionQKVHalf), rounded: act(a.qkv), act(a.qkv), count: bt * 3 * c)
        } else {
            productInput(act(a.qkv), count: bt * 3 * c)
        }
        attentionCore(l, dropout: drop, attentionShape: attentionShape)
        residualBranch(out: act(a.residual2), residual: residual, inp: act(a.attY), inpHalf: a.attYHalf, weight: o.attnProjWeight,
                       bias: optionalParam(o.attnProjBias), rows: bt, inFeatures: c,
                       dropout: drop.map { mask($0, layer: l, site: 2) })
        LayerNorm.forward(pool, out: act(a.ln2), mean: act(a.ln2Mean), rstd: act(a.ln2Rstd), inp: act(a.residual2),
                          weight: param(o.ln2Weight), bias: optionalParam(o.ln2Bias), rows: bt, channels: c)
        productInput(act(a.ln2), count: bt * c, half: a.ln2Half)
        linear(out: act(a.fcPre), inp: act(a.ln2), inpHalf: a.ln2Half, weight: o.fcWeight, bias: optionalParam(o.fcBias),
               rows: bt, inFeatures: c, outFeatures: f)
        GELU.forward(pool, out: act(a.fcGelu), inp: act(a.fcPre), count: bt * f)
        productInput(act(a.fcGelu), count: bt * f, half: a.fcGeluHalf)
        guard throughOutput else { return }
        residualBranch(out: act(a.residual3), residual: act(a.residual2), inp: act(a.fcGelu), inpHalf: a.fcGeluHalf,
                       weight: o.mlpProjWeight, bias: optionalParam(o.mlpProjBias), rows: bt, inFeatures: f,
                       dropout: drop.map { mask($0, layer: l, site: 3) })
    }

    /// Llama block `l`'s forward pass from its input `residual` (`blockForward`'s contract): RMSNorm, the qkv
    /// product, the rotary embedding on q and k in place, attention, o_proj onto the residual; RMSNorm, gate and
    /// up, SwiGLU, down_proj onto the residual. In bf16 the queries and keys are rounded after their rotation
    /// (attention's products read the rotated values), as every other product input is rounded where it is made.
    private func llamaBlockForward(_ l: Int, residual: UnsafeMutablePointer<Float>, dropout drop: DropoutContext?,
                                   attentionShape: Attention.Shape, throughOutput: Bool) {
        let a = acts.layers[l], o = layout.layers[l]
        let bt = attentionShape.batch * attentionShape.time, c = shape.dModel, f = shape.dFF, s = attentionShape.qkvStride
        RMSNorm.forward(pool, out: act(a.ln1), rstd: act(a.ln1Rstd), inp: residual, weight: param(o.ln1Weight), rows: bt,
                        channels: c, epsilon: normEpsilon)
        productInput(act(a.ln1), count: bt * c, half: a.ln1Half)
        linear(out: act(a.qkv), inp: act(a.ln1), inpHalf: a.ln1Half, weight: o.qkvWeight, bias: nil, rows: bt,
               inFeatures: c, outFeatures: s)
        Rotary.forward(pool, out: act(a.qkv), inp: act(a.qkv), layout: .queriesAndKeys(attentionShape),
                       table: rotaryTable!.base, positions: shape.seqLen)
        if bf16Products == .native {
            BFloat16.convert(pool, bits: half(acts.attentionQKVHalf), rounded: act(a.qkv), act(a.qkv), count: bt * s)
        } else {
            productInput(act(a.qkv), count: bt * s)
        }
        attentionCore(l, dropout: drop, attentionShape: attentionShape)
        residualBranch(out: act(a.residual2), residual: residual, inp: act(a.attY), inpHalf: a.attYHalf,
                       weight: o.attnProjWeight, bias: nil, rows: bt, inFeatures: c,
                       dropout: drop.map { mask($0, layer: l, site: 2) })
        RMSNorm.forward(pool, out: act(a.ln2), rstd: act(a.ln2Rstd), inp: act(a.residual2), weight: param(o.ln2Weight),
                        rows: bt, channels: c, epsilon: normEpsilon)
        productInput(act(a.ln2), count: bt * c, half: a.ln2Half)
        linear(out: act(a.fcPre), inp: act(a.ln2), inpHalf: a.ln2Half, weight: o.fcWeight, bias: nil, rows: bt,
               inFeatures: c, outFeatures: f)
        linear(out: act(a.up), inp: act(a.ln2), inpHalf: a.ln2Half, weight: o.upWeight, bias: nil, rows: bt,
               inFeatures: c, outFeatures: f)
        SwiGLU.forward(pool, out: act(a.fcGelu), gate: act(a.fcPre), up: act(a.up), count: bt * f)
        productInput(act(a.fcGelu), count: bt * f, half: a.fcGeluHalf)
        guard throughOutput else { return }
        residualBranch(out: act(a.residual3), residual: act(a.residual2), inp: act(a.fcGelu), inpHalf: a.fcGeluHalf,
                       weight: o.mlpProjWeight, bias: nil, rows: bt, inFeatures: f,
                       dropout: drop.map { mask($0, layer: l, site: 3) })
    }

    /// Block `l`'s attention core from its q, k, v (rounded to bf16 when products take bf16, and with native
    /// products also in `attentionQKVHalf`): the attention output (rounded, and in `attYHalf`) and the log-sum-exp
    /// (fused kernel) or probabilities (materialized) its backward pass reads.
    private func attentionCore(_ l: Int, dropout drop: DropoutContext?, attentionShape: Attention.Shape) {
        let a = acts.layers[l]
        let attentionDropout = drop.map { mask($0, layer: l, site: 1) }
        switch attention {
        case .fused:
            FusedAttention.forward(pool, out: act(a.attY), lse: act(a.att), qkv: act(a.qkv), shape: attentionShape,
                                   tiles: attentionTiles, scratch: attentionScratch.base, dropout: attentionDropout,
                                   bf16Inputs: precision == .bf16, native: nativeAttention(withGradient: false))
        case .materialized:
            Attention.forward(pool, out: act(a.attY), att: act(a.att), qkv: act(a.qkv), shape: attentionShape,
                              scratch: attentionScratch.base, dropout: attentionDropout)
        }
        productInput(act(a.attY), count: attentionShape.batch * attentionShape.time * shape.dModel, half: a.attYHalf)
    }

    /// Before back-propagating through block `l`: computes again what the forward pass did not keep (nothing
    /// without recomputation). Runs at the start of the block's backward pass, when the backward scratch and the
    /// gradients' bf16 copies hold nothing live.
    private func recomputeBlock(_ l: Int, residual: UnsafeMutablePointer<Float>, attentionShape: Attention.Shape) {
        switch recompute {
        case .none:
            return
        case .selective:
            if bf16Products == .native {
                // q, k, v were rounded in the forward pass: converting them again gives the same bf16 patterns.
                let count = attentionShape.batch * attentionShape.time * attentionShape.qkvStride
                BFloat16.convert(pool, bits: half(acts.attentionQKVHalf), rounded: nil, act(acts.layers[l].qkv), count: count)
            }
            attentionCore(l, dropout: lastDropout, attentionShape: attentionShape)
        case .full:
            blockForward(l, residual: residual, dropout: lastDropout, attentionShape: attentionShape, throughOutput: false)
        }
    }

    /// The first of `count` ids that is not in `0..<limit`.
    static func firstOutOfRange(_ ids: UnsafePointer<Int32>, count: Int, below limit: Int) -> Int? {
        // One branch-free pass (the usual case: every id is fine), then a search only if one is not.
        var outside: UInt32 = 0
        for i in 0..<count { outside |= UInt32(bitPattern: ids[i]) >= UInt32(limit) ? 1 : 0 }
        guard outside != 0 else { return nil }
        return (0..<count).first { ids[$0] < 0 || Int(ids[$0]) >= limit }
    }

    /// `out = residual + dropout(inp · weightᵀ + bias)`. Without dropout the product is added straight onto a
    /// copy of the residual; with it, the branch is computed into the backward scratch first (free during the
    /// forward pass).
    private func residualBranch(out: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                                inpHalf: Int, weight: Int, bias: UnsafePointer<Float>?, rows: Int, inFeatures: Int,
                                dropout: DropoutMask?) {
        let c = shape.dModel
        if let dropout {
            let branch = act(acts.dLn)
            linear(out: branch, inp: inp, inpHalf: inpHalf, weight: weight, bias: bias, rows: rows, inFeatures: inFeatures,
                   outFeatures: c)
            dropout.addMasked(pool, out: out, residual, branch, count: rows * c)
        } else {
            Elementwise.copy(pool, out: out, residual, count: rows * c)
            linear(out: out, inp: inp, inpHalf: inpHalf, weight: weight, bias: bias, rows: rows, inFeatures: inFeatures,
                   outFeatures: c, accumulate: true)
        }
    }

    private func mask(_ d: DropoutContext, layer: Int, site: Int) -> DropoutMask {
        DropoutMask(key: DropoutMask.key(seed: d.seed, step: d.step, micro: d.micro, layer: layer, site: site),
                    probability: d.probability)
    }

    // MARK: Backward

    /// The gradient reaching a residual branch: the stream's gradient, through the branch's dropout mask when there
    /// is one (into the dLn scratch, which the branch's first product consumes before anything overwrites it).
    /// In bf16 the branch's gradient is rounded into the same scratch (the residual stream's gradient stays fp32).
    private func branchGradient(_ dResidual: UnsafeMutablePointer<Float>, layer: Int, site: Int,
                                count: Int) -> UnsafePointer<Float> {
        if let drop = lastDropout {
            mask(drop, layer: layer, site: site).apply(pool, out: act(acts.dLn), dResidual, count: count)
            gradientInput(act(acts.dLn), count: count)
        } else if bf16Products == .native {
            BFloat16.convert(pool, bits: half(acts.gradientHalf), rounded: act(acts.dLn), dResidual, count: count)
        } else if precision == .bf16 {
            BFloat16.round(pool, out: act(acts.dLn), dResidual, count: count)
        } else {
            return UnsafePointer(dResidual)
        }
        return UnsafePointer(act(acts.dLn))
    }

    /// Back-propagates the loss gradient that the last `forward(..., gradientScale:)` left in the logits. With
    /// `accumulate`, parameter gradients are added to `gradients`; otherwise they overwrite it (so the first
    /// micro-batch of a step needs no zeroing pass).
    public func backward(accumulate: Bool) {
        let batch = lastBatch, time = lastTime
        let bt = batch * time, c = shape.dModel, f = shape.dFF, v = shape.vocabSize
        let attentionShape = Attention.Shape(batch: batch, time: time, channels: c, heads: shape.nHead, kvHeads: shape.nKVHead)
        let drop = lastDropout
        let dResidual = act(acts.dResidual), dLn = act(acts.dLn), dQKV = act(acts.dQKV)
        let dAttY = act(acts.dAttY), dFc = act(acts.dFc)
        let normScratch = self.normScratch.base

        // Head (tied to wte, or Llama's lm_head) and final norm.
        gradientInput(act(acts.logits), count: bt * v)
        linearBackward(dinp: dLn, dweight: grad(headWeight), dbias: nil, dout: act(acts.logits), inp: act(acts.lnf),
                       inpHalf: acts.lnfHalf, weight: headWeight, rows: bt, inFeatures: c, outFeatures: v,
                       accumulateInput: false, accumulateParameters: accumulate)
        let last = shape.nLayer > 0 ? act(acts.layers[shape.nLayer - 1].residual3) : act(acts.encoded)
        if shape.family == .llama {
            RMSNorm.backward(pool, dinp: dResidual, dweight: grad(layout.lnfWeight), dout: dLn, inp: last,
                             weight: param(layout.lnfWeight), rstd: act(acts.lnfRstd), rows: bt, channels: c,
                             scratch: normScratch, accumulateInput: false, accumulateParameters: accumulate)
        } else {
            LayerNorm.backward(pool, dinp: dResidual, dweight: grad(layout.lnfWeight), dbias: optionalGrad(layout.lnfBias),
                               dout: dLn, inp: last, weight: param(layout.lnfWeight), mean: act(acts.lnfMean),
                               rstd: act(acts.lnfRstd), rows: bt, channels: c, scratch: normScratch,
                               accumulateInput: false, accumulateParameters: accumulate)
        }

        for l in stride(from: shape.nLayer - 1, through: 0, by: -1) {
            let a = acts.layers[l], o = layout.layers[l]
            let residual = l == 0 ? act(acts.encoded) : act(acts.layers[l - 1].residual3)
            recomputeBlock(l, residual: residual, attentionShape: attentionShape)
            if shape.family == .llama {
                llamaBlockBackward(l, residual: residual, attentionShape: attentionShape, accumulate: accumulate)
                continue
            }

            // MLP branch: residual3 = residual2 + dropout(mlp_proj(gelu(fc(ln2(residual2))))).
            var dBranch = branchGradient(dResidual, layer: l, site: 3, count: bt * c)
            linearBackward(dinp: dFc, dweight: grad(o.mlpProjWeight), dbias: optionalGrad(o.mlpProjBias),
                           dout: dBranch, inp: act(a.fcGelu), inpHalf: a.fcGeluHalf, weight: o.mlpProjWeight, rows: bt,
                           inFeatures: f, outFeatures: c, accumulateInput: false, accumulateParameters: accumulate)
            GELU.backward(pool, dinp: dFc, inp: act(a.fcPre), dout: dFc, count: bt * f)
            gradientInput(dFc, count: bt * f)
            linearBackward(dinp: dLn, dweight: grad(o.fcWeight), dbias: optionalGrad(o.fcBias), dout: dFc,
                           inp: act(a.ln2), inpHalf: a.ln2Half, weight: o.fcWeight, rows: bt, inFeatures: c, outFeatures: f,
                           accumulateInput: false, accumulateParameters: accumulate)
            LayerNorm.backward(pool, dinp: dResidual, dweight: grad(o.ln2Weight), dbias: optionalGrad(o.ln2Bias),
                               dout: dLn, inp: act(a.residual2), weight: param(o.ln2Weight), mean: act(a.ln2Mean),
                               rstd: act(a.ln2Rstd), rows: bt, channels: c, scratch: normScratch,
                               accumulateInput: true, accumulateParameters: accumulate)

            // Attention branch: residual2 = residual + dropout(attn_proj(attention(qkv(ln1(residual))))).
            dBranch = branchGradient(dResidual, layer: l, site: 2, count: bt * c)
            linearBackward(dinp: dAttY, dweight: grad(o.attnProjWeight), dbias: optionalGrad(o.attnProjBias),
                           dout: dBranch, inp: act(a.attY), inpHalf: a.attYHalf, weight: o.attnProjWeight, rows: bt,
                           inFeatures: c, outFeatures: c, accumulateInput: false, accumulateParameters: accumulate)
            if bf16Products == .native {
                // The output projection's products are done with the gradient copies these share (ActivationLayout).
                BFloat16.convert(pool, bits: half(acts.attentionGradientHalf), rounded: dAttY, dAttY, count: bt * c)
                // This layer's q, k, v (rounded in the forward pass, so the patterns are exact).
                BFloat16.convert(pool, bits: half(acts.attentionQKVHalf), rounded: nil, act(a.qkv), count: bt * 3 * c)
            } else {
                productInput(dAttY, count: bt * c)
            }
            let attentionDropout = drop.map { mask($0, layer: l, site: 1) }
            switch attention {
            case .fused:
                FusedAttention.backward(pool, dqkv: dQKV, dout: dAttY, out: act(a.attY), lse: act(a.att), qkv: act(a.qkv),
                                        shape: attentionShape, tiles: attentionTiles, scratch: attentionScratch.base,
                                        dropout: attentionDropout, bf16Inputs: precision == .bf16,
                                        native: nativeAttention(withGradient: true))
            case .materialized:
                Attention.backward(pool, dqkv: dQKV, dout: dAttY, att: act(a.att), qkv: act(a.qkv), shape: attentionShape,
                                   scratch: attentionScratch.base, dropout: attentionDropout)
            }
            gradientInput(dQKV, count: bt * 3 * c)
            linearBackward(dinp: dLn, dweight: grad(o.qkvWeight), dbias: optionalGrad(o.qkvBias), dout: dQKV,
                           inp: act(a.ln1), inpHalf: a.ln1Half, weight: o.qkvWeight, rows: bt, inFeatures: c,
                           outFeatures: 3 * c, accumulateInput: false, accumulateParameters: accumulate)
            LayerNorm.backward(pool, dinp: dResidual, dweight: grad(o.ln1Weight), dbias: optionalGrad(o.ln1Bias),
                               dout: dLn, inp: residual, weight: param(o.ln1Weight), mean: act(a.ln1Mean),
                               rstd: act(a.ln1Rstd), rows: bt, channels: c, scratch: normScratch,
                               accumulateInput: true, accumulateParameters: accumulate)
        }

        if let drop { mask(drop, layer: -1, site: 0).apply(pool, out: dResidual, dResidual, count: bt * c) }
        if shape.family == .llama {
            // A tied head wrote its gradient into wte's: the embedding's is added to it.
            TokenEmbedding.backward(pool, dwte: grad(layout.wte), dout: dResidual, tokens: tokenBuffer, rows: bt, channels: c,
                                    vocab: v, accumulate: accumulate || layout.lmHead < 0)
            return
        }
        Encoder.backward(pool, dwte: grad(layout.wte), dwpe: grad(layout.wpe), dout: dResidual, tokens: tokenBuffer,
                         batch: batch, time: time, channels: c, accumulate: accumulate)
        if time < shape.seqLen && !accumulate {
            // Positions the micro-batch did not reach get no gradient, and must not keep an old one.
            (grad(layout.wpe) + time * c).update(repeating: 0, count: (shape.seqLen - time) * c)
        }
    }

    /// Back-propagates through Llama block `l` (after `recomputeBlock`): the residual stream's gradient in
    /// `dResidual` becomes the block input's, and the block's parameter gradients are written (or added, with
    /// `accumulate`). The SwiGLU backward writes the up product's gradient over the up activation (read for the
    /// last time there).
    private func llamaBlockBackward(_ l: Int, residual: UnsafeMutablePointer<Float>, attentionShape: Attention.Shape,
                                    accumulate: Bool) {
        let a = acts.layers[l], o = layout.layers[l]
        let bt = attentionShape.batch * attentionShape.time, c = shape.dModel, f = shape.dFF, s = attentionShape.qkvStride
        let dResidual = act(acts.dResidual), dLn = act(acts.dLn), dQKV = act(acts.dQKV)
        let dAttY = act(acts.dAttY), dFc = act(acts.dFc), dUp = act(a.up)
        let normScratch = self.normScratch.base

        // MLP branch: residual3 = residual2 + down(silu(gate(n2)) ⊙ up(n2)), n2 = rmsnorm(residual2).
        var dBranch = branchGradient(dResidual, layer: l, site: 3, count: bt * c)
        linearBackward(dinp: dFc, dweight: grad(o.mlpProjWeight), dbias: nil, dout: dBranch, inp: act(a.fcGelu),
                       inpHalf: a.fcGeluHalf, weight: o.mlpProjWeight, rows: bt, inFeatures: f, outFeatures: c,
                       accumulateInput: false, accumulateParameters: accumulate)
        SwiGLU.backward(pool, dgate: dFc, dup: dUp, gate: act(a.fcPre), up: act(a.up), dout: dFc, count: bt * f)
        gradientInput(dFc, count: bt * f)
        linearBackward(dinp: dLn, dweight: grad(o.fcWeight), dbias: nil, dout: dFc, inp: act(a.ln2), inpHalf: a.ln2Half,
                       weight: o.fcWeight, rows: bt, inFeatures: c, outFeatures: f,
                       accumulateInput: false, accumulateParameters: accumulate)
        gradientInput(dUp, count: bt * f)
        linearBackward(dinp: dLn, dweight: grad(o.upWeight), dbias: nil, dout: dUp, inp: act(a.ln2), inpHalf: a.ln2Half,
                       weight: o.upWeight, rows: bt, inFeatures: c, outFeatures: f,
                       accumulateInput: true, accumulateParameters: accumulate)
        RMSNorm.backward(pool, dinp: dResidual, dweight: grad(o.ln2Weight), dout: dLn, inp: act(a.residual2),
                         weight: param(o.ln2Weight), rstd: act(a.ln2Rstd), rows: bt, channels: c, scratch: normScratch,
                         accumulateInput: true, accumulateParameters: accumulate)

        // Attention branch: residual2 = residual + o_proj(attention(rope(q), rope(k), v)), [q|k|v] = qkv(rmsnorm(residual)).
        dBranch = branchGradient(dResidual, layer: l, site: 2, count: bt * c)
        linearBackward(dinp: dAttY, dweight: grad(o.attnProjWeight), dbias: nil, dout: dBranch, inp: act(a.attY),
                       inpHalf: a.attYHalf, weight: o.attnProjWeight, rows: bt, inFeatures: c, outFeatures: c,
                       accumulateInput: false, accumulateParameters: accumulate)
        if bf16Products == .native {
            // As in GPT-2's backward: the output projection's products are done with the copies these share.
            BFloat16.convert(pool, bits: half(acts.attentionGradientHalf), rounded: dAttY, dAttY, count: bt * c)
            BFloat16.convert(pool, bits: half(acts.attentionQKVHalf), rounded: nil, act(a.qkv), count: bt * s)
        } else {
            productInput(dAttY, count: bt * c)
        }
        FusedAttention.backward(pool, dqkv: dQKV, dout: dAttY, out: act(a.attY), lse: act(a.att), qkv: act(a.qkv),
                                shape: attentionShape, tiles: attentionTiles, scratch: attentionScratch.base,
                                dropout: lastDropout.map { mask($0, layer: l, site: 1) }, bf16Inputs: precision == .bf16,
                                native: nativeAttention(withGradient: true))
        // The gradients of the rotated queries and keys, rotated back: those of the qkv product's output.
        Rotary.backward(pool, dinp: dQKV, dout: dQKV, layout: .queriesAndKeys(attentionShape), table: rotaryTable!.base,
                        positions: shape.seqLen)
        gradientInput(dQKV, count: bt * s)
        linearBackward(dinp: dLn, dweight: grad(o.qkvWeight), dbias: nil, dout: dQKV, inp: act(a.ln1), inpHalf: a.ln1Half,
                       weight: o.qkvWeight, rows: bt, inFeatures: c, outFeatures: s,
                       accumulateInput: false, accumulateParameters: accumulate)
        RMSNorm.backward(pool, dinp: dResidual, dweight: grad(o.ln1Weight), dout: dLn, inp: residual,
                         weight: param(o.ln1Weight), rstd: act(a.ln1Rstd), rows: bt, channels: c, scratch: normScratch,
                         accumulateInput: true, accumulateParameters: accumulate)
    }
}
