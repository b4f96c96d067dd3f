import Foundation
import GPTShape

/// The compute term of a step, with the matrix products' efficiency depending on their per-device sizes instead
/// of one MFU for every layout. Fitted on published runs (docs/planner.md's calibration table, `CalibrationTests`).
///
/// Compute seconds = tokens × (F_mm / η + F_att / (η·a)) / (K × peak), with
/// - F_mm the products' hardware FLOPs per token (6N', plus one more forward, 2N', with full recomputation) and
///   F_att attention's (12·L·heads·head_size·T, plus a third of it again with selective or full recomputation);
/// - η = η_hw · w/(w + w₀) · n/(n + n₀): w = d_model/t the width of a tensor-parallel slice, n = b·s the tokens
///   of a micro-batch; η_hw the share of the dense peak that large products reach on the hardware (it includes
///   what the step spends outside the products: norms, activations, optimizer, kernel launches);
/// - a: attention's efficiency relative to the products.
/// The other terms (pipeline bubble, tensor-parallel and pipeline communication, exposed data-parallel/ZeRO
/// collectives at the preset's bandwidths) are `LayoutModel.stepTime`'s.
public struct StepTimeModel: Sendable, Equatable {
    /// η_hw.
    public var matmulEfficiency: Double
    /// w₀: the slice width at which products run at half of η_hw.
    public var widthHalf: Double
    /// n₀: the micro-batch tokens at which products run at half of η_hw.
    public var tokensHalf: Double
    /// a.
    public var attentionRelative: Double
    /// Which calibration this is, in words.
    public var source: String

    public init(matmulEfficiency: Double, widthHalf: Double = StepTimeModel.fittedWidthHalf,
                tokensHalf: Double = StepTimeModel.fittedTokensHalf,
                attentionRelative: Double = StepTimeModel.fittedAttentionRelative, source: String) {
        self.matmulEfficiency = matmulEfficiency
        self.widthHalf = widthHalf
        self.tokensHalf = tokensHalf
        self.attentionRelative = attentionRelative
        self.source = source
    }

    /// Fitted on the calibration runs (a grid search minimising the squared relative errors of the predicted MFU):
    /// η_hw 0.76 on A100s and 0.54 on H100s, w₀ = 512, n₀ = 0 (the runs' micro-batches hold 2048 tokens or more,
    /// where the fit finds no dependence), a = 1.
    public static let fittedA100 = 0.76, fittedH100 = 0.54
    public static let fittedWidthHalf = 512.0, fittedTokensHalf = 0.0, fittedAttentionRelative = 1.0

    /// The calibrated model for a GPU preset; nil for hardware without one (CPUs keep the single MFU).
    public static func calibrated(for hardware: Hardware) -> StepTimeModel? {
        guard hardware.precision == .mixed else { return nil }
        if hardware.name.hasPrefix("a100") {
            return StepTimeModel(matmulEfficiency: fittedA100, source: "fitted on A100 runs (docs/planner.md)")
        }
        if hardware.name.hasPrefix("h100") || hardware.name.hasPrefix("h200") {
            return StepTimeModel(matmulEfficiency: fittedH100, source: "fitted on H100 runs (docs/planner.md)")
        }
        return StepTimeModel(matmulEfficiency: fittedH100,
                             source: "no published runs of \(hardware.name) in the calibration: the H100's η_hw")
    }

    /// η for products of slice width `width` over `tokens` tokens.
    public func efficiency(width: Double, tokens: Double) -> Double {
        matmulEfficiency * width / (width + widthHalf) * tokens / (tokens + tokensHalf)
    }

    /// Seconds of compute of one step of `layout` (recomputation included), balanced over the devices.
    public func computeSeconds(shape: ModelShape, layout l: Layout, hardware: Hardware) -> Double {
        let attention = shape.attentionFlopsPerToken()
        let products = shape.flopsPerTokenWithAttention() - attention
        var (mm, att) = (products, attention)
        switch l.recompute {
        case .none: break
        case .selective: att += attention / 3
        case .full: mm += products / 3; att += attention / 3
        }
        let eta = efficiency(width: Double(shape.dModel) / Double(l.tensorParallel),
                             tokens: Double(l.microBatch * shape.seqLen / l.contextParallel))
        let tokens = Double(l.batchSequences * shape.seqLen)
        return tokens * (mm / eta + att / (eta * attentionRelative)) / (Double(l.devices) * hardware.peakFlops)
    }
}
