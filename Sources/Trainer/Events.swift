import GPT

/// What the trainer tells its caller. The library never prints; executables decide how to show these. The caller
/// answers each event (`TrainingResponse`): it may stop the run.
public enum TrainingEvent: Sendable {
    case started(RunInfo)
    case note(String)
    /// After every optimizer step.
    case step(StepMetrics)
    case validation(step: Int, loss: Double)
    case checkpointSaved(path: String, step: Int)
    case finished(RunSummary)
}

/// The caller's answer to a training event.
public enum TrainingResponse: Sendable {
    case proceed
    /// End the run after the current step: it is checkpointed, as with `TrainingOptions.stopAfter`, and can be
    /// resumed exactly.
    case stop
}

/// Hears every training event and answers it (`Trainer(recipePath:options:group:handler:)`).
public struct TrainingEventHandler {
    public let answer: (TrainingEvent) -> TrainingResponse

    public init(_ answer: @escaping (TrainingEvent) -> TrainingResponse) { self.answer = answer }
}

/// What one optimizer step came to.
public enum StepOutcome: Sendable, Equatable {
    /// The weights were updated with learning rate `lr`; `gradNorm` is the global norm before clipping.
    case trained(loss: Float, lr: Double, gradNorm: Double)
    /// A spike that `[stability]` recovered from: its update was skipped, or the run rolled back.
    case recovered(Spike)
    /// A spike (or a loss that is not finite) that ends the run; `error` says why and what to do.
    case stopped(Spike, any Error)

    public var spike: Spike? {
        switch self {
        case .trained: return nil
        case .recovered(let spike), .stopped(let spike, _): return spike
        }
    }

    /// The step's training loss (summed over micro-batches and ranks).
    public var loss: Float {
        switch self {
        case .trained(let loss, _, _): return loss
        case .recovered(let spike), .stopped(let spike, _): return spike.loss
        }
    }

    public static func == (a: StepOutcome, b: StepOutcome) -> Bool {
        switch (a, b) {
        case let (.trained(l1, r1, n1), .trained(l2, r2, n2)): return l1 == l2 && r1 == r2 && n1 == n2
        case let (.recovered(s1), .recovered(s2)): return s1 == s2
        case let (.stopped(s1, e1), .stopped(s2, e2)): return s1 == s2 && "\(e1)" == "\(e2)"
        default: return false
        }
    }
}

public struct RunInfo: Sendable {
    public var parameters: Int
    public var tokensPerStep: Int
    public var startStep: Int
    public var totalSteps: Int
    public var stopStep: Int
    public var threads: Int
    /// Data-parallel processes (`mpirun -np`); 1 for a single process.
    public var ranks: Int = 1
    public var blasCore: String
    public var flopsPerToken: Double
    public var ceilingFlops: Double?
    public var data: String
    public var runDirectory: String
    public var resumedFrom: String?
    /// How a bf16 recipe's matrix products run (nil for fp32).
    public var bf16Products: BF16Products?
}

public struct StepMetrics: Sendable {
    /// Updates done, counted from 1.
    public var step: Int
    public var trainLoss: Float
    public var lr: Double
    /// Global gradient norm before clipping.
    public var gradNorm: Double
    /// Over the steps since the last logged line, evaluation and checkpoint time excluded.
    public var tokensPerSecond: Double
    public var mfu: Double?
    /// Seconds left at the current speed.
    public var eta: Double
    /// Whether this step was written to metrics.jsonl.
    public var logged: Bool
    /// Seconds this rank spent in collectives during the step (data-parallel runs only).
    public var communicationSeconds: Double? = nil
}

public struct RunSummary: Sendable {
    /// Data-parallel processes (`mpirun -np`); 1 for a single process.
    public var ranks: Int = 1
    public var steps: Int
    public var finalTrainLoss: Float
    public var finalValLoss: Double?
    public var bestValLoss: Double?
    public var seconds: Double
    public var trainingSeconds: Double
    public var tokensPerSecond: Double
    public var mfu: Double?
    /// Peak resident memory when the last training step ended (the largest over the ranks of a data-parallel run;
    /// a final checkpoint's scratch is not included).
    public var peakMemoryBytes: Int
    public var runDirectory: String
}

/// The run stopped because the loss stopped being a number.
public struct NonFiniteLoss: Error, CustomStringConvertible {
    public var step: Int
    public var what: String
    public var lastFinite: StepMetrics?
    /// The checkpoint this process resumed from, when the step that is not finite is its first: the checkpoint's
    /// weights overflow, whatever the learning rate.
    public var resumedFrom: String?
    /// The step's loss and gradient norm (NaN where not computed).
    public var loss: Float = .nan
    public var gradNorm: Double = .nan
    public var description: String {
        var text = "step \(step): \(what) is not finite; the run stops before updating the weights with it"
        if let resumedFrom, lastFinite == nil {
            return text + ". It is the first step after resuming from \(resumedFrom), so that checkpoint's weights "
                + "overflow float32 in the forward or backward pass before any update (the learning rate plays no part "
                + "yet). Fix: resume from an earlier checkpoint of the run (move this one out of the checkpoint "
                + "directory), or check the data"
        }
        if let last = lastFinite {
            text += ". Last finite step \(last.step): train loss \(last.trainLoss), lr \(last.lr), grad norm \(last.gradNorm)"
        } else {
            text += " (no step before it finished)"
        }
        return text + ". Lower optimizer.lr, or check the data"
    }
}
