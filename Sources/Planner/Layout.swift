import GPTShape
/// How a run is spread over devices: d·t·p devices, each optimizer step `microBatch × gradAccum × d` sequences.
public struct Layout: Sendable, Equatable, Hashable {
    public var dataParallel: Int
    public var tensorParallel: Int
    public var pipelineParallel: Int
    /// ZeRO stage 0-3 over the data-parallel ranks (3 = FSDP's full sharding).
    public var zeroStage: Int
    public var recompute: Recompute
    public var microBatch: Int
    public var gradAccum: Int
    /// Virtual pipeline stages per device (Narayanan et al. 2021 §2.2.2, the interleaved 1F1B schedule): each device
    /// holds `interleave` chunks of L/(p·v) layers; 1 is plain 1F1B.
    public var interleave: Int
    /// Llama 3's memory-balanced pipeline (Dubey et al. 2024, §3.3.2): the first and the last stage each hold one
    /// transformer layer fewer, the embedding and the output layer with the loss taking their places (L + 2 slots,
    /// ⌈(L + 2)/p⌉ a stage). False: ⌈L/p⌉ layers on every stage, the embedding and the head besides.
    public var balancedEnds: Bool
    /// Tensor-parallel collectives overlapped with the matrix products (Megatron-core with Transformer Engine's
    /// `--tp-comm-overlap`: the sequence-parallel all-gathers and reduce-scatters split into chunks and pipelined
    /// with the column- and row-parallel GEMMs): exposed only beyond the products' time. False: on the critical path.
    public var overlapsTensorParallel: Bool
    /// c: context-parallel ranks that split each sequence (Megatron-core's context parallelism, the ring attention
    /// Llama 3 used for its 128K stage, Dubey et al. 2024 §3.3.2): each holds s/c tokens of every sequence and its
    /// activations, the K and V chunks pass around the ring in attention, the weights are whole on each, and the
    /// gradients are reduced (and ZeRO shards) over the d·c ranks. 1: none.
    public var contextParallel: Int

    public init(dataParallel: Int, tensorParallel: Int = 1, pipelineParallel: Int = 1, zeroStage: Int = 0,
                recompute: Recompute = .none, microBatch: Int, gradAccum: Int, interleave: Int = 1,
                balancedEnds: Bool = false, overlapsTensorParallel: Bool = false, contextParallel: Int = 1) {
        self.contextParallel = contextParallel
        self.interleave = interleave
        self.balancedEnds = balancedEnds
        self.overlapsTensorParallel = overlapsTensorParallel
        self.dataParallel = dataParallel
        self.tensorParallel = tensorParallel
        self.pipelineParallel = pipelineParallel
        self.zeroStage = zeroStage
        self.recompute = recompute
        self.microBatch = microBatch
        self.gradAccum = gradAccum
    }

    public var devices: Int { dataParallel * tensorParallel * pipelineParallel * contextParallel }
    /// Ranks the gradients are reduced over and ZeRO shards across: d·c.
    public var gradientRanks: Int { dataParallel * contextParallel }
    public var batchSequences: Int { microBatch * gradAccum * dataParallel }
}

/// Bytes one device holds (the heaviest one: the first pipeline stage, or the last when it is heavier).
public struct MemoryBreakdown: Sendable, Equatable {
    public var weights: Double
    public var gradients: Double
    public var optimizer: Double
    public var activations: Double
    /// Runtime context, communication buffers, workspaces: the hardware's reserved allowance.
    public var other: Double
    public var total: Double { weights + gradients + optimizer + activations + other }
}

/// Seconds of one optimizer step, by cause.
public struct StepTime: Sendable, Equatable {
    /// The model's FLOPs (and any recomputation) at the assumed MFU.
    public var compute: Double
    /// Pipeline fill and drain: (p − 1)/m of the compute, m micro-batches a step.
    public var bubble: Double
    /// Data-parallel gradient all-reduce, or ZeRO's reduce-scatters and all-gathers, not hidden behind compute.
    public var dataParallel: Double
    /// Tensor-parallel all-reduces (all-gathers and reduce-scatters with sequence parallelism), every layer.
    public var tensorParallel: Double
    /// Activations and their gradients sent between pipeline stages.
    public var pipeline: Double
    /// Context parallelism's K/V ring in attention, beyond the attention compute that hides it.
    public var contextParallel: Double = 0
    public var total: Double { compute + bubble + dataParallel + tensorParallel + pipeline + contextParallel }
}

/// A layout with its memory and time.
public struct LayoutEstimate: Sendable, Equatable {
    public var layout: Layout
    public var memory: MemoryBreakdown
    /// What a layout may use: the hardware's usable share of its memory.
    public var usableBytes: Double
    public var step: StepTime
    public var fits: Bool { memory.total <= usableBytes }
}

/// Why a forced or searched layout cannot exist.
public enum LayoutProblem: Error, Sendable, Equatable {
    /// d·t·p must equal the devices.
    case devicesNotFactored(devices: Int, tensorParallel: Int, pipelineParallel: Int)
    /// micro × accumulation × d must equal the batch.
    case batchNotDivisible(batchSequences: Int, dataParallel: Int)
    case tensorParallelInvalid(Int, heads: Int, devicesPerNode: Int)
    case pipelineParallelInvalid(Int, layers: Int)
    case zeroStageInvalid(Int)
    /// Megatron-LM's interleaved schedule splits a stage's layers into `v` equal chunks: `v` must divide them.
    case interleaveInvalid(Int, stageLayers: Int)
    /// Context parallelism splits each sequence into 2c chunks (two a rank, so that causal attention's work is
    /// balanced, as Megatron-core requires): c must divide half the sequence length; GPUs only.
    case contextParallelInvalid(Int, seqLen: Int)
    /// The hardware trains in float32 one process a device, as gpt-train does: data parallelism only (ZeRO stage
    /// 0 or 1), no tensor or pipeline parallelism (any recompute mode).
    case unsupportedOnCPU
    case doesNotFit(needed: Double, usable: Double)
}

/// What the search may not change.
public struct LayoutConstraints: Sendable, Equatable {
    public var zeroStage: Int?
    public var tensorParallel: Int?
    public var pipelineParallel: Int?
    public var recompute: Recompute?
    /// Sequences per forward/backward pass on each data-parallel rank.
    public var microBatch: Int?
    /// Virtual pipeline stages per device; nil is plain 1F1B (v = 1) unless `searchesInterleaving`.
    public var interleave: Int?
    /// With `interleave` nil: also try, with p > 1, every v dividing the layers of a stage when the micro-batches
    /// are a multiple of p (Megatron-LM's condition for the interleaved schedule). `gpt-plan estimate` does; the
    /// plan's search keeps 1F1B.
    public var searchesInterleaving = false
    /// Every layout searched with Llama 3's memory-balanced pipeline (`Layout.balancedEnds`).
    public var balancedEnds = false
    /// Every layout searched with tensor-parallel communication overlapped (`Layout.overlapsTensorParallel`).
    public var overlapsTensorParallel = false
    /// Context-parallel ranks of every layout searched (`Layout.contextParallel`; not searched).
    public var contextParallel = 1
    public init(zeroStage: Int? = nil, tensorParallel: Int? = nil, pipelineParallel: Int? = nil,
                recompute: Recompute? = nil, microBatch: Int? = nil, interleave: Int? = nil) {
        self.interleave = interleave
        self.zeroStage = zeroStage
        self.tensorParallel = tensorParallel
        self.pipelineParallel = pipelineParallel
        self.recompute = recompute
        self.microBatch = microBatch
    }
}

public enum LayoutModel {
    /// Tensor-parallel widths searched: powers of two up to a node.
    public static let tensorWidths = [1, 2, 4, 8]

    /// Parameters on the heaviest device after tensor and pipeline parallelism: the first stage's share of the
    /// layers with the embeddings (the last holds the tied head's copy, never more), split t ways.
    static func stageParams(_ shape: ModelShape, t: Int, p: Int, balancedEnds: Bool = false)
        -> (first: Double, last: Double) {
        let s = stageParameters(shape, t: t, p: p, balancedEnds: balancedEnds)
        return (s.first, s.last)
    }

    /// Transformer layers on the first, a middle and the last pipeline stage: ⌈L/p⌉ each, or with
    /// `balancedEnds` ⌈(L + 2)/p⌉ − 1 on the two ends and ⌈(L + 2)/p⌉ in between (Llama 3 405B: 126 layers on 16
    /// stages, 7 on the ends and 8 on the others).
    public static func stageLayers(_ shape: ModelShape, p: Int, balancedEnds: Bool = false)
        -> (first: Int, middle: Int, last: Int) {
        guard p > 1 else { return (shape.nLayer, shape.nLayer, shape.nLayer) }
        guard balancedEnds else {
            let n = (shape.nLayer + p - 1) / p
            return (n, n, n)
        }
        let slots = (shape.nLayer + 2 + p - 1) / p
        return (slots - 1, slots, slots - 1)
    }

    /// Parameters on the first, a middle and the last stage, split t ways.
    static func stageParameters(_ shape: ModelShape, t: Int, p: Int, balancedEnds: Bool)
        -> (first: Double, middle: Double, last: Double) {
        let count = shape.parameterCount
        if p == 1 {
            let all = Double(count.total) / Double(t)
            return (all, all, all)
        }
        let layers = stageLayers(shape, p: p, balancedEnds: balancedEnds)
        let perLayer = Double(shape.parametersPerLayer)
        let finalNorm = Double(count.nonEmbedding - shape.nLayer * shape.parametersPerLayer)
        // The last stage holds the output head: the tied head's copy of the token embedding, or the untied head.
        let head = Double(count.outputHead > 0 ? count.outputHead : count.tokenEmbedding)
        return ((Double(layers.first) * perLayer + Double(count.tokenEmbedding + count.positionEmbedding)) / Double(t),
                Double(layers.middle) * perLayer / Double(t),
                (Double(layers.last) * perLayer + head + finalNorm) / Double(t))
    }

    /// Per-device memory of `layout` for `shape` on `hardware`, term by term.
    public static func memory(shape: ModelShape, layout l: Layout, hardware: Hardware,
                              conventions: MemoryConventions = .zeroPaper) -> MemoryBreakdown {
        if hardware.precision == .float32 {
            // gpt-train: the CPU trainer's own count (`CPUTrainer.memory`), its moments split over the
            // data-parallel ranks by ZeRO-1; the CPU's precision decision is bf16 only where its products run
            // natively.
            let m = CPUTrainer.memory(shape, microBatch: l.microBatch,
                                      products: hardware.products.precision == .bf16 ? .native : nil,
                                      optimizerShards: l.zeroStage >= 1 ? l.dataParallel : 1, recompute: l.recompute)
            return MemoryBreakdown(weights: m.weights, gradients: m.gradients, optimizer: m.optimizer,
                                   activations: m.activations, other: hardware.reservedBytes)
        }
        let t = l.tensorParallel, p = l.pipelineParallel, c = l.contextParallel
        // Context parallelism: a device holds s/c tokens of each sequence (and a/c of its attention scores' rows).
        let (s, b, h) = (shape.seqLen / c, l.microBatch, shape.dModel)
        let layerCounts = stageLayers(shape, p: p, balancedEnds: l.balancedEnds)
        let layers = Double(layerCounts.first)
        let perLayer = MemoryModel.activationBytesPerLayer(shape, b: b, t: t, recompute: l.recompute) / Double(c)
        // Full recomputation rebuilds one layer's activations at a time in the backward pass.
        let working = l.recompute == .full
            ? MemoryModel.activationBytesPerLayer(shape, b: b, t: t, recompute: .none) / Double(c) : 0
        // 1F1B: the first stage holds p micro-batches. Interleaved: Megatron-LM's schedule warms up with
        // 2(p − 1) + (v − 1)p chunks of L/(pv) layers on the first device, i.e. (1 + (p − 1)/(pv)) × p micro-batches'
        // worth of its layers.
        let inFlightShare = p == 1 ? 1 : Double(min(p, l.gradAccum))
            * (l.interleave > 1 ? 1 + Double(p - 1) / Double(p * l.interleave) : 1)
        let inFlight = p == 1 ? 1 : min(p, l.gradAccum)
        let output = MemoryModel.outputActivationBytes(s: s, b: b, h: h, t: t, vocab: shape.vocabSize)
        // GPT-2's embedding dropout mask; Llama has no dropout (the embedding output is the first norm's input).
        let embedding = shape.family == .gpt2
            ? MemoryModel.embeddingActivationBytes(s: s, b: b, h: h, t: t, inFlight: inFlight) : 0
        let params = stageParameters(shape, t: t, p: p, balancedEnds: l.balancedEnds)
        func stage(_ psi: Double, _ activations: Double) -> MemoryBreakdown {
            let state = MemoryModel.modelState(params: psi, zeroStage: l.zeroStage, dataParallel: l.gradientRanks,
                                               weightBytes: conventions.weightBytes,
                                               gradientBytes: conventions.gradientBytes,
                                               optimizerBytes: conventions.optimizerBytes)
            return MemoryBreakdown(weights: state.weights, gradients: state.gradients, optimizer: state.optimizer,
                                   activations: activations, other: hardware.reservedBytes)
        }
        let first = stage(params.first, perLayer * layers * inFlightShare + embedding + working
                          + (p == 1 ? output : 0))
        guard p > 1 else { return first }
        let last = stage(params.last, perLayer * Double(layerCounts.last) + output + working)
        var heaviest = last.total > first.total ? last : first
        if l.balancedEnds, p > 2 {
            // The second stage holds a whole stage of layers and, after the first, the most micro-batches: p − 1
            // with 1F1B; with Megatron-LM's interleaved schedule its warm-up runs 2(p − 2) + (v − 1)p chunks
            // (Narayanan et al. 2021, §2.2.2; the first stage's 2(p − 1) + (v − 1)p above), plus the one in flight.
            let v = l.interleave
            let chunks = v > 1 ? min(2 * (p - 2) + (v - 1) * p + 1, l.gradAccum * v) : min(p - 1, l.gradAccum)
            let second = stage(params.middle, perLayer * Double(layerCounts.middle) * Double(chunks) / Double(v) + working)
            if second.total > heaviest.total { heaviest = second }
        }
        return heaviest
    }

    /// FLOPs the hardware executes per token: the model's 6N' + attention, plus what recomputation repeats
    /// (selective: attention's score and value products forward again, a third of the attention term; full: the
    /// whole forward again, a third of the total).
    public static func hardwareFlopsPerToken(_ shape: ModelShape, recompute: Recompute) -> Double {
        let model = shape.flopsPerTokenWithAttention()
        switch recompute {
        case .none: return model
        case .selective: return model + shape.attentionFlopsPerToken() / 3
        case .full: return model + model / 3
        }
    }

    /// One optimizer step of `layout` on `hardware` at `mfu`, by cause (the time model in docs/planner.md).
    /// With `timeModel`, the compute term is the calibrated model's (`StepTimeModel`) and `mfu` is not used.
    public static func stepTime(shape: ModelShape, layout l: Layout, hardware: Hardware, mfu: Double,
                                timeModel: StepTimeModel? = nil) -> StepTime {
        let d = l.gradientRanks, t = l.tensorParallel, p = l.pipelineParallel, m = l.gradAccum, c = l.contextParallel
        let devices = Double(l.devices)
        // The tokens of one micro-batch on one device: context parallelism splits each sequence c ways.
        let sequenceShare = Double(shape.seqLen) / Double(c)
        let tokens = Double(l.batchSequences * shape.seqLen)
        let flopsPerToken = hardwareFlopsPerToken(shape, recompute: l.recompute)
        let compute = timeModel?.computeSeconds(shape: shape, layout: l, hardware: hardware)
            ?? flopsPerToken * tokens / (devices * hardware.peakFlops * mfu)
        let bubble = compute * Double(p - 1) / Double(m * l.interleave)
        let perMicro = compute / Double(m)

        // Data parallelism: ring collectives move (d−1)/d of the buffer per device per pass.
        let stages = stageParameters(shape, t: t, p: p, balancedEnds: l.balancedEnds)
        let psi = l.balancedEnds ? max(stages.first, stages.middle) : stages.first
        let gradientBytes = hardware.precision == .float32 ? MemoryModel.float32GradientBytes : MemoryModel.mixedGradientBytes
        // (d here is the gradient ranks, d·c: context-parallel ranks reduce their gradients too.)
        let dpBandwidth = t * d > hardware.devicesPerNode ? hardware.interNodeBandwidth : hardware.intraNodeBandwidth
        var dataParallel = 0.0
        if d > 1 {
            let ring = Double(d - 1) / Double(d) * gradientBytes * psi / dpBandwidth
            switch l.zeroStage {
            case 0, 1:
                // One all-reduce (reduce-scatter + all-gather: 2 passes) a step, overlapped with the last
                // micro-batch's backward pass (2/3 of its compute).
                dataParallel = max(0, 2 * ring - perMicro * 2 / 3)
            case 2:
                // A reduce-scatter of the gradients every micro-batch behind its backward pass, then one all-gather
                // of the updated weights.
                dataParallel = Double(m) * max(0, ring - perMicro * 2 / 3) + ring
            default:
                // ZeRO-3: weights gathered for the forward and again for the backward, gradients reduce-scattered,
                // every micro-batch (1.5× the all-reduce volume, ZeRO §7.2.2), prefetched behind its compute.
                dataParallel = Double(m) * max(0, 3 * ring - perMicro)
            }
        }
        // Tensor parallelism: 4 all-reduces (or all-gather + reduce-scatter pairs) of b·s·h 16-bit values per layer
        // and micro-batch, 2 more with full recomputation; on the critical path.
        var tensorParallel = 0.0
        if t > 1 {
            let bytes = 2 * Double(l.microBatch) * sequenceShare * Double(shape.dModel)
            let layers = stageLayers(shape, p: p, balancedEnds: l.balancedEnds).middle
            let collectives = Double(l.recompute == .full ? 6 : 4) * Double(layers)
            tensorParallel = Double(m) * collectives * 2 * Double(t - 1) / Double(t) * bytes / hardware.intraNodeBandwidth
            if l.overlapsTensorParallel {
                // Hidden behind the products (all but attention's score and value products), exposed beyond them.
                let model = shape.flopsPerTokenWithAttention()
                tensorParallel = max(0, tensorParallel - compute * (model - shape.attentionFlopsPerToken()) / model)
            }
        }
        // Pipeline: each micro-batch's activations forward and their gradients back across each boundary, split t
        // ways (Megatron's scatter/gather); the fill and drain add p − 1 transfers.
        var pipeline = 0.0
        if p > 1 {
            let bytes = 2 * Double(l.microBatch) * sequenceShare * Double(shape.dModel) / Double(t)
            let bandwidth = t * d >= hardware.devicesPerNode ? hardware.interNodeBandwidth : hardware.intraNodeBandwidth
            // Interleaving sends each micro-batch across v times as many chunk boundaries.
            pipeline = 2 * Double(m * l.interleave + p - 1) * bytes / bandwidth
        }
        // Context parallelism (ring attention, as Megatron-core and Llama 3 run it): in every layer each device passes
        // its K and V chunk (b·s/c tokens × 2g/t 16-bit values) c − 1 times round the ring in the forward pass, and
        // K, V and their gradients in the backward (twice that; recomputation repeats the forward's), each
        // send overlapped with the attention on the chunk it has; exposed only beyond the attention's compute. The
        // ring runs within a node when t·c fits in one, else across nodes.
        var contextParallel = 0.0
        if c > 1 {
            let chunk = 2 * Double(l.microBatch) * sequenceShare * 2 * Double(shape.kvWidth) / Double(t)
            let layers = stageLayers(shape, p: p, balancedEnds: l.balancedEnds).middle
            // Recomputation (selective or full) runs attention's forward, and so its ring, once more.
            let passes = Double(l.recompute == .none ? 3 : 4) * Double(c - 1)
            let bandwidth = t * c > hardware.devicesPerNode ? hardware.interNodeBandwidth : hardware.intraNodeBandwidth
            let ring = Double(m * layers) * passes * chunk / bandwidth
            let attentionShare = hardwareAttentionShare(shape, recompute: l.recompute)
            contextParallel = max(0, ring - compute * attentionShare)
        }
        return StepTime(compute: compute, bubble: bubble, dataParallel: dataParallel, tensorParallel: tensorParallel,
                        pipeline: pipeline, contextParallel: contextParallel)
    }

    /// Attention's share of the hardware FLOPs of a step (the score and value products, recomputation included).
    static func hardwareAttentionShare(_ shape: ModelShape, recompute: Recompute) -> Double {
        let attention = shape.attentionFlopsPerToken() * (recompute == .none ? 1 : 4.0 / 3)
        return attention / hardwareFlopsPerToken(shape, recompute: recompute)
    }

    public static func estimate(shape: ModelShape, layout: Layout, hardware: Hardware, mfu: Double,
                                conventions: MemoryConventions = .zeroPaper,
                                timeModel: StepTimeModel? = nil) -> LayoutEstimate {
        LayoutEstimate(layout: layout, memory: memory(shape: shape, layout: layout, hardware: hardware,
                                                      conventions: conventions),
                       usableBytes: hardware.memoryBytes * hardware.usableFraction,
                       step: stepTime(shape: shape, layout: layout, hardware: hardware, mfu: mfu, timeModel: timeModel))
    }

    /// The (t, p, ZeRO, recompute) choices the hardware and the constraints allow, before micro-batches.
    static func structures(shape: ModelShape, devices k: Int, batchSequences: Int, hardware: Hardware,
                           constraints: LayoutConstraints) -> [(t: Int, p: Int, zero: Int, recompute: Recompute)] {
        let c = constraints
        let cpu = hardware.precision == .float32
        // On a CPU, the layouts gpt-train implements (`CPUTrainer`).
        let widths = cpu ? CPUTrainer.tensorParallelWidths
            : tensorWidths.filter { $0 <= hardware.devicesPerNode && shape.nHead % $0 == 0 }
        let stages = cpu ? CPUTrainer.pipelineDepths : Array(1...max(1, min(shape.nLayer, k)))
        let zeros = cpu ? CPUTrainer.zeroStages : [0, 1, 2, 3]
        let modes: [Recompute] = cpu ? CPUTrainer.recomputeModes : Recompute.allCases
        var out: [(Int, Int, Int, Recompute)] = []
        for t in widths where c.tensorParallel.map({ $0 == t }) ?? true {
            for p in stages where c.pipelineParallel.map({ $0 == p }) ?? true {
                let cp = constraints.contextParallel
                guard k % (t * p * cp) == 0 else { continue }
                let d = k / (t * p * cp)
                guard batchSequences % d == 0 else { continue }
                for z in zeros where c.zeroStage.map({ $0 == z }) ?? true {
                    if d * cp == 1 && z > 0 { continue }   // nothing to partition over
                    for r in modes where c.recompute.map({ $0 == r }) ?? true { out.append((t, p, z, r)) }
                }
            }
        }
        return out
    }

    /// The result of a search on a fixed number of devices.
    public struct Search: Sendable {
        /// Feasible layouts, fastest first (ties: fewer model-parallel devices, lower ZeRO stage, less
        /// recomputation, larger micro-batch).
        public var ranked: [LayoutEstimate]
        /// Layouts evaluated (memory and time), feasible or not.
        public var tried: Int
        /// The layout that needs the least memory, when none fits: what the error reports.
        public var leastMemory: LayoutEstimate?
    }

    /// Every layout of `devices` devices that trains `batchSequences` sequences a step exactly, evaluated.
    public static func search(shape: ModelShape, batchSequences: Int, devices k: Int, hardware: Hardware, mfu: Double,
                              constraints: LayoutConstraints = LayoutConstraints(), keep: Int = 8,
                              conventions: MemoryConventions = .zeroPaper,
                              timeModel: StepTimeModel? = nil) -> Search {
        var ranked: [LayoutEstimate] = []
        var tried = 0
        var least: LayoutEstimate?
        func rank(_ e: LayoutEstimate) -> (Double, Int, Int, Int, Int) {
            let l = e.layout
            let modes: [Recompute] = [.none, .selective, .full]
            return (e.step.total, l.tensorParallel * l.pipelineParallel, l.zeroStage,
                    modes.firstIndex(of: l.recompute)!, -l.microBatch)
        }
        for s in structures(shape: shape, devices: k, batchSequences: batchSequences, hardware: hardware,
                            constraints: constraints) {
            let d = k / (s.t * s.p * constraints.contextParallel)
            let perRank = batchSequences / d
            // Micro-batches that divide the rank's share, smallest first: memory grows with the micro-batch.
            // (Balanced: the virtual stages split a stage's slots, layers and the embedding or head alike.)
            let slots = stageLayers(shape, p: s.p, balancedEnds: constraints.balancedEnds).middle
            for micro in 1...perRank where perRank % micro == 0 && (constraints.microBatch.map { $0 == micro } ?? true) {
                let m = perRank / micro
                var fitted = false
                for v in interleaves(constraints, p: s.p, stageLayers: slots, microBatches: m) {
                    let layout = Layout(dataParallel: d, tensorParallel: s.t, pipelineParallel: s.p, zeroStage: s.zero,
                                        recompute: s.recompute, microBatch: micro, gradAccum: m, interleave: v,
                                        balancedEnds: constraints.balancedEnds,
                                        overlapsTensorParallel: constraints.overlapsTensorParallel,
                                        contextParallel: constraints.contextParallel)
                    let e = estimate(shape: shape, layout: layout, hardware: hardware, mfu: mfu,
                                     conventions: conventions, timeModel: timeModel)
                    tried += 1
                    if least == nil || e.memory.total < least!.memory.total { least = e }
                    guard e.fits else { continue }
                    fitted = true
                    if ranked.count < keep || rank(e) < rank(ranked[ranked.count - 1]) {
                        ranked.append(e)
                        ranked.sort { rank($0) < rank($1) }
                        if ranked.count > keep { ranked.removeLast() }
                    }
                }
                guard fitted else { break }
            }
        }
        return Search(ranked: ranked, tried: tried, leastMemory: least)
    }

    /// Virtual stages to try: the constraint's, else 1 and (p > 1, micro-batches a multiple of p) every v > 1
    /// dividing the layers of a stage.
    static func interleaves(_ c: LayoutConstraints, p: Int, stageLayers: Int, microBatches m: Int) -> [Int] {
        if let v = c.interleave { return stageLayers % v == 0 && (v == 1 || (p > 1 && m % p == 0)) ? [v] : [] }
        guard c.searchesInterleaving, p > 1, m % p == 0 else { return [1] }
        return [1] + (2...max(2, stageLayers)).filter { stageLayers % $0 == 0 && $0 <= stageLayers }
    }

    /// Whether some layout of `devices` devices fits, checked at the least memory each structure allows (micro-batch
    /// 1, full recomputation and ZeRO-3 unless constrained): cheap, for finding the fewest devices.
    static func anyFits(shape: ModelShape, batchSequences: Int, devices k: Int, hardware: Hardware,
                        constraints: LayoutConstraints, tried: inout Int,
                        conventions: MemoryConventions = .zeroPaper) -> Bool {
        let cpu = hardware.precision == .float32
        var c = constraints
        c.recompute = c.recompute ?? .full
        for s in structures(shape: shape, devices: k, batchSequences: batchSequences, hardware: hardware,
                            constraints: c) {
            let d = k / (s.t * s.p * constraints.contextParallel)
            // The least memory: the highest ZeRO stage allowed (nothing to shard with one rank).
            if constraints.zeroStage == nil,
               s.zero != (d * constraints.contextParallel > 1 ? (cpu ? CPUTrainer.zeroStages.max()! : 3) : 0) { continue }
            let micro = constraints.microBatch ?? 1
            guard (batchSequences / d) % micro == 0 else { continue }
            let layout = Layout(dataParallel: d, tensorParallel: s.t, pipelineParallel: s.p, zeroStage: s.zero,
                                recompute: s.recompute, microBatch: micro, gradAccum: batchSequences / d / micro,
                                balancedEnds: constraints.balancedEnds, contextParallel: constraints.contextParallel)
            tried += 1
            if memory(shape: shape, layout: layout, hardware: hardware, conventions: conventions).total
                <= hardware.memoryBytes * hardware.usableFraction { return true }
        }
        return false
    }

    /// Device counts `--devices auto` considers, fewest first: powers of two up to a node, then whole nodes.
    public static func deviceCounts(hardware: Hardware, upTo limit: Int = 1 << 20) -> [Int] {
        var counts: [Int] = []
        var k = 1
        while k < hardware.devicesPerNode { counts.append(k); k *= 2 }
        let node = max(1, hardware.devicesPerNode)
        var n = node
        while n <= limit {
            counts.append(n)
            // Whole nodes one by one up to 64 nodes, then powers of two (a multiple of a node, and a sparse enough
            // list for the largest runs).
            n = n < 64 * node ? n + node : n * 2
        }
        return counts
    }
}

/// Whether a recipe's layout fits its hardware: the `gpt-plan check` rule. Takes plain values so that a caller
/// holding a recipe needs one call; `products` is the recipe's `training.precision` (on a CPU, bf16 products
/// keep bf16 copies of the weights and activations). Returns the per-device breakdown, or the problem.
public func checkLayoutFits(nLayer: Int, nHead: Int, dModel: Int, dFF: Int, seqLen: Int, vocabSize: Int, bias: Bool,
                            devices: Int, microBatch: Int, gradAccum: Int, zeroStage: Int, tensorParallel: Int,
                            pipelineParallel: Int, recompute: Recompute, deviceMemoryBytes: Double,
                            precision: TrainingPrecision = .mixed,
                            products: Precision = .fp32) -> Result<MemoryBreakdown, LayoutProblem> {
    checkLayoutFits(shape: ModelShape(nLayer: nLayer, nHead: nHead, dModel: dModel, dFF: dFF, seqLen: seqLen,
                                      vocabSize: vocabSize, bias: bias),
                    devices: devices, microBatch: microBatch, gradAccum: gradAccum, zeroStage: zeroStage,
                    tensorParallel: tensorParallel, pipelineParallel: pipelineParallel, recompute: recompute,
                    deviceMemoryBytes: deviceMemoryBytes, precision: precision, products: products)
}

/// `checkLayoutFits` for a shape of either family.
public func checkLayoutFits(shape: ModelShape, devices: Int, microBatch: Int, gradAccum: Int, zeroStage: Int,
                            tensorParallel: Int, pipelineParallel: Int, recompute: Recompute, deviceMemoryBytes: Double,
                            precision: TrainingPrecision = .mixed,
                            products: Precision = .fp32) -> Result<MemoryBreakdown, LayoutProblem> {
    let (nHead, nLayer) = (shape.nHead, shape.nLayer)
    guard (0...3).contains(zeroStage) else { return .failure(.zeroStageInvalid(zeroStage)) }
    guard tensorParallel >= 1, nHead % tensorParallel == 0 else {
        return .failure(.tensorParallelInvalid(tensorParallel, heads: nHead, devicesPerNode: 8))
    }
    guard pipelineParallel >= 1, pipelineParallel <= nLayer else {
        return .failure(.pipelineParallelInvalid(pipelineParallel, layers: nLayer))
    }
    guard devices % (tensorParallel * pipelineParallel) == 0 else {
        return .failure(.devicesNotFactored(devices: devices, tensorParallel: tensorParallel,
                                            pipelineParallel: pipelineParallel))
    }
    if precision == .float32, !CPUTrainer.layoutProblems(tensorParallel: tensorParallel, pipelineParallel: pipelineParallel,
                                                         zeroStage: zeroStage).isEmpty {
        return .failure(.unsupportedOnCPU)
    }
    let layout = Layout(dataParallel: devices / (tensorParallel * pipelineParallel), tensorParallel: tensorParallel,
                        pipelineParallel: pipelineParallel, zeroStage: zeroStage, recompute: recompute,
                        microBatch: microBatch, gradAccum: gradAccum)
    // On a CPU the products' precision decides the bf16 copies (the rates only the time, which is not checked).
    var hardware = precision == .float32
        ? Hardware.cpu(memoryBytes: deviceMemoryBytes,
                       fp32Flops: 1, bf16Flops: products == .bf16 ? 2 : nil, source: "")
        : Hardware.defaultGPU
    hardware.memoryBytes = deviceMemoryBytes
    let memory = LayoutModel.memory(shape: shape, layout: layout, hardware: hardware)
    let usable = deviceMemoryBytes * hardware.usableFraction
    return memory.total <= usable ? .success(memory) : .failure(.doesNotFit(needed: memory.total, usable: usable))
}

extension LayoutModel {
    /// Parameters the heaviest device holds under `layout` (after tensor and pipeline parallelism, before ZeRO).
    public static func stageParamsOnDevice(_ shape: ModelShape, _ layout: Layout) -> Double {
        let s = stageParameters(shape, t: layout.tensorParallel, p: layout.pipelineParallel,
                                balancedEnds: layout.balancedEnds)
        return max(s.first, s.middle, s.last)
    }
}
