import Checkpoint
import Compute
import GPT
import Recipe
import Runtime

// Loss-spike detection and recovery ([stability] in the recipe). The rules and the actions are described in
// Schema.swift (docs/recipe-reference.md); this file holds the policy, its detector, the in-memory snapshot a
// rollback returns to, and the errors a spike can end a run with. In a data-parallel run every rank takes the same decisions: they
// rest only on the step's summed loss and the global gradient norm, which are the same on every rank.

/// Why a step is a spike.
public enum SpikeReason: Sendable, Equatable {
    case nonFiniteLoss
    case nonFiniteGradNorm
    /// The loss is `sigmas` standard deviations above the window's mean `mean`.
    case loss(sigmas: Double, mean: Double)
    /// The gradient norm is `factor` times the window's median `median`.
    case gradNorm(factor: Double, median: Double)

    public var name: String {
        switch self {
        case .nonFiniteLoss: return "non_finite_loss"
        case .nonFiniteGradNorm: return "non_finite_grad_norm"
        case .loss: return "loss_sigmas"
        case .gradNorm: return "grad_norm_factor"
        }
    }

    public func describe(window: Int) -> String {
        switch self {
        case .nonFiniteLoss: return "the training loss is not finite"
        case .nonFiniteGradNorm: return "the gradient norm is not finite"
        case .loss(let sigmas, let mean):
            return "the loss is \(rounded(sigmas))σ above the mean \(rounded(mean)) of the last \(window) steps"
        case .gradNorm(let factor, let median):
            return "the gradient norm is \(rounded(factor)) times the median \(rounded(median)) of the last \(window) steps"
        }
    }

    private func rounded(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
}

/// A spike and what was done about it.
public struct Spike: Sendable, Equatable {
    /// The step the spike happened at (counted from 1, as in metrics.jsonl).
    public var step: Int
    public var loss: Float
    public var gradNorm: Double
    public var reason: SpikeReason
    public var action: Recipe.Stability.Action
    /// For a rollback: the step the run went back to, and the batches passed over.
    public var rolledBackTo: Int?
    public var batchesPassedOver = 0
}

/// The last `capacity` accepted steps' losses and gradient norms, in rings that are allocated once: checking and
/// accepting a step allocate nothing.
struct SpikeDetector {
    let capacity: Int
    private var losses: [Double]
    private var norms: [Double]
    private var scratch: [Double]
    private(set) var count = 0
    private var next = 0

    init(capacity: Int) {
        self.capacity = capacity
        losses = Array(repeating: 0, count: capacity)
        norms = Array(repeating: 0, count: capacity)
        scratch = Array(repeating: 0, count: capacity)
    }

    /// Whether the step is a spike by the statistical rules (the caller checks finiteness first). Both rules wait
    /// until the window is full.
    mutating func check(loss: Double, norm: Double, rules: Recipe.Stability) -> SpikeReason? {
        guard count == capacity else { return nil }
        if rules.lossSigmas > 0 {
            var mean = 0.0
            for x in losses { mean += x }
            mean /= Double(capacity)
            var variance = 0.0
            for x in losses { variance += (x - mean) * (x - mean) }
            let std = (variance / Double(capacity)).squareRoot()
            if loss > mean + rules.lossSigmas * std {
                return .loss(sigmas: std > 0 ? (loss - mean) / std : .infinity, mean: mean)
            }
        }
        if rules.gradNormFactor > 0 {
            let median = medianNorm()
            if norm > rules.gradNormFactor * median {
                return .gradNorm(factor: median > 0 ? norm / median : .infinity, median: median)
            }
        }
        return nil
    }

    /// Adds an accepted step, dropping the oldest once the window is full.
    mutating func accept(loss: Double, norm: Double) {
        losses[next] = loss
        norms[next] = norm
        next = (next + 1) % capacity
        count = min(count + 1, capacity)
    }

    /// The median of the norms, by insertion sort into the scratch ring (no allocation; the window is small).
    private mutating func medianNorm() -> Double {
        scratch.withUnsafeMutableBufferPointer { s in
            for i in 0..<count {
                let x = norms[i]
                var j = i
                while j > 0, s[j - 1] > x { s[j] = s[j - 1]; j -= 1 }
                s[j] = x
            }
            return count % 2 == 1 ? s[count / 2] : 0.5 * (s[count / 2 - 1] + s[count / 2])
        }
    }

    /// The window, oldest first.
    var history: (losses: [Double], norms: [Double]) {
        let start = count == capacity ? next : 0
        let order = (0..<count).map { (start + $0) % capacity }
        return (order.map { losses[$0] }, order.map { norms[$0] })
    }

    /// A detector holding the newest `capacity` of these values (oldest first), as saved in a checkpoint.
    init(capacity: Int, history losses: [Double], norms: [Double]) {
        self.init(capacity: capacity)
        for (loss, norm) in zip(losses, norms).suffix(capacity) { accept(loss: loss, norm: norm) }
    }

    /// Becomes a copy of `other` (of the same capacity) element by element, keeping its own storage.
    mutating func assign(_ other: SpikeDetector) {
        precondition(other.capacity == capacity)
        for i in 0..<capacity {
            losses[i] = other.losses[i]
            norms[i] = other.norms[i]
        }
        count = other.count
        next = other.next
    }
}

/// The last good state, kept in memory for a rollback: weights, this process's AdamW moments and step count, the
/// training state and the detector's window. Allocated once; taking and restoring it copy without allocating.
final class StateSnapshot {
    let parameters: FloatStorage
    let m: FloatStorage
    let v: FloatStorage
    var optimizerSteps = 0
    var state: TrainingState
    var detector: SpikeDetector

    init(parameterCount: Int, momentCount: Int, state: TrainingState, detector: SpikeDetector) {
        parameters = FloatStorage(count: parameterCount)
        m = FloatStorage(count: momentCount)
        v = FloatStorage(count: momentCount)
        self.state = state
        self.detector = SpikeDetector(capacity: detector.capacity)
    }
}

/// What `[stability]` does about loss spikes: the detector's window, the snapshot a rollback returns to, and the
/// decision for each step (accept it, skip it, roll back, or stop the run). It holds no model: the step's model
/// and optimizer are given to it when a rollback restores them.
final class SpikePolicy {
    /// `[stability]`, or what a recipe without it does (a non-finite loss or gradient norm stops the run).
    let rules: Recipe.Stability
    /// The spike detector's window of accepted steps.
    private(set) var detector: SpikeDetector
    /// The state a rollback returns to (only with `stability.action = "rollback"`).
    private let snapshot: StateSnapshot?

    init(_ rules: Recipe.Stability, parameterCount: Int, momentCount: Int, state: TrainingState) {
        self.rules = rules
        detector = SpikeDetector(capacity: rules.window)
        snapshot = rules.action == .rollback
            ? StateSnapshot(parameterCount: parameterCount, momentCount: momentCount, state: state, detector: detector)
            : nil
    }

    /// The factor on the learning rate of update `stepIndex` (0-based): `lr_factor` after a rollback, else 1.
    func learningRateFactor(at stepIndex: Int, _ state: TrainingState) -> Double {
        stepIndex + 1 <= state.lrFactorUntil ? rules.lrFactor : 1
    }

    /// Why a step whose loss is finite is a spike, if it is (a gradient norm that is not finite always is).
    func check(loss: Float, norm: Double) -> SpikeReason? {
        norm.isFinite ? detector.check(loss: Double(loss), norm: norm, rules: rules) : .nonFiniteGradNorm
    }

    /// Adds an accepted step to the window.
    func accept(loss: Float, norm: Double) { detector.accept(loss: Double(loss), norm: norm) }

    /// Keeps the current state as the one a rollback returns to (only when the recipe's action is rollback).
    func takeSnapshot(_ model: GPT, _ optimizer: AdamW, _ state: TrainingState) {
        guard let snapshot else { return }
        snapshot.parameters.base.update(from: model.parameters.base, count: model.layout.count)
        snapshot.m.base.update(from: optimizer.m.base, count: optimizer.shard.count)
        snapshot.v.base.update(from: optimizer.v.base, count: optimizer.shard.count)
        snapshot.optimizerSteps = optimizer.stepsTaken
        snapshot.state = state
        snapshot.detector.assign(detector)
    }

    /// Handles a spike at step `stepIndex + 1` as the recipe says: the run stops (the outcome carries the error
    /// that says why), or the step's update is skipped, or the run rolls back to the snapshot and passes over the
    /// batches drawn since it was taken.
    /// - Parameters: `lastFinite`: the last step this process trained, for the message; `resumedFrom`: the
    ///   checkpoint this process resumed from, named when its very first step is not finite.
    func handle(_ reason: SpikeReason, stepIndex: Int, loss: Float, norm: Double, state: inout TrainingState,
                step: TrainingStep, lastFinite: StepMetrics?, resumedFrom: String?) -> StepOutcome {
        let spike = Spike(step: stepIndex + 1, loss: loss, gradNorm: norm, reason: reason, action: rules.action)
        if rules.action == .stop {
            var stopped = spike
            stopped.action = .stop
            switch reason {
            case .nonFiniteLoss, .nonFiniteGradNorm:
                let what = reason == .nonFiniteLoss ? "the training loss (\(loss))" : "the gradient norm (\(norm))"
                return .stopped(stopped, NonFiniteLoss(step: spike.step, what: what, lastFinite: lastFinite,
                                                       resumedFrom: lastFinite == nil ? resumedFrom : nil,
                                                       loss: loss, gradNorm: norm))
            default:
                return .stopped(stopped, LossSpikeStop(step: spike.step, loss: loss, gradNorm: norm,
                                                       reason: reason.describe(window: rules.window), recoveries: nil, kind: reason))
            }
        }
        guard state.recoveries < rules.maxRecoveries else {
            var stopped = spike
            stopped.action = .stop
            return .stopped(stopped, LossSpikeStop(step: spike.step, loss: loss, gradNorm: norm,
                                                   reason: reason.describe(window: rules.window),
                                                   recoveries: state.recoveries, kind: reason))
        }
        return .recovered(rules.action == .skip ? skip(spike, &state, step) : rollBack(spike, &state, step))
    }

    /// Drops the step's gradients (the next backward pass overwrites them); its data has been consumed.
    private func skip(_ spike: Spike, _ state: inout TrainingState, _ step: TrainingStep) -> Spike {
        state.step += 1
        state.tokensSeen += step.shape.tokensPerStep
        state.skippedSteps += 1
        state.recoveries += 1
        return spike
    }

    /// Restores the snapshot and passes over every batch drawn since it, the spike's included (PaLM's skip of the
    /// data around the spike); those tokens were read, so they count as seen.
    private func rollBack(_ spike: Spike, _ state: inout TrainingState, _ step: TrainingStep) -> Spike {
        guard let snapshot else { preconditionFailure("rollback without a snapshot") }
        let model = step.model, optimizer = step.optimizer
        let windowsNow = state.sampler.windowsDrawn
        let sampler = state.sampler, tokensSeen = state.tokensSeen, recoveries = state.recoveries
        model.parameters.base.update(from: snapshot.parameters.base, count: model.layout.count)
        optimizer.m.base.update(from: snapshot.m.base, count: optimizer.shard.count)
        optimizer.v.base.update(from: snapshot.v.base, count: optimizer.shard.count)
        optimizer.stepsTaken = snapshot.optimizerSteps
        state = snapshot.state
        detector.assign(snapshot.detector)
        state.sampler = sampler
        state.tokensSeen = tokensSeen
        state.recoveries = recoveries + 1
        if rules.lrFactor < 1, rules.lrFactorSteps > 0 {
            state.lrFactorUntil = state.step + rules.lrFactorSteps
        }
        var spike = spike
        spike.rolledBackTo = state.step
        spike.batchesPassedOver = (windowsNow - snapshot.state.sampler.windowsDrawn) / step.shape.batch
        return spike
    }

    /// The progress note for a spike that was recovered from.
    func note(for spike: Spike, _ state: TrainingState) -> String {
        var text = "step \(spike.step): loss spike (loss \(spike.loss), grad norm \(spike.gradNorm)): "
            + spike.reason.describe(window: rules.window) + "; "
        if let back = spike.rolledBackTo {
            text += "rolled back to step \(back), passing over the \(spike.batchesPassedOver) micro-batches drawn since"
            if state.lrFactorUntil > back { text += "; learning rate × \(rules.lrFactor) through step \(state.lrFactorUntil)" }
        } else {
            text += "skipped the update"
        }
        return text + " (recovery \(state.recoveries) of at most \(rules.maxRecoveries))"
    }

    /// The detector and counters as a checkpoint stores them.
    func checkpointStability(_ state: TrainingState) -> CheckpointStability {
        let history = detector.history
        return CheckpointStability(skippedSteps: state.skippedSteps, recoveries: state.recoveries,
                                   lrFactorUntil: state.lrFactorUntil, losses: history.losses,
                                   gradNorms: history.norms, capacity: detector.capacity)
    }

    /// Takes the window a checkpoint (or rank 0) holds, oldest first.
    func restore(losses: [Double], norms: [Double]) {
        detector = SpikeDetector(capacity: detector.capacity, history: losses, norms: norms)
    }
}

/// A spike ended the run: `stability.action` is "stop", or `stability.max_recoveries` recoveries were used up.
public struct LossSpikeStop: Error, CustomStringConvertible {
    public var step: Int
    public var loss: Float
    public var gradNorm: Double
    public var reason: String
    /// Recoveries made before this spike, when the run stopped because there were too many.
    public var recoveries: Int?
    public var kind: SpikeReason

    public var description: String {
        var text = "step \(step): loss spike (loss \(loss), grad norm \(gradNorm)): \(reason); "
        if let recoveries {
            text += "the run stops: \(recoveries) spike\(recoveries == 1 ? " was" : "s were") already recovered from, "
                + "stability.max_recoveries. Fix: lower optimizer.lr (or raise schedule.warmup_steps), check the data, "
                + "or raise stability.max_recoveries"
        } else {
            text += "the run stops before updating the weights with it (stability.action = \"stop\"). Fix: lower "
                + "optimizer.lr, or set stability.action = \"skip\" or \"rollback\" to recover, or raise stability.loss_sigmas"
        }
        return text
    }
}
