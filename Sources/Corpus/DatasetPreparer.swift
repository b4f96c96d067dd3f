import Durable
import Foundation
import Tokenizers

/// `gpt-data prepare`: text files in, a prepared directory out (`train.bin`, `val.bin`, `tokenizer.json`,
/// `meta.json`).
///
/// The files are read in sorted order as one stream, in blocks, so a corpus larger than memory works. The first
/// (1 − val_fraction) of its bytes train and the rest validate; the cut is moved back to a place where cutting does
/// not change how the text is tokenized (a character boundary, and for BPE a place where GPT-2's pre-split would
/// split anyway). A BPE tokenizer learns its merges from the training part only; a character vocabulary is every
/// character of the text. With BPE, files are separate documents: `<|endoftext|>` follows each one.
public struct DatasetPreparer {
    public struct Options: Sendable {
        public var tokenizer: TokenizerKind
        public var vocabSize: Int
        public var valFraction: Double
        /// Bytes read at a time.
        public var blockBytes: Int
        /// A ready tokenizer (e.g. one imported from Hugging Face's files) used instead of fitting one; its kind
        /// replaces `tokenizer`.
        public var given: (any Tokenizer)?

        public init(tokenizer: TokenizerKind, vocabSize: Int = 4096, valFraction: Double = 0.1, blockBytes: Int = 4 << 20) {
            self.tokenizer = tokenizer
            self.vocabSize = vocabSize
            self.valFraction = valFraction
            self.blockBytes = blockBytes
        }

        /// Options that encode with `tokenizer` as it is.
        public init(given tokenizer: any Tokenizer, valFraction: Double = 0.1, blockBytes: Int = 4 << 20) {
            self.init(tokenizer: tokenizer.kind, vocabSize: tokenizer.vocabSize, valFraction: valFraction, blockBytes: blockBytes)
            given = tokenizer
        }
    }

    public enum Event: Sendable {
        case reading(files: Int, bytes: Int)
        case tokenizerReady(kind: TokenizerKind, vocabSize: Int, seconds: Double)
        case encoded(bytes: Int, of: Int)
        case finished(meta: DatasetMeta, seconds: Double)
    }

    public let inputs: [String]
    public let output: String
    public let options: Options

    public init(inputs: [String], output: String, options: Options) {
        self.inputs = inputs
        self.output = output
        self.options = options
    }

    public func run(events: (Event) -> Void = { _ in }) throws -> DatasetMeta {
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 }
        guard options.valFraction > 0, options.valFraction < 1 else {
            throw CorpusError(output, "--val-fraction must be between 0 and 1 (exclusive), got \(options.valFraction)")
        }
        let files = try TextSources.files(inputs)
        let total = try TextSources.size(files)
        guard total > 0 else { throw CorpusError(inputs.joined(separator: " "), "the inputs are empty") }
        events(.reading(files: files.count, bytes: total))
        let requestedSplit = Int(Double(total) * (1 - options.valFraction))

        // Pass 1: fit the tokenizer on the training part; find the exact split point and hash the inputs.
        var hashes = [SHA256](repeating: SHA256(), count: files.count)
        var trainer = BPETrainer()
        var scalars = Set<Unicode.Scalar>()
        var split: Int?
        try stream(files, requestedSplit: requestedSplit, splitAt: { split = $0 }) { fileIndex, globalOffset, block, isTraining in
            hashes[fileIndex].update(block)
            switch options.tokenizer {
            case .bpe where isTraining && options.given == nil: block.withUnsafeBufferPointer { trainer.add($0) }
            // The alphabet comes from all the text (as nanoGPT's shakespeare_char does), so validation text
            // never holds a character the vocabulary lacks.
            case .char where options.given == nil: try collectScalars(block, into: &scalars, file: files[fileIndex], offset: globalOffset)
            default: break
            }
        }
        guard let splitByte = split else { throw CorpusError(output, "no place to split the text was found") }
        // Refused here, before anything is written, rather than later by gpt-train.
        guard splitByte > 0, splitByte < total else {
            let part = splitByte > 0 ? "validation" : "training"
            throw CorpusError(inputs.joined(separator: " "), "the \(part) part would hold no tokens: the \(total) bytes "
                              + "of text split at byte \(splitByte) (--val-fraction \(options.valFraction)). Fix: give more "
                              + "text, or a --val-fraction that leaves text on both sides")
        }

        let tokenizer: any Tokenizer
        switch options.tokenizer {
        case _ where options.given != nil: tokenizer = options.given!
        case .byte: tokenizer = ByteTokenizer()
        case .char: tokenizer = try CharTokenizer(vocabulary: scalars.sorted { $0.value < $1.value })
        case .bpe: tokenizer = try trainer.train(vocabSize: options.vocabSize)
        }
        events(.tokenizerReady(kind: options.tokenizer, vocabSize: tokenizer.vocabSize, seconds: elapsed()))

        // Pass 2: encode into the two shards.
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        func path(_ name: String) -> String { (output as NSString).appendingPathComponent(name) }
        let train = try TokenShardWriter(path: path("train.bin"), vocabSize: tokenizer.vocabSize)
        let val = try TokenShardWriter(path: path("val.bin"), vocabSize: tokenizer.vocabSize)
        var bpe = (tokenizer as? BPETokenizer).map { BPEEncoder($0) }
        var done = 0
        let endOfText = (tokenizer as? BPETokenizer)?.endOfText
        try stream(files, requestedSplit: requestedSplit, splitAt: { _ in }, endOfFile: { _, isTraining in
            if let endOfText { try (isTraining ? train : val).append([endOfText]) }
        }) { fileIndex, globalOffset, block, isTraining in
            let writer = isTraining ? train : val
            let tokens: [Int32]
            if bpe != nil {
                tokens = bpe!.encode(block)
            } else {
                do { tokens = try tokenizer.encode(block) } catch {
                    throw CorpusError(files[fileIndex], "at byte \(globalOffset): \(error)")
                }
            }
            try writer.append(tokens)
            done += block.count
            events(.encoded(bytes: done, of: total))
        }
        try train.finish()
        try val.finish()

        let meta = DatasetMeta(
            tokenizer: options.tokenizer.rawValue, vocabSize: tokenizer.vocabSize, valFraction: options.valFraction,
            trainTokens: train.count, valTokens: val.count, splitByte: splitByte,
            sources: zip(files, hashes).map { file, hash in
                DatasetMeta.Source(path: file, bytes: (try? TextSources.size([file])) ?? 0, sha256: hash.hexDigest())
            })
        try AtomicFile.write(try tokenizer.jsonData(), to: path("tokenizer.json"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(meta), to: path("meta.json"))
        events(.finished(meta: meta, seconds: elapsed()))
        return meta
    }

    /// Feeds the files as blocks cut at places where cutting changes no token, each tagged with whether it lies
    /// before the split. While training, reading stops at the requested split; the split itself is then moved
    /// back to such a place (at worst to the end of the previous block, itself one) and reported through
    /// `splitAt`, and the rest of the buffer goes on as validation text.
    private func stream(_ files: [String], requestedSplit: Int, splitAt: (Int) -> Void,
                        endOfFile: (_ file: Int, _ isTraining: Bool) throws -> Void = { _, _ in },
                        _ body: (_ file: Int, _ offset: Int, _ block: [UInt8], _ isTraining: Bool) throws -> Void) throws {
        var emitted = 0   // global offset of the next byte to hand to `body`
        var read = 0      // global offset of the next byte to read
        var training = true
        for (index, file) in files.enumerated() {
            guard let handle = FileHandle(forReadingAtPath: file) else { throw CorpusError(file, "cannot read") }
            defer { try? handle.close() }
            var buffer: [UInt8] = []
            func emit(_ count: Int) throws {
                guard count > 0 else { return }
                try body(index, emitted, Array(buffer[..<count]), training)
                emitted += count
                buffer.removeFirst(count)
            }
            var atEnd = false
            while true {
                let want = training ? min(options.blockBytes, requestedSplit - read) : options.blockBytes
                if !atEnd, want > 0 {
                    let data = try handle.read(upToCount: want) ?? Data()
                    if data.isEmpty { atEnd = true } else {
                        buffer.append(contentsOf: data)
                        read += data.count
                    }
                }
                if training && read >= requestedSplit {
                    try emit(safeCut(buffer, before: buffer.count) ?? 0)
                    training = false
                    splitAt(emitted)
                    continue
                }
                if atEnd {
                    try emit(buffer.count)
                    break
                }
                if let cut = safeCut(buffer, before: buffer.count), cut > 0 {
                    try emit(cut)
                } else if buffer.count >= 64 << 20 {
                    try emit(buffer.count)  // 64 MB without a safe place: cut anyway
                }
            }
            try endOfFile(index, training)
        }
        if training { splitAt(emitted) }
    }

    /// A cut point at or before `limit` that does not change the tokens: for BPE one where GPT-2's pre-split
    /// splits anyway; for characters, before an incomplete trailing UTF-8 sequence; for bytes, anywhere.
    private func safeCut(_ bytes: [UInt8], before limit: Int) -> Int? {
        guard limit > 0 else { return nil }
        switch options.tokenizer {
        case .bpe: return GPT2PreSplit.safeCut(bytes, before: limit)
        case .byte: return limit
        case .char:
            var lead = limit - 1
            while lead > 0, lead > limit - 4, bytes[lead] & 0xC0 == 0x80 { lead -= 1 }
            let b = bytes[lead]
            let length = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
            return limit - lead >= length ? limit : lead
        }
    }

    private func collectScalars(_ block: [UInt8], into set: inout Set<Unicode.Scalar>, file: String, offset: Int) throws {
        var iterator = block.makeIterator()
        var decoder = UTF8()
        var position = 0
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let s): set.insert(s); position += UTF8.width(s)
            case .emptyInput: break loop
            case .error:
                throw CorpusError(file, "not UTF-8 at about byte \(offset + position): use --tokenizer byte or bpe")
            }
        }
    }
}
