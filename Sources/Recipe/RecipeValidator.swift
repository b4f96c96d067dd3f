import CLISupport
import Planner

/// Checks that need several keys at once: shapes that cannot be built, a batch that does not add up, a schedule
/// that cannot run, and a model and token count that do not spend the declared compute.
enum RecipeValidator {
    static func consistencyProblems(_ r: Recipe, file: String, lines: KeyLines, tolerance: Double) -> [Problem] {
        var problems: [Problem] = []
        func report(_ severity: Problem.Severity, _ key: String, _ message: String, _ fix: String) {
            problems.append(Problem(severity, file: file, line: lines.line(of: key), key: key,
                                    message: message, fix: fix))
        }
        func report(_ key: String, _ message: String, _ fix: String) { report(.error, key, message, fix) }

        let m = r.model, t = r.training
        if m.dModel % m.nHead != 0 {
            // The divisor of d_model nearest n_head.
            var near = 1
            for delta in 0..<m.dModel {
                if m.nHead - delta >= 1, m.dModel % (m.nHead - delta) == 0 { near = m.nHead - delta; break }
                if m.dModel % (m.nHead + delta) == 0 { near = m.nHead + delta; break }
            }
            report("model.n_head", "d_model \(m.dModel) is not divisible by n_head \(m.nHead), so heads cannot split it",
                   "set model.n_head to a divisor of d_model, such as \(near) (head size \(m.dModel / near))")
        }
        if t.seqLen > m.seqLen {
            report("training.seq_len", "training sequences of \(t.seqLen) tokens are longer than the model's context "
                   + "(model.seq_len = \(m.seqLen))",
                   "set training.seq_len to at most \(m.seqLen), or raise model.seq_len")
        }
        if r.schedule.warmupSteps >= t.steps {
            report("schedule.warmup_steps", "warmup of \(r.schedule.warmupSteps) steps leaves nothing of the "
                   + "\(t.steps) training steps to decay over",
                   "set schedule.warmup_steps below training.steps (1-5% of it is standard: "
                   + "\(max(1, t.steps / 100))...\(max(1, t.steps / 20)))")
        } else {
            let share = Double(r.schedule.warmupSteps) / Double(t.steps)
            if share < WarmupRule.range.lowerBound || share > WarmupRule.range.upperBound {
                report(.warning, "schedule.warmup_steps", "warmup is \(sig(100 * share, 2))% of the steps, outside "
                       + "the standard recipe's 1-5%",
                       "set it between \(max(1, t.steps / 100)) and \(max(1, t.steps / 20)) unless this is deliberate")
            }
        }
        if r.optimizer.minLR > r.optimizer.lr {
            report("optimizer.min_lr", "the minimum learning rate \(TOMLText.float(r.optimizer.minLR)) is above the "
                   + "peak \(TOMLText.float(r.optimizer.lr))",
                   "set optimizer.min_lr to at most optimizer.lr (10% of it, \(sig(r.optimizer.lr * 0.1, 3)), is standard)")
        }
        let product = t.microBatch * t.gradAccum * t.devices
        if product != t.batchSize {
            report("training.batch_size", "batch_size \(t.batchSize) is not micro_batch × grad_accum × devices = "
                   + "\(t.microBatch) × \(t.gradAccum) × \(t.devices) = \(product)",
                   "set training.batch_size = \(product), or change micro_batch, grad_accum or devices so that "
                   + "their product is \(t.batchSize)")
        }

        // The budget: N from [model] (the file's plan.params is not trusted), D from [training].
        let n = Double(r.shape.parameterCount.total)
        let d = r.trainingTokens
        let spent = 6 * n * d
        let budget = r.plan.flopsBudget
        let off = spent / budget - 1
        if abs(off) > tolerance {
            let steps = min(Double(1 << 40), max(1, (budget / (6 * n * Double(t.batchSize * t.seqLen))).rounded()))
            report("plan.flops_budget",
                   "6·N·D = 6 × \(Int(n)) × \(sig(d, 6)) = \(sig(spent, 4)) FLOPs is \(sig(abs(off) * 100, 3))% "
                   + "\(off > 0 ? "above" : "below") the declared budget \(sig(budget, 4)) (tolerance ±\(sig(tolerance * 100, 3))%); "
                   + "N is counted from [model], D = training.steps × batch_size × seq_len",
                   "set training.steps = \(Int(steps)) to spend the budget, or plan.flops_budget = \(sig(spent, 4)) "
                   + "to declare what this recipe spends")
        }
        if abs(Double(r.plan.params) / n - 1) > 0.01 {
            report(.warning, "plan.params", "says \(r.plan.params) parameters but [model] has \(Int(n))",
                   "set plan.params = \(Int(n)) (it is information only; the budget check uses the count from [model])")
        }
        return problems
    }
}
