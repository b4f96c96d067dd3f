import Foundation

/// A run's metrics.jsonl, read line by line with `MetricsLine`: lines that are not metrics (a half-written last line,
/// a blank line, text) are skipped and their numbers kept; a line of metrics that cannot be held is refused with
/// its file, line number and key. Lines end in "\n" or "\r\n".
public struct MetricsFile: Sendable {
    public var path: String
    /// The metrics lines with their 1-based line numbers, in file order.
    public var lines: [(number: Int, line: MetricsLine)] = []
    /// 1-based numbers of the lines that are not metrics (blank lines are not counted).
    public var skippedLines: [Int] = []

    public struct LineError: Error, CustomStringConvertible {
        public var path: String
        public var line: Int
        public var error: MetricsLine.ReadError
        public var description: String { "\(path):\(line): \(error)" }
    }

    public init(path: String, text: String) throws {
        self.path = path
        for (index, raw) in Self.lines(of: text).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            do {
                if let parsed = try MetricsLine(jsonLine: line) {
                    lines.append((index + 1, parsed))
                } else {
                    skippedLines.append(index + 1)
                }
            } catch let error as MetricsLine.ReadError {
                throw LineError(path: path, line: index + 1, error: error)
            }
        }
    }

    /// The validation loss logged at `step` (the last such line, if several), for example a sweep run's final
    /// loss at its last step; nil when there is none or it is not finite.
    public func validationLoss(atStep step: Int) -> Double? {
        lines.last { entry in
            if case .validation(let loss?) = entry.line.record { return entry.line.step == step && loss.isFinite }
            return false
        }.flatMap { entry in
            if case .validation(let loss) = entry.line.record { return loss }
            return nil
        }
    }

    /// The lines of `text`, ended by "\n" or "\r\n" (a `Character` in Swift, so splitting at "\n" alone misses it).
    static func lines(of text: String) -> [Substring] {
        text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
    }

    /// The step of each line of `text` that is metrics, with the line as it was (for rewriting a file in part).
    public static func steps(of text: String) -> [(step: Int, line: Substring)] {
        lines(of: text).compactMap { raw in
            guard let parsed = try? MetricsLine(jsonLine: raw.trimmingCharacters(in: .whitespacesAndNewlines)) else { return nil }
            return (parsed.step, raw)
        }
    }
}
