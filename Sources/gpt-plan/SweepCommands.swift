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
        After training, bracket every minimum (repeat until it says nothing was added):
          gpt-plan sweep --extend sweeps/shakespeare && gpt-train sweep sweeps/shakespeare
        """)

    @Option(parsing: .unconditional, help: "Budgets in FLOPs, comma-separated (e.g. 3e12,1e13,3e13).",
            transform: NumberArgument.list(NumberArgument.real(.positive)))
    var flops: [Double]?
    @Option(parsing: .unconditional, help: "Model sizes per budget, spread evenly in log N, 1 to 50 (default: 5).",
            transform: NumberArgument.whole(1...50))
    var sizes: Int = 5
    @Option(parsing: .unconditional, help: "The largest size is the optimum × span, the smallest ÷ span, 1 to 1000 (default: 4).",
            transform: NumberArgument.real(FlagRange(1...1000)))
    var span: Double = 4
    @Option(help: "The allocation rule whose optimum the sizes surround: epoch, hoffmann, or a fit.json.")
    var fit: FitChoice = .named("epoch")
    @Option(help: "The data (a directory from gpt-data prepare, or a text file).") var data: String = "data"
    @Option(name: [.short, .customLong("output")], help: "The sweep directory to write.") var output: String?
    @Option(parsing: .unconditional, help: "Tokenizer vocabulary, 2 to 16777216 (default: the prepared --data's).",
            transform: NumberArgument.whole(PlanLimits.vocab))
    var vocab: Int?
    @Option(name: .customLong("seq-len"), parsing: .unconditional, help: "Context length, 1 to 1048576 (default: the planner's).",
            transform: NumberArgument.whole(PlanLimits.seqLen))
    var seqLen: Int?
    @Option(help: "char, byte or bpe (default: the prepared --data's).") var tokenizer: TokenizerName?
    @Option(name: .customLong("device-flops"), parsing: .unconditional,
            help: "This machine's FLOP/s for the time estimates, 1e6 to 1e18 (default: measured).",
            transform: NumberArgument.real(FlagRange(PlanLimits.deviceFlops)))
    var deviceFlops: Double?
    @Option(parsing: .unconditional, help: "Seed of every run, 0 or more (default: 1337).", transform: NumberArgument.whole(0...Int.max))
    var seed: Int = 1337
    @Flag(help: "Rewrite a sweep directory that already has a manifest.") var force = false
    @Option(name: .customLong("lr-per-width"), parsing: .unconditional,
            help: "Every run's peak learning rate k/d_model (μP-style width scaling, Yang et al. 2022), k in (0, 1000]; default: the planner's rule, one rate per budget.",
            transform: NumberArgument.real(FlagRange(0, included: false, 1000)))
    var lrPerWidth: Double?
    @Option(name: .customLong("tokens-per-param"), parsing: .unconditional,
            help: "With --fit tokens-per-param: the sizes surround N = sqrt(C/(6r)), D = r·N; 0.01 to 1e6 (default: 20).",
            transform: NumberArgument.real(FlagRange(0.01...1e6)))
    var tokensPerParam: Double?
    @Option(parsing: .unconditional,
            help: "Seeds each size is trained with, 1 to 16 (default: 1): --seed, --seed + 1, …; gpt-plan fit averages their losses.",
            transform: NumberArgument.whole(1...16))
    var seeds: Int = 1
    @Option(name: .customLong("min-width"), parsing: .unconditional,
            help: "The narrowest d_model the shape search may take, \(ShapeSearch.smallestFineWidth) to 32 (default: 32): below 32, one-layer models of a few thousand parameters for sweeps of small budgets.",
            transform: NumberArgument.whole(ShapeSearch.smallestFineWidth...32))
    var minWidth: Int?
    @Option(name: .customLong("unique-tokens"), parsing: .unconditional,
            help: "Unique training tokens of the data (default: the prepared --data's training split); runs past one epoch are noted.",
            transform: NumberArgument.real(.positive))
    var uniqueTokens: Double?
    @Option(help: "Extend the sweep in this directory: add sizes beyond each budget whose lowest loss is at an edge of its grid.")
    var extend: String?
    @Option(parsing: .unconditional, help: "With --extend: sizes added beyond an edge per round, 1 to 20 (default: 2).",
            transform: NumberArgument.whole(1...20))
    var add: Int = 2
    @Option(parsing: .unconditional, help: "With --extend: sizes wanted on each side of a budget's lowest loss, 1 to 10 (default: 2).",
            transform: NumberArgument.whole(1...10))
    var margin: Int = 2
    @Option(name: .customLong("max-sizes"), parsing: .unconditional, help: "With --extend: the most sizes a budget gets, 1 to 50 (default: 12).",
            transform: NumberArgument.whole(1...50))
    var maxSizes: Int = 12
    @Option(name: .customLong("max-epochs"), parsing: .unconditional,
            help: "Leave out sizes that would read the unique data more often, positive (with --extend: default 1).",
            transform: NumberArgument.real(.positive))
    var maxEpochs: Double?
    @Option(name: .customLong("seed-average"),
            help: "With --extend: how a size's seeds make one loss, median or mean (default: median), as gpt-plan fit --seed-average.")
    var seedAverage: SeedAverage?

    mutating func run() throws {
        if let extend {
            guard minWidth == nil else {
                throw CommandFailure.usage("gpt-plan sweep --extend \(extend): the narrowest width is the sweep's (min_width in its "
                                           + "manifest); give no --min-width")
            }
            guard self.flops == nil, self.output == nil else {
                throw CommandFailure.usage("gpt-plan sweep --extend \(extend): the budgets and directory are the sweep's; "
                                           + "give no --flops or -o")
            }
            return try SweepExtender(sweep: extend, add: add, margin: margin, maxSizes: maxSizes, maxEpochs: maxEpochs ?? 1,
                                 seedAverage: seedAverage ?? .median).run()
        }
        guard let flops, let output else {
            throw CommandFailure.usage("gpt-plan sweep: give --flops and -o (a new sweep), or --extend SWEEP")
        }
        guard seedAverage == nil else {
            throw CommandFailure.usage("gpt-plan sweep: --seed-average is for --extend (and gpt-plan fit); a new sweep has no losses yet")
        }
        let minWidth = self.minWidth ?? 32
        let budgets = flops
        let manifestPath = (output as NSString).appendingPathComponent(SweepManifest.fileName)
        if FileManager.default.fileExists(atPath: manifestPath), !force {
            throw CommandFailure.usage("gpt-plan sweep: \(manifestPath) exists; its runs may have started. Fix: give another "
                                       + "-o, or --force to rewrite its recipes")
        }
        if tokensPerParam != nil, fit != .named("tokens-per-param") {
            throw CommandFailure.usage("gpt-plan sweep: --tokens-per-param sets the optimum of --fit tokens-per-param; give both")
        }
        let rule = try fit.rule(tokensPerParam: tokensPerParam ?? 20)
        let prepared = preparedMeta(data)
        // This machine, as gpt-plan plans for it (the same precision rule), at the given rate if there is one.
        let rate = deviceFlops
        var cpu = thisMachineHardware(threads: CPU.count)
        if let rate {
            cpu.peakFlops = rate
            cpu.source += "; rate given"
        }

        let unique = uniqueTokens ?? prepared.map { Double($0.trainTokens) }
        let planner = SweepRunPlanner(directory: output, data: data, cpu: cpu, rule: rule,
                                      vocab: vocab ?? prepared?.vocabSize ?? 50257, seqLen: seqLen, tokenizer: tokenizer?.rawValue,
                                      valFraction: prepared?.valFraction ?? 0.1, seed: seed, uniqueTokens: unique,
                                      lrPerWidth: lrPerWidth, seeds: seeds, minimumWidth: minWidth)
        var runs: [SweepManifest.Run] = [], notes: [String] = []
        for c in budgets {
            let optimum = rule.allocation(flops: c).params
            var taken = Set<Int>()
            for n in IsoFLOPDesign.sizes(optimum: optimum, count: sizes, span: span) {
                if let note = try epochLimitNote(flops: c, params: n, unique: unique, maxEpochs: maxEpochs) {
                    notes.append(note)
                    continue
                }
                switch try planner.plan(flops: c, params: n, taken: &taken) {
                case .planned(let planned, let note):
                    runs += planned
                    if let note { notes.append(note) }
                case .dropped(let note), .belowSmallest(let note): notes.append(note)
                }
            }
        }
        notes += repetitionNotes(runs, uniqueTokens: unique)
        guard !runs.isEmpty else {
            throw CommandFailure.usage("gpt-plan sweep: no size at any budget has a shape:\n  " + notes.joined(separator: "\n  "))
        }
        var manifest = SweepManifest(fit: rule.name, budgets: budgets, sizesPerBudget: sizes, span: span, runs: runs,
                                     notes: notes)
        manifest.uniqueTokens = unique
        manifest.settings = .init(data: relativePath(of: data, from: output), vocab: vocab, seqLen: seqLen,
                                  tokenizer: tokenizer?.rawValue, valFraction: prepared?.valFraction ?? 0.1, seed: seed,
                                  deviceFlops: rate,
                                  fit: {
                                      switch fit {
                                      case .named(let name): return name
                                      case .file(let path): return relativePath(of: path, from: output)
                                      }
                                  }())
        manifest.settings?.lrPerWidth = lrPerWidth
        manifest.settings?.tokensPerParam = tokensPerParam
        manifest.settings?.seeds = seeds > 1 ? seeds : nil
        manifest.settings?.minWidth = minWidth < 32 ? minWidth : nil
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
    @Option(parsing: .unconditional, help: "The budget the figure extrapolates to, in FLOPs (default: 4× the largest budget).",
            transform: NumberArgument.real(.positive))
    var target: Double?
    @Flag(name: .customLong("effective-tokens"),
          help: "Count a run past one epoch at its effective tokens D' (Muennighoff et al. 2023) in Approach 3.")
    var effectiveTokens = false
    @Option(name: .customLong("seed-average"),
            help: "How a size's seeds make one loss: median or mean (default: median, the mean of one or two seeds); the median keeps one stalled seed of three from moving it.")
    var seedAverage: SeedAverage = .median

    mutating func run() throws {
        let manifest: SweepManifest
        do { manifest = try InputFile.sweepManifest(sweep) } catch {
            throw CommandFailure.usage("gpt-plan fit: \(error)")
        }
        let manifestPath = (sweep as NSString).appendingPathComponent(SweepManifest.fileName)
        var (observations, _, notes) = try finishedObservations(sweep: sweep, manifest: manifest, average: seedAverage,
                                                                command: "gpt-plan fit")
        let prepared = prepareForFit(observations, manifest: manifest, effective: effectiveTokens)
        (observations, notes) = (prepared.runs, notes + prepared.notes)
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
            try AtomicFile.write(FitFigure.figure(file, target: target).svg(), to: svgPath)
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
        out += approach2Interval(f)
        out += "  For comparison: Chinchilla (Hoffmann et al. 2022) a = \(sig(ChinchillaFit.hoffmann.a, 3)), b = "
            + "\(sig(ChinchillaFit.hoffmann.b, 3)); Epoch (Besiroglu et al. 2024) a = \(sig(ChinchillaFit.epoch.a, 3)), b = "
            + "\(sig(ChinchillaFit.epoch.b, 3)); Kaplan et al. (2020) a = 0.73\n"
        if let t = f.backtest {
            out += "  Backtest: Approach 3 fitted to the \(t.fittedRuns) runs up to \(sig(t.fittedUpTo, 3)) FLOPs predicts the "
                + "\(t.checkedRuns) runs at \(sig(t.checkedAt, 3)) (\(sig(t.factor, 3))× beyond) with a median error of "
                + "\(sig(t.medianError, 2)) (measured − predicted): the bias of extrapolating the law, which the bootstrap does not "
                + "show; gpt-plan --fit adds it, scaled by log distance, to its predictions beyond the sweep\n"
        }
        let i = f.intervals
        if p.alpha >= 2.999 || p.beta >= 2.999 || (i.a.count == 2 && i.a[1] - i.a[0] > 0.3) {
            out += "  warning: this sweep does not pin Approach 3 down (an exponent at its bound of 3, or an interval of a "
                + "wider than 0.3); plans from fit.json extrapolate an unidentified law. Add budgets and sizes on both "
                + "sides of each minimum\n"
        }
        for note in f.notes { out += "  note: \(note)\n" }
        return out
    }
}
