import ArgumentParser
import CLISupport
import Corpus
import Durable
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
    var tokenizer: TokenizerChoice
    @Option(name: .customLong("vocab-size"), parsing: .unconditional,
            help: "BPE vocabulary size, <|endoftext|> included, 257 to 16777216 (default: 4096).",
            transform: NumberArgument.whole(257...(1 << 24)))
    var vocabSize: Int = 4096
    @Option(name: .customLong("val-fraction"), parsing: .unconditional, help: "Share held out for validation, in (0, 1) (default: 0.1).",
            transform: NumberArgument.real(FlagRange(0, included: false, 1, included: false)))
    var valFraction: Double = 0.1
    @Option(name: [.short, .customLong("output")], help: "Output directory.") var output: String

    func run() throws {
        let options: DatasetPreparer.Options
        switch tokenizer {
        case .fitted(let kind): options = .init(tokenizer: kind, vocabSize: vocabSize, valFraction: valFraction)
        case .given(let path): options = .init(given: try loadTokenizer(path), valFraction: valFraction)
        }
        let preparer = DatasetPreparer(inputs: inputs, output: output, options: options)
        var lastShown = 0.0
        do {
            _ = try preparer.run { event in
                switch event {
                case .skipped(let path, let reason):
                    Terminal.note("gpt-data: note: skipped \(path): \(reason)")
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

/// `gpt-data prepare --tokenizer`: a kind fitted on the text (`TokenizerKind`), or the path of a tokenizer to use
/// as it is (anything that exists; `loadTokenizer` says what it must be). Anything else is argument-parser's usage
/// error listing the choices (exit status 2).
enum TokenizerChoice: ExpressibleByArgument {
    case fitted(TokenizerKind)
    case given(String)

    init?(argument: String) {
        if let kind = TokenizerKind(rawValue: argument) { self = .fitted(kind) }
        else if FileManager.default.fileExists(atPath: argument) { self = .given(argument) }
        else { return nil }
    }

    /// The kinds, and the files and folders a tokenizer may be given as.
    static var allValueStrings: [String] {
        TokenizerKind.allCases.map(\.rawValue) + ["TOKENIZER.json", "TOKENIZER_DIR"]
    }
}

/// A tokenizer given by path: a tokenizer.json (ours or Hugging Face's), a folder with tokenizer.json or vocab.json +
/// merges.txt, or a prepared directory. A path that is not there, or is a FIFO or device, is a usage error.
func loadTokenizer(_ path: String) throws -> any Tokenizer {
    let fix = "Fix: give a tokenizer.json, a folder with tokenizer.json or vocab.json + merges.txt, or a directory from gpt-data prepare"
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw CommandFailure.usage("gpt-data: \(path): no such file or folder. \(fix)")
    }
    if !isDirectory.boolValue {
        // Refused by its kind before a byte is read: a FIFO would block, a device never end.
        do { _ = try RegularFile.openForReading(path) } catch { throw CommandFailure.usage("gpt-data: \(path): \(error). \(fix)") }
    }
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
            let contents: Data?
            do { contents = try InputFile.read(file, fix: "give a text file", status: 2) } catch {
                throw CommandFailure.usage("gpt-data: \(error.message)")
            }
            guard let data = contents else { throw CommandFailure.usage("gpt-data: \(file): no such file") }
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
