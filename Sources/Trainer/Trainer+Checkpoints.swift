import Checkpoint
import Compute
import Foundation
import GPT
import Recipe
import Runtime

// What a checkpoint holds of a run and how a run continues from one: the files are `CheckpointStore`'s; this
// extension fills them from the model, the optimizer and the training state, and restores those from them.
extension Trainer {
    public var checkpointDirectory: String { directory.checkpointDirectory }

    public static func checkpointName(step: Int) -> String { RunDirectory.checkpointName(step: step) }

    /// Complete checkpoints in the directory, newest first (temporary files of unfinished writes are skipped).
    public static func checkpoints(in directory: String) -> [(step: Int, path: String)] {
        RunDirectory.checkpoints(in: directory)
    }

    var checkpointTensors: [CheckpointTensor] { model.layout.checkpointTensors }

    /// Before the first step: rank 0 makes the checkpoint directory and resumes from it (`--resume`) or makes sure
    /// it holds no other run's checkpoints; in a data-parallel run it then gives the other ranks what it loaded.
    func prepareCheckpoints() throws {
        let loaded = writesFiles
            ? try store.prepare(resume: options.resume, tensors: checkpointTensors, parameterCount: model.layout.count)
            : nil
        if let loaded { restore(loaded) }
        if parallel.isDistributed { try shareResumedState(loaded) }
    }

    /// Restores weights, AdamW moments and the training state from one checkpoint.
    public func load(checkpoint path: String) throws {
        restore(try store.read(path, tensors: checkpointTensors, parameterCount: model.layout.count))
    }

    private func restore(_ loaded: CheckpointStore.Contents) {
        model.parameters.base.update(from: loaded.parameters.base, count: loaded.parameters.count)
        // This process's share of the moments (all of them unless ZeRO-1 shards them over ranks).
        let shard = optimizer.shard
        optimizer.m.base.update(from: loaded.m.base + shard.lowerBound, count: shard.count)
        optimizer.v.base.update(from: loaded.v.base + shard.lowerBound, count: shard.count)
        let s = loaded.state
        optimizer.stepsTaken = s.optimizerSteps
        state.step = s.step
        state.tokensSeen = s.tokensSeen
        state.sampler = BatchSampler(rng: Xoshiro256(state: s.samplerRNG), windowsDrawn: s.windowsDrawn)
        state.bestValLoss = s.bestValLoss
        state.lastValLoss = s.lastValLoss
        state.lastTrainLoss = s.lastTrainLoss.map(Float.init)
        // Checkpoints written before [stability] existed: no spikes, an empty window.
        let st = s.stability ?? CheckpointStability(skippedSteps: 0, recoveries: 0, lrFactorUntil: 0, losses: [],
                                                    gradNorms: [], capacity: spikes.detector.capacity)
        state.skippedSteps = st.skippedSteps
        state.recoveries = st.recoveries
        state.lrFactorUntil = st.lrFactorUntil
        spikes.restore(losses: st.losses, norms: st.gradNorms)
        if s.threads != pool.threadCount || s.blasCore != steps.productKernels {
            _ = events(.note("the checkpoint was written with \(s.threads) threads and \(s.blasCore) kernels; "
                + "this run uses \(pool.threadCount) and \(steps.productKernels), so it will not be bit-identical to an uninterrupted run"))
        }
    }

    /// Gives every rank what rank 0 resumed from: the weights, each rank's share of the AdamW moments, and the
    /// training state (the sampler's state is the same on every rank, so one copy serves any number of ranks).
    private func shareResumedState(_ loaded: CheckpointStore.Contents?) throws {
        let group = parallel.group
        guard try group.broadcast(store.resumedFrom != nil ? 1 : 0) == 1 else { return }
        try parallel.broadcastParameters(model.parameters.base)
        if parallel.zeroStage >= 1 {
            try parallel.scatterOptimizerState(loaded?.m.base, into: optimizer.m.base)
            try parallel.scatterOptimizerState(loaded?.v.base, into: optimizer.v.base)
        } else {
            try parallel.broadcastParameters(optimizer.m.base)
            try parallel.broadcastParameters(optimizer.v.base)
        }
        func bits(_ x: Double?) -> [UInt64] { [x == nil ? 0 : 1, x?.bitPattern ?? 0] }
        let history = spikes.detector.history, capacity = spikes.detector.capacity
        func padded(_ values: [Double]) -> [UInt64] {
            values.map(\.bitPattern) + [UInt64](repeating: 0, count: capacity - values.count)
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
        let filled = Int(words[17])
        spikes.restore(losses: words[18..<(18 + filled)].map(Double.init(bitPattern:)),
                       norms: words[(18 + capacity)..<(18 + capacity + filled)].map(Double.init(bitPattern:)))
        let resumedFrom = String(decoding: try group.broadcast(Array((store.resumedFrom ?? "").utf8)), as: UTF8.self)
        store.noteResumed(from: resumedFrom)
    }

    /// Saves the current state as `ckpt-<step>.h5` (`CheckpointStore` keeps the newest `keep`). In a data-parallel
    /// run rank 0 writes the file, after collecting the moments ZeRO-1 spread over the ranks.
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
        let tokenizerJSON = String(decoding: (try? data.tokenizer.jsonData()) ?? Data(), as: UTF8.self)
        let s = CheckpointState(
            step: state.step, tokensSeen: state.tokensSeen, samplerRNG: state.sampler.rng.stateWords,
            windowsDrawn: state.sampler.windowsDrawn, optimizerSteps: optimizer.stepsTaken, seed: recipe.training.seed,
            threads: pool.threadCount, blasCore: steps.productKernels, dataPath: data.path, bestValLoss: state.bestValLoss,
            lastValLoss: state.lastValLoss, lastTrainLoss: state.lastTrainLoss.map(Double.init),
            stability: spikes.checkpointStability(state))
        let path = try store.save(step: state.step, tensors: checkpointTensors, parameters: model.parameters.base,
                                  m: m, v: v, state: s, tokenizer: tokenizerJSON)
        _ = events(.checkpointSaved(path: path, step: state.step))
    }
}
