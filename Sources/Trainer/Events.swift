/// What the trainer tells its caller. The library never prints; executables decide how to show these.
public enum TrainingEvent: Sendable {
    case started(RunInfo)
    case note(String)
    /// After every optimizer step.
    case step(StepMetrics)
    case validation(step: Int, loss: Double)
    case checkpointSaved(path: String, step: Int)
    case finished(RunSummary)
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
    /// The step's loss and gradient norm (NaN where not computed).
    public var loss: Float = .nan
    public var gradNorm: Double = .nan
    /// The spike as metrics.jsonl records it (non-finite values are written as null).
    public var spike: Spike {
        Spike(step: step, loss: loss, gradNorm: gradNorm,
              reason: loss.isFinite ? .nonFiniteGradNorm : .nonFiniteLoss, action: .stop)
    }
    public var description: String {
        var text = "step \(step): \(what) is not finite; the run stops before updating the weights with it"
        if let last = lastFinite {
            text += ". Last finite step \(last.step): train loss \(last.trainLoss), lr \(last.lr), grad norm \(last.gradNorm)"
        } else {
            text += " (no step before it finished)"
        }
        return text + ". Lower optimizer.lr, or check the data"
    }
}
