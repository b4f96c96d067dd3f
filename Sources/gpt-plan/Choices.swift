import ArgumentParser
import CLISupport
import Foundation
import Planner

/// `--gpu`: a GPU preset (`Hardware.gpuPresets`) or `cpu`, this machine as gpt-train runs on it. A name outside the
/// set is argument-parser's usage error listing every choice (exit status 2).
enum HardwareName: ExpressibleByArgument, Equatable {
    /// A preset's name, as `Hardware.preset(named:)` knows it.
    case preset(String)
    case cpu

    init?(argument: String) {
        if argument == "cpu" { self = .cpu }
        else if Hardware.preset(named: argument) != nil { self = .preset(argument) }
        else { return nil }
    }

    static var allValueStrings: [String] { Hardware.gpuPresets.map(\.name) + ["cpu"] }
    var defaultValueDescription: String { name }
    static var defaultCompletionKind: CompletionKind { .list(allValueStrings) }

    var name: String {
        switch self {
        case .preset(let name): return name
        case .cpu: return "cpu"
        }
    }

    /// The hardware: the preset, or this machine measured with `threads` threads.
    func hardware(thisMachine: () throws -> Hardware) rethrows -> Hardware {
        switch self {
        case .preset(let name): return Hardware.preset(named: name)!
        case .cpu: return try thisMachine()
        }
    }
}

/// `gpt-plan --gpu`: hardware, or `list` to print the presets.
enum HardwareChoice: ExpressibleByArgument, Equatable {
    case hardware(HardwareName)
    case list

    init?(argument: String) {
        if argument == "list" { self = .list }
        else if let name = HardwareName(argument: argument) { self = .hardware(name) }
        else { return nil }
    }

    static var allValueStrings: [String] { HardwareName.allValueStrings + ["list"] }
    var defaultValueDescription: String {
        switch self {
        case .hardware(let name): return name.name
        case .list: return "list"
        }
    }
    static var defaultCompletionKind: CompletionKind { .list(allValueStrings) }
}

/// `--fit`: a built-in allocation rule by name (`AllocationRule.names`), or a fit.json that `gpt-plan fit` wrote
/// (a path ending in .json, or any file that exists). Anything else is argument-parser's usage error listing the
/// names (exit status 2).
enum FitChoice: ExpressibleByArgument, Equatable {
    case named(String)
    case file(String)

    init?(argument: String) {
        if AllocationRule.named(argument) != nil { self = .named(argument) }
        else if argument.hasSuffix(".json") || FileManager.default.fileExists(atPath: argument) { self = .file(argument) }
        else { return nil }
    }

    /// The rule names, and the file a sweep's fit writes.
    static var allValueStrings: [String] { AllocationRule.names + ["SWEEP/fit.json"] }
    var defaultValueDescription: String { argument }
    static var defaultCompletionKind: CompletionKind { .file(extensions: ["json"]) }

    /// As given on the command line.
    var argument: String {
        switch self {
        case .named(let name), .file(let name): return name
        }
    }

    /// The rule: the named one (with `ratio` for tokens-per-param), or the law read from the file.
    func rule(tokensPerParam ratio: Double = 20) throws -> AllocationRule {
        switch self {
        case .named(let name): return AllocationRule.named(name, tokensPerParam: ratio)!
        case .file(let path): return .fit(try loadFitFile(path))
        }
    }
}

/// `gpt-plan estimate --gradient-bytes`: how wide a gradient is, naming the memory convention it selects.
enum GradientBytes: Int, CaseIterable, ExpressibleByArgument {
    /// bf16, the ZeRO paper's 2 + 2 + 12.
    case two = 2
    /// fp32, Megatron-LM's and EleutherAI's cookbook's 2 + 4 + 12.
    case four = 4

    /// Read as every whole-number flag is (`NumberArgument.whole`), then one of the two widths.
    init?(argument: String) {
        guard let bytes = try? NumberArgument.whole(2...4)(argument), let width = GradientBytes(rawValue: bytes) else {
            return nil
        }
        self = width
    }

    var conventions: MemoryConventions {
        switch self {
        case .two: return .zeroPaper
        case .four: return .fp32Gradients
        }
    }
}

/// The layout dimensions `gpt-plan` and `gpt-plan estimate` let the user fix; the others are searched. (The
/// tensor-parallel width is each command's own: the planner keeps it within a node of eight, estimate does not.)
struct FixedLayoutOptions: ParsableArguments {
    @Option(name: .customLong("zero-stage"), parsing: .unconditional, help: "Fix the ZeRO stage (0-3; 3 = FSDP).",
            transform: NumberArgument.whole(0...3))
    var zeroStage: Int?
    @Option(name: .customLong("pipeline-parallel"), parsing: .unconditional,
            help: "Fix the pipeline stages (1 to 1024, the most layers a recipe takes).",
            transform: NumberArgument.whole(PlanLimits.pipelineParallel))
    var pipelineParallel: Int?
    @Option(help: "Fix activation recomputation: none, selective or full.") var recompute: Recompute?
}

/// `--price-per-device-hour`, for the run's cost.
struct PriceOption: ParsableArguments {
    @Option(name: .customLong("price-per-device-hour"), parsing: .unconditional,
            help: "Price of a device hour, for the cost (0 to 1000000).",
            transform: NumberArgument.real(FlagRange(PlanLimits.pricePerDeviceHour)))
    var perDeviceHour: Double?
}
