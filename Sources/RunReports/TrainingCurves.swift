import Foundation
import LinePlots

/// The four panels `gpt-train plot` draws: training loss, validation loss, learning rate and gradient norm, one
/// line per run in the same color everywhere, and each run's events (loss spikes) as dashed vertical marks in
/// every panel.
public enum TrainingCurves {
    public enum XQuantity: String, Sendable, CaseIterable {
        case steps, tokens
    }

    public struct MissingTokens: Error, CustomStringConvertible {
        public var run: String
        public var description: String {
            "\(run): cannot plot against tokens: its metrics lines have no \"tokens\" and its tokens per step are "
                + "unknown (recipe.toml missing from the run directory?); use --x steps"
        }
    }

    /// A loss panel uses a log axis when its values span a factor of 4 or more (the first steps of a run start
    /// near ln(vocabulary) and would flatten the rest); the gradient norm when they span a factor of 10 (a spike
    /// would otherwise hide everything else). The learning rate stays linear, so warmup and decay keep their
    /// shapes.
    public static let lossLogRatio = 4.0
    public static let gradNormLogRatio = 10.0

    public static func figure(runs: [RunMetrics], x: XQuantity = .steps) throws -> Figure {
        var train: [Series] = [], val: [Series] = [], lr: [Series] = [], grad: [Series] = []
        var markers: [Marker] = []
        for (index, run) in runs.enumerated() {
            let color = Palette.color(index)
            let position = try xPosition(run, x)
            func series(_ points: [(Double, Double?)]) -> Series {
                Series(label: run.name, color: color, points: points.map { ($0.0, $0.1 ?? .nan) })
            }
            train.append(series(run.training.map { (position($0.step, $0.tokens), $0.trainLoss) }))
            val.append(series(run.validation.map { (position($0.step, nil), $0.loss) }))
            lr.append(series(run.training.filter { $0.lr != nil }.map { (position($0.step, $0.tokens), $0.lr) }))
            grad.append(series(run.training.filter { $0.gradNorm != nil }.map { (position($0.step, $0.tokens), $0.gradNorm) }))
            for event in run.events {
                var note = "\(run.name): \(event.kind) at step \(event.step)"
                if let loss = event.loss { note += ", loss \(String(format: "%.4g", loss))" }
                if let action = event.action { note += ", \(action)" }
                markers.append(Marker(x: position(event.step, nil), color: color,
                                      kind: event.kind == "spike" ? "loss spike" : event.kind, note: note))
            }
        }
        let xLabel = x == .steps ? "step" : "tokens"
        return Figure(panels: [
            Panel(title: "Training loss", xLabel: xLabel, yLabel: "loss", yScale: scale(train, lossLogRatio),
                  series: train, markers: markers),
            Panel(title: "Validation loss", xLabel: xLabel, yLabel: "loss", yScale: scale(val, lossLogRatio),
                  series: val, markers: markers),
            Panel(title: "Learning rate", xLabel: xLabel, yLabel: "learning rate", series: lr, markers: markers),
            Panel(title: "Gradient norm", xLabel: xLabel, yLabel: "global L2 norm", yScale: scale(grad, gradNormLogRatio),
                  series: grad, markers: markers),
        ])
    }

    /// Maps (step, tokens if the line says) to the x value.
    static func xPosition(_ run: RunMetrics, _ x: XQuantity) throws -> (Int, Double?) -> Double {
        switch x {
        case .steps: return { step, _ in Double(step) }
        case .tokens:
            if let perStep = run.tokensPerStep { return { step, tokens in tokens ?? Double(step * perStep) } }
            guard run.training.allSatisfy({ $0.tokens != nil }), run.validation.isEmpty, run.events.isEmpty else {
                throw MissingTokens(run: run.name)
            }
            return { step, tokens in tokens ?? .nan }
        }
    }

    static func scale(_ series: [Series], _ ratio: Double) -> Scale {
        let ys = series.flatMap { $0.points.map(\.y) }.filter { $0.isFinite }
        guard let lo = ys.min(), let hi = ys.max(), lo > 0 else { return .linear }
        return hi / lo >= ratio ? .log : .linear
    }
}
