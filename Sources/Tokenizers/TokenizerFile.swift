import Foundation

/// Reads tokenizer.json, the form every tokenizer's `jsonData()` writes:
///
/// - `{"type": "byte", "version": 1, "vocab_size": 256}`
/// - `{"type": "char", "version": 1, "vocab_size": 65, "code_points": [10, 32, 33, ...]}` (token i is code_points[i])
/// - `{"type": "bpe", "version": 1, "vocab_size": 4096, "pre_split": "gpt2", "merges": [[101, 32], ...],
///   "special_tokens": {"<|endoftext|>": 4095}}` (merge r makes token 256 + r; the special token is the last id)
/// - a Hugging Face tokenizer.json of a byte-level BPE (`HuggingFaceTokenizer`), the form of imported tokenizers
public enum TokenizerFile {
    /// The version this module writes and reads.
    public static let version = 1

    /// The tokenizer described by `data`.
    /// - Throws: `TokenizerError.malformedFile` (not JSON, missing or mistyped field), `.unknownType`,
    ///   `.unsupportedVersion`, `.vocabSizeMismatch`, or the errors of the tokenizer's initializer
    ///   (`.invalidMerge`, `.duplicateCharacter`, `.emptyVocabulary`).
    public static func load(_ data: Data) throws -> any Tokenizer {
        // Hugging Face's tokenizer.json (an imported byte-level BPE keeps that form) has a "model" object.
        if let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any], root["model"] != nil, root["type"] == nil {
            return try HuggingFaceTokenizer.tokenizer(fromTokenizerJSON: data, file: "tokenizer.json")
        }
        let file: Contents
        do {
            file = try JSONDecoder().decode(Contents.self, from: data)
        } catch let error as DecodingError {
            throw TokenizerError.malformedFile(describe(error))
        }
        guard let type = file.type else { throw TokenizerError.malformedFile("missing field \"type\"") }
        guard let kind = TokenizerKind(rawValue: type) else { throw TokenizerError.unknownType(type) }
        guard let version = file.version?.value else { throw TokenizerError.malformedFile("missing field \"version\"") }
        guard version == TokenizerFile.version else { throw TokenizerError.unsupportedVersion(version) }
        guard let vocabSize = file.vocab_size?.value else {
            throw TokenizerError.malformedFile("missing field \"vocab_size\"")
        }
        switch kind {
        case .byte:
            guard vocabSize == 256 else {
                throw TokenizerError.vocabSizeMismatch(
                    declared: vocabSize, actual: 256, detail: "a byte tokenizer has 256 tokens")
            }
            return ByteTokenizer()
        case .char:
            guard let points = file.code_points?.map(\.value) else {
                throw TokenizerError.malformedFile("missing field \"code_points\"")
            }
            let scalars = try points.enumerated().map { i, code -> Unicode.Scalar in
                guard code >= 0, code <= 0x10FFFF, let scalar = Unicode.Scalar(UInt32(code)) else {
                    throw TokenizerError.malformedFile("code_points[\(i)] = \(code) is not a Unicode scalar value")
                }
                return scalar
            }
            guard vocabSize == scalars.count else {
                throw TokenizerError.vocabSizeMismatch(
                    declared: vocabSize, actual: scalars.count, detail: "one token per entry of code_points")
            }
            return try CharTokenizer(vocabulary: scalars)
        case .bpe:
            guard let preSplit = file.pre_split else {
                throw TokenizerError.malformedFile("missing field \"pre_split\"")
            }
            guard preSplit == "gpt2" else {
                throw TokenizerError.malformedFile("pre_split \"\(preSplit)\" is not supported (only \"gpt2\")")
            }
            guard let list = file.merges else { throw TokenizerError.malformedFile("missing field \"merges\"") }
            let merges = try list.enumerated().map { i, pair -> BPEMerge in
                guard pair.count == 2 else {
                    throw TokenizerError.malformedFile("merges[\(i)] must be a list of two token ids")
                }
                guard let l = Int32(exactly: pair[0].value), let r = Int32(exactly: pair[1].value) else {
                    throw TokenizerError.malformedFile("merges[\(i)] has an id out of range")
                }
                return BPEMerge(l, r)
            }
            let expected = 256 + merges.count + 1
            guard vocabSize == expected else {
                throw TokenizerError.vocabSizeMismatch(
                    declared: vocabSize, actual: expected,
                    detail: "256 bytes + \(merges.count) merges + <|endoftext|>")
            }
            let eot = BPETokenizer.endOfTextString
            guard let special = file.special_tokens, special.count == 1, let id = special[eot]?.value else {
                throw TokenizerError.malformedFile("special_tokens must be exactly {\"\(eot)\": \(expected - 1)}")
            }
            guard id == expected - 1 else {
                throw TokenizerError.malformedFile("\(eot) must be the last id, \(expected - 1), not \(id)")
            }
            return try BPETokenizer(merges: merges)
        }
    }

    /// The tokenizer at `path`: a tokenizer.json (this project's or Hugging Face's), or a folder holding one (a
    /// prepared directory, a Hugging Face model folder) or GPT-2's vocab.json and merges.txt. Errors name the file.
    public static func load(path: String) throws -> any Tokenizer {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TokenizerError.huggingFace(file: path, field: "(path)", reason: "does not exist")
        }
        let file = isDirectory.boolValue ? (path as NSString).appendingPathComponent("tokenizer.json") : path
        guard FileManager.default.fileExists(atPath: file) else { return try HuggingFaceTokenizer.load(path: path) }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw TokenizerError.huggingFace(file: file, field: "(file)", reason: "cannot be read")
        }
        if let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any], root["model"] != nil, root["type"] == nil {
            return try HuggingFaceTokenizer.tokenizer(fromTokenizerJSON: data, file: file)
        }
        do { return try load(data) } catch let error as TokenizerError {
            throw TokenizerError.huggingFace(file: file, field: "(tokenizer)", reason: error.description)
        }
    }

    /// The tokenizer in the tokenizer.json file at `url`.
    public static func load(contentsOf url: URL) throws -> any Tokenizer {
        try load(Data(contentsOf: url))
    }

    /// Every field of every type, all optional: which ones must be there depends on "type".
    private struct Contents: Decodable {
        var type: String?
        var version: JSONInteger?
        var vocab_size: JSONInteger?
        var code_points: [JSONInteger]?
        var pre_split: String?
        var merges: [[JSONInteger]]?
        var special_tokens: [String: JSONInteger]?
    }

    /// An integer JSON number. Decoded through `Double` so that a fraction is reported with its field
    /// (JSONDecoder reports `Int` fields holding `2.5` as "not valid JSON", without saying where).
    private struct JSONInteger: Decodable {
        var value: Int

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            guard let number = try? container.decode(Double.self), let value = Int(exactly: number) else {
                throw DecodingError.typeMismatch(
                    Int.self, .init(codingPath: decoder.codingPath, debugDescription: "not an integer"))
            }
            self.value = value
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            if context.codingPath.isEmpty { return "the top level must be a JSON object" }
            return "\(path(context.codingPath)) must be \(typeName(type))"
        case .keyNotFound(let key, let context):
            return "missing field \(path(context.codingPath + [key]))"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not valid JSON" : "\(path(context.codingPath)) is not valid"
        @unknown default:
            return "\(error)"
        }
    }

    /// `"merges"[3][0]`-style: the field name quoted, then list indices.
    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { key in key.intValue.map { "[\($0)]" } ?? "\"\(key.stringValue)\"" }.joined()
    }

    private static func typeName(_ type: Any.Type) -> String {
        if type == Int.self { return "an integer" }
        if type == String.self { return "a string" }
        if "\(type)".hasPrefix("Array") { return "a list" }
        return "an object"
    }
}
