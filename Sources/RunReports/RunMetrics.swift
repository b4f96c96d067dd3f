import Foundation

/// A run's metrics.jsonl, read tolerantly: any line that is a JSON object with an integer `step` counts; other
/// lines (a half-written last line, a blank line, a line from a future format) are skipped and their numbers
/// kept in `skippedLines`. Training lines have `train_loss` (null when not finite), `lr`, `grad_norm`,
/// `tokens_per_sec` and `mfu`; validation lines `val_loss`; event lines `event` (for example "spike") with the
/// step and, when known, `loss` and `action`. Keys this type does not know are kept in `lines` for export.
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

    /// One parsed line: its step and its numeric values by key (nested objects flattened to "outer/inner").
    public struct Line: Sendable, Equatable {
        public var step: Int
        public var event: String?
        public var values: [(key: String, value: Double)]

        public static func == (a: Line, b: Line) -> Bool {
            a.step == b.step && a.event == b.event
                && a.values.elementsEqual(b.values) { $0.key == $1.key && $0.value == $1.value }
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
    public var lines: [Line] = []
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
        return RunMetrics(name: trimmed, text: String(decoding: data, as: UTF8.self))
    }

    public init(name: String, text: String) {
        self.name = name
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let step = Self.integer(object["step"]) else {
                skippedLines.append(number + 1)
                continue
            }
            let event = object["event"] as? String
            var values: [(String, Double)] = []
            Self.flatten(object, prefix: "", into: &values)
            values.removeAll { $0.0 == "step" }
            lines.append(Line(step: step, event: event, values: values))
            let number = { (key: String) in Self.number(object[key]) }
            if let event {
                events.append(RunEvent(step: step, kind: event, loss: number("loss"), action: object["action"] as? String))
            } else if object.keys.contains("val_loss") {
                if let loss = number("val_loss") { validation.append(ValidationPoint(step: step, loss: loss)) }
            } else if object.keys.contains("train_loss") {
                training.append(TrainingPoint(step: step, trainLoss: number("train_loss"), lr: number("lr"),
                                              gradNorm: number("grad_norm"), tokens: number("tokens")))
            }
        }
    }

    static func number(_ value: Any?) -> Double? {
        guard let value, !(value is String), !(value is NSNull) else { return nil }
        if let n = value as? NSNumber {
            let d = n.doubleValue
            return d.isFinite ? d : nil
        }
        return nil
    }

    static func integer(_ value: Any?) -> Int? {
        guard let d = number(value), d == d.rounded(), abs(d) < 1e15 else { return nil }
        return Int(d)
    }

    static func flatten(_ object: [String: Any], prefix: String, into values: inout [(String, Double)]) {
        for key in object.keys.sorted() {
            let name = prefix.isEmpty ? key : prefix + "/" + key
            if let nested = object[key] as? [String: Any] {
                flatten(nested, prefix: name, into: &values)
            } else if let d = number(object[key]) {
                values.append((name, d))
            }
        }
    }
}
