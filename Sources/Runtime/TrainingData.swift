import Corpus
import Foundation
import Recipe
import Tokenizers

/// A recipe's `[data]`, loaded: the training and validation tokens and the tokenizer that made them.
public struct TrainingData: Sendable {
    public var train: any TokenSequence
    public var val: any TokenSequence
    public var tokenizer: any Tokenizer
    /// The resolved path of the text file or prepared directory.
    public var path: String
    public var summary: String

    public init(train: any TokenSequence, val: any TokenSequence, tokenizer: any Tokenizer, path: String, summary: String) {
        self.train = train
        self.val = val
        self.tokenizer = tokenizer
        self.path = path
        self.summary = summary
    }

    /// Resolves `data.path` against `directory` (the recipe's own directory) unless it is absolute.
    public static func resolve(_ path: String, relativeTo directory: String) -> String {
        path.hasPrefix("/") ? path : URL(fileURLWithPath: directory).appendingPathComponent(path).standardized.path
    }

    /// Loads the data a recipe names, and checks it against the recipe: the tokenizer matches, the vocabulary
    /// fits in `model.vocab_size`, and both splits hold at least one training window.
    public static func load(_ recipe: Recipe, relativeTo directory: String) throws -> TrainingData {
        let path = resolve(recipe.data.path, relativeTo: directory)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError(key: "data.path", "\(path) does not exist", fix: "point data.path at a text file or a directory written by gpt-data prepare (relative paths are relative to the recipe)")
        }
        let data = isDirectory.boolValue
            ? try prepared(path, recipe)
            : try textFile(path, recipe)
        if data.tokenizer.vocabSize > recipe.model.vocabSize {
            throw DataError(key: "model.vocab_size", "the \(data.tokenizer.kind.rawValue) tokenizer of \(path) has \(data.tokenizer.vocabSize) tokens, more than model.vocab_size = \(recipe.model.vocabSize)",
                            fix: "set model.vocab_size to at least \(data.tokenizer.vocabSize)")
        }
        let window = recipe.training.seqLen + 1
        for (name, split) in [("training", data.train), ("validation", data.val)] where split.count < window {
            throw DataError(key: "data.val_fraction", "the \(name) split of \(path) has \(split.count) tokens, fewer than one window of training.seq_len + 1 = \(window)",
                            fix: "use more text, a shorter training.seq_len, or a different data.val_fraction")
        }
        return data
    }

    /// A UTF-8 text file, tokenized now and split in order: the first (1 − val_fraction) of the tokens train,
    /// the rest validate (nanoGPT's `data[:int(n*0.9)]`).
    static func textFile(_ path: String, _ recipe: Recipe) throws -> TrainingData {
        guard let bytes = FileManager.default.contents(atPath: path).map(Array.init) else {
            throw DataError(key: "data.path", "cannot read \(path)", fix: "check the file's permissions")
        }
        let tokenizer: any Tokenizer
        switch recipe.data.tokenizer {
        case "char":
            do { tokenizer = try CharTokenizer(fitting: bytes) } catch {
                throw DataError(key: "data.tokenizer", "\(path): \(error)", fix: "use tokenizer = \"byte\" for files that are not UTF-8")
            }
        case "byte":
            tokenizer = ByteTokenizer()
        default:
            throw DataError(key: "data.tokenizer", "\"\(recipe.data.tokenizer)\" needs a prepared directory, and \(path) is a file",
                            fix: "run `gpt-data prepare \(path) --tokenizer bpe -o DIR` and set data.path = DIR, or use \"char\" or \"byte\"")
        }
        let tokens = try tokenizer.encode(bytes)
        let cut = Int(Double(tokens.count) * (1 - recipe.data.valFraction))
        return TrainingData(
            train: InMemoryTokens(Array(tokens[..<cut])), val: InMemoryTokens(Array(tokens[cut...])),
            tokenizer: tokenizer, path: path,
            summary: "\(path): \(bytes.count) bytes, \(recipe.data.tokenizer) vocabulary of \(tokenizer.vocabSize), "
                + "\(cut) training and \(tokens.count - cut) validation tokens")
    }

    static func prepared(_ path: String, _ recipe: Recipe) throws -> TrainingData {
        let set: PreparedDataset
        do { set = try PreparedDataset(directory: path) } catch {
            throw DataError(key: "data.path", "\(error)", fix: "prepare it again with gpt-data prepare")
        }
        guard set.meta.tokenizer == recipe.data.tokenizer else {
            throw DataError(key: "data.tokenizer", "\(path) was prepared with the \(set.meta.tokenizer) tokenizer, not \(recipe.data.tokenizer)",
                            fix: "set data.tokenizer = \"\(set.meta.tokenizer)\"")
        }
        guard abs(set.meta.valFraction - recipe.data.valFraction) < 1e-9 else {
            throw DataError(key: "data.val_fraction", "\(path) was split with val_fraction \(set.meta.valFraction), not \(recipe.data.valFraction)",
                            fix: "set data.val_fraction = \(set.meta.valFraction), or prepare the data again with --val-fraction \(recipe.data.valFraction)")
        }
        return TrainingData(train: set.train, val: set.val, tokenizer: set.tokenizer, path: path,
                            summary: "\(path): prepared, \(set.meta.tokenizer) vocabulary of \(set.tokenizer.vocabSize), "
                                + "\(set.train.count) training and \(set.val.count) validation tokens")
    }
}

/// Data that does not fit the recipe: which key, what, and what to do.
public struct DataError: Error, CustomStringConvertible {
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
