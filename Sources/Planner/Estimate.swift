import Foundation
import GPTShape

/// A model the user gives (not one the planner chose) on given hardware: `gpt-plan estimate` and `gpt-plan check`.
public struct EstimateRequest: Sendable {
    public var shape: ModelShape
    public var hardware: Hardware
    /// nil: the fewest devices (powers of two below a node, then whole nodes) on which a layout fits.
    public var devices: Int?
    /// Fixed layout dimensions (t, p, ZeRO stage, recomputation, micro-batch); the rest is searched.
    public var constraints = LayoutConstraints()
    /// Sequences per optimizer step.
    public var batchSequences: Int
    /// Training tokens, for the run's time and cost; nil gives the step only.
    public var trainingTokens: Double?
    public var pricePerDeviceHour: Double?
    /// Model FLOPs utilisation of the compute term, replacing the calibrated step-time model; nil uses the
    /// calibrated model (`StepTimeModel.calibrated(for:)`), or on CPUs the hardware's default MFU.
    public var mfu: Double?
    public var conventions: MemoryConventions = .zeroPaper
    /// How many of the fastest layouts to keep.
    public var keepLayouts = 5

    public init(shape: ModelShape, hardware: Hardware, batchSequences: Int) {
        self.shape = shape
        self.hardware = hardware
        self.batchSequences = batchSequences
    }

    /// The batch when none is given: DeepSeek LLM's B = 0.2920·C^0.3271 tokens (eq. 1) at C = 6·N·D, with D the
    /// training tokens or, without them, Chinchilla's 20 tokens a parameter; in whole sequences, at least one.
    public static func defaultBatchSequences(shape: ModelShape, trainingTokens: Double?) -> Int {
        let n = Double(shape.parameterCount.total)
        let tokens = BatchRule.deepseekTokens(flops: 6 * n * (trainingTokens ?? 20 * n))
        return max(1, Int((tokens / Double(shape.seqLen)).rounded()))
    }
}

/// Why an estimate cannot be made.
public enum EstimateError: Error, Equatable, Sendable {
    case invalidShape(ModelShapeError)
    /// A number out of its range: the input's name and the value.
    case outOfRange(String, Double)
    /// A fixed layout dimension the hardware or the shape cannot have.
    case layout(LayoutProblem)
    /// No layout fits (on `devices`, or on any count tried); `least` needs the least memory.
    case noLayout(devices: Int?, least: LayoutEstimate?)
}

/// Per-device memory, step time by cause, throughput and utilisation of a given model, layout and batch.
public struct Estimate: Sendable {
    public var request: EstimateRequest
    public var chosen: LayoutEstimate
    /// The fastest feasible layouts, fastest first (`chosen` is the first).
    public var alternatives: [LayoutEstimate]
    public var layoutsTried: Int
    /// Whether the device count was given or is the fewest that fit.
    public var devicesGiven: Bool
    /// The single MFU of the compute term when no calibrated model applies (or `--mfu` was given).
    public var mfuAssumed: Double
    /// The calibrated compute model used, if any.
    public var timeModel: StepTimeModel?

    public var shape: ModelShape { request.shape }
    public var layout: Layout { chosen.layout }
    public var devices: Int { layout.devices }
    public var tokensPerStep: Double { Double(layout.batchSequences * shape.seqLen) }
    /// Model FLOPs per token: 6N' + 12·L·n_head·head_size·T (no recomputation).
    public var modelFlopsPerToken: Double { shape.flopsPerTokenWithAttention() }
    /// FLOPs the hardware executes per token, recomputation included.
    public var hardwareFlopsPerToken: Double { LayoutModel.hardwareFlopsPerToken(shape, recompute: layout.recompute) }
    public var stepSeconds: Double { chosen.step.total }
    public var tokensPerSecondPerDevice: Double { tokensPerStep / stepSeconds / Double(devices) }
    /// Model FLOPs a second per device over the peak (Chowdhery et al. 2022, appendix B).
    public var modelFlopsUtilization: Double { modelFlopsPerToken * tokensPerSecondPerDevice / request.hardware.peakFlops }
    /// Hardware FLOPs (recomputation included) a second per device over the peak.
    public var hardwareFlopsUtilization: Double {
        hardwareFlopsPerToken * tokensPerSecondPerDevice / request.hardware.peakFlops
    }
    /// Steps to train the tokens asked for (rounded up), nil without them.
    public var steps: Int? { request.trainingTokens.map { Int(($0 / tokensPerStep).rounded(.up)) } }
    public var trainingSeconds: Double? { steps.map { Double($0) * stepSeconds } }
    public var deviceHours: Double? { trainingSeconds.map { $0 / 3600 * Double(devices) } }
    public var cost: Double? {
        guard let hours = deviceHours, let price = request.pricePerDeviceHour else { return nil }
        return hours * price
    }

    /// Searches the layouts the constraints leave open and keeps the fastest that fits.
    public static func make(_ r: EstimateRequest) throws(EstimateError) -> Estimate {
        do { try r.shape.validate() } catch { throw .invalidShape(error) }
        let h = r.hardware
        var c = r.constraints
        c.searchesInterleaving = c.interleave == nil
        guard r.batchSequences >= 1 else { throw .outOfRange("batch", Double(r.batchSequences)) }
        if let k = r.devices, k < 1 || k > 1 << 24 { throw .outOfRange("devices", Double(k)) }
        if let m = c.microBatch, m < 1 || m > r.batchSequences { throw .outOfRange("micro-batch", Double(m)) }
        if let v = c.interleave, v < 1 || v > r.shape.nLayer { throw .outOfRange("interleave", Double(v)) }
        if let z = c.zeroStage, !(0...3).contains(z) { throw .layout(.zeroStageInvalid(z)) }
        if let t = c.tensorParallel, t < 1 || r.shape.nHead % t != 0 || r.shape.nKVHead % t != 0 || t > h.devicesPerNode {
            throw .layout(.tensorParallelInvalid(t, heads: r.shape.nHead, devicesPerNode: h.devicesPerNode))
        }
        if let p = c.pipelineParallel, p < 1 || p > r.shape.nLayer {
            throw .layout(.pipelineParallelInvalid(p, layers: r.shape.nLayer))
        }
        if let v = c.interleave, v > 1, let p = c.pipelineParallel {
            let slots = LayoutModel.stageLayers(r.shape, p: p, balancedEnds: c.balancedEnds).middle
            guard p > 1, slots % v == 0 else { throw .layout(.interleaveInvalid(v, stageLayers: slots)) }
        }
        let cp = c.contextParallel
        if cp != 1 {
            guard cp >= 1, r.shape.seqLen % (2 * cp) == 0, h.precision != .float32 else {
                throw .layout(.contextParallelInvalid(cp, seqLen: r.shape.seqLen))
            }
        }
        if let tokens = r.trainingTokens, !(tokens.isFinite && tokens > 0) { throw .outOfRange("tokens", tokens) }
        if let price = r.pricePerDeviceHour, !(price.isFinite && price >= 0) {
            throw .outOfRange("price-per-device-hour", price)
        }
        let mfu = r.mfu ?? h.defaultMFU
        guard mfu > 0, mfu <= 1 else { throw .outOfRange("mfu", mfu) }
        if h.precision == .float32,
           (c.tensorParallel ?? 1) > 1 || (c.pipelineParallel ?? 1) > 1 || (c.zeroStage ?? 0) > 1
            || (c.recompute ?? .none) != .none {
            throw .layout(.unsupportedOnCPU)
        }
        let timeModel = r.mfu == nil ? StepTimeModel.calibrated(for: h) : nil
        func search(_ k: Int) -> LayoutModel.Search {
            LayoutModel.search(shape: r.shape, batchSequences: r.batchSequences, devices: k, hardware: h, mfu: mfu,
                               constraints: c, keep: r.keepLayouts, conventions: r.conventions, timeModel: timeModel)
        }
        var tried = 0
        if let k = r.devices {
            // (The error's message multiplies in the request's context parallelism.)
            if let t = c.tensorParallel, let p = c.pipelineParallel, k % (t * p * cp) != 0 {
                throw .layout(.devicesNotFactored(devices: k, tensorParallel: t, pipelineParallel: p))
            }
            if cp > 1, k % (cp * (c.tensorParallel ?? 1) * (c.pipelineParallel ?? 1)) != 0 {
                throw .layout(.devicesNotFactored(devices: k, tensorParallel: c.tensorParallel ?? 1,
                                                  pipelineParallel: c.pipelineParallel ?? 1))
            }
            let s = search(k)
            guard let best = s.ranked.first else {
                if s.leastMemory == nil {
                    throw .layout(.batchNotDivisible(batchSequences: r.batchSequences, dataParallel: k))
                }
                throw .noLayout(devices: k, least: s.leastMemory)
            }
            return Estimate(request: r, chosen: best, alternatives: s.ranked, layoutsTried: s.tried, devicesGiven: true,
                            mfuAssumed: mfu, timeModel: timeModel)
        }
        let counts = h.precision == .float32 ? [1] : LayoutModel.deviceCounts(hardware: h)
        var least: LayoutEstimate?
        for k in counts where k <= r.batchSequences * 64 * cp {
            guard LayoutModel.anyFits(shape: r.shape, batchSequences: r.batchSequences, devices: k, hardware: h,
                                      constraints: c, tried: &tried, conventions: r.conventions) else { continue }
            let s = search(k)
            tried += s.tried
            if let l = s.leastMemory, least == nil || l.memory.total < least!.memory.total { least = l }
            guard let best = s.ranked.first else { continue }
            return Estimate(request: r, chosen: best, alternatives: s.ranked, layoutsTried: tried, devicesGiven: false,
                            mfuAssumed: mfu, timeModel: timeModel)
        }
        throw .noLayout(devices: nil, least: least)
    }
}
