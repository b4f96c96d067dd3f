import Foundation

/// Whether an isoFLOP curve's minimum is bracketed: Approach 2 reads the optimum off a parabola's vertex, which is
/// an interpolation only when the lowest loss has a size on each side of it (Hoffmann et al. 2022, section 3.2,
/// figure 3: every curve's minimum lies inside its sizes).
public struct IsoFLOPBracket: Sendable, Equatable {
    public enum Edge: String, Sendable, Equatable, Codable {
        /// The lowest loss is at the smallest size run: the optimum may be smaller.
        case smallest
        /// The lowest loss is at the largest size run: the optimum may be larger.
        case largest
    }

    public var flops: Double
    /// The finished sizes, ascending.
    public var sizes: [Double]
    /// The size with the lowest loss, and that loss.
    public var bestParams: Double
    public var bestLoss: Double
    /// nil when the lowest loss has a size on each side (the minimum is interior).
    public var edge: Edge?

    /// The grid's own spacing: the geometric mean ratio of neighbouring sizes (nil with one size).
    public var ratio: Double? {
        guard sizes.count >= 2 else { return nil }
        return pow(sizes.last! / sizes.first!, 1 / Double(sizes.count - 1))
    }
}

/// A size `gpt-plan sweep --extend` adds to a budget's grid.
public struct IsoFLOPProposal: Sendable, Equatable {
    public var flops: Double
    public var params: Double
    public var edge: IsoFLOPBracket.Edge
}

public enum SweepExtension {
    /// Each budget's bracket, from its finished runs (budgets ascending): an edge where fewer than `margin` sizes lie
    /// beyond the lowest loss on that side (1: the lowest loss is the smallest or largest size run).
    public static func brackets(_ runs: [SweepObservation], margin: Int = 1) -> [IsoFLOPBracket] {
        Set(runs.map(\.flops)).sorted().map { c in
            let group = runs.filter { $0.flops == c }.sorted { $0.params < $1.params }
            let best = group.indices.min { group[$0].loss < group[$1].loss }!
            let sizes = group.map(\.params)
            let below = best, above = sizes.count - 1 - best
            var edge: IsoFLOPBracket.Edge?
            // Short on both sides (one size, say): the side with fewer sizes, below on a tie.
            if below < margin || above < margin { edge = below <= above ? .smallest : .largest }
            return IsoFLOPBracket(flops: c, sizes: sizes, bestParams: sizes[best], bestLoss: group[best].loss, edge: edge)
        }
    }

    /// The sizes to add: for every budget with fewer than `margin` sizes on one side of its lowest loss (2: a
    /// parabola through the lowest loss and two sizes either side), `count` sizes beyond that edge
    /// at the grid's own spacing in log N (`defaultRatio` for a budget with a single size), as long as the budget
    /// holds fewer than `maxSizes` sizes. A budget with one size gets sizes on both sides.
    public static func proposals(_ runs: [SweepObservation], count: Int = 2, margin: Int = 2, maxSizes: Int = 12,
                                 defaultRatio: Double = 2) -> [IsoFLOPProposal] {
        precondition(count >= 1 && margin >= 1 && maxSizes >= 1 && defaultRatio > 1)
        var out: [IsoFLOPProposal] = []
        for b in brackets(runs, margin: margin) {
            guard let edge = b.edge else { continue }
            let room = maxSizes - b.sizes.count
            guard room > 0 else { continue }
            let ratio = max(b.ratio ?? defaultRatio, 1.05)
            var sides: [IsoFLOPBracket.Edge] = [edge]
            if b.sizes.count == 1 { sides = [.smallest, .largest] }
            var added = 0
            for k in 1...count {
                for side in sides where added < room {
                    let n = side == .smallest ? b.sizes.first! / pow(ratio, Double(k)) : b.sizes.last! * pow(ratio, Double(k))
                    out.append(IsoFLOPProposal(flops: b.flops, params: n, edge: side))
                    added += 1
                }
            }
        }
        return out
    }

    /// A note for every budget whose minimum sits at an edge of its grid (for `gpt-plan fit`).
    public static func edgeNotes(_ runs: [SweepObservation]) -> [String] {
        brackets(runs).compactMap { b in
            guard let edge = b.edge else { return nil }
            let where_ = edge == .smallest ? "smallest" : "largest"
            return "budget \(String(format: "%.3g", b.flops)) FLOPs: the lowest loss (\(String(format: "%.4g", b.bestLoss))) is at "
                + "the \(where_) of its \(b.sizes.count) sizes, N = \(Int(b.bestParams.rounded())): the minimum is not bracketed and Approach 2's vertex there "
                + "is an extrapolation. Fix: gpt-plan sweep --extend SWEEP, then gpt-train sweep SWEEP"
        }
    }
}

/// Repeated data in a sweep (Muennighoff et al. 2023): a run that reads its training data more than once.
public enum SweepRepetition {
    /// Epochs over `unique` tokens of a run that trains on `tokens`.
    public static func epochs(tokens: Double, unique: Double) -> Double { tokens / unique }

    /// The tokens Approach 3 should see for a run: D itself up to one epoch, else Muennighoff et al.'s effective
    /// D' (their eq. 5, `DataConstrained.effectiveTokens`), which counts repeated tokens at a decaying value.
    public static func effectiveTokens(tokens: Double, unique: Double?) -> Double {
        guard let u = unique, u > 0, tokens > u else { return tokens }
        return DataConstrained.effectiveTokens(unique: u, tokens: tokens)
    }
}
