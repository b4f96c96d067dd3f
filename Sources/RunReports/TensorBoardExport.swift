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

    /// The scalars of one parsed line.
    public static func scalars(of line: RunMetrics.Line) -> [Event.Scalar] {
        if let event = line.event {
            let loss = line.values.first { $0.key == "loss" }?.value ?? 1
            return [Event.Scalar(tag: "events/\(event)", value: Float(loss))]
        }
        return line.values.filter { !timeKeys.contains($0.key) }
            .map { Event.Scalar(tag: tag(forKey: $0.key), value: Float($0.value)) }
    }

    /// The wall time a line carries, if any.
    public static func wallTime(of line: RunMetrics.Line) -> Double? {
        line.values.first { timeKeys.contains($0.key) }?.value
    }
}

/// Mirrors metrics.jsonl lines into a TensorBoard event file under `<runDirectory>/tb/` while a run writes them.
/// Give it each line as written to metrics.jsonl; it writes the same scalars `gpt-train tensorboard` would.
public final class TensorBoardLog {
    public let writer: EventWriter

    public init(runDirectory: String, flushInterval: Double = 10) throws {
        writer = try EventWriter(directory: TensorBoardExport.directory(of: runDirectory), flushInterval: flushInterval)
    }

    /// Records one metrics.jsonl line (a JSON object with `step`); lines that are not metrics are ignored.
    public func record(line: String, wallTime: Double? = nil) throws {
        let run = RunMetrics(name: "", text: line)
        for parsed in run.lines {
            try writer.add(MetricsScalars.scalars(of: parsed), step: parsed.step,
                           wallTime: wallTime ?? MetricsScalars.wallTime(of: parsed))
        }
    }

    public func flush() throws { try writer.flush() }
    public func close() throws { try writer.close() }
}

/// Converts a run's metrics.jsonl into an event file, for runs written before TensorBoard logging existed.
public enum TensorBoardExport {
    public struct Result: Sendable {
        public var path: String
        public var events: Int
        public var skippedLines: [Int]
        /// Event files that were there before and were removed (with `replace`).
        public var replaced: [String]
    }

    public struct ExistingEventFiles: Error, CustomStringConvertible {
        public var directory: String
        public var files: [String]
        public var description: String {
            "\(directory) already has \(files.count) event file\(files.count == 1 ? "" : "s") "
                + "(\((files.first as NSString?)?.lastPathComponent ?? "")\(files.count > 1 ? ", …" : "")); "
                + "pass --replace to write them anew from metrics.jsonl"
        }
    }

    public static func directory(of runDirectory: String) -> String {
        (runDirectory as NSString).appendingPathComponent("tb")
    }

    /// Writes `<runDirectory>/tb/events.out.tfevents.…` from metrics.jsonl. Lines without a wall time get the
    /// modification time of metrics.jsonl. Refuses when tb/ already has event files, unless `replace`: the new
    /// file is then written completely before the old ones are removed.
    public static func convert(runDirectory: String, replace: Bool = false) throws -> Result {
        let run = try RunMetrics.load(runDirectory: runDirectory)
        let tb = directory(of: runDirectory)
        let existing = EventFile.paths(in: tb)
        if !existing.isEmpty, !replace { throw ExistingEventFiles(directory: tb, files: existing) }
        let metricsPath = (runDirectory as NSString).appendingPathComponent("metrics.jsonl")
        let modified = ((try? FileManager.default.attributesOfItem(atPath: metricsPath))?[.modificationDate] as? Date)
            ?? Date()
        let writer = try EventWriter(directory: tb, flushInterval: .greatestFiniteMagnitude)
        var count = 0
        for line in run.lines {
            let scalars = MetricsScalars.scalars(of: line)
            guard !scalars.isEmpty else { continue }
            try writer.add(scalars, step: line.step,
                           wallTime: MetricsScalars.wallTime(of: line) ?? modified.timeIntervalSince1970)
            count += 1
        }
        try writer.close()
        for path in existing {
            do { try FileManager.default.removeItem(atPath: path) } catch {
                throw EventFileError(path: path, reason: "written \(writer.path), but cannot remove this older file: \(error.localizedDescription)")
            }
        }
        return Result(path: writer.path, events: count, skippedLines: run.skippedLines, replaced: existing)
    }
}
