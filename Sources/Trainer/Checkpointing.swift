import Checkpoint
import Compute
import Durable
import Foundation
import GPT
import Recipe
import Runtime

extension Trainer {
    public var checkpointDirectory: String { directory.checkpointDirectory }

    public static func checkpointName(step: Int) -> String { String(format: "ckpt-%08d.h5", step) }

    /// Complete checkpoints in the directory, newest first (temporary files of unfinished writes are skipped).
    public static func checkpoints(in directory: String) -> [(step: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> (Int, String)? in
            guard isCheckpointName(name), let step = Int(name.dropFirst(5).dropLast(3)) else { return nil }
            return (step, (directory as NSString).appendingPathComponent(name))
        }.sorted { $0.0 > $1.0 }
    }

    var checkpointTensors: [CheckpointTensor] { model.layout.checkpointTensors }

    /// Before the first step: make the checkpoint directory, and either resume from it or make sure it holds no
    /// other run's checkpoints. In a data-parallel run rank 0 does this, then gives the other ranks what it loaded.
    func prepareCheckpoints() throws {
        if writesFiles { try prepareCheckpointFiles() }
        if parallel.isDistributed { try shareResumedState() }
    }

    private func prepareCheckpointFiles() throws {
        let existing = directory.checkpoints
        if options.resume {
            try resume(from: existing)
        } else if !existing.isEmpty {
            throw RunDirectoryError(message: "\(checkpointDirectory) already holds checkpoints (newest: step \(existing[0].step)); "
                + "continue that run with --resume, or give another --out")
        }
        try Self.createDirectory(checkpointDirectory, what: "checkpoint.dir: cannot create the checkpoint directory",
                                 fix: "give [checkpoint] dir (or --out)")
        for removed in AtomicFile.removeAbandonedTemporaries(in: checkpointDirectory, for: Self.isCheckpointName) {
            events(.note("removed \(removed), left by a checkpoint write that was interrupted"))
        }
    }

    /// Creates the run directory, or says in plain words why it cannot be (not a Foundation error code).
    static func createRunDirectory(_ path: String) throws {
        try createDirectory(path, what: "--out: cannot create the run directory", fix: "give --out")
    }

    private static func createDirectory(_ path: String, what: String, fix: String) throws {
        do { try AtomicFile.createDirectory(atPath: path) } catch let error as AtomicFile.WriteError {
            throw RunDirectoryError(message: "\(what) \(path): \(error.reason). Fix: \(fix) a path that can be "
                + "created: each name at most 255 bytes, the whole path at most 4095, on a writable file system")
        }
    }

    /// Whether `name` is a checkpoint's file name, `ckpt-<step>.h5`.
    static func isCheckpointName(_ name: String) -> Bool {
        name.hasPrefix("ckpt-") && name.hasSuffix(".h5") && Int(name.dropFirst(5).dropLast(3)) != nil
    }

    /// Loads the newest checkpoint that reads back completely, saying which ones were skipped and why.
    func resume(from candidates: [(step: Int, path: String)]) throws {
        guard !candidates.isEmpty else {
            throw RunDirectoryError(message: "nothing to resume: \(checkpointDirectory) holds no checkpoints (ckpt-*.h5)")
        }
        var failures: [String] = []
        for candidate in candidates {
            do {
                try load(checkpoint: candidate.path)
                if !failures.isEmpty {
                    events(.note("resuming from \(candidate.path), the newest checkpoint that reads back completely"))
                }
                return
            } catch let error as RecipeMismatch {
                throw error
            } catch {
                failures.append("\(error)")
                events(.note("skipping \(candidate.path): \(error)"))
            }
        }
        throw RunDirectoryError(message: "no checkpoint in \(checkpointDirectory) can be loaded:\n"
            + failures.map { "  \($0)" }.joined(separator: "\n"))
    }

    /// Restores weights, AdamW moments and the training state from one checkpoint.
    public func load(checkpoint path: String) throws {
        let (reader, _) = try CheckpointReader.openValidated(path)
        try checkRecipe(reader.recipe, of: path)
        // Read into scratch first, so that a file that fails half-way leaves the model as it was.
        let parameters = FloatStorage(count: model.layout.count)
        let m = FloatStorage(count: model.layout.count), v = FloatStorage(count: model.layout.count)
        try reader.read(tensors: checkpointTensors, parameters: parameters.base, m: m.base, v: v.base)
        model.parameters.base.update(from: parameters.base, count: parameters.count)
        // This process's share of the moments (all of them unless ZeRO-1 shards them over ranks).
        let shard = optimizer.shard
        optimizer.m.base.update(from: m.base + shard.lowerBound, count: shard.count)
        optimizer.v.base.update(from: v.base + shard.lowerBound, count: shard.count)
        if parallel.isDistributed && parallel.zeroStage >= 1 { loadedMoments = (m, v) }
        let s = reader.state
        optimizer.stepsTaken = s.optimizerSteps
        state.step = s.step
        state.tokensSeen = s.tokensSeen
        state.sampler = BatchSampler(rng: Xoshiro256(state: s.samplerRNG), windowsDrawn: s.windowsDrawn)
        state.bestValLoss = s.bestValLoss
        state.lastValLoss = s.lastValLoss
        state.lastTrainLoss = s.lastTrainLoss.map(Float.init)
        // Checkpoints written before [stability] existed: no spikes, an empty window.
        let st = s.stability ?? CheckpointStability(skippedSteps: 0, recoveries: 0, lrFactorUntil: 0, losses: [],
                                                    gradNorms: [], capacity: detector.capacity)
        state.skippedSteps = st.skippedSteps
        state.recoveries = st.recoveries
        state.lrFactorUntil = st.lrFactorUntil
        detector = SpikeDetector(capacity: detector.capacity, history: st.losses, norms: st.gradNorms)
        resumedFrom = path
        if s.threads != pool.threadCount || s.blasCore != productKernels {
            events(.note("the checkpoint was written with \(s.threads) threads and \(s.blasCore) kernels; "
                         + "this run uses \(pool.threadCount) and \(productKernels), so it will not be bit-identical to an uninterrupted run"))
        }
    }

    /// The kernels the products run on, as checkpoints record them (`blas_core`): OpenBLAS's kernel family, and
    /// with native bf16 products oneDNN's implementation too. A resume on other kernels is not bit-identical (other
    /// summation orders), and says so.
    var productKernels: String {
        model.bf16Products == .native ? "OpenBLAS \(BLAS.coreName) and oneDNN \(BF16Matmul.implementation ?? "?")"
            : "OpenBLAS \(BLAS.coreName)"
    }

    /// Refuses a checkpoint whose recipe differs in anything that changes the run (model, data, optimizer,
    /// schedule, training), unless forced. Evaluation, checkpoint and logging settings may change freely.
    func checkRecipe(_ text: String, of path: String) throws {
        let saved = try? CheckpointReader.parseRecipe(text, of: path)
        let runChanging: Set<String> = ["", "model", "data", "optimizer", "schedule", "training"]
        var differences: [String] = []
        if let saved {
            var changed = saved.differences(from: recipe, in: runChanging)
            // The same effective batch on a different number of data-parallel ranks (or with the optimizer state
            // sharded differently) is the same run, up to the order of floating-point sums.
            let layoutKeys: Set<String> = ["training.devices", "training.grad_accum", "training.zero_stage"]
            let sameBatch = saved.training.microBatch * saved.training.gradAccum * saved.training.dataParallel
                == recipe.training.microBatch * recipe.training.gradAccum * recipe.training.dataParallel
            if sameBatch, changed.contains(where: { layoutKeys.contains($0.path) }) {
                let layout = changed.filter { layoutKeys.contains($0.path) }
                events(.note("resuming with another data-parallel layout, the same batch: "
                    + layout.map { "\($0.path) \($0.this) → \($0.other)" }.joined(separator: ", ")
                    + "; sums are added in another order, so the run will not be bit-identical to an uninterrupted one"))
                changed.removeAll { layoutKeys.contains($0.path) }
            }
            // Checkpoints hold fp32 master weights and AdamW moments whatever the products' precision, so a run
            // resumes in the other precision from the same file.
            if saved.training.precision != recipe.training.precision {
                events(.note("resuming in \(recipe.training.precision.rawValue) from a checkpoint written in "
                    + "\(saved.training.precision.rawValue) (training.precision \"\(saved.training.precision.rawValue)\" → "
                    + "\"\(recipe.training.precision.rawValue)\"): checkpoints hold fp32 master weights and AdamW moments "
                    + "either way, so the run continues from them, with its matrix products in "
                    + "\(recipe.training.precision.rawValue) from here on; it will not be bit-identical to an uninterrupted run"))
                changed.removeAll { $0.path == "training.precision" }
            }
            differences = changed.map { "\($0.path): \($0.this) in the checkpoint, \($0.other) here" }
        } else {
            differences.append("the checkpoint's recipe does not read back")
        }
        guard !differences.isEmpty else { return }
        if options.force {
            events(.note("resuming despite recipe differences (--force): " + differences.joined(separator: "; ")))
            return
        }
        throw RecipeMismatch(checkpoint: path, differences: differences)
    }

    /// Gives every rank what rank 0 resumed from: the weights, each rank's share of the AdamW moments, and the
    /// training state (the sampler's state is the same on every rank, so one copy serves any number of ranks).
    private func shareResumedState() throws {
        let group = parallel.group
        guard try group.broadcast(resumedFrom != nil ? 1 : 0) == 1 else { return }
        try parallel.broadcastParameters(model.parameters.base)
        if parallel.zeroStage >= 1 {
            try parallel.scatterOptimizerState(loadedMoments?.m.base, into: optimizer.m.base)
            try parallel.scatterOptimizerState(loadedMoments?.v.base, into: optimizer.v.base)
            loadedMoments = nil
        } else {
            try parallel.broadcastParameters(optimizer.m.base)
            try parallel.broadcastParameters(optimizer.v.base)
        }
        func bits(_ x: Double?) -> [UInt64] { [x == nil ? 0 : 1, x?.bitPattern ?? 0] }
        let history = detector.history
        func padded(_ values: [Double]) -> [UInt64] {
            values.map(\.bitPattern) + [UInt64](repeating: 0, count: detector.capacity - values.count)
        }
        var words: [UInt64] = [UInt64(state.step), UInt64(state.tokensSeen)] + state.sampler.rng.stateWords
            + [UInt64(state.sampler.windowsDrawn), UInt64(optimizer.stepsTaken)]
            + bits(state.bestValLoss) + bits(state.lastValLoss) + bits(state.lastTrainLoss.map(Double.init))
            + [UInt64(state.skippedSteps), UInt64(state.recoveries), UInt64(state.lrFactorUntil), UInt64(history.losses.count)]
            + padded(history.losses) + padded(history.norms)
        try words.withUnsafeMutableBytes { try group.broadcast($0) }
        func value(_ i: Int) -> Double? { words[i] == 0 ? nil : Double(bitPattern: words[i + 1]) }
        state.step = Int(words[0])
        state.tokensSeen = Int(words[1])
        state.sampler = BatchSampler(rng: Xoshiro256(state: Array(words[2..<6])), windowsDrawn: Int(words[6]))
        optimizer.stepsTaken = Int(words[7])
        state.bestValLoss = value(8)
        state.lastValLoss = value(10)
        state.lastTrainLoss = value(12).map(Float.init)
        state.skippedSteps = Int(words[14])
        state.recoveries = Int(words[15])
        state.lrFactorUntil = Int(words[16])
        let filled = Int(words[17]), capacity = detector.capacity
        detector = SpikeDetector(capacity: capacity,
                                 history: words[18..<(18 + filled)].map(Double.init(bitPattern:)),
                                 norms: words[(18 + capacity)..<(18 + capacity + filled)].map(Double.init(bitPattern:)))
        resumedFrom = String(decoding: try group.broadcast(Array((resumedFrom ?? "").utf8)), as: UTF8.self)
    }

    /// Saves the current state as `ckpt-<step>.h5`, then removes the oldest checkpoints beyond `keep`. In a
    /// data-parallel run rank 0 writes the file, after collecting the moments ZeRO-1 spread over the ranks.
    func saveCheckpoint() throws {
        var m = UnsafePointer(optimizer.m.base), v = UnsafePointer(optimizer.v.base)
        var whole: (m: FloatStorage, v: FloatStorage)?
        if parallel.isDistributed && parallel.zeroStage >= 1 {
            whole = writesFiles ? (FloatStorage(count: model.layout.count), FloatStorage(count: model.layout.count)) : nil
            try parallel.gatherOptimizerState(optimizer.m.base, into: whole?.m.base)
            try parallel.gatherOptimizerState(optimizer.v.base, into: whole?.v.base)
            if let whole { (m, v) = (UnsafePointer(whole.m.base), UnsafePointer(whole.v.base)) }
        }
        guard writesFiles else { return }
        let path = directory.checkpointPath(step: state.step)
        let tokenizerJSON = String(decoding: (try? data.tokenizer.jsonData()) ?? Data(), as: UTF8.self)
        let s = CheckpointState(
            step: state.step, tokensSeen: state.tokensSeen, samplerRNG: state.sampler.rng.stateWords,
            windowsDrawn: state.sampler.windowsDrawn, optimizerSteps: optimizer.stepsTaken, seed: recipe.training.seed,
            threads: pool.threadCount, blasCore: productKernels, dataPath: data.path, bestValLoss: state.bestValLoss,
            lastValLoss: state.lastValLoss, lastTrainLoss: state.lastTrainLoss.map(Double.init),
            stability: checkpointStability)
        try CheckpointWriter.write(to: path, tensors: checkpointTensors, parameters: model.parameters.base,
                                   m: m, v: v, state: s, recipe: directory.recipeText, tokenizer: tokenizerJSON)
        events(.checkpointSaved(path: path, step: state.step))
        directory.removeCheckpoints(keepingNewest: recipe.checkpoint.keep)
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
