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

    public struct Choice: Sendable {
        public var shape: ModelShape
        public var reason: String
    }

    public static func shape(targetParams target: Double, seqLen: Int, vocabSize: Int, bias: Bool,
                             rule: AllocationRule) throws -> Choice {
        var candidates: [ModelShape] = []
        for d in stride(from: 32, through: 32768, by: 32) where d % headSize(forWidth: d) == 0 {
            let template = ModelShape(nLayer: 0, nHead: d / headSize(forWidth: d), dModel: d, dFF: 4 * d,
                                      seqLen: seqLen, vocabSize: vocabSize, bias: bias)
            let base = Double(template.parameterCount.total)
            let ideal = (target - base) / Double(template.parametersPerLayer)
            var layers = Set([Int(ideal.rounded(.down)), Int(ideal.rounded(.up))].filter { $0 >= 1 })
            if ideal < 1 { layers.insert(1) }
            for n in layers where aspectRange.contains(Double(d) / Double(n)) {
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
            return Choice(shape: best, reason: "of the shapes within \(Int(tolerance * 100))% of the target N, "
                + "the one whose d_model/n_layer (\(sig(Double(best.dModel) / Double(best.nLayer), 3))) is nearest "
                + "\(sig(preferred, 3)) (64 at ≤1B parameters, as GPT-2; 128 at ≥10B, as GPT-3 and LLaMA); "
                + "head size \(best.headSize), d_ff = 4·d_model")
        }
        guard let nearest = candidates.min(by: { error($0) < error($1) }) else {
            throw PlanError.noShape("no GPT shape with d_model/n_layer in 32...128 has about \(si(target)) parameters")
        }
        if Double(nearest.parameterCount.total) > 2 * target {
            let smallest = candidates.min { $0.parameterCount.total < $1.parameterCount.total } ?? nearest
            let needed = rule.flops(forParams: Double(smallest.parameterCount.total) / 2)
            throw PlanError.budgetTooSmall(
                "the compute-optimal model has about \(si(target)) parameters, but the smallest GPT with vocabulary "
                + "\(vocabSize) and context \(seqLen) has \(si(Double(smallest.parameterCount.total))) "
                + "(\(smallest.nLayer) layer, d_model \(smallest.dModel)); give a budget of at least "
                + "\(sig(needed, 2)) FLOPs, or a smaller --vocab or --seq-len")
        }
        return Choice(shape: nearest, reason: "no shape within \(Int(tolerance * 100))% of the target N; the nearest "
            + "one with d_model/n_layer in 32...128")
    }
}

public enum PlanError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    case budgetTooSmall(String)
    case noShape(String)
    case doesNotFit(String)

    public var description: String {
        switch self {
        case .invalid(let m), .budgetTooSmall(let m), .noShape(let m), .doesNotFit(let m): return m
        }
    }
}
