import ArgumentParser
import CLISupport
import Corpus
import Foundation
import Tokenizers

struct GPTData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpt-data",
        abstract: "Turn text into token shards a recipe can train on, and check tokenizers by hand.",
        subcommands: [Prepare.self, Encode.self, Decode.self, Info.self])
}

struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Tokenize text files (or folders of them) into DIR/train.bin, val.bin, tokenizer.json, meta.json.",
        discussion: """
        The inputs are read in sorted order as one text; the first (1 − val-fraction) of its bytes train, the rest \
        validate. char and bpe tokenizers are fitted on the training part; bpe files are separate documents, each \
        followed by <|endoftext|>. Point a recipe's [data] path at DIR.
        """)

    @Argument(help: "Text files or folders.") var inputs: [String]
    @Option(help: "char, byte or bpe (fitted on the text); or a tokenizer to use as it is: a Hugging Face tokenizer.json, a folder with tokenizer.json or vocab.json + merges.txt, or a prepared directory.")
    var tokenizer: String
    @Option(name: .customLong("vocab-size"), help: "BPE vocabulary size, <|endoftext|> included.") var vocabSize: Int = 4096
    @Option(name: .customLong("val-fraction"), help: "Share held out for validation.") var valFraction: Double = 0.1
    @Option(name: [.short, .customLong("output")], help: "Output directory.") var output: String

    func run() throws {
        guard valFraction > 0, valFraction < 1 else { throw CommandFailure.usage("gpt-data: --val-fraction must be in (0, 1)") }
        let options: DatasetPreparer.Options
        if let kind = TokenizerKind(rawValue: tokenizer) {
            guard kind != .bpe || vocabSize >= 257 else {
                throw CommandFailure.usage("gpt-data: --vocab-size must be at least 257 (256 bytes and <|endoftext|>)")
            }
            options = .init(tokenizer: kind, vocabSize: vocabSize, valFraction: valFraction)
        } else {
            guard FileManager.default.fileExists(atPath: tokenizer) else {
                throw CommandFailure.usage("gpt-data: --tokenizer \(tokenizer): use char, byte or bpe, or give the path of a tokenizer file or folder")
            }
            do { options = .init(given: try TokenizerFile.load(path: tokenizer), valFraction: valFraction) } catch {
                throw CommandFailure("gpt-data: \(error)", exitCode: 1)
            }
        }
        let preparer = DatasetPreparer(inputs: inputs, output: output, options: options)
        var lastShown = 0.0
        do {
            _ = try preparer.run { event in
                switch event {
                case .reading(let files, let bytes):
                    Terminal.note("gpt-data: \(files) file\(files == 1 ? "" : "s"), \(sig(Double(bytes) / 1e6, 3)) MB")
                case .tokenizerReady(let kind, let vocab, let seconds):
                    Terminal.note("  \(kind.rawValue) tokenizer: \(vocab) tokens (\(String(format: "%.2f", seconds)) s)")
                case .encoded(let done, let total):
                    let fraction = Double(done) / Double(total)
                    if fraction - lastShown >= 0.05 || done == total {
                        lastShown = fraction
                        Terminal.progress("  encoding \(Int(fraction * 100))%")
                    }
                case .finished(let meta, let seconds):
                    Terminal.endProgress()
                    Terminal.note("  \(meta.trainTokens) training and \(meta.valTokens) validation tokens in "
                                  + "\(String(format: "%.2f", seconds)) s → \(output)")
                }
            }
        } catch let error as CorpusError {
            throw CommandFailure("gpt-data: \(error)", exitCode: 1)
        } catch {
            throw CommandFailure("gpt-data: preparing \(inputs.joined(separator: " ")): \(error)", exitCode: 1)
        }
    }
}

/// A tokenizer.json (ours or Hugging Face's), or the one in a folder (a prepared directory, or a Hugging Face
/// folder with tokenizer.json or vocab.json + merges.txt).
func loadTokenizer(_ path: String) throws -> any Tokenizer {
    guard FileManager.default.fileExists(atPath: path) else { throw CommandFailure.usage("gpt-data: \(path): cannot read") }
    do { return try TokenizerFile.load(path: path) } catch { throw CommandFailure("gpt-data: \(error)", exitCode: 1) }
}

struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode", abstract: "Print the token ids of a text (an argument, --file, or standard input).")
    @Option(help: "tokenizer.json, or a prepared directory.") var tokenizer: String
    @Option(help: "Read the text from this file.") var file: String?
    @Argument(help: "The text.") var text: String?
    @Flag(help: "Show each token's text next to its id.") var verbose = false

    func run() throws {
        let t = try loadTokenizer(tokenizer)
        let bytes: [UInt8]
        if let text { bytes = Array(text.utf8) }
        else if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw CommandFailure.usage("gpt-data: \(file): cannot read") }
            bytes = Array(data)
        } else { bytes = Array(FileHandle.standardInput.readDataToEndOfFile()) }
        let ids: [Int32]
        do { ids = try t.encode(bytes) } catch { throw CommandFailure("gpt-data: \(error)", exitCode: 1) }
        if verbose {
            for id in ids { print("\(id)\t\(String(reflecting: t.decodeString([id])))") }
        } else {
            print(ids.map(String.init).joined(separator: " "))
        }
        Terminal.note("\(bytes.count) bytes → \(ids.count) tokens")
    }
}

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "decode", abstract: "Print the text of token ids.")
    @Option(help: "tokenizer.json, or a prepared directory.") var tokenizer: String
    @Argument(help: "Token ids (or none, to read them from standard input).") var ids: [String] = []

    func run() throws {
        let t = try loadTokenizer(tokenizer)
        let words = ids.isEmpty
            ? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "," }).map(String.init)
            : ids
        var tokens: [Int32] = []
        for word in words {
            guard let id = Int32(word), id >= 0, Int(id) < t.vocabSize else {
                throw CommandFailure.usage("gpt-data: \(word) is not a token id of this \(t.vocabSize)-token vocabulary")
            }
            tokens.append(id)
        }
        FileHandle.standardOutput.write(Data(t.decode(tokens)))
    }
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Describe a prepared directory.")
    @Argument(help: "A directory written by gpt-data prepare.") var directory: String

    func run() throws {
        let set: PreparedDataset
        do { set = try PreparedDataset(directory: directory) } catch { throw CommandFailure("gpt-data: \(error)", exitCode: 1) }
        let m = set.meta
        print("\(directory): \(m.tokenizer) tokenizer, \(m.vocabSize) tokens; \(m.trainTokens) training and "
              + "\(m.valTokens) validation tokens (split at byte \(m.splitByte), val_fraction \(m.valFraction))")
        for source in m.sources { print("  \(source.path)  \(source.bytes) bytes  sha256 \(source.sha256)") }
    }
}

Main.run(GPTData.self)
