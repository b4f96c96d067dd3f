import GPTShape
import Formatting
import Foundation

/// Checks that need several keys at once: shapes that cannot be built, a batch or layout that does not add up, a
/// schedule that cannot run, a checkpoint directory that leaves the run, and a model and token count that do not
/// spend the declared compute. Each is a `Rule` with its one-line summary, which docs/recipe-reference.md lists
/// (`RecipeWriter.referenceMarkdown()`); the rules run in order and report in that order.
enum RecipeValidator {
    /// Where problems are reported: the file, the lines of its keys, the budget tolerance.
    struct Report {
        let file: String
        let lines: KeyLines
        let tolerance: Double
        var problems: [Problem] = []

        mutating func callAsFunction(_ severity: Problem.Severity, _ kind: Problem.Kind, _ key: String, _ message: String,
                                     _ fix: String) {
            problems.append(Problem(severity, kind, file: file, line: lines.line(of: key), key: key,
                                    message: message, fix: fix))
        }

        /// An error: keys that do not agree.
        mutating func callAsFunction(_ key: String, _ message: String, _ fix: String) {
            self(.error, .inconsistent, key, message, fix)
        }
    }

    /// One check across keys.
    struct Rule: Sendable {
        /// What the check verifies, in one line (Markdown), for the recipe reference.
        let summary: String
        let check: @Sendable (Recipe, inout Report) -> Void
    }

    static func consistencyProblems(_ r: Recipe, file: String, lines: KeyLines, tolerance: Double) -> [Problem] {
        var report = Report(file: file, lines: lines, tolerance: tolerance)
        for rule in rules { rule.check(r, &report) }
        return report.problems
    }

    /// The checks, in the order they report.
    static let rules: [Rule] = [
        Rule(summary: "`model.d_model` is a multiple of `model.n_head`") { r, report in
            let m = r.model
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
        },
        Rule(summary: "`model.n_kv_head` equals `model.n_head` in the gpt2 family and divides it in the llama family") { r, report in
            let m = r.model
            if m.family == .gpt2, m.nKVHead != m.nHead {
                report("model.n_kv_head", "n_kv_head = \(m.nKVHead) differs from n_head = \(m.nHead), but the gpt2 family has "
                       + "multi-head attention only",
                       "set model.n_kv_head = \(m.nHead) (or remove it), or set model.family = \"llama\" for grouped-query attention")
            } else if m.nHead % m.nKVHead != 0 {
                let divisor = largestCommonDivisor(of: m.nHead, m.nHead, atMost: m.nKVHead)
                report("model.n_kv_head", "n_kv_head = \(m.nKVHead) does not divide n_head = \(m.nHead): each key/value head "
                       + "serves an equal group of query heads",
                       "set model.n_kv_head to a divisor of \(m.nHead), such as \(divisor)")
            }
        },
        Rule(summary: "a warning for biases in a llama-family model (Llama has none)") { r, report in
            if r.model.family == .llama, r.model.bias {
                report(.warning, .unusual, "model.bias", "biases in a Llama-style model: Llama has none (the count includes "
                       + "them in the linear layers; RMSNorm never has one)", "set model.bias = false unless this is deliberate")
            }
        },
        Rule(summary: "`training.seq_len` ≤ `model.seq_len`") { r, report in
            let t = r.training
            if t.seqLen > r.model.seqLen {
                report("training.seq_len", "training sequences of \(t.seqLen) tokens are longer than the model's context "
                       + "(model.seq_len = \(r.model.seqLen))",
                       "set training.seq_len to at most \(r.model.seqLen), or raise model.seq_len")
            }
        },
        Rule(summary: "`schedule.warmup_steps` < `training.steps` (a warning outside 1-5% of the steps)") { r, report in
            let t = r.training
            if r.schedule.warmupSteps >= t.steps {
                report("schedule.warmup_steps", "warmup of \(r.schedule.warmupSteps) steps leaves nothing of the "
                       + "\(t.steps) training steps to decay over",
                       "set schedule.warmup_steps below training.steps (1-5% of it is standard: "
                       + "\(max(1, t.steps / 100))...\(max(1, t.steps / 20)))")
            } else {
                let share = Double(r.schedule.warmupSteps) / Double(t.steps)
                if !StandardRecipe.warmupFraction.contains(share) {
                    report(.warning, .unusual, "schedule.warmup_steps", "warmup is \(sig(100 * share, 2))% of the steps, outside "
                           + "the standard recipe's 1-5%",
                           "set it between \(max(1, t.steps / 100)) and \(max(1, t.steps / 20)) unless this is deliberate")
                }
            }
        },
        Rule(summary: "`optimizer.min_lr` ≤ `optimizer.lr`") { r, report in
            if r.optimizer.minLR > r.optimizer.lr {
                report("optimizer.min_lr", "the minimum learning rate \(TOMLText.float(r.optimizer.minLR)) is above the "
                       + "peak \(TOMLText.float(r.optimizer.lr))",
                       "set optimizer.min_lr to at most optimizer.lr (\(sig(StandardRecipe.minLRFraction * 100))% of it, \(sig(r.optimizer.lr * StandardRecipe.minLRFraction, 3)), is standard)")
            }
        },
        Rule(summary: "the layout: t·p (`tensor_parallel` × `pipeline_parallel`) divides `training.devices`, the total "
             + "device count K = d·t·p, and `training.batch_size` = `micro_batch` × `grad_accum` × d, d = devices / (t·p) "
             + "the data-parallel ranks") { r, report in
            // The layout: devices = d·t·p, and the batch is micro_batch × grad_accum × d.
            let t = r.training
            let modelParallel = t.tensorParallel * t.pipelineParallel
            if t.devices % modelParallel != 0 {
                report("training.devices", "\(t.devices) devices cannot be split into groups of tensor_parallel × "
                       + "pipeline_parallel = \(t.tensorParallel) × \(t.pipelineParallel) = \(modelParallel): devices is "
                       + "the total count d·t·p",
                       "set training.devices to a multiple of \(modelParallel), such as "
                       + "\(max(1, t.devices / modelParallel) * modelParallel)")
            } else {
                let d = t.dataParallel
                let product = t.microBatch * t.gradAccum * d
                if product != t.batchSize {
                    let rankText = modelParallel == 1 ? "devices" : "d (devices / (t·p) = \(t.devices) / \(modelParallel))"
                    report("training.batch_size", "batch_size \(t.batchSize) is not micro_batch × grad_accum × \(rankText) = "
                           + "\(t.microBatch) × \(t.gradAccum) × \(d) = \(product)",
                           "set training.batch_size = \(product), or change micro_batch, grad_accum or devices so that "
                           + "their product is \(t.batchSize)")
                }
            }
        },
        Rule(summary: "`tensor_parallel` divides `model.n_kv_head` in the llama family (whole key/value heads a device)") { r, report in
            let m = r.model, t = r.training
            if m.family == .llama, m.nHead % m.nKVHead == 0, m.nKVHead % t.tensorParallel != 0,
               m.nHead % t.tensorParallel == 0, m.dFF % t.tensorParallel == 0 {
                report("training.tensor_parallel", "tensor_parallel = \(t.tensorParallel) must divide model.n_kv_head "
                       + "(\(m.nKVHead)): each device holds whole key/value heads (Megatron-LM's query groups)",
                       "set training.tensor_parallel to a divisor of \(m.nKVHead), such as "
                       + "\(largestCommonDivisor(of: m.nKVHead, m.nKVHead, atMost: t.tensorParallel))")
            }
        },
        Rule(summary: "`tensor_parallel` divides `model.n_head` and `model.d_ff`") { r, report in
            let m = r.model, t = r.training
            if m.nHead % t.tensorParallel != 0 || m.dFF % t.tensorParallel != 0 {
                report("training.tensor_parallel", "tensor_parallel = \(t.tensorParallel) must divide model.n_head "
                       + "(\(m.nHead)) and model.d_ff (\(m.dFF)): each device holds whole heads and an equal share of the MLP",
                       "set training.tensor_parallel to a common divisor of \(m.nHead) and \(m.dFF), such as "
                       + "\(largestCommonDivisor(of: m.nHead, m.dFF, atMost: t.tensorParallel))")
            }
        },
        Rule(summary: "`pipeline_parallel` ≤ `model.n_layer` (whole layers a stage)") { r, report in
            let m = r.model, t = r.training
            if t.pipelineParallel > m.nLayer {
                report("training.pipeline_parallel", "pipeline_parallel = \(t.pipelineParallel) stages for "
                       + "\(m.nLayer) layers: a stage holds whole layers",
                       "set training.pipeline_parallel to at most model.n_layer = \(m.nLayer)")
            }
        },
        Rule(summary: "`checkpoint.dir` stays inside the run directory: a relative path may not climb out of it with "
             + "`..`; an absolute path is accepted only with `checkpoint.allow_outside = true`; `/` (or a path that "
             + "resolves to it) never") { r, report in
            // The checkpoint directory stays inside the run directory unless it is absolute and allowed out.
            report.problems += checkpointDirectoryProblems(r.checkpoint, file: report.file,
                                                           line: report.lines.line(of: "checkpoint.dir"),
                                                           allowLine: report.lines.line(of: "checkpoint.allow_outside"))
        },
        Rule(summary: "a warning for `eval.interval`, `checkpoint.interval` or `logging.interval` above "
             + "`training.steps`") { r, report in
            // Intervals past the end of the run.
            let t = r.training
            for (key, interval, effect) in [("eval.interval", r.eval.interval, "only the validation after the last step runs"),
                                            ("checkpoint.interval", r.checkpoint.interval, "only the checkpoint after the last step is written"),
                                            ("logging.interval", r.logging.interval, "no training metrics are logged before the last step")]
            where interval > t.steps {
                report(.warning, .unusual, key, "\(interval) is more than training.steps = \(t.steps), so \(effect)",
                       "set \(key) to at most \(t.steps) (a tenth of it, \(max(1, t.steps / 10)), is usual), unless this is deliberate")
            }
        },
        Rule(summary: "warnings for a `[stability]` that cannot act: an action other than \"stop\" with both rules off, "
             + "a rollback `lr_factor` below 1 for 0 steps") { r, report in
            if let st = r.stability {
                if st.lossSigmas == 0, st.gradNormFactor == 0, st.action != .stop {
                    report(.warning, .unusual, "stability.action", "is \"\(st.action.rawValue)\" but loss_sigmas and grad_norm_factor are 0, "
                           + "so only a non-finite loss or gradient norm is recovered from",
                           "set stability.loss_sigmas (6 is usual) or stability.grad_norm_factor, unless this is deliberate")
                }
                if st.action == .rollback, st.lrFactor < 1, st.lrFactorSteps == 0 {
                    report(.warning, .unusual, "stability.lr_factor", "is \(st.lrFactor) but lr_factor_steps is 0, so it never applies",
                           "set stability.lr_factor_steps to the steps to run at the lower rate (for instance \(st.snapshotInterval))")
                }
            }
        },
        Rule(summary: "a warning for a validation (`eval.iters` × `micro_batch` sequences) longer than the training "
             + "between two") { r, report in
            // A validation that costs more than the training between two validations (a forward pass is a third of a
            // training step's compute, so this is a third of the run or more).
            let t = r.training
            let evalSequences = Double(r.eval.iters) * Double(t.microBatch)
            let trainedSequences = Double(min(r.eval.interval, t.steps)) * Double(t.batchSize)
            if evalSequences > trainedSequences {
                report(.warning, .unusual, "eval.iters", "one validation reads \(r.eval.iters) × \(t.microBatch) = "
                       + "\(sig(evalSequences, 4)) sequences, more than the \(sig(trainedSequences, 4)) trained on between two "
                       + "validations, so evaluation takes a third of the run or more",
                       "lower eval.iters to at most \(max(1, Int(trainedSequences) / max(1, t.microBatch))), or raise eval.interval")
            }
        },
        Rule(summary: "the budget: 6·N·D is within the tolerance (±5% unless `--tolerance` says otherwise) of "
             + "`plan.flops_budget`, with N counted from `[model]` (all parameters; the tied output head once) and "
             + "D = `training.steps` × `training.batch_size` × `training.seq_len`") { r, report in
            // The budget: N from [model] (the file's plan.params is not trusted), D from [training].
            let n = Double(r.model.parameterCount.total)
            let d = r.trainingTokens
            let spent = 6 * n * d
            let budget = r.plan.flopsBudget
            let ratio = spent / budget
            let off = ratio - 1
            if abs(off) > report.tolerance {
                let steps = min(Double(Schema.maxSteps), max(1, (budget / (6 * n * Double(r.batchTokens))).rounded()))
                let howFar = ratio >= 10 || ratio <= 0.1
                    ? "\(sig(ratio, 3)) times"
                    : "\(sig(abs(off) * 100, 3))% \(off > 0 ? "above" : "below")"
                report(.error, .budget, "plan.flops_budget",
                       "6·N·D = 6 × \(Int(n)) × \(sig(d, 6)) = \(sig(spent, 4)) FLOPs is \(howFar) the declared budget "
                       + "\(sig(budget, 4)) (tolerance ±\(sig(report.tolerance * 100, 3))%); "
                       + "N is counted from [model], D = training.steps × batch_size × seq_len",
                       "set training.steps = \(Int(steps)) to spend the budget, or plan.flops_budget = \(sig(spent, 4)) "
                       + "to declare what this recipe spends")
            }
        },
        Rule(summary: "a warning when `plan.params` disagrees with the count from `[model]` (it is never trusted)") { r, report in
            let n = Double(r.model.parameterCount.total)
            if abs(Double(r.plan.params) / n - 1) > 0.01 {
                report(.warning, .unusual, "plan.params", "says \(r.plan.params) parameters but [model] has \(Int(n))",
                       "set plan.params = \(Int(n)) (it is information only; the budget check uses the count from [model])")
            }
        },
    ]

    /// `checkpoint.dir` relative to the run directory must stay inside it (`..` may not climb out); an absolute
    /// one needs `allow_outside = true`; `/` (or anything that resolves to it) is never accepted.
    static func checkpointDirectoryProblems(_ c: Recipe.Checkpoint, file: String, line: Int?, allowLine: Int?) -> [Problem] {
        func problem(_ message: String, _ fix: String) -> Problem { problem(.error, message, fix) }
        func problem(_ severity: Problem.Severity, _ message: String, _ fix: String, key: String = "checkpoint.dir") -> Problem {
            Problem(severity, severity == .error ? .unsafePath : .unusual, file: file,
                    line: key == "checkpoint.dir" ? line : allowLine, key: key, message: message, fix: fix)
        }
        let dir = c.dir
        let absolute = dir.hasPrefix("/")
        var depth = 0
        var climbsOut = false
        for component in dir.split(separator: "/") {
            switch component {
            case ".": continue
            case "..":
                if depth == 0 { climbsOut = true } else { depth -= 1 }
            default: depth += 1
            }
        }
        let shown = RecipeText.echo(dir)
        if absolute {
            if depth == 0 {
                return [problem("\"\(shown)\" is the root directory: checkpoints would be written into /",
                                "give a directory inside the run directory, such as \"checkpoints\"")]
            }
            if !c.allowOutside {
                return [problem("\"\(shown)\" is an absolute path, outside the run directory (--out)",
                                "give a path relative to the run directory, such as \"checkpoints\", or set "
                                + "checkpoint.allow_outside = true to write checkpoints to \(shown) on purpose")]
            }
            return []
        }
        if climbsOut {
            return [problem("\"\(shown)\" leaves the run directory (--out) through \"..\"",
                            "give a path inside the run directory, such as \"checkpoints\"; for another disk, give an "
                            + "absolute path and set checkpoint.allow_outside = true")]
        }
        if c.allowOutside {
            return [problem(.warning, "is true, but checkpoint.dir \"\(shown)\" is inside the run directory, so it has no effect",
                            "remove checkpoint.allow_outside, or set it to false", key: "checkpoint.allow_outside")]
        }
        return []
    }

    static func largestCommonDivisor(of a: Int, _ b: Int, atMost limit: Int) -> Int {
        (1...max(1, limit)).last { a % $0 == 0 && b % $0 == 0 } ?? 1
    }
}
