import Foundation
import Recipe
import Runtime

/// The learning rate of each optimizer step: linear warmup from 0, then decay to the minimum at the last step.
public struct LearningRateSchedule: Sendable, Equatable {
    public var peak: Double
    public var minimum: Double
    public var warmupSteps: Int
    public var totalSteps: Int
    public var decay: Recipe.Decay

    public init(peak: Double, minimum: Double, warmupSteps: Int, totalSteps: Int, decay: Recipe.Decay) {
        self.peak = peak
        self.minimum = minimum
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.decay = decay
    }

    public init(_ recipe: Recipe) {
        self.init(peak: recipe.optimizer.lr, minimum: recipe.optimizer.minLR, warmupSteps: recipe.schedule.warmupSteps,
                  totalSteps: recipe.training.steps, decay: recipe.schedule.decay)
    }

    /// The rate for update `step` (0-based). Warmup: peak·(step+1)/(warmup+1), as nanoGPT does, so that the first
    /// update is small but not zero and the last warmup update is just below the peak. Decay: from the peak at
    /// step `warmup` to the minimum at the last step, `totalSteps − 1`; cosine is
    /// min + ½(1 + cos(π·progress))·(peak − min).
    public func rate(at step: Int) -> Double {
        if step < warmupSteps { return peak * Double(step + 1) / Double(warmupSteps + 1) }
        let span = totalSteps - 1 - warmupSteps
        let progress = span > 0 ? min(1, Double(step - warmupSteps) / Double(span)) : 1
        switch decay {
        case .constant: return peak
        case .linear: return minimum + (1 - progress) * (peak - minimum)
        case .cosine: return minimum + 0.5 * (1 + cos(Double.pi * progress)) * (peak - minimum)
        }
    }
}
