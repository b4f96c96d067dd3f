import Foundation
import Recipe

/// The engines a recipe compiles to.
public enum Engine: String, CaseIterable, Sendable {
    /// Megatron-LM's `pretrain_gpt.py` under `torchrun`: tensor, pipeline and data parallelism, the distributed
    /// optimizer (ZeRO-1), selective and full recomputation.
    case megatron
    /// nanoGPT's `train.py` under `torchrun` (DDP).
    case nanogpt
    /// llm.c's `train_gpt2cu` under `mpirun`.
    case llmc

    public var displayName: String {
        switch self {
        case .megatron: return "Megatron-LM"
        case .nanogpt: return "nanoGPT"
        case .llmc: return "llm.c"
        }
    }

    /// The engine's configuration file in the export directory (a name users' scripts rely on).
    public var configurationFile: String {
        switch self {
        case .megatron, .llmc: return "train.sh"
        case .nanogpt: return "config.py"
        }
    }
}

/// What an engine cannot express: the recipe key, why, and what to change. An export never writes a configuration
/// that would silently train a different run.
public struct ExportRefusal: Error, Equatable, CustomStringConvertible {
    public var key: String
    public var message: String
    public var fix: String

    public init(key: String, _ message: String, fix: String) {
        self.key = key
        self.message = message
        self.fix = fix
    }

    public var description: String { "\(key): \(message). Fix: \(fix)" }
}

/// What the export knows about the recipe's tokenizer: everything when the data was read, only the kind when the
/// data was left out (`--no-data`) and is not there to read.
public struct TokenizerFacts: Sendable, Equatable {
    /// `data.tokenizer`: "char", "byte" or "bpe".
    public var kind: String
    /// The tokenizer's vocabulary (every id is below it), when known.
    public var vocabSize: Int?
    /// For a char tokenizer: its characters in id order, when known.
    public var characters: [Unicode.Scalar]?
    /// For a BPE tokenizer: the id of `<|endoftext|>` (its last id), when known.
    public var endOfText: Int?
    /// Whether the tokenizer's GPT-2 style vocab.json + merges.txt are written next to the data (BPE only).
    public var hasGPT2Files: Bool

    public init(kind: String, vocabSize: Int? = nil, characters: [Unicode.Scalar]? = nil, endOfText: Int? = nil,
                hasGPT2Files: Bool = false) {
        self.kind = kind
        self.vocabSize = vocabSize ?? (kind == "byte" ? 256 : nil)
        self.characters = characters
        self.endOfText = endOfText
        self.hasGPT2Files = hasGPT2Files
    }
}

/// Where the export goes and how the cluster is laid out.
public struct ExportSettings: Sendable {
    /// The export directory, absolute (configurations point at its data by absolute path).
    public var directory: String
    /// The recipe file, as given (for the README).
    public var recipePath: String
    /// GPUs per node: the torchrun / mpirun lines run `devices` processes as nodes × this.
    public var gpusPerNode: Int
    /// Whether the data is written under `directory/data`.
    public var includeData: Bool

    /// llm.c: a model file to start from (`-e FILE`, llm.c's gpt2_124M.bin format, e.g. from
    /// `gpt-train export CKPT --to llmc`) instead of a fresh GPT-2 descriptor model (`-e dL`).
    public var llmcModel: String?

    public init(directory: String, recipePath: String, gpusPerNode: Int = 8, includeData: Bool = true, llmcModel: String? = nil) {
        self.directory = directory
        self.recipePath = recipePath
        self.gpusPerNode = gpusPerNode
        self.includeData = includeData
        self.llmcModel = llmcModel
    }

    public var dataDirectory: String { (directory as NSString).appendingPathComponent("data") }
}

/// One engine's configuration of a recipe: the files to write (names relative to the export directory), where
/// every recipe key went, and what the engine does differently from gpt-train.
public struct EngineConfiguration: Sendable {
    public var engine: Engine
    /// The configuration (`train.sh` or `config.py`) and `README.md`, name → text.
    public var files: [(name: String, text: String)]
    /// The command that starts the run.
    public var launch: String
    /// Recipe key → where it went in the engine's configuration, or why it has no place there.
    public var destinations: [String: String]
    /// Differences between the engine and gpt-train, each with its effect on the run.
    public var differences: [String]
    /// Which data files the engine reads (under `data/`), for the README.
    public var dataFiles: [String]
}

/// The processes of a run: nodes × processes per node.
struct ProcessLayout: Equatable {
    var nodes: Int
    var perNode: Int

    init(devices: Int, gpusPerNode: Int) {
        if devices <= gpusPerNode {
            nodes = 1
            perNode = devices
        } else {
            nodes = devices / gpusPerNode
            perNode = gpusPerNode
        }
    }
}

/// Numbers as the engines' configurations spell them: integers plainly, others in Swift's shortest round-trip form
/// (which Python, bash's argument parsing and C's atof read back exactly).
func number(_ x: Double) -> String {
    if x == x.rounded(), abs(x) < 1e15 { return String(Int(x)) }
    return "\(x)"
}

extension Recipe {
    /// The fields whose value this recipe holds (those of optional sections only when the section is present).
    public var presentFields: [Field] {
        Schema.fields.filter { field in Schema.sections.first { $0.name == field.section }?.isPresent(in: self) ?? true }
    }
}
