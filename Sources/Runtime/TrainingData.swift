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
        // The split itself is Corpus's, shared with the engine export (gpt-plan export).
        let split = try DataSplit.load(path, tokenizer: recipe.data.tokenizer, valFraction: recipe.data.valFraction)
        let data = TrainingData(train: split.train, val: split.val, tokenizer: split.tokenizer, path: path, summary: split.summary)
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
}

/// Data that does not fit the recipe: which key, what, and what to do (the split's own error type, so that the
/// trainer and the engine export report a recipe's data alike).
public typealias DataError = DataSplitError
