import Foundation
import Tokenizers

/// The training and validation tokens of a recipe's `[data]`, split the one way every consumer uses (gpt-train, the
/// engine export): a UTF-8 text file is tokenized with "char" or "byte" and cut in order at
/// `int(n · (1 − val_fraction))` tokens (nanoGPT's `data[:int(n*0.9)]`); a directory written by `gpt-data prepare`
/// brings its own `train.bin` / `val.bin`, cut when it was prepared.
public struct DataSplit: Sendable {
    public var train: any TokenSequence
    public var val: any TokenSequence
    public var tokenizer: any Tokenizer
    /// The text file or prepared directory.
    public var path: String
    /// Whether `path` is a prepared directory.
    public var isPrepared: Bool
    public var summary: String

    public init(train: any TokenSequence, val: any TokenSequence, tokenizer: any Tokenizer, path: String,
                isPrepared: Bool, summary: String) {
        self.train = train
        self.val = val
        self.tokenizer = tokenizer
        self.path = path
        self.isPrepared = isPrepared
        self.summary = summary
    }

    /// Loads `path` (a text file, or a prepared directory) and splits it.
    /// - Parameters:
    ///   - tokenizer: `data.tokenizer`: "char" or "byte" for a text file; a prepared directory must have been made
    ///     with the same one.
    ///   - valFraction: `data.val_fraction`; a prepared directory must have been split with the same one.
    /// - Throws: `DataSplitError` naming the recipe key and the fix.
    public static func load(_ path: String, tokenizer: String, valFraction: Double) throws -> DataSplit {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataSplitError(key: "data.path", "\(path) does not exist", fix: "point data.path at a text file or a directory written by gpt-data prepare (relative paths are relative to the recipe)")
        }
        return isDirectory.boolValue
            ? try prepared(path, tokenizer: tokenizer, valFraction: valFraction)
            : try textFile(path, tokenizer: tokenizer, valFraction: valFraction)
    }

    /// Where a text of `count` tokens is cut: the first `int(count · (1 − valFraction))` train.
    public static func cut(count: Int, valFraction: Double) -> Int {
        Int(Double(count) * (1 - valFraction))
    }

    static func textFile(_ path: String, tokenizer name: String, valFraction: Double) throws -> DataSplit {
        guard let bytes = FileManager.default.contents(atPath: path).map(Array.init) else {
            throw DataSplitError(key: "data.path", "cannot read \(path)", fix: "check the file's permissions")
        }
        let tokenizer: any Tokenizer
        switch name {
        case "char":
            do { tokenizer = try CharTokenizer(fitting: bytes) } catch {
                throw DataSplitError(key: "data.tokenizer", "\(path): \(error)", fix: "use tokenizer = \"byte\" for files that are not UTF-8")
            }
        case "byte":
            tokenizer = ByteTokenizer()
        default:
            throw DataSplitError(key: "data.tokenizer", "\"\(name)\" needs a prepared directory, and \(path) is a file",
                                 fix: "run `gpt-data prepare \(path) --tokenizer bpe -o DIR` and set data.path = DIR, or use \"char\" or \"byte\"")
        }
        let tokens = try tokenizer.encode(bytes)
        let cut = cut(count: tokens.count, valFraction: valFraction)
        return DataSplit(
            train: InMemoryTokens(Array(tokens[..<cut])), val: InMemoryTokens(Array(tokens[cut...])),
            tokenizer: tokenizer, path: path, isPrepared: false,
            summary: "\(path): \(bytes.count) bytes, \(name) vocabulary of \(tokenizer.vocabSize), "
                + "\(cut) training and \(tokens.count - cut) validation tokens")
    }

    static func prepared(_ path: String, tokenizer: String, valFraction: Double) throws -> DataSplit {
        let set: PreparedDataset
        do { set = try PreparedDataset(directory: path) } catch {
            throw DataSplitError(key: "data.path", "\(error)", fix: "prepare it again with gpt-data prepare")
        }
        guard set.meta.tokenizer == tokenizer else {
            throw DataSplitError(key: "data.tokenizer", "\(path) was prepared with the \(set.meta.tokenizer) tokenizer, not \(tokenizer)",
                                 fix: "set data.tokenizer = \"\(set.meta.tokenizer)\"")
        }
        guard abs(set.meta.valFraction - valFraction) < 1e-9 else {
            throw DataSplitError(key: "data.val_fraction", "\(path) was split with val_fraction \(set.meta.valFraction), not \(valFraction)",
                                 fix: "set data.val_fraction = \(set.meta.valFraction), or prepare the data again with --val-fraction \(valFraction)")
        }
        return DataSplit(train: set.train, val: set.val, tokenizer: set.tokenizer, path: path, isPrepared: true,
                         summary: "\(path): prepared, \(set.meta.tokenizer) vocabulary of \(set.tokenizer.vocabSize), "
                             + "\(set.train.count) training and \(set.val.count) validation tokens")
    }
}

/// Data that does not fit the recipe's `[data]`: which key, what, and what to do.
public struct DataSplitError: Error, CustomStringConvertible {
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
