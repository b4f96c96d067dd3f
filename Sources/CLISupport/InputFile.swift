import Durable
import Foundation
import Planner

/// Files a command reads whole outside the libraries' own readers: only regular files (a FIFO in a file's place
/// blocked the read forever; a directory was "no such file").
public enum InputFile {
    /// The bytes of the regular file at `path`, or nil when nothing is there. Anything else in its place, or a
    /// file that cannot be read, is an error naming `path` (exit status `status`) and ending with `fix`.
    public static func read(_ path: String, fix: String, status: Int32 = 1) throws(CommandFailure) -> Data? {
        let handle: FileHandle
        do { handle = try RegularFile.openForReading(path) } catch {
            switch error {
            case .missing: return nil
            case .notRegular(let kind): throw CommandFailure("\(path): is \(kind), not a file. Fix: \(fix)", exitCode: status)
            case .unreadable(let reason): throw CommandFailure("\(path): cannot be read: \(reason). Fix: \(fix)", exitCode: status)
            }
        }
        do { return try handle.readToEnd() ?? Data() } catch {
            throw CommandFailure("\(path): cannot be read: \(error). Fix: \(fix)", exitCode: status)
        }
    }

    /// The text of a run's metrics.jsonl, or nil when there is none yet (the run has not started).
    public static func metricsText(_ path: String) throws(CommandFailure) -> String? {
        try read(path, fix: "remove it (the run's metrics are then gone: train the run again)")
            .map { String(decoding: $0, as: UTF8.self) }
    }

    /// A sweep's manifest.json, read as `read` does.
    public static func sweepManifest(_ sweep: String) throws -> SweepManifest {
        try SweepManifest.load(sweep: sweep) { path in try read(path, fix: "rewrite it with gpt-plan sweep --force") }
    }
}
