import ArgumentParser
import CLISupport
import Compute
import Durable
import Foundation
import Metrics
import LinePlots
import Planner

/// `gpt-plan sweep`: an isoFLOP grid of recipes and its manifest.
struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Write an isoFLOP grid of recipes (sizes around the fit's optimum, D = C/6N) and a manifest.",
        discussion: """
        Example:
          gpt-plan sweep --flops 3e12,1e13,3e13 --sizes 5 --data data/shakespeare-char -o sweeps/shakespeare
          gpt-train sweep sweeps/shakespeare      # trains what has not finished
          gpt-plan fit sweeps/shakespeare         # fits the law, writes fit.json and isoflops.svg
        Sizes no shape can reach at a budget are dropped with a note.
        """)

    @Option(parsing: .unconditional, help: "Budgets in FLOPs, comma-separated (e.g. 3e12,1e13,3e13).",
            transform: NumberArgument.list(NumberArgument.real(.positive)))
    var flops: [Double]
    @Option(parsing: .unconditional, help: "Model sizes per budget, spread evenly in log N, 1 to 50 (default: 5).",
            transform: NumberArgument.whole(1...50))
    var sizes: Int = 5
    @Option(parsing: .unconditional, help: "The largest size is the optimum × span, the smallest ÷ span, 1 to 1000 (default: 4).",
            transform: NumberArgument.real(FlagRange(1...1000)))
    var span: Double = 4
    @Option(help: "The allocation rule whose optimum the sizes surround: epoch, hoffmann, or a fit.json.")
    var fit: String = "epoch"
    @Option(help: "The data (a directory from gpt-data prepare, or a text file).") var data: String = "data"
    @Option(name: [.short, .customLong("output")], help: "The sweep directory to write.") var output: String
    @Option(parsing: .unconditional, help: "Tokenizer vocabulary, 2 to 16777216 (default: the prepared --data's).",
            transform: NumberArgument.whole(PlanLimits.vocab))
    var vocab: Int?
    @Option(name: .customLong("seq-len"), parsing: .unconditional, help: "Context length, 1 to 1048576 (default: the planner's).",
            transform: NumberArgument.whole(PlanLimits.seqLen))
    var seqLen: Int?
    @Option(help: "char, byte or bpe (default: the prepared --data's).") var tokenizer: String?
    @Option(name: .customLong("device-flops"), parsing: .unconditional,
            help: "This machine's FLOP/s for the time estimates, 1e6 to 1e18 (default: measured).",
            transform: NumberArgument.real(FlagRange(PlanLimits.deviceFlops)))
    var deviceFlops: Double?
    @Option(parsing: .unconditional, help: "Seed of every run, 0 or more (default: 1337).", transform: NumberArgument.whole(0...Int.max))
    var seed: Int = 1337
    @Flag(help: "Rewrite a sweep directory that already has a manifest.") var force = false

    mutating func run() throws {
        let budgets = flops
        let manifestPath = (output as NSString).appendingPathComponent(SweepManifest.fileName)
        if FileManager.default.fileExists(atPath: manifestPath), !force {
            throw CommandFailure.usage("gpt-plan sweep: \(manifestPath) exists; its runs may have started. Fix: give another "
                                       + "-o, or --force to rewrite its recipes")
        }
        let rule: AllocationRule
        if let named = AllocationRule.named(fit) { rule = named } else { rule = .fit(try loadFitFile(fit)) }
        let prepared = preparedMeta(data)
        // This machine, as gpt-plan plans for it (the same precision rule), at the given rate if there is one.
        let rate = deviceFlops
        var cpu = thisMachineHardware(threads: CPU.count)
        if let rate {
            cpu.peakFlops = rate
            cpu.source += "; rate given"
        }

        var runs: [SweepManifest.Run] = [], notes: [String] = []
        for c in budgets {
            let optimum = rule.allocation(flops: c).params
            var shapes = Set<String>()
            for n in IsoFLOPDesign.sizes(optimum: optimum, count: sizes, span: span) {
                var request = PlanRequest(target: .flops(c), hardware: .given(cpu))
                request.rule = rule
                request.devices = .fixed(1)
                request.vocabSize = vocab ?? prepared?.vocabSize ?? 50257
                request.seqLen = seqLen
                request.isoFLOPParams = n
                let plan: Plan
                do { plan = try Plan.make(request) } catch let error as PlanError {
                    notes.append("C = \(sig(c, 3)), N ≈ \(si(n, 3)): dropped: \(PlanText.error(error))")
                    continue
                }
                let s = plan.shape
                guard shapes.insert("\(s.nLayer)x\(s.dModel)x\(s.seqLen)").inserted else {
                    notes.append("C = \(sig(c, 3)), N ≈ \(si(n, 3)): dropped: the nearest shape (\(s.nLayer) layers, d_model "
                                 + "\(s.dModel)) is already in the sweep")
                    continue
                }
                let name = "c\(sig(c, 3).replacingOccurrences(of: "+", with: ""))-n\(plan.params)"
                let recipe = "recipes/\(name).toml"
                try writeRecipeFile(plan, to: (output as NSString).appendingPathComponent(recipe), data: data,
                                    tokenizer: tokenizer, valFraction: prepared?.valFraction ?? 0.1, seed: seed)
                runs.append(.init(name: name, flops: c, targetParams: n, params: Double(plan.params),
                                  tokens: plan.schedule.trainedTokens, steps: plan.steps, recipe: recipe,
                                  run: "runs/\(name)"))
            }
        }
        guard !runs.isEmpty else {
            throw CommandFailure.usage("gpt-plan sweep: no size at any budget has a shape:\n  " + notes.joined(separator: "\n  "))
        }
        let manifest = SweepManifest(fit: rule.name, budgets: budgets, sizesPerBudget: sizes, span: span, runs: runs,
                                     notes: notes)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do { try AtomicFile.write(String(decoding: try encoder.encode(manifest), as: UTF8.self) + "\n", to: manifestPath) }
        catch { throw CommandFailure("gpt-plan sweep: \(error)", exitCode: 2) }

        var out = "IsoFLOP sweep: \(runs.count) runs over \(budgets.count) budget\(budgets.count == 1 ? "" : "s") "
            + "(sizes ×1/\(sig(span, 3))…×\(sig(span, 3)) around the \(rule.name) optimum, D = C/6N)\n\n"
        out += "  " + ["run", "C", "N", "D", "D/N", "steps"].enumerated()
            .map { $1.padding(toLength: $0 == 0 ? 24 : 10, withPad: " ", startingAt: 0) }.joined() + "\n"
        var seconds = 0.0
        for r in runs {
            out += "  " + [r.name, sig(r.flops, 3), si(r.params, 3), si(r.tokens, 3), sig(r.tokens / r.params, 3), "\(r.steps)"]
                .enumerated().map { $1.padding(toLength: $0 == 0 ? 24 : 10, withPad: " ", startingAt: 0) }.joined() + "\n"
            seconds += r.flops / (cpu.peakFlops * 0.3)
        }
        for note in notes { out += "  note: \(note)\n" }
        out += "\nWrote \(manifestPath). About \(duration(seconds)) of training at 30% of \(flopRate(cpu.peakFlops)) (\(cpu.products.precision.rawValue)); "
            + "next: gpt-train sweep \(output)\n"
        print(out, terminator: "")
    }
}

/// `gpt-plan fit`: Approaches 2 and 3 on a finished sweep.
struct FitSweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fit",
        abstract: "Fit scaling laws to a sweep's final validation losses; write fit.json and isoflops.svg.",
        discussion: "Plan with the result: gpt-plan --fit SWEEP/fit.json --flops 1e15")

    @Argument(help: "The sweep directory (from gpt-plan sweep).") var sweep: String
    @Option(parsing: .unconditional, help: "Bootstrap resamples for the intervals, 0 to 100000 (default: 200).",
            transform: NumberArgument.whole(0...100_000))
    var samples: Int = 200
    @Option(parsing: .unconditional, help: "Seed of the bootstrap, 0 to 2^64 - 1 (default: 1).", transform: NumberArgument.whole(0...UInt64.max))
    var seed: UInt64 = 1

    mutating func run() throws {
        let manifest: SweepManifest
        do { manifest = try InputFile.sweepManifest(sweep) } catch {
            throw CommandFailure.usage("gpt-plan fit: \(error)")
        }
        let manifestPath = (sweep as NSString).appendingPathComponent(SweepManifest.fileName)
        var observations: [SweepObservation] = [], notes: [String] = []
        for run in manifest.runs {
            let metrics = ((sweep as NSString).appendingPathComponent(run.run) as NSString).appendingPathComponent("metrics.jsonl")
            let text: String?
            do { text = try InputFile.metricsText(metrics) } catch {
                throw CommandFailure("gpt-plan fit: \(error.message)", exitCode: 1)
            }
            let file: MetricsFile?
            do { file = try text.map { try MetricsFile(path: metrics, text: $0) } } catch {
                throw CommandFailure("gpt-plan fit: \(error). Fix: train the run again (gpt-train sweep \(sweep))", exitCode: 1)
            }
            guard let loss = file?.validationLoss(atStep: run.steps) else {
                notes.append("\(run.name): no val_loss at its last step \(run.steps) in \(metrics) (not finished); left out")
                continue
            }
            observations.append(SweepObservation(name: run.name, flops: run.flops, params: run.params, tokens: run.tokens,
                                                 loss: loss))
        }
        var file: ScalingLawFitFile
        do { file = try LawFitting.fit(observations, sweep: sweep, samples: samples, seed: seed) } catch let e as LawFitError {
            switch e {
            case .tooFewRuns(let runs, let budgets):
                throw CommandFailure.usage("gpt-plan fit: \(runs) finished run(s) over \(budgets) budget(s); Approach 3 needs at "
                                           + "least 5 runs over 2 budgets. Fix: finish the sweep with gpt-train sweep \(sweep)"
                                           + (notes.isEmpty ? "" : "\n  " + notes.joined(separator: "\n  ")))
            case .invalidObservation(let name):
                throw CommandFailure.usage("gpt-plan fit: run \(name): its size, tokens or loss is not a positive number")
            case .observationOutOfRange(let name, let field, let value, let range):
                throw CommandFailure("gpt-plan fit: run \(name) in \(manifestPath): its \(field) \(sig(value, 4)) is out of "
                                     + "range (\(sig(range.lowerBound, 3)) to \(sig(range.upperBound, 3))). Fix: correct or remove "
                                     + "the run in the manifest, or its metrics.jsonl", exitCode: 1)
            case .duplicateObservation(let name, let first):
                throw CommandFailure("gpt-plan fit: runs \(first) and \(name) in \(manifestPath) have the same size and token "
                                     + "count: the point would count twice. Fix: remove one of them from the manifest", exitCode: 1)
            case .constantLoss(let loss):
                throw CommandFailure("gpt-plan fit: every run of \(sweep) ends at the same validation loss, \(sig(loss, 6)): there is "
                                     + "nothing to fit (the runs did not learn, or their metrics.jsonl are copies). Fix: check the "
                                     + "runs with gpt-train plot, and train them again", exitCode: 1)
            }
        }
        file.notes = notes + file.notes
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let fitPath = (sweep as NSString).appendingPathComponent("fit.json")
        let svgPath = (sweep as NSString).appendingPathComponent("isoflops.svg")
        do {
            try AtomicFile.write(String(decoding: try encoder.encode(file), as: UTF8.self) + "\n", to: fitPath)
            try AtomicFile.write(FitFigure.figure(file).svg(), to: svgPath)
        } catch { throw CommandFailure("gpt-plan fit: \(error)", exitCode: 2) }
        print(FitFigure.summary(file) + "\nWrote \(fitPath) and \(svgPath); plan with gpt-plan --fit \(fitPath) --flops C\n",
              terminator: "")
    }
}

enum FitFigure {
    /// The fitted constants next to Chinchilla's and Epoch's.
    static func summary(_ f: ScalingLawFitFile) -> String {
        let p = f.approach3, law = p.law
        func range(_ v: [Double]) -> String { v.count == 2 ? "[\(sig(v[0], 3)), \(sig(v[1], 3))]" : "n/a" }
        var out = "Scaling-law fit of \(f.runs.count) runs (\(Set(f.runs.map(\.flops)).count) budgets)\n\n"
        out += "  Approach 3: L = \(sig(p.E, 4)) + \(sig(p.A, 4))/N^\(sig(p.alpha, 3)) + \(sig(p.B, 4))/D^\(sig(p.beta, 3)) "
            + "(Huber δ = \(LawFitting.huberDelta), \(LawFitting.startGrid.count) starts)\n"
        out += "    N_opt ∝ C^\(sig(law.a, 3)) \(range(f.intervals.a)), D_opt ∝ C^\(sig(law.b, 3)) \(range(f.intervals.b)) "
            + "(\(Int(f.intervals.level * 100))% bootstrap intervals, \(f.intervals.samples) resamples)\n"
        if let a2 = f.approach2 {
            out += "  Approach 2: N_opt ∝ C^\(sig(a2.a, 3)), D_opt ∝ C^\(sig(a2.b, 3)) from \(a2.budgets.count) parabolas\n"
            for b in a2.budgets {
                out += "    C = \(sig(b.flops, 3)): N_opt = \(si(b.optimalParams, 3)), D_opt = \(si(b.optimalTokens, 3)), "
                    + "loss \(sig(b.minimumLoss, 4)) (\(b.runs) runs)\n"
            }
        }
        out += "  For comparison: Chinchilla (Hoffmann et al. 2022) a = \(sig(ChinchillaFit.hoffmann.a, 3)), b = "
            + "\(sig(ChinchillaFit.hoffmann.b, 3)); Epoch (Besiroglu et al. 2024) a = \(sig(ChinchillaFit.epoch.a, 3)), b = "
            + "\(sig(ChinchillaFit.epoch.b, 3))\n"
        let i = f.intervals
        if p.alpha >= 2.999 || p.beta >= 2.999 || (i.a.count == 2 && i.a[1] - i.a[0] > 0.3) {
            out += "  warning: this sweep does not pin Approach 3 down (an exponent at its bound of 3, or an interval of a "
                + "wider than 0.3); plans from fit.json extrapolate an unidentified law. Add budgets and sizes on both "
                + "sides of each minimum\n"
        }
        for note in f.notes { out += "  note: \(note)\n" }
        return out
    }

    /// Left: each budget's losses against log10 N with its parabola, and the frontier through the minima.
    /// Right: N_opt against log10 C, from Approach 2 and Approach 3.
    static func figure(_ f: ScalingLawFitFile) -> Figure {
        var left: [Series] = [], right: [Series] = []
        let budgets = Set(f.runs.map(\.flops)).sorted()
        for (i, c) in budgets.enumerated() {
            let group = f.runs.filter { $0.flops == c }.sorted { $0.params < $1.params }
            left.append(Series(label: "C = \(sig(c, 3)) (runs)", color: Palette.color(i),
                               points: group.map { (log10($0.params), $0.loss) }))
            if let b = f.approach2?.budgets.first(where: { $0.flops == c }), let lo = group.first, let hi = group.last {
                let x0 = log(lo.params), x1 = log(hi.params), q = b.parabola
                let points = (0...40).map { k -> (x: Double, y: Double) in
                    let x = x0 + (x1 - x0) * Double(k) / 40
                    return (x / log(10), q[0] + q[1] * x + q[2] * x * x)
                }
                left.append(Series(label: "C = \(sig(c, 3)) (parabola)", color: Palette.color(i), points: points))
            }
        }
        if let a2 = f.approach2 {
            left.append(Series(label: "frontier (Approach 2 minima)", color: "#000000",
                               points: a2.budgets.map { (log10($0.optimalParams), $0.minimumLoss) }))
            right.append(Series(label: "Approach 2 parabola minima", color: Palette.color(0),
                                points: a2.budgets.map { (log10($0.flops), $0.optimalParams) }))
            let cs = a2.budgets.map(\.flops)
            right.append(Series(label: "Approach 2 power law", color: Palette.color(2),
                                points: [cs.min()!, cs.max()!].map { (log10($0), a2.kN * pow($0, a2.a)) }))
        }
        let law = f.approach3.law
        if let lo = budgets.first, let hi = budgets.last {
            let points = (0...20).map { k -> (x: Double, y: Double) in
                let lc = log10(lo) + (log10(hi) - log10(lo)) * Double(k) / 20
                return (lc, law.optimalAllocation(flops: pow(10, lc)).params)
            }
            right.append(Series(label: "Approach 3 N_opt", color: Palette.color(3), points: points))
        }
        return Figure(panels: [
            Panel(title: "IsoFLOP curves", xLabel: "log10 N (parameters)", yLabel: "final validation loss (nats/token)",
                  series: left, markers: []),
            Panel(title: "Compute-optimal N", xLabel: "log10 C (FLOPs)", yLabel: "N_opt", yScale: .log, series: right,
                  markers: []),
        ], columns: 2, sharedX: false)
    }
}
