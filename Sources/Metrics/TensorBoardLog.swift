import Foundation
import TensorBoard

/// How metrics.jsonl keys become TensorBoard scalar tags, the same for a live run and for a converted one:
/// `train_loss` → "loss/train", `val_loss` → "loss/val" (one "loss" group, so both curves sit side by side),
/// `lr`, `grad_norm`, `tokens_per_sec` and `mfu` under "train/"; any other number under its own key (nested
/// objects as "outer/inner"); an event line (`"event": "spike"`) → "events/spike" with the line's loss (1 when
/// it has none). `wall_time` and `time`, when a line has them, are its wall time, not scalars.
public enum MetricsScalars {
    static let renamed = ["train_loss": "loss/train", "val_loss": "loss/val", "lr": "train/lr",
                          "grad_norm": "train/grad_norm", "tokens_per_sec": "train/tokens_per_sec", "mfu": "train/mfu"]
    static let timeKeys: Set<String> = ["wall_time", "time"]

    public static func tag(forKey key: String) -> String { renamed[key] ?? key }

    /// The scalars of one line.
    public static func scalars(of line: MetricsLine) -> [Event.Scalar] {
        if let kind = line.eventKind {
            let loss = line.numbers.first { $0.key == "loss" }?.value ?? 1
            return [Event.Scalar(tag: "events/\(kind)", value: Float(loss))]
        }
        return line.numbers.filter { !timeKeys.contains($0.key) }
            .map { Event.Scalar(tag: tag(forKey: $0.key), value: Float($0.value)) }
    }

    /// The wall time a line carries, if any.
    public static func wallTime(of line: MetricsLine) -> Double? {
        line.numbers.first { timeKeys.contains($0.key) }?.value
    }
}

/// Mirrors metrics.jsonl lines into a TensorBoard event file under `<runDirectory>/tb/` while a run writes them:
/// the same scalars `gpt-train tensorboard` writes from the file.
public final class TensorBoardLog {
    public let writer: EventWriter

    public init(runDirectory: String, flushInterval: Double = 10) throws {
        writer = try EventWriter(directory: Self.directory(of: runDirectory), flushInterval: flushInterval)
    }

    /// Where a run's event files go: `<runDirectory>/tb`.
    public static func directory(of runDirectory: String) -> String {
        (runDirectory as NSString).appendingPathComponent("tb")
    }

    public func record(_ line: MetricsLine, wallTime: Double? = nil) throws {
        try writer.add(MetricsScalars.scalars(of: line), step: line.step, wallTime: wallTime ?? MetricsScalars.wallTime(of: line))
    }

    /// Records one metrics.jsonl line as text; lines that are not metrics are ignored.
    public func record(line: String, wallTime: Double? = nil) throws {
        if let parsed = try MetricsLine(jsonLine: line) { try record(parsed, wallTime: wallTime) }
    }

    public func flush() throws { try writer.flush() }
    public func close() throws { try writer.close() }
}
