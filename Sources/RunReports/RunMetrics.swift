import Foundation
import Metrics

/// A run's metrics.jsonl as the plots use it: its training, validation and event points, read with `MetricsFile`
/// (any line that is a JSON object with an integer `step` counts; other lines, such as a half-written last line,
/// are skipped and their numbers kept in `skippedLines`). Every line is kept in `lines` for export.
public struct RunMetrics: Sendable {
    public struct TrainingPoint: Sendable, Equatable {
        public var step: Int
        public var trainLoss: Double?
        public var lr: Double?
        public var gradNorm: Double?
        /// Tokens seen by the end of the step, when the line says.
        public var tokens: Double?

        public init(step: Int, trainLoss: Double?, lr: Double?, gradNorm: Double?, tokens: Double? = nil) {
            self.step = step
            self.trainLoss = trainLoss
            self.lr = lr
            self.gradNorm = gradNorm
            self.tokens = tokens
        }
    }

    public struct ValidationPoint: Sendable, Equatable {
        public var step: Int
        public var loss: Double

        public init(step: Int, loss: Double) {
            self.step = step
            self.loss = loss
        }
    }

    public struct RunEvent: Sendable, Equatable {
        public var step: Int
        public var kind: String
        public var loss: Double?
        public var action: String?

        public init(step: Int, kind: String, loss: Double? = nil, action: String? = nil) {
            self.step = step
            self.kind = kind
            self.loss = loss
            self.action = action
        }
    }

    public struct ReadError: Error, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// The run's name in legends: its directory's last component.
    public var name: String
    public var training: [TrainingPoint] = []
    public var validation: [ValidationPoint] = []
    public var events: [RunEvent] = []
    /// The metrics lines, in file order.
    public var lines: [MetricsLine] = []
    /// 1-based numbers of lines that were not metrics.
    public var skippedLines: [Int] = []
    /// Tokens a step takes (from the run's recipe), for plotting against tokens when lines do not say.
    public var tokensPerStep: Int?

    /// Reads `<runDirectory>/metrics.jsonl`.
    public static func load(runDirectory: String) throws -> RunMetrics {
        let path = (runDirectory as NSString).appendingPathComponent("metrics.jsonl")
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: runDirectory)
                ? "no such file (is this a run directory written by gpt-train?)" : "no such file or directory"
            throw ReadError(path: path, reason: reason)
        }
        let trimmed = URL(fileURLWithPath: runDirectory).standardized.lastPathComponent
        return try RunMetrics(name: trimmed, text: String(decoding: data, as: UTF8.self), path: path)
    }

    /// Reads metrics.jsonl's text (`path` names it in errors): lines that are not metrics are skipped; a line of
    /// metrics that cannot be plotted or exported is refused (`MetricsFile.LineError`, with the line and the key).
    public init(name: String, text: String, path: String = "metrics.jsonl") throws {
        self.name = name
        let file = try MetricsFile(path: path, text: text)
        skippedLines = file.skippedLines
        for (_, line) in file.lines {
            lines.append(line)
            switch line.record {
            case .event(let e):
                events.append(RunEvent(step: line.step, kind: e.kind, loss: e.loss.map(Double.init), action: e.action))
            case .validation(let loss):
                if let loss, loss.isFinite { validation.append(ValidationPoint(step: line.step, loss: loss)) }
            case .training(let t):
                training.append(TrainingPoint(step: line.step, trainLoss: t.trainLoss.map(Double.init), lr: t.lr,
                                              gradNorm: t.gradNorm, tokens: line.extra["tokens"]))
            case .health, .other:
                break
            }
        }
    }
}
