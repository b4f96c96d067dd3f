import GPTShape
import Foundation

/// Turns a target parameter count into a concrete GPT shape with a depth/width ratio in the range published GPT
/// models use.
public enum ShapeSearch {
    /// Head size by width: 32 below 256 (nanoGPT's small character models), 64 up to 2048 (GPT-2, Pythia),
    /// 128 from 2048 (GPT-3 2.7B and up, LLaMA).
    public static func headSize(forWidth d: Int) -> Int { d < 256 ? 32 : (d < 2048 ? 64 : 128) }

    /// d_model / n_layer of published models runs from about 32 (GPT-2 1.5B: 1600/48) to 128 (GPT-3 175B:
    /// 12288/96, LLaMA 7B and 13B); Kaplan et al. (2020, figure 5) find the loss within a few percent across it.
    public static let aspectRange: ClosedRange<Double> = 32...128

    /// The preferred ratio: 64 up to 1B parameters (GPT-2 small, Pythia-160M), 128 from 10B (GPT-3, LLaMA),
    /// log-linear in between.
    public static func targetAspect(params n: Double) -> Double {
        let t = min(1, max(0, log10(n) - 9))
        return 64 * pow(2, t)
    }

    /// Candidates whose N is within this fraction of the target count as exact; among them the one nearest the
    /// preferred ratio wins.
    public static let tolerance = 0.02

    public struct Choice: Sendable, Equatable {
        public var shape: ModelShape
        /// Whether some shape came within `tolerance` of the target (then the aspect ratio decided), or the nearest
        /// one was taken.
        public var withinTolerance: Bool
        /// The preferred d_model/n_layer at this size.
        public var preferredAspect: Double
        public var aspect: Double { Double(shape.dModel) / Double(shape.nLayer) }
    }

    /// From width 2048 (about 1B parameters) the head count is a multiple of 8, so that tensor parallelism can
    /// split the heads over a whole node (Megatron-LM needs heads divisible by t).
    public static let tensorParallelHeads = 8

    /// The largest model the search can give: the widest width at the shallowest depth the aspect range allows.
    public static let maxWidth = 32768

    /// Llama 3's proportions (Dubey et al. 2024, Table 3; the 8B/70B/405B config.json files): head size 128, 8
    /// key/value heads (all heads below 8), d_ff = 3.5·d_model rounded up to a multiple of 256 (8B's 14336 and 70B's
    /// 28672 exactly; 405B's published 53248 is 3.25·d), rotary base 500000, RMSNorm ε 1e-5, untied head, no biases.
    public static let llamaHeadSize = 128, llamaKVHeads = 8, llamaRopeTheta = 500_000.0
    public static func llamaFF(_ d: Int) -> Int { (7 * d / 2 + 255) / 256 * 256 }

    /// A shape of `family` at width `d` (depth 0): the template the search deepens.
    public static func template(family: ModelFamily, width d: Int, seqLen: Int, vocabSize: Int, bias: Bool) -> ModelShape {
        switch family {
        case .gpt2:
            return ModelShape(nLayer: 0, nHead: d / headSize(forWidth: d), dModel: d, dFF: 4 * d, seqLen: seqLen,
                              vocabSize: vocabSize, bias: bias)
        case .llama:
            let heads = d / llamaHeadSize
            var kv = min(llamaKVHeads, heads)
            while heads % kv != 0 { kv -= 1 }
            return ModelShape(nLayer: 0, nHead: heads, dModel: d, dFF: llamaFF(d), seqLen: seqLen, vocabSize: vocabSize,
                              bias: bias, family: .llama, nKVHead: kv, ropeTheta: llamaRopeTheta, normEps: 1e-5,
                              tieEmbeddings: false)
        }
    }

    /// Widths the search tries: multiples of the head size (32, 64 or 128 for GPT-2; 128 for Llama), and from
    /// 2048 (GPT-2) a head count that is a multiple of 8.
    static func widths(_ family: ModelFamily) -> [Int] {
        switch family {
        case .gpt2:
            return stride(from: 32, through: maxWidth, by: 32).filter {
                $0 % headSize(forWidth: $0) == 0 && ($0 < 2048 || ($0 / headSize(forWidth: $0)) % tensorParallelHeads == 0)
            }
        case .llama:
            // Up to 8 heads any count; beyond, a multiple of 8 (the key/value heads, and t = 8, divide them).
            return stride(from: llamaHeadSize, through: maxWidth, by: llamaHeadSize).filter {
                $0 / llamaHeadSize <= llamaKVHeads || ($0 / llamaHeadSize) % llamaKVHeads == 0
            }
        }
    }

    /// Parameters of the largest shape the search builds: the widest width at the shallowest depth in range.
    public static func largestParams(seqLen: Int, vocabSize: Int, bias: Bool, family: ModelFamily = .gpt2) -> Double {
        var shape = template(family: family, width: maxWidth, seqLen: seqLen, vocabSize: vocabSize, bias: bias)
        shape.nLayer = Int(Double(maxWidth) / aspectRange.lowerBound)
        return Double(shape.parameterCount.total)
    }

    /// `minimumWidth` (from `smallestFineWidth` to 32) lets the fine grid go below the conventional shapes'
    /// narrowest width of 32: an isoFLOP sweep of character models (`gpt-plan sweep --min-width`) needs models of a
    /// few thousand parameters; a plan does not (a model of width 8 is a measuring instrument, not a product).
    public static func shape(targetParams target: Double, seqLen: Int, vocabSize: Int, bias: Bool,
                             rule: AllocationRule, family: ModelFamily = .gpt2,
                             minimumWidth: Int = 32) throws -> Choice {
        var candidates: [ModelShape] = []
        guard target.isFinite, target > 0 else { throw PlanError.noShape(targetParams: target) }
        for d in widths(family) {
            let template = template(family: family, width: d, seqLen: seqLen, vocabSize: vocabSize, bias: bias)
            let base = Double(template.parameterCount.total)
            let ideal = (target - base) / Double(template.parametersPerLayer)
            // The depths nearest the ideal within the aspect range: when the ideal is outside it, the range's
            // nearest end (so a budget whose N is mostly embedding still gets the nearest shape). Clamping first
            // also keeps the conversions to Int in range for absurd targets.
            let fewest = Int((Double(d) / aspectRange.upperBound).rounded(.up))
            let most = Int((Double(d) / aspectRange.lowerBound).rounded(.down))
            guard fewest <= most else { continue }
            let clamped = min(Double(most), max(Double(fewest), ideal))
            for n in Set([Int(clamped.rounded(.down)), Int(clamped.rounded(.up))]) where (fewest...most).contains(n) {
                var shape = template
                shape.nLayer = n
                candidates.append(shape)
            }
        }
        func error(_ s: ModelShape) -> Double { abs(log(Double(s.parameterCount.total) / target)) }
        let preferred = targetAspect(params: target)
        func aspectError(_ s: ModelShape) -> Double { abs(log(Double(s.dModel) / Double(s.nLayer) / preferred)) }

        let close = candidates.filter { error($0) <= log(1 + tolerance) }
        if let best = close.min(by: { (aspectError($0), error($0)) < (aspectError($1), error($1)) }) {
            return Choice(shape: best, withinTolerance: true, preferredAspect: preferred)
        }
        // No conventional shape is close (at small scale, where widths every 32 and one or two layers leave gaps
        // of ×3 in N): the fine widths below 2048, so that an isoFLOP sweep gets the sizes it asks for.
        // Among them, widths with more factors of 2 (up to 8, for vector units and head counts) first, then the
        // preferred aspect ratio.
        // The fine grid is of GPT-2 shapes (any head count that divides the width); a Llama-style search keeps
        // Llama 3's head size of 128 and its widths.
        let fine = family == .gpt2
            ? fineCandidates(targetParams: target, seqLen: seqLen, vocabSize: vocabSize, bias: bias,
                             minimumWidth: minimumWidth) : []
        func roundness(_ s: ModelShape) -> Int { -min(3, s.dModel.trailingZeroBitCount) }
        if let best = fine.filter({ error($0) <= log(1 + tolerance) })
            .min(by: { (roundness($0), aspectError($0), error($0)) < (roundness($1), aspectError($1), error($1)) }) {
            return Choice(shape: best, withinTolerance: true, preferredAspect: preferred)
        }
        candidates += fine
        guard let nearest = candidates.min(by: { error($0) < error($1) }) else {
            let largest = largestParams(seqLen: seqLen, vocabSize: vocabSize, bias: bias, family: family)
            if target > largest { throw PlanError.budgetTooLarge(targetParams: target, largestParams: largest) }
            throw PlanError.noShape(targetParams: target)
        }
        if Double(nearest.parameterCount.total) > 2 * target {
            let smallest = candidates.min { $0.parameterCount.total < $1.parameterCount.total } ?? nearest
            throw PlanError.budgetTooSmall(targetParams: target, smallest: smallest,
                                           neededFlops: rule.flops(forParams: Double(smallest.parameterCount.total) / 2))
        }
        if 2 * Double(nearest.parameterCount.total) < target {
            throw PlanError.budgetTooLarge(targetParams: target, largestParams: Double(nearest.parameterCount.total))
        }
        return Choice(shape: nearest, withinTolerance: false, preferredAspect: preferred)
    }

    /// Widths below this are searched on the fine grid too (`fineWidths`).
    public static let fineWidthLimit = 2048

    /// The narrowest width the fine grid holds (`minimumWidth` chooses how far down a search goes).
    public static let smallestFineWidth = 8

    /// The fine grid of widths, 8 to 2047: steps of 1 up to 127, then 2, 4, 8 and 16 (at most 1/32 of the
    /// width, so N moves by at most about 6% from one width to the next at a fixed depth; with the neighbouring
    /// depths the nearest shape is within 3% of any target).
    public static let fineWidths: [Int] = {
        var widths: [Int] = [], d = smallestFineWidth
        while d < fineWidthLimit {
            widths.append(d)
            d += max(1, 1 << max(0, Int(log2(Double(d) / 64))))
        }
        return widths
    }()

    /// The fine grid's depths run from 1 to d_model/16: twice as deep as the aspect range allows, so that a target
    /// between two widths at one layer has a two-layer shape near it.
    public static let fineAspectFloor = 16.0

    /// The head count for width `d` whose head size is nearest `headSize(forWidth:)` (in ratio), among the counts
    /// that divide `d`; on a tie, more heads.
    public static func headCount(forWidth d: Int) -> Int {
        let preferred = Double(headSize(forWidth: d))
        var best = 1
        for k in 1...d where d % k == 0 {
            if abs(log(Double(d / k) / preferred)) <= abs(log(Double(d / best) / preferred)) { best = k }
        }
        return best
    }

    /// Shapes on the fine width grid, each at the depths (from 1 or d_model/128 to d_model/16) nearest the target.
    static func fineCandidates(targetParams target: Double, seqLen: Int, vocabSize: Int, bias: Bool,
                               minimumWidth: Int) -> [ModelShape] {
        var candidates: [ModelShape] = []
        for d in fineWidths where d >= minimumWidth {
            let template = ModelShape(nLayer: 0, nHead: headCount(forWidth: d), dModel: d, dFF: 4 * d,
                                      seqLen: seqLen, vocabSize: vocabSize, bias: bias)
            let base = Double(template.parameterCount.total)
            let ideal = (target - base) / Double(template.parametersPerLayer)
            let fewest = max(1, Int((Double(d) / aspectRange.upperBound).rounded(.up)))
            let most = max(fewest, Int((Double(d) / fineAspectFloor).rounded(.down)))
            let clamped = min(Double(most), max(Double(fewest), ideal))
            for n in Set([Int(clamped.rounded(.down)), Int(clamped.rounded(.up))]) where (fewest...most).contains(n) {
                var shape = template
                shape.nLayer = n
                candidates.append(shape)
            }
        }
        return candidates
    }
}
