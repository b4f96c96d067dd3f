import Checkpoint
import Compute
import Durable
import Foundation
import GPT
import Recipe
import Runtime

/// The run's checkpoints, in the run directory it owns: before the first step it refuses a directory that holds
/// another run's checkpoints or finds the newest one that reads back (for `--resume`), checking that it was
/// written by the same run; it writes `ckpt-<step>.h5` files and keeps the newest `checkpoint.keep`. What a
/// checkpoint holds is the caller's (`Trainer`): this type reads and writes files.
final class CheckpointStore {
    let directory: RunDirectory
    let recipe: Recipe
    /// Resume even when the checkpoint's recipe differs in what changes the run.
    let force: Bool
    /// Where notes go (skipped checkpoints, accepted recipe differences).
    let notes: (String) -> Void
    /// The checkpoint this run resumed from.
    private(set) var resumedFrom: String?

    init(directory: RunDirectory, recipe: Recipe, force: Bool, notes: @escaping (String) -> Void) {
        self.directory = directory
        self.recipe = recipe
        self.force = force
        self.notes = notes
    }

    /// Weights, AdamW moments (all of them) and training state, read from a checkpoint into memory of their own.
    struct Contents {
        var path: String
        var parameters: FloatStorage
        var m: FloatStorage
        var v: FloatStorage
        var state: CheckpointState
    }

    /// Before the first step: makes the checkpoint directory and either reads the newest checkpoint that reads back
    /// completely (`resume`) or makes sure the directory holds no other run's checkpoints.
    func prepare(resume: Bool, tensors: [CheckpointTensor], parameterCount: Int) throws -> Contents? {
        let existing = directory.checkpoints
        var resumed: Contents?
        if resume {
            resumed = try newestReadable(existing, tensors: tensors, parameterCount: parameterCount)
        } else if !existing.isEmpty {
            throw RunDirectoryError(message: "\(directory.checkpointDirectory) already holds checkpoints (newest: step \(existing[0].step)); "
                + "continue that run with --resume, or give another --out")
        }
        try directory.createCheckpointDirectory()
        for removed in directory.removeAbandonedCheckpoints() {
            notes("removed \(removed), left by a checkpoint write that was interrupted")
        }
        return resumed
    }

    /// The newest checkpoint that reads back completely, saying which ones were skipped and why.
    private func newestReadable(_ candidates: [(step: Int, path: String)], tensors: [CheckpointTensor],
                                parameterCount: Int) throws -> Contents {
        guard !candidates.isEmpty else {
            throw RunDirectoryError(message: "nothing to resume: \(directory.checkpointDirectory) holds no checkpoints (ckpt-*.h5)")
        }
        var failures: [String] = []
        for candidate in candidates {
            do {
                let contents = try read(candidate.path, tensors: tensors, parameterCount: parameterCount)
                if !failures.isEmpty {
                    notes("resuming from \(candidate.path), the newest checkpoint that reads back completely")
                }
                return contents
            } catch let error as RecipeMismatch {
                throw error
            } catch {
                failures.append("\(error)")
                notes("skipping \(candidate.path): \(error)")
            }
        }
        throw RunDirectoryError(message: "no checkpoint in \(directory.checkpointDirectory) can be loaded:\n"
            + failures.map { "  \($0)" }.joined(separator: "\n"))
    }

    /// Reads one checkpoint, validated and checked to belong to this run, into scratch memory (so that a file that
    /// fails half-way changes nothing).
    func read(_ path: String, tensors: [CheckpointTensor], parameterCount: Int) throws -> Contents {
        let (reader, _) = try CheckpointReader.openValidated(path)
        try checkRecipe(reader.recipe, of: path)
        let parameters = FloatStorage(count: parameterCount)
        let m = FloatStorage(count: parameterCount), v = FloatStorage(count: parameterCount)
        try reader.read(tensors: tensors, parameters: parameters.base, m: m.base, v: v.base)
        resumedFrom = path
        return Contents(path: path, parameters: parameters, m: m, v: v, state: reader.state)
    }

    /// What rank 0 resumed from, on the other ranks of a data-parallel run.
    func noteResumed(from path: String?) { resumedFrom = path }

    /// Writes `ckpt-<step>.h5`, then removes the oldest checkpoints beyond `checkpoint.keep`; returns its path.
    func save(step: Int, tensors: [CheckpointTensor], parameters: UnsafePointer<Float>, m: UnsafePointer<Float>,
              v: UnsafePointer<Float>, state: CheckpointState, tokenizer: String) throws -> String {
        let path = directory.checkpointPath(step: step)
        try CheckpointWriter.write(to: path, tensors: tensors, parameters: parameters, m: m, v: v, state: state,
                                   recipe: directory.recipeText, tokenizer: tokenizer)
        directory.removeCheckpoints(keepingNewest: recipe.checkpoint.keep)
        return path
    }

    /// Refuses a checkpoint whose recipe differs in anything that changes the run (model, data, optimizer,
    /// schedule, training), unless forced. Evaluation, checkpoint and logging settings may change freely.
    func checkRecipe(_ text: String, of path: String) throws {
        let saved = try? CheckpointReader.parseRecipe(text, of: path)
        var differences: [String] = []
        if let saved {
            // What each key's change does is the schema's (`Field.resume`).
            var changed = saved.resumeDifferences(from: recipe)
            // The same effective batch on a different number of data-parallel ranks (or with the optimizer state
            // sharded differently) is the same run, up to the order of floating-point sums.
            let sameBatch = saved.training.microBatch * saved.training.gradAccum * saved.training.dataParallel
                == recipe.training.microBatch * recipe.training.gradAccum * recipe.training.dataParallel
            if sameBatch, changed.contains(where: { $0.field.resume == .dataParallelLayout }) {
                let layout = changed.filter { $0.field.resume == .dataParallelLayout }
                notes("resuming with another data-parallel layout, the same batch: "
                    + layout.map { "\($0.field.path) \($0.this) → \($0.other)" }.joined(separator: ", ")
                    + "; sums are added in another order, so the run will not be bit-identical to an uninterrupted one")
                changed.removeAll { $0.field.resume == .dataParallelLayout }
            }
            // Checkpoints hold fp32 master weights and AdamW moments whatever the products' precision, so a run
            // resumes in the other precision from the same file.
            if saved.training.precision != recipe.training.precision {
                notes("resuming in \(recipe.training.precision.rawValue) from a checkpoint written in "
                    + "\(saved.training.precision.rawValue) (training.precision \"\(saved.training.precision.rawValue)\" → "
                    + "\"\(recipe.training.precision.rawValue)\"): checkpoints hold fp32 master weights and AdamW moments "
                    + "either way, so the run continues from them, with its matrix products in "
                    + "\(recipe.training.precision.rawValue) from here on; it will not be bit-identical to an uninterrupted run")
                changed.removeAll { $0.field.resume == .precision }
            }
            // Activation recomputation computes the same bits as keeping every activation: the same run, silently.
            changed.removeAll { $0.field.resume == .sameBits }
            differences = changed.map { "\($0.field.path): \($0.this) in the checkpoint, \($0.other) here" }
        } else {
            differences.append("the checkpoint's recipe does not read back")
        }
        guard !differences.isEmpty else { return }
        if force {
            notes("resuming despite recipe differences (--force): " + differences.joined(separator: "; "))
            return
        }
        throw RecipeMismatch(checkpoint: path, differences: differences)
    }
}

/// The checkpoint was written for a different run.
public struct RecipeMismatch: Error, CustomStringConvertible {
    public var checkpoint: String
    public var differences: [String]
    public var description: String {
        "\(checkpoint) was written by a run with a different recipe:\n"
            + differences.map { "  \($0)" }.joined(separator: "\n")
            + "\nResume with the recipe it was written with, or pass --force to continue anyway"
    }
}
