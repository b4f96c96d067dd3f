/// The one validation every reader of a checkpoint goes through (`gpt-train eval`, `inspect`, `--resume`,
/// `gpt-sample`): a file is used only when it holds exactly what `CheckpointWriter` writes for its recipe.
///
/// - Structure: the format version; the members of `/`, `/optimizer`, `/state`, `/metrics`, `/model`,
///   `/optimizer/m` and `/optimizer/v` are exactly the expected names (nothing missing, nothing extra).
/// - Every dataset: its exact element type (`float32` tensors, `int64`/`uint64` state, `float64` metrics,
///   fixed-length strings; `int32`, `float16`, `float64` or big-endian tensors are refused, not converted), its
///   exact shape, and the Fletcher-32 checksum filter.
/// - Values: every weight and moment finite, every second moment ≥ 0 (checked as the tensors are read); the state
///   in range: step in 0...training.steps, AdamW's step count equal to the step less the steps a spike skipped
///   (`/state/skipped_steps`, with the other optional spike-recovery members, all or none), windows drawn and tokens seen
///   consistent with the step (zero at step 0, at least one window a step, one to model.seq_len tokens a window;
///   not an exact product, because a run resumed with --force may change the batch), the seed the
///   recipe's, at least one thread, a sampler state that is not all zero, a data path; metrics NaN (none yet) or
///   finite and ≥ 0, the best validation loss not above the last.
import Foundation

/// What a checkpoint must hold to be used with a recipe: its tensors (names and shapes), its number of steps, its
/// seed and the model's context length (no training window is longer). The Trainer module derives it from a recipe.
public struct CheckpointExpectation: Sendable, Equatable {
    public var tensors: [CheckpointTensor]
    public var steps: Int
    public var seed: Int
    public var context: Int
    public init(tensors: [CheckpointTensor], steps: Int, seed: Int, context: Int) {
        self.tensors = tensors
        self.steps = steps
        self.seed = seed
        self.context = context
    }
}

/// The fixed names of the format.
enum CheckpointLayout {
    static let rootMembers = ["model", "optimizer", "state", "metrics", "recipe", "tokenizer"]
    static let stateMembers = ["step", "tokens_seen", "sampler_rng", "windows_drawn", "optimizer_steps", "seed",
                               "threads", "data_path"]
    static let metricsMembers = ["best_val_loss", "last_val_loss", "last_train_loss"]
}

/// The three groups of tensors.
enum TensorGroup: String, CaseIterable {
    case model = "/model"
    case firstMoment = "/optimizer/m"
    case secondMoment = "/optimizer/v"
}

extension CheckpointError {
    /// What every reader appends to a checkpoint that is not as written: how to go on.
    public static let damagedFix = "Fix: the file was changed or damaged after gpt-train wrote it; use another "
        + "checkpoint (gpt-train --resume falls back to the newest valid one) or train again"

    /// A checkpoint that is not as `CheckpointWriter` writes it: `what` names the dataset and the problem.
    static func damaged(_ file: String, _ what: String) -> CheckpointError {
        CheckpointError(file: file, reason: "\(what). \(damagedFix)")
    }
}

extension CheckpointReader {
    /// Checks the whole layout against `expected` without reading tensor data: every tensor group holds exactly
    /// the expected names, every tensor dataset is float32 of its shape with the checksum, and the state fits the
    /// recipe (step ≤ steps, same seed).
    public func validate(against expected: CheckpointExpectation) throws {
        do {
            let names = expected.tensors.map(\.name)
            for group in TensorGroup.allCases {
                try Self.checkMembers(file, group.rawValue, names)
                for t in expected.tensors {
                    try file.verify("\(group.rawValue)/\(t.name)", type: "float32", shape: t.shape)
                }
            }
        } catch let error as HDF5Error {
            throw CheckpointError.damaged(path, error.reason)
        }
        guard state.step <= expected.steps else {
            throw CheckpointError.damaged(path, "/state/step is \(state.step), past its recipe's training.steps \(expected.steps)")
        }
        let (most, overflow) = state.windowsDrawn.multipliedReportingOverflow(by: expected.context)
        guard overflow || state.tokensSeen <= most else {
            throw CheckpointError.damaged(path, "/state/tokens_seen \(state.tokensSeen) is more than /state/windows_drawn "
                                          + "\(state.windowsDrawn) windows of at most model.seq_len \(expected.context) tokens hold")
        }
        guard state.seed == expected.seed else {
            throw CheckpointError.damaged(path, "/state/seed is \(state.seed), but its recipe's training.seed is \(expected.seed)")
        }
    }

    /// Reads every tensor of every group (weights and both moments) into scratch memory: checksums, types,
    /// shapes and values of the whole file, for `gpt-train inspect`.
    public func verifyTensors(_ tensors: [CheckpointTensor]) throws {
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, tensors.map(\.count).max() ?? 1))
        defer { scratch.deallocate() }
        for group in TensorGroup.allCases {
            for t in tensors { try readTensor(group, t, into: scratch) }
        }
    }

    /// Reads one tensor into `buffer` (its first element), refusing a wrong type, shape or checksum, a
    /// non-finite value, or a negative second moment.
    func readTensor(_ group: TensorGroup, _ t: CheckpointTensor, into buffer: UnsafeMutablePointer<Float>) throws {
        let name = "\(group.rawValue)/\(t.name)"
        do { try file.readFloats(name, shape: t.shape, into: buffer) } catch let error as HDF5Error {
            throw CheckpointError.damaged(path, error.reason)
        }
        for i in 0..<t.count {
            let x = buffer[i]
            guard x.isFinite else {
                throw CheckpointError.damaged(path, "\(name) holds a non-finite value (\(x)) at element \(i)")
            }
            if group == .secondMoment, x < 0 {
                throw CheckpointError.damaged(path, "\(name) holds a negative second moment (\(x)) at element \(i)")
            }
        }
    }

    /// The recipe-free checks of the state, made when the file is opened.
    static func checkRanges(_ s: CheckpointState, file: HDF5File) throws {
        func refuse(_ what: String) -> HDF5Error { file.fail(what) }
        guard s.step >= 0 else { throw refuse("/state/step is \(s.step); a step count is at least 0") }
        let skipped = s.stability?.skippedSteps ?? 0
        if let st = s.stability {
            guard st.skippedSteps >= 0, st.skippedSteps <= s.step, st.recoveries >= 0, st.lrFactorUntil >= 0 else {
                throw refuse("/state/skipped_steps \(st.skippedSteps), /state/recoveries \(st.recoveries) and "
                             + "/state/lr_factor_until \(st.lrFactorUntil) must be at least 0, and skipped steps at most /state/step \(s.step)")
            }
        }
        guard s.optimizerSteps == s.step - skipped else {
            throw refuse("/state/optimizer_steps is \(s.optimizerSteps), but /state/step is \(s.step)"
                         + (skipped > 0 ? " with \(skipped) skipped" : "") + " (AdamW takes one step a step that is not skipped)")
        }
        guard s.windowsDrawn >= s.step, s.tokensSeen >= s.windowsDrawn else {
            throw refuse("/state/windows_drawn \(s.windowsDrawn) and /state/tokens_seen \(s.tokensSeen) do not fit "
                         + "/state/step \(s.step) (every step draws at least one window of at least one token)")
        }
        guard s.step > 0 || (s.windowsDrawn == 0 && s.tokensSeen == 0) else {
            throw refuse("/state/windows_drawn \(s.windowsDrawn) and /state/tokens_seen \(s.tokensSeen) are not 0 at step 0")
        }
        guard s.threads >= 1 else { throw refuse("/state/threads is \(s.threads); at least 1") }
        guard s.samplerRNG.contains(where: { $0 != 0 }) else {
            throw refuse("/state/sampler_rng is all zero, which is not a state of its generator (xoshiro256**)")
        }
        guard !s.dataPath.isEmpty else { throw refuse("/state/data_path is empty") }
        for (name, value) in [("best_val_loss", s.bestValLoss), ("last_val_loss", s.lastValLoss),
                              ("last_train_loss", s.lastTrainLoss)] {
            if let value, !(value.isFinite && value >= 0) {
                throw refuse("/metrics/\(name) is \(value); a loss is finite and at least 0 (NaN means none yet)")
            }
        }
        if let best = s.bestValLoss, let last = s.lastValLoss, best > last {
            throw refuse("/metrics/best_val_loss \(best) is above /metrics/last_val_loss \(last)")
        }
        if (s.bestValLoss == nil) != (s.lastValLoss == nil) {
            throw refuse("/metrics/best_val_loss and /metrics/last_val_loss must both be NaN (no evaluation yet) or both be losses")
        }
    }
}
