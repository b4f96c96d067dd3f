import Foundation
import Metrics
import TensorBoard

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

    public static func directory(of runDirectory: String) -> String { TensorBoardLog.directory(of: runDirectory) }

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
