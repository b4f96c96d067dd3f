#if canImport(Glibc)
import Glibc
#endif
import Corpus
import Durable
import Foundation
import Recipe
import Tokenizers

/// The README.md of an export: how to launch, what it needs, where every recipe key went, and what the engine does
/// differently from gpt-train.
enum ExportReadme {
    static func text(recipe r: Recipe, engine: Engine, settings: ExportSettings, launch: [String], requirements: String,
                     destinations: [String: String], differences: [String], dataFiles: [String], notes: [String]) -> String {
        var out = """
            # \(settings.recipePath) for \(engine.displayName)

            Written by `gpt-plan export \(settings.recipePath) --to \(engine.rawValue) -o \(settings.directory)\(settings.includeData ? "" : " --no-data")`. \
            The configuration is `\(engine.configurationFile)`; the data, in \(engine.displayName)'s format, are in `data/`.

            ## Launch

            Needs \(requirements)

            ```
            \(launch.joined(separator: "\n"))
            ```


            """
        out += "## Data\n\n"
        if !settings.includeData { out += "Not written (`--no-data`): put these files there before launching.\n\n" }
        out += "The recipe's [data] split as gpt-train splits it (the same training and validation tokens).\n\n"
        for line in dataFiles { out += "- \(line)\n" }
        out += "\n"
        for note in notes { out += note + "\n\n" }
        out += "## Every recipe key\n\n| recipe key | value | in \(engine.displayName) |\n|---|---|---|\n"
        for field in r.presentFields {
            let key = field.path
            let destination = destinations[key] ?? defaultDestination(key, engine)
            out += "| `\(key)` | \(field.value(in: r).description.replacingOccurrences(of: "|", with: "\\|")) | \(destination.replacingOccurrences(of: "|", with: "\\|")) |\n"
        }
        out += "\n## What \(engine.displayName) does differently from gpt-train\n\n"
        for difference in differences { out += "- \(difference)\n" }
        return out
    }

    static func defaultDestination(_ key: String, _ engine: Engine) -> String {
        if key == "schema_version" { return "the recipe format: nothing to configure" }
        if key.hasPrefix("plan.") { return "information only: what the planner decided" }
        if key.hasPrefix("hardware.") { return "planning only: gpt-plan's memory and time estimates for this device" }
        if key.hasPrefix("stability.") { return "not expressed: \(engine.displayName) has no loss-spike detection and recovery like gpt-train's" }
        if key == "logging.health_interval" { return "not expressed: gpt-train's health lines" }
        switch key {
        case "model.family": return "GPT-2 blocks: \(engine.displayName)'s GPT model (the export refuses any other family)"
        case "model.n_kv_head": return "multi-head attention: every head has its own keys and values, as in GPT-2"
        case "model.rope_theta": return "not used: GPT-2 blocks have learned positions, no rotary embedding"
        case "model.norm_eps": return "LayerNorm ε = 1e-5, \(engine.displayName)'s default (the recipe's)"
        case "model.tie_embeddings": return "the output head is the token embedding, \(engine.displayName)'s default"
        default: break
        }
        return "not expressed"
    }
}

/// What an export wrote.
public struct ExportResult: Sendable {
    public var configuration: EngineConfiguration
    /// Files written, relative to the export directory, in the order written.
    public var files: [String]
    /// The data that went out (nil with `--no-data`).
    public var dataSummary: String?
    /// Why the data did not go out although it was asked for (the recipe's data.path does not exist), with the fix.
    public var missingData: String?
}

/// Compiles a recipe for an engine and writes the export directory: the data first (each file written under a
/// temporary name, fsynced and renamed), then the configuration and README.md.
public enum EngineExporter {
    /// The configuration alone (no files written): for tests, and for the refusals.
    public static func compile(_ recipe: Recipe, for engine: Engine, settings: ExportSettings, tokenizer: TokenizerFacts) throws -> EngineConfiguration {
        try refuseOtherBlocks(recipe, engine)
        switch engine {
        case .megatron: return try MegatronCompiler.compile(recipe, settings, tokenizer)
        case .nanogpt: return try NanoGPTCompiler.compile(recipe, settings, tokenizer)
        case .llmc: return try LLMCCompiler.compile(recipe, settings, tokenizer)
        }
    }

    /// The export writes GPT-2 blocks (learned positions, LayerNorm with ε = 1e-5, GELU, multi-head attention, tied
    /// head) for every engine: a recipe of another block design is refused, never exported as GPT-2.
    static func refuseOtherBlocks(_ r: Recipe, _ engine: Engine) throws {
        let m = r.model
        if m.family != .gpt2 {
            throw ExportRefusal(key: "model.family", "the export to \(engine.displayName) writes GPT-2 blocks; the recipe's model is \"\(m.family.rawValue)\" (RMSNorm, rotary positions, SwiGLU, grouped-query attention)",
                                fix: "set model.family = \"gpt2\", or configure the Llama-style run in the engine by hand from gpt-plan estimate's layout")
        }
        if !m.tieEmbeddings {
            throw ExportRefusal(key: "model.tie_embeddings", "the export to \(engine.displayName) ties the output head to the token embedding, as GPT-2 does",
                                fix: "set model.tie_embeddings = true")
        }
        if m.normEps != 1e-5 {
            throw ExportRefusal(key: "model.norm_eps", "\(engine.displayName)'s GPT-2 LayerNorm uses ε = 1e-5, not \(m.normEps)",
                                fix: "set model.norm_eps = 1e-5")
        }
    }

    /// Exports `recipe` (whose relative `data.path` is relative to `recipeDirectory`).
    /// - Throws: `ExportRefusal` naming the recipe key and the fix; file errors naming the file.
    public static func export(_ recipe: Recipe, recipeDirectory: String, to engine: Engine, settings: ExportSettings) throws -> ExportResult {
        let dataPath = recipe.data.path.hasPrefix("/")
            ? recipe.data.path
            : URL(fileURLWithPath: recipeDirectory).appendingPathComponent(recipe.data.path).standardized.path
        var split: DataSplit?
        // A recipe planned before its data exists (data.path is the planner's placeholder) still compiles: the
        // configuration is written, and the caller is told the data is not there and how to add it.
        let dataExists = FileManager.default.fileExists(atPath: dataPath)
        let missingData = settings.includeData && !dataExists
            ? "data.path: \(dataPath) does not exist, so \(settings.dataDirectory) was not written (the configuration reads the "
                + "data from there). Fix: prepare the data there (gpt-data prepare TEXT -o \(dataPath)) and export again, "
                + "or pass --no-data when the data will be put in place by other means"
            : nil
        if dataExists {
            do {
                split = try DataSplit.load(dataPath, tokenizer: recipe.data.tokenizer, valFraction: recipe.data.valFraction)
            } catch let error as DataSplitError {
                throw ExportRefusal(key: error.key, error.message,
                                    fix: error.fix + (settings.includeData ? " (or export without the data: --no-data)" : ""))
            }
        }
        var facts = TokenizerFacts(kind: recipe.data.tokenizer)
        var gpt2Files: (vocab: Data, merges: Data)?
        if let split {
            let tokenizer = split.tokenizer
            if tokenizer.vocabSize > recipe.model.vocabSize {
                throw ExportRefusal(key: "model.vocab_size", "the \(tokenizer.kind.rawValue) tokenizer of \(dataPath) has \(tokenizer.vocabSize) tokens, more than model.vocab_size = \(recipe.model.vocabSize)",
                                    fix: "set model.vocab_size to at least \(tokenizer.vocabSize)")
            }
            let window = recipe.training.seqLen + 1
            for (name, part) in [("training", split.train), ("validation", split.val)] where part.count < window {
                throw ExportRefusal(key: "data.val_fraction", "the \(name) split of \(dataPath) has \(part.count) tokens, fewer than one window of training.seq_len + 1 = \(window)",
                                    fix: "use more text, a shorter training.seq_len, or a different data.val_fraction")
            }
            facts.vocabSize = tokenizer.vocabSize
            if let char = tokenizer as? CharTokenizer { facts.characters = char.vocabulary }
            if let bpe = tokenizer as? BPETokenizer {
                facts.endOfText = bpe.endOfText.map(Int.init)
                if engine == .megatron, bpe.endOfText == nil {
                    throw ExportRefusal(key: "data.tokenizer", "the BPE of \(dataPath) has no <|endoftext|>, and Megatron's GPT2BPETokenizer takes its end-of-document id from vocab.json's <|endoftext|>",
                                        fix: "prepare the data with a BPE that has <|endoftext|> (gpt-data prepare --tokenizer bpe)")
                }
                if engine == .megatron, settings.includeData, let files = try GPT2TokenizerFiles.make(bpe) {
                    gpt2Files = files
                    facts.hasGPT2Files = true
                }
            }
        }
        let configuration = try compile(recipe, for: engine, settings: settings, tokenizer: facts)

        let fm = FileManager.default
        var written: [String] = []
        func makeDirectory(_ path: String) throws {
            do { try fm.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                throw AtomicFile.WriteError(path: path, reason: "cannot create the directory: \((error as NSError).localizedDescription)")
            }
        }
        try makeDirectory(settings.directory)
        var dataSummary: String?
        if settings.includeData, let split {
            let data = settings.dataDirectory
            try makeDirectory(data)
            func file(_ name: String) -> String { (data as NSString).appendingPathComponent(name) }
            switch engine {
            case .nanogpt:
                try TokenFiles.writeNanoGPT(split.train, to: file("train.bin"))
                try TokenFiles.writeNanoGPT(split.val, to: file("val.bin"))
                try AtomicFile.write(Data(NanoGPTMeta.pickle(vocabSize: recipe.model.vocabSize, characters: facts.characters)), to: file("meta.pkl"))
                written += ["data/train.bin", "data/val.bin", "data/meta.pkl"]
            case .llmc:
                try TokenFiles.writeLLMC(split.train, to: file("train.bin"))
                try TokenFiles.writeLLMC(split.val, to: file("val.bin"))
                written += ["data/train.bin", "data/val.bin"]
            case .megatron:
                let vocabulary = try MegatronVocabulary.choose(recipe, facts)
                let megatronVocab = vocabulary.nullVocabSize.map { $0 + 1 } ?? facts.vocabSize ?? recipe.model.vocabSize
                try TokenFiles.writeMegatron(split.train, prefix: file("train"), vocabSize: megatronVocab)
                try TokenFiles.writeMegatron(split.val, prefix: file("val"), vocabSize: megatronVocab)
                written += ["data/train.bin", "data/train.idx", "data/val.bin", "data/val.idx"]
                if let gpt2Files {
                    try AtomicFile.write(gpt2Files.vocab, to: file("vocab.json"))
                    try AtomicFile.write(gpt2Files.merges, to: file("merges.txt"))
                    written += ["data/vocab.json", "data/merges.txt"]
                }
            }
            dataSummary = split.summary
        }
        for (name, text) in configuration.files {
            let path = (settings.directory as NSString).appendingPathComponent(name)
            try AtomicFile.write(text, to: path)
            if name.hasSuffix(".sh") { chmod(path, 0o755) }
            written.append(name)
        }
        return ExportResult(configuration: configuration, files: written, dataSummary: dataSummary, missingData: missingData)
    }
}

/// nanoGPT's `meta.pkl`: `{'vocab_size': n, 'itos': {i: ch}, 'stoi': {ch: i}}` for a char tokenizer, as
/// data/shakespeare_char/prepare.py writes it; `{'vocab_size': n}` otherwise. `vocab_size` is the recipe's
/// model.vocab_size, because train.py sizes the model's embedding from it.
public enum NanoGPTMeta {
    public static func pickle(vocabSize: Int, characters: [Unicode.Scalar]?) -> [UInt8] {
        var items: [(PythonPickle.Value, PythonPickle.Value)] = [(.string("vocab_size"), .int(vocabSize))]
        if let characters {
            items.append((.string("itos"), .dict(characters.enumerated().map { (.int($0.offset), .string(String($0.element))) })))
            items.append((.string("stoi"), .dict(characters.enumerated().map { (.string(String($0.element)), .int($0.offset)) })))
        }
        return PythonPickle.dumps(.dict(items))
    }
}

/// A byte-level BPE as GPT-2 style vocab.json + merges.txt for Megatron's GPT2BPETokenizer: the Tokenizers module's
/// Hugging Face interchange writes them. Megatron's vocabulary is then vocab.json's entry count
/// (`len(encoder)`), so a BPE with unused ids (whose largest id is not below that count) is refused.
enum GPT2TokenizerFiles {
    static func make(_ tokenizer: BPETokenizer) throws -> (vocab: Data, merges: Data)? {
        let files: (vocabJSON: Data, mergesText: Data)
        do { files = try HuggingFaceTokenizer.vocabularyAndMerges(tokenizer) } catch {
            throw ExportRefusal(key: "data.tokenizer", "the BPE cannot be written as GPT-2's vocab.json for Megatron: \(error)",
                                fix: "prepare the data with a BPE trained by gpt-data prepare --tokenizer bpe")
        }
        let entries = (try? JSONSerialization.jsonObject(with: files.vocabJSON) as? [String: Any])?.count ?? -1
        guard entries == tokenizer.vocabSize else {
            throw ExportRefusal(key: "data.tokenizer", "the BPE's vocab.json has \(entries) entries for ids up to \(tokenizer.vocabSize - 1); Megatron's GPT2BPETokenizer sizes its vocabulary by the entries",
                                fix: "prepare the data with a BPE whose ids are all used (gpt-data prepare --tokenizer bpe)")
        }
        return (files.vocabJSON, files.mergesText)
    }
}
