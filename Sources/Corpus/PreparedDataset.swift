import Foundation
import Tokenizers

/// What `gpt-data prepare` records in `meta.json` about a prepared directory.
public struct DatasetMeta: Codable, Equatable, Sendable {
    public struct Source: Codable, Equatable, Sendable {
        public var path: String
        public var bytes: Int
        public var sha256: String
        public init(path: String, bytes: Int, sha256: String) {
            self.path = path
            self.bytes = bytes
            self.sha256 = sha256
        }
    }

    public static let currentVersion = 1

    public var formatVersion: Int
    public var tokenizer: String
    public var vocabSize: Int
    public var valFraction: Double
    public var trainTokens: Int
    public var valTokens: Int
    /// Where the text was cut between the splits, in bytes of the concatenated sources.
    public var splitByte: Int
    public var sources: [Source]

    public init(tokenizer: String, vocabSize: Int, valFraction: Double, trainTokens: Int, valTokens: Int,
                splitByte: Int, sources: [Source]) {
        formatVersion = Self.currentVersion
        self.tokenizer = tokenizer
        self.vocabSize = vocabSize
        self.valFraction = valFraction
        self.trainTokens = trainTokens
        self.valTokens = valTokens
        self.splitByte = splitByte
        self.sources = sources
    }

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", tokenizer, vocabSize = "vocab_size", valFraction = "val_fraction"
        case trainTokens = "train_tokens", valTokens = "val_tokens", splitByte = "split_byte", sources
    }
}

/// A directory written by `gpt-data prepare`: `meta.json`, `tokenizer.json`, `train.bin`, `val.bin`.
public struct PreparedDataset: Sendable {
    public let directory: String
    public let meta: DatasetMeta
    public let tokenizer: any Tokenizer
    public let train: TokenShard
    public let val: TokenShard

    public init(directory: String) throws {
        self.directory = directory
        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        guard let metaData = try TextSources.contents(path("meta.json")) else {
            throw CorpusError(path("meta.json"), "missing: \(directory) is not a directory written by gpt-data prepare")
        }
        do {
            meta = try JSONDecoder().decode(DatasetMeta.self, from: metaData)
        } catch {
            throw CorpusError(path("meta.json"), "unreadable: \(error)")
        }
        guard meta.formatVersion == DatasetMeta.currentVersion else {
            throw CorpusError(path("meta.json"), "format version \(meta.formatVersion); this build reads \(DatasetMeta.currentVersion): prepare the data again")
        }
        guard let tokenizerData = try TextSources.contents(path("tokenizer.json")) else {
            throw CorpusError(path("tokenizer.json"), "missing")
        }
        do { tokenizer = try TokenizerFile.load(tokenizerData) } catch {
            throw CorpusError(path("tokenizer.json"), "\(error)")
        }
        train = try TokenShard(path: path("train.bin"))
        val = try TokenShard(path: path("val.bin"))
        for (shard, expected) in [(train, meta.trainTokens), (val, meta.valTokens)] where shard.count != expected {
            throw CorpusError(shard.path, "holds \(shard.count) tokens but meta.json says \(expected)")
        }
        guard tokenizer.vocabSize == meta.vocabSize, train.vocabSize == meta.vocabSize, val.vocabSize == meta.vocabSize else {
            throw CorpusError(directory, "vocabulary sizes disagree: tokenizer.json \(tokenizer.vocabSize), meta.json \(meta.vocabSize), train.bin \(train.vocabSize), val.bin \(val.vocabSize)")
        }
    }
}
