import ArgumentParser
import CLISupport
import Compute
import Durable
import Foundation
import Metrics
import Planner

/// Plans one isoFLOP point of a sweep as a recipe (shared by `gpt-plan sweep` and `gpt-plan sweep --extend`).
struct SweepRunPlanner {
    /// The sweep directory.
    var directory: String
    /// The data as the current directory sees it.
    var data: String
    var cpu: Hardware
    var rule: AllocationRule
    var vocab: Int
    var seqLen: Int?
    var tokenizer: String?
    var valFraction: Double
    var seed: Int
    var uniqueTokens: Double?
    /// Peak learning rate k/d_model for every run (`--lr-per-width`), or the planner's rule.
    var lrPerWidth: Double? = nil
    /// Seeds a size is trained with (`--seeds`): the sweep's seed, then seed + 1, … as runs named `-s<seed>`.
    var seeds = 1
    /// The narrowest d_model the shape search may take (`--min-width`).
    var minimumWidth = 32

    enum Outcome {
        /// Planned: the size's run (and its repeats with the other seeds); with a note when its N is not the size
        /// asked for.
        case planned([SweepManifest.Run], note: String?)
        /// Left out, and why.
        case dropped(String)
        /// Below the smallest shape the vocabulary and context allow.
        case belowSmallest(String)
    }

    /// The run for budget `c` at size `n`, its recipe written; `taken` holds the parameter counts the budget already
    /// has (two sizes whose nearest shape is the same are one run).
    func plan(flops c: Double, params n: Double, taken: inout Set<Int>) throws -> Outcome {
        var request = PlanRequest(target: .flops(c), hardware: .given(cpu))
        request.rule = rule
        request.devices = .fixed(1)
        request.vocabSize = vocab
        request.seqLen = seqLen
        request.isoFLOPParams = n
        if let k = lrPerWidth { request.lrRule = .perWidth(k) }
        request.minimumWidth = minimumWidth
        let plan: Plan
        do { plan = try Plan.make(request) } catch let error as PlanError {
            let text = "C = \(sig(c, 3)), N ≈ \(si(n, 3)): dropped: \(PlanText.error(error))"
            if case .budgetTooSmall = error { return .belowSmallest(text) }
            return .dropped(text)
        }
        let s = plan.shape
        guard taken.insert(plan.params).inserted else {
            return .dropped("C = \(sig(c, 3)), N ≈ \(si(n, 3)): dropped: the nearest shape (\(s.nLayer) layers, d_model "
                            + "\(s.dModel)) is already in the sweep")
        }
        let name = "c\(sig(c, 3).replacingOccurrences(of: "+", with: ""))-n\(plan.params)"
        let recipe = "recipes/\(name).toml"
        try writeRecipeFile(plan, to: (directory as NSString).appendingPathComponent(recipe), data: data,
                            tokenizer: tokenizer, valFraction: valFraction, seed: seed)
        var run = SweepManifest.Run(name: name, flops: c, targetParams: n, params: Double(plan.params),
                                    tokens: plan.schedule.trainedTokens, steps: plan.steps, recipe: recipe,
                                    run: "runs/\(name)")
        run.epochs = uniqueTokens.map { run.tokens / $0 }
        var runs = [run]
        for k in 1..<max(1, seeds) {
            var repeat_ = run
            repeat_.seed = seed + k
            repeat_.name = "\(name)-s\(seed + k)"
            repeat_.recipe = "recipes/\(repeat_.name).toml"
            repeat_.run = "runs/\(repeat_.name)"
            try writeRecipeFile(plan, to: (directory as NSString).appendingPathComponent(repeat_.recipe), data: data,
                                tokenizer: tokenizer, valFraction: valFraction, seed: seed + k)
            runs.append(repeat_)
        }
        // The shape search reaches any size within 3% between its smallest and largest shapes; a nearest shape
        // further off is the smallest (or largest) one standing in for a size beyond it: kept, with its real N.
        if abs(Double(plan.params) / n - 1) > Self.sizeTolerance {
            return .planned(runs, note: "C = \(sig(c, 3)), N ≈ \(si(n, 3)): the nearest shape has \(si(Double(plan.params), 3)) "
                            + "parameters (\(s.nLayer) layer\(s.nLayer == 1 ? "" : "s"), d_model \(s.dModel)), more than "
                            + "\(Int(Self.sizeTolerance * 100))% off: it stands in for this size")
        }
        return .planned(runs, note: nil)
    }

    /// How far a run's N may be from the size the design asks for.
    static let sizeTolerance = 0.05

    /// The planned tokens of size `n` at budget `c` (D = C/6N), for limits checked before planning.
    static func tokens(flops c: Double, params n: Double) -> Double { c / (6 * n) }
}

/// A note when runs read their data more than once (the epochs of each are in the manifest).
func repetitionNotes(_ runs: [SweepManifest.Run], uniqueTokens: Double?) -> [String] {
    guard let u = uniqueTokens else { return [] }
    let repeated = runs.filter { $0.tokens > u }
    guard let most = repeated.max(by: { $0.tokens < $1.tokens }) else { return [] }
    return ["\(repeated.count) of \(runs.count) runs read the \(si(u, 3)) unique training tokens more than once (repeated data, "
            + "Muennighoff et al. 2023), up to \(sig(most.tokens / u, 3)) epochs (\(most.name)); see each run's \"epochs\". "
            + "Fix: a larger corpus or smaller budgets; gpt-plan fit --effective-tokens counts their effective tokens D'"]
}

/// The finished runs of a sweep (a `val_loss` at the last step), and a note for each unfinished one; each run's
/// final loss is its whole-split evaluation (`FinalEvaluation`) where there is one, else the metrics' last
/// validation, and a note says which. `finishedNames` names every finished run, the repeats with other seeds included
/// (the observations carry the first seed's name once averaged). `gpt-plan fit` and `gpt-plan sweep --extend` read
/// runs through this one function, so they see the same losses and refuse the same unreadable metrics
/// (`command` names the one that failed).
func finishedObservations(sweep: String, manifest: SweepManifest, average: SeedAverage = .median,
                          command: String) throws -> (runs: [SweepObservation], finishedNames: Set<String>, notes: [String]) {
    var observations: [SweepObservation] = [], notes: [String] = [], fallback: [String] = []
    for run in manifest.runs {
        let metrics = ((sweep as NSString).appendingPathComponent(run.run) as NSString).appendingPathComponent("metrics.jsonl")
        let text: String?
        do { text = try InputFile.metricsText(metrics) } catch {
            throw CommandFailure("\(command): \(error.message)", exitCode: 1)
        }
        let file: MetricsFile?
        do { file = try text.map { try MetricsFile(path: metrics, text: $0) } } catch {
            throw CommandFailure("\(command): \(error). Fix: train the run again (gpt-train sweep \(sweep))", exitCode: 1)
        }
        guard let last = file?.validationLoss(atStep: run.steps) else {
            notes.append("\(run.name): no val_loss at its last step \(run.steps) in \(metrics) (not finished); left out")
            continue
        }
        let whole = FinalEvaluation.read(runDirectory: (sweep as NSString).appendingPathComponent(run.run), step: run.steps)
        if whole == nil { fallback.append(run.name) }
        observations.append(SweepObservation(name: run.name, flops: run.flops, params: run.params, tokens: run.tokens,
                                             loss: whole?.loss ?? last))
    }
    notes += finalLossNote(sweep: sweep, fallback: fallback, of: observations.count)
    let names = Set(observations.map(\.name))
    return (averagedOverSeeds(observations, manifest: manifest, notes: &notes, by: average), names, notes)
}

/// Which final loss the fit used: the whole validation split (`FinalEvaluation`, written by gpt-train sweep) or the
/// last validation in metrics.jsonl.
func finalLossNote(sweep: String, fallback: [String], of count: Int) -> [String] {
    guard count > 0 else { return [] }
    if fallback.isEmpty { return ["every run's final loss is over the whole validation split (\(FinalEvaluation.fileName))"] }
    let named = fallback.prefix(3).joined(separator: ", ") + (fallback.count > 3 ? ", …" : "")
    return ["\(fallback.count) of \(count) runs' final losses are their last validation in metrics.jsonl (\(named); eval.iters "
            + "micro-batches of windows drawn with the run's seed), not the whole validation split. Fix: gpt-train sweep \(sweep) "
            + "evaluates finished runs on it (\(FinalEvaluation.fileName))"]
}

/// How `gpt-plan fit` and `gpt-plan sweep --extend` make one loss of a size's seeds (`--seed-average`). The median is
/// the default: of one or two seeds it is their mean, and of three or more one seed whose run stalled on the early
/// plateau or spiked does not move it.
enum SeedAverage: String, CaseIterable, ExpressibleByArgument {
    /// The mean: every seed counts.
    case mean
    /// The median: one seed whose run stalled on a plateau or spiked (a bad seed among three) does not move it.
    case median

    func of(_ losses: [Double]) -> Double {
        switch self {
        case .mean: return losses.reduce(0, +) / Double(losses.count)
        case .median: return LawFitting.median(losses)
        }
    }
}

/// One observation a size: the median (or mean) of its seeds' final losses (`gpt-plan sweep --seeds`), named after its
/// first run, with a note of how far the seeds spread. A size with one seed is its run.
func averagedOverSeeds(_ observations: [SweepObservation], manifest: SweepManifest,
                       notes: inout [String], by average: SeedAverage = .median) -> [SweepObservation] {
    // Runs of one size and different seeds are grouped; two runs of one size and the same seed are not (they stay
    // apart, and the fit refuses the duplicate point).
    struct Key: Hashable { var flops: Double, params: Double, copy: Int }
    var seedOf: [String: Int?] = [:]
    for run in manifest.runs { seedOf[run.name] = run.seed }
    var order: [Key] = [], groups: [Key: [SweepObservation]] = [:]
    var seedsSeen: [Key: Set<Int?>] = [:]
    for o in observations {
        let seed = seedOf[o.name] ?? nil
        var key = Key(flops: o.flops, params: o.params, copy: 0)
        while seedsSeen[key]?.contains(seed) == true { key.copy += 1 }
        seedsSeen[key, default: []].insert(seed)
        if groups[key] == nil { order.append(key) }
        groups[key, default: []].append(o)
    }
    guard groups.values.contains(where: { $0.count > 1 }) else { return observations }
    var spreads: [Double] = []
    let averaged = order.map { key -> SweepObservation in
        let group = groups[key]!
        var mean = group[0]
        mean.loss = average.of(group.map(\.loss))
        if group.count > 1 { spreads.append(group.map(\.loss).max()! - group.map(\.loss).min()!) }
        return mean
    }
    let seeds = Set(groups.values.map(\.count)).sorted().map(String.init).joined(separator: " or ")
    notes.append("\(spreads.count) of \(averaged.count) sizes are \(average == .median && groups.values.contains { $0.count > 2 } ? "medians" : "means") over \(seeds) seeds; the seeds' losses differ by "
                 + "\(sig(spreads.reduce(0, +) / Double(spreads.count), 3)) on average (largest \(sig(spreads.max()!, 3)))")
    return averaged
}

/// `gpt-plan sweep --extend SWEEP`: adds sizes beyond the edge of every budget whose lowest loss sits at an edge of
/// its grid (fewer than `margin` sizes beyond its lowest loss on one side), until every budget's minimum is interior
/// or a limit is hit (`--max-sizes` sizes per budget, the
/// smallest shape, `--max-epochs` over the unique data).
struct SweepExtender {
    var sweep: String
    var add: Int
    var margin: Int
    var maxSizes: Int
    var maxEpochs: Double
    /// How a size's seeds make one loss, as `gpt-plan fit --seed-average` (the same edges as the fit sees).
    var seedAverage: SeedAverage = .median

    func run() throws {
        var manifest: SweepManifest
        do { manifest = try InputFile.sweepManifest(sweep) } catch {
            throw CommandFailure.usage("gpt-plan sweep --extend: \(error)")
        }
        let manifestPath = (sweep as NSString).appendingPathComponent(SweepManifest.fileName)
        guard let settings = manifest.settings else {
            throw CommandFailure.usage("gpt-plan sweep --extend: \(manifestPath) has no \"settings\" (written before "
                                       + "--extend existed). Fix: rewrite it with the same gpt-plan sweep command and --force; "
                                       + "runs of the same sizes keep their results")
        }
        let data = settings.data.hasPrefix("/") ? settings.data : (sweep as NSString).appendingPathComponent(settings.data)
        let rule: AllocationRule
        if let named = AllocationRule.named(settings.fit, tokensPerParam: settings.tokensPerParam ?? 20) { rule = named } else {
            let path = settings.fit.hasPrefix("/") ? settings.fit : (sweep as NSString).appendingPathComponent(settings.fit)
            rule = .fit(try loadFitFile(path))
        }
        var cpu = thisMachineHardware(threads: CPU.count)
        if let rate = settings.deviceFlops {
            cpu.peakFlops = rate
            cpu.source += "; rate given"
        }
        let planner = SweepRunPlanner(directory: sweep, data: data, cpu: cpu, rule: rule,
                                      vocab: settings.vocab ?? preparedMeta(data)?.vocabSize ?? 50257,
                                      seqLen: settings.seqLen, tokenizer: settings.tokenizer,
                                      valFraction: settings.valFraction, seed: settings.seed,
                                      uniqueTokens: manifest.uniqueTokens, lrPerWidth: settings.lrPerWidth,
                                      seeds: settings.seeds ?? 1, minimumWidth: settings.minWidth ?? 32)
        let (finished, finishedNames, _) = try finishedObservations(sweep: sweep, manifest: manifest, average: seedAverage,
                                                                     command: "gpt-plan sweep --extend")
        // A budget with a run still to train is not extended: its minimum may yet move.
        let unfinished = Set(manifest.runs.filter { !finishedNames.contains($0.name) }.map(\.flops))
        var lines: [String] = [], added: [SweepManifest.Run] = [], notes: [String] = []
        var proposals = SweepExtension.proposals(finished, count: add, margin: margin, maxSizes: maxSizes)
        proposals.removeAll { unfinished.contains($0.flops) }
        for b in SweepExtension.brackets(finished, margin: margin) {
            if unfinished.contains(b.flops) {
                lines.append("C = \(sig(b.flops, 3)): runs not finished; train them first (gpt-train sweep \(sweep))")
            } else if let edge = b.edge {
                if b.sizes.count >= maxSizes {
                    lines.append("C = \(sig(b.flops, 3)): lowest loss at the \(edge.rawValue) size, N = \(si(b.bestParams, 3)); "
                                 + "limit: \(b.sizes.count) sizes (--max-sizes \(maxSizes)); not extended")
                }
            } else {
                lines.append("C = \(sig(b.flops, 3)): minimum interior (lowest loss at N = \(si(b.bestParams, 3)), "
                             + "\(b.sizes.count) sizes, at least \(margin) on each side)")
            }
        }
        var taken: [Double: Set<Int>] = [:]
        for r in manifest.runs { taken[r.flops, default: []].insert(Int(r.params)) }
        for p in proposals {
            let tokens = SweepRunPlanner.tokens(flops: p.flops, params: p.params)
            if let u = manifest.uniqueTokens, tokens / u > maxEpochs {
                lines.append("C = \(sig(p.flops, 3)): N ≈ \(si(p.params, 3)) would read the data \(sig(tokens / u, 3)) times; "
                             + "limit: --max-epochs \(sig(maxEpochs, 3)); not added")
                continue
            }
            var set = taken[p.flops] ?? []
            switch try planner.plan(flops: p.flops, params: p.params, taken: &set) {
            case .planned(let planned, let note):
                let run = planned[0]
                added += planned
                if let note { notes.append(note) }
                lines.append("C = \(sig(p.flops, 3)): lowest loss at the \(p.edge.rawValue) size; added N = \(si(run.params, 3)) "
                             + "(asked \(si(p.params, 3)))")
            case .belowSmallest(let text):
                lines.append(text + "; limit: the smallest shape")
            case .dropped(let text):
                lines.append(text)
            }
            taken[p.flops] = set
        }
        notes += repetitionNotes(added, uniqueTokens: manifest.uniqueTokens)
        if !added.isEmpty {
            manifest.runs += added
            manifest.notes += added.map { "added by --extend: \($0.name)" } + notes
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            do { try AtomicFile.write(String(decoding: try encoder.encode(manifest), as: UTF8.self) + "\n", to: manifestPath) }
            catch { throw CommandFailure("gpt-plan sweep --extend: \(error)", exitCode: 2) }
        }
        var out = "IsoFLOP sweep \(sweep): \(finished.count) finished runs over \(Set(finished.map(\.flops)).count) budgets\n"
        for line in lines { out += "  \(line)\n" }
        for note in notes { out += "  note: \(note)\n" }
        out += added.isEmpty
            ? "Nothing added: every budget's minimum is interior or at a limit.\n"
            : "Added \(added.count) run\(added.count == 1 ? "" : "s") to \(manifestPath); next: gpt-train sweep \(sweep), then "
                + "gpt-plan sweep --extend \(sweep) again\n"
        print(out, terminator: "")
    }
}

/// What `gpt-plan fit` adds to a sweep's finished runs before fitting: a warning when runs read their data more
/// than once (with `effective`, Approach 3 counts their effective tokens D' instead of D, Muennighoff et al. 2023,
/// eq. 5), and a warning for every budget whose lowest loss sits at an edge of its grid.
func prepareForFit(_ runs: [SweepObservation], manifest: SweepManifest, effective: Bool)
    -> (runs: [SweepObservation], notes: [String]) {
    var notes: [String] = [], out = runs
    if let u = manifest.uniqueTokens {
        let repeated = out.indices.filter { out[$0].tokens > u }
        if let most = repeated.max(by: { out[$0].tokens < out[$1].tokens }) {
            notes.append("warning: \(repeated.count) of \(out.count) runs read the \(si(u, 3)) unique training tokens more than "
                         + "once, up to \(sig(out[most].tokens / u, 3)) epochs (\(out[most].name)): their losses are those of less "
                         + "data than D. " + (effective
                            ? "Approach 3 counts their effective tokens D' (Muennighoff et al. 2023, eq. 5)"
                            : "gpt-plan fit --effective-tokens counts their effective tokens D' (Muennighoff et al. 2023, eq. 5)")
                         + ". Fix: a larger corpus or smaller budgets, so that no run passes one epoch")
        }
        if effective {
            for i in repeated { out[i].tokens = SweepRepetition.effectiveTokens(tokens: out[i].tokens, unique: u) }
        }
    }
    notes += SweepExtension.edgeNotes(runs).map { "warning: " + $0 }
    return (out, notes)
}

/// With `--max-epochs`, the note for a size whose run would read the unique data more often (nil when it may run).
func epochLimitNote(flops c: Double, params n: Double, unique: Double?, maxEpochs: Double?) throws -> String? {
    guard let limit = maxEpochs else { return nil }
    guard limit > 0, limit.isFinite else { throw CommandFailure.usage("gpt-plan sweep: --max-epochs \(limit): must be positive") }
    guard let u = unique else {
        throw CommandFailure.usage("gpt-plan sweep: --max-epochs needs the unique tokens: give --unique-tokens, or a --data "
                                   + "directory from gpt-data prepare")
    }
    let epochs = SweepRunPlanner.tokens(flops: c, params: n) / u
    guard epochs > limit else { return nil }
    return "C = \(sig(c, 3)), N ≈ \(si(n, 3)): dropped: it would read the \(si(u, 3)) unique training tokens \(sig(epochs, 3)) "
        + "times (--max-epochs \(sig(limit, 3)))"
}
