import Durable
import Foundation
import Recipe

/// A run directory that cannot be started or resumed as asked.
public struct RunDirectoryError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The files of one run, and nothing about training: where they go, the copy of the recipe the run was started
/// with, and the checkpoints' names, the complete ones on disk, and their retention. `CheckpointStore` owns it;
/// `MetricsSink` writes its metrics.jsonl and tb/.
///
///     <run>/recipe.toml           the recipe, as given (unless it already lives here)
///     <run>/metrics.jsonl         one line a logged step and a line an evaluation
///     <run>/tb/events.out.tfevents.*  the same scalars for TensorBoard (a new file each time the run is resumed)
///     <run>/<checkpoint.dir>/ckpt-<step>.h5
public struct RunDirectory: Sendable {
    public let path: String
    /// Where checkpoints go: `checkpoint.dir`, relative to the run directory unless absolute.
    public let checkpointDirectory: String
    /// The recipe's text and where it was read from (nil when it was given in memory).
    public let recipeText: String
    public let recipePath: String?

    public init(path: String, recipe: Recipe, recipeText: String, recipePath: String?) {
        self.path = path
        let dir = recipe.checkpoint.dir
        checkpointDirectory = dir.hasPrefix("/") ? dir : (path as NSString).appendingPathComponent(dir)
        self.recipeText = recipeText
        self.recipePath = recipePath
    }

    /// Makes the run directory (the checkpoint directory is made once it is known not to hold another run), or
    /// says in plain words why it cannot be (not a Foundation error code).
    func create() throws {
        try Self.createDirectory(path, what: "--out: cannot create the run directory", fix: "give --out")
    }

    /// Makes the checkpoint directory.
    func createCheckpointDirectory() throws {
        try Self.createDirectory(checkpointDirectory, what: "checkpoint.dir: cannot create the checkpoint directory",
                                 fix: "give [checkpoint] dir (or --out)")
    }

    private static func createDirectory(_ path: String, what: String, fix: String) throws {
        do { try AtomicFile.createDirectory(atPath: path) } catch let error as AtomicFile.WriteError {
            throw RunDirectoryError(message: "\(what) \(path): \(error.reason). Fix: \(fix) a path that can be "
                + "created: each name at most 255 bytes, the whole path at most 4095, on a writable file system")
        }
    }

    /// The run directory keeps the recipe it was started with (unless that is where the recipe already is),
    /// noting where it came from: its `data.path` is relative to the original's directory.
    func copyRecipe() throws {
        let copy = URL(fileURLWithPath: path).appendingPathComponent("recipe.toml").standardized.path
        let original = recipePath.map { URL(fileURLWithPath: $0).standardized.path }
        guard copy != original else { return }
        try AtomicFile.write("# Copied by gpt-train from \(original ?? "(given in memory)"); data.path is relative to "
                             + "that file's directory.\n" + recipeText, to: copy)
    }

    // MARK: Checkpoints

    public static func checkpointName(step: Int) -> String { String(format: "ckpt-%08d.h5", step) }

    /// Whether `name` is a checkpoint's file name, `ckpt-<step>.h5`.
    static func isCheckpointName(_ name: String) -> Bool {
        name.hasPrefix("ckpt-") && name.hasSuffix(".h5") && Int(name.dropFirst(5).dropLast(3)) != nil
    }

    /// Complete checkpoints in the directory, newest first (temporary files of unfinished writes are skipped).
    public static func checkpoints(in directory: String) -> [(step: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> (Int, String)? in
            guard isCheckpointName(name), let step = Int(name.dropFirst(5).dropLast(3)) else { return nil }
            return (step, (directory as NSString).appendingPathComponent(name))
        }.sorted { $0.0 > $1.0 }
    }

    func checkpointPath(step: Int) -> String {
        (checkpointDirectory as NSString).appendingPathComponent(Self.checkpointName(step: step))
    }

    /// The run's complete checkpoints, newest first.
    var checkpoints: [(step: Int, path: String)] { Self.checkpoints(in: checkpointDirectory) }

    /// Removes the temporary files of checkpoint writes that were interrupted; returns their paths.
    func removeAbandonedCheckpoints() -> [String] {
        AtomicFile.removeAbandonedTemporaries(in: checkpointDirectory, for: Self.isCheckpointName)
    }

    /// Removes the oldest checkpoints beyond the newest `keep`.
    func removeCheckpoints(keepingNewest keep: Int) {
        for old in checkpoints.dropFirst(keep) {
            try? FileManager.default.removeItem(atPath: old.path)
        }
    }
}
