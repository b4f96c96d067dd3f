import Durable
import Foundation
import Metrics
import Recipe
import Runtime

/// A run directory that cannot be started or resumed as asked.
public struct RunDirectoryError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The files of one run, and nothing about training: where they go, the copy of the recipe the run was started
/// with, the metrics log, and the checkpoints (their names, the complete ones on disk, retention). What goes into
/// a checkpoint, how checkpoints are named and how a run resumes from one is in Checkpointing.swift.
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

    /// Makes the run directory (the checkpoint directory is made once it is known not to hold another run).
    func create() throws {
        try Trainer.createRunDirectory(path)
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

    /// Opens metrics.jsonl for appending (a resumed run first drops the lines after the step it resumes from),
    /// with a TensorBoard event file under tb/ that receives every line written from now on.
    func openMetrics(resumingAt step: Int?) throws -> MetricsLog {
        let log = try MetricsLog(path: (path as NSString).appendingPathComponent("metrics.jsonl"), keepThrough: step)
        log.tensorBoard = try TensorBoardLog(runDirectory: path)
        return log
    }

    // MARK: Checkpoints

    func checkpointPath(step: Int) -> String {
        (checkpointDirectory as NSString).appendingPathComponent(Trainer.checkpointName(step: step))
    }

    /// The run's complete checkpoints, newest first.
    var checkpoints: [(step: Int, path: String)] { Trainer.checkpoints(in: checkpointDirectory) }

    /// Removes the oldest checkpoints beyond the newest `keep`.
    func removeCheckpoints(keepingNewest keep: Int) {
        for old in checkpoints.dropFirst(keep) {
            try? FileManager.default.removeItem(atPath: old.path)
        }
    }
}
