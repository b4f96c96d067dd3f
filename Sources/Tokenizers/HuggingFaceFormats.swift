import Formatting
import Durable
import Foundation

/// GPT-2's map from bytes to printable characters (`bytes_to_unicode` in GPT-2's encoder.py): the bytes
/// `!`...`~`, `¡`...`¬` and `®`...`ÿ` stand for themselves, and the other 68 bytes, in order, for U+0100, U+0101,
/// ... Byte-level BPE vocabularies (vocab.json, tokenizer.json) spell every token's bytes with these characters;
/// a space is `Ġ` (U+0120).
public enum GPT2ByteAlphabet {
    /// The character of each byte value.
    public static let characters: [Unicode.Scalar] = {
        var printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        var map = [UInt32](repeating: 0, count: 256)
        for b in printable { map[b] = UInt32(b) }
        var next: UInt32 = 256
        for b in 0..<256 where !printable.contains(b) {
            map[b] = next
            next += 1
            printable.append(b)
        }
        return map.map { Unicode.Scalar($0)! }
    }()

    /// The byte each character stands for.
    public static let bytes: [Unicode.Scalar: UInt8] = {
        var out: [Unicode.Scalar: UInt8] = [:]
        for (b, c) in characters.enumerated() { out[c] = UInt8(b) }
        return out
    }()

    /// `bytes` spelled in the alphabet.
    public static func spell(_ bytes: [UInt8]) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(characters[Int(b)]) }
        return String(s)
    }

    /// The bytes `text` spells, or nil if a character is outside the alphabet.
    public static func bytes(of text: String) -> [UInt8]? {
        var out: [UInt8] = []
        for scalar in text.unicodeScalars {
            guard let b = bytes[scalar] else { return nil }
            out.append(b)
        }
        return out
    }
}

/// The files a tokenizer becomes in the Hugging Face ecosystem.
public struct HuggingFaceTokenizerFiles: Sendable {
    /// tokenizer.json of the `tokenizers` library (what `AutoTokenizer`/`PreTrainedTokenizerFast` load).
    public var tokenizerJSON: Data
    /// tokenizer_config.json: the tokenizer class and its special tokens.
    public var tokenizerConfig: Data
    /// GPT-2's vocab.json and merges.txt (byte-level tokenizers only).
    public var vocabJSON: Data?
    public var mergesText: Data?
}

/// Hugging Face's tokenizer formats, both ways: `tokenizer.json` of the `tokenizers` library (model BPE,
/// ByteLevel pre-tokenizer and decoder), and GPT-2's `vocab.json` + `merges.txt`.
///
/// Written from the formats' documentation and GPT-2's released files; nothing here runs Python.
public enum HuggingFaceTokenizer {
    // MARK: - Out

    /// Every file for `tokenizer`, `maxLength` the model's context (tokenizer_config's `model_max_length`).
    /// - Throws: `TokenizerError.notExpressible` when the tokenizer has no exact form in these files.
    public static func files(for tokenizer: any Tokenizer, maxLength: Int) throws -> HuggingFaceTokenizerFiles {
        switch tokenizer {
        case let bpe as BPETokenizer:
            let vocab = try vocabulary(bpe)
            return HuggingFaceTokenizerFiles(
                tokenizerJSON: tokenizerJSON(bpe, vocabulary: vocab),
                tokenizerConfig: config(className: "GPT2TokenizerFast", special: bpe.endOfText == nil ? nil : BPETokenizer.endOfTextString,
                                        addedTokens: bpe.specialTokens, maxLength: maxLength),
                vocabJSON: vocabJSON(vocab), mergesText: mergesText(bpe))
        case is ByteTokenizer:
            let bpe = byteLevel
            let vocab = try vocabulary(bpe)
            return HuggingFaceTokenizerFiles(
                tokenizerJSON: tokenizerJSON(bpe, vocabulary: vocab),
                tokenizerConfig: config(className: "PreTrainedTokenizerFast", special: nil, addedTokens: [], maxLength: maxLength),
                vocabJSON: vocabJSON(vocab), mergesText: mergesText(bpe))
        case let char as CharTokenizer:
            return HuggingFaceTokenizerFiles(
                tokenizerJSON: characterJSON(char),
                tokenizerConfig: config(className: "PreTrainedTokenizerFast", special: nil, addedTokens: [], maxLength: maxLength),
                vocabJSON: nil, mergesText: nil)
        default:
            throw TokenizerError.notExpressible("a \(tokenizer.kind.rawValue) tokenizer has no Hugging Face form here")
        }
    }

    /// GPT-2's vocab.json and merges.txt for a byte-level BPE (also what issue-21's engine export reuses).
    /// - Throws: `TokenizerError.notExpressible` when two ids spell the same bytes (a vocab.json maps each
    ///   spelling to one id).
    public static func vocabularyAndMerges(_ tokenizer: BPETokenizer) throws -> (vocabJSON: Data, mergesText: Data) {
        (vocabJSON(try vocabulary(tokenizer)), mergesText(tokenizer))
    }

    /// The Hugging Face tokenizer.json of a byte-level BPE.
    public static func tokenizerJSON(_ tokenizer: BPETokenizer) throws -> Data {
        tokenizerJSON(tokenizer, vocabulary: try vocabulary(tokenizer))
    }

    /// The byte tokenizer as a byte-level BPE without merges (no special tokens).
    static let byteLevel: BPETokenizer = {
        try! BPETokenizer(tokens: (0..<256).map { [UInt8($0)] }, byteTokens: (0..<256).map { Int32($0) }, merges: [],
                          mergeResults: [], specialTokens: [])
    }()

    /// Token spellings by id (unused ids left out).
    static func vocabulary(_ tokenizer: BPETokenizer) throws -> [(id: Int, text: String, special: Bool)] {
        let specials = Dictionary(tokenizer.specialTokens.map { (Int($0.id), $0.text) }, uniquingKeysWith: { a, _ in a })
        var out: [(id: Int, text: String, special: Bool)] = []
        var seen: [String: Int] = [:]
        for id in 0..<tokenizer.vocabSize {
            if let special = specials[id] {
                out.append((id, special, true))
                continue
            }
            let bytes = Array(tokenizer.tokenBytes[tokenizer.tokenStarts[id] ..< tokenizer.tokenStarts[id + 1]])
            if !tokenizer.isUsed(id) { continue }
            let text = GPT2ByteAlphabet.spell(bytes)
            if let other = seen[text] {
                throw TokenizerError.notExpressible(
                    "ids \(other) and \(id) are both the bytes \(String(reflecting: String(decoding: bytes, as: UTF8.self))); "
                        + "Hugging Face's vocabulary maps each token's text to one id")
            }
            seen[text] = id
            out.append((id, text, false))
        }
        return out
    }

    static func tokenizerJSON(_ tokenizer: BPETokenizer, vocabulary: [(id: Int, text: String, special: Bool)]) -> Data {
        let byLevel = "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true}"
        var s = "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": ["
        let specials = vocabulary.filter(\.special)
        s += specials.map {
            "\n    {\"id\": \($0.id), \"content\": \(json($0.text)), \"single_word\": false, \"lstrip\": false, "
                + "\"rstrip\": false, \"normalized\": false, \"special\": true}"
        }.joined(separator: ",")
        s += specials.isEmpty ? "],\n" : "\n  ],\n"
        s += "  \"normalizer\": null,\n"
        s += "  \"pre_tokenizer\": \(byLevel),\n"
        s += "  \"post_processor\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": false, \"use_regex\": true},\n"
        s += "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true},\n"
        s += "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
        s += "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n"
        s += "    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n    \"vocab\": {"
        s += vocabulary.map { "\n      \(json($0.text)): \($0.id)" }.joined(separator: ",")
        s += "\n    },\n    \"merges\": ["
        s += mergeLines(tokenizer).map { "\n      \(json($0))" }.joined(separator: ",")
        s += tokenizer.merges.isEmpty ? "]\n  }\n}\n" : "\n    ]\n  }\n}\n"
        return Data(s.utf8)
    }

    /// `"Ġ t"`: each merge as its two tokens' spellings.
    static func mergeLines(_ tokenizer: BPETokenizer) -> [String] {
        tokenizer.merges.map { merge in
            let l = Int(merge.left), r = Int(merge.right)
            return GPT2ByteAlphabet.spell(Array(tokenizer.tokenBytes[tokenizer.tokenStarts[l] ..< tokenizer.tokenStarts[l + 1]]))
                + " " + GPT2ByteAlphabet.spell(Array(tokenizer.tokenBytes[tokenizer.tokenStarts[r] ..< tokenizer.tokenStarts[r + 1]]))
        }
    }

    static func vocabJSON(_ vocabulary: [(id: Int, text: String, special: Bool)]) -> Data {
        Data(("{" + vocabulary.map { "\(json($0.text)): \($0.id)" }.joined(separator: ", ") + "}\n").utf8)
    }

    static func mergesText(_ tokenizer: BPETokenizer) -> Data {
        Data(("#version: 0.2\n" + mergeLines(tokenizer).map { $0 + "\n" }.joined()).utf8)
    }

    /// A character tokenizer: model BPE over the characters with no merges (each character one symbol), no
    /// pre-tokenizer, and the Fuse decoder (tokens joined with nothing between them). Every text the character
    /// tokenizer encodes gets the same ids; text with a character outside the vocabulary, which it refuses, loses
    /// that character in `tokenizers` (no unknown token).
    static func characterJSON(_ tokenizer: CharTokenizer) -> Data {
        var s = "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [],\n"
        s += "  \"normalizer\": null,\n  \"pre_tokenizer\": null,\n  \"post_processor\": null,\n"
        s += "  \"decoder\": {\"type\": \"Fuse\"},\n"
        s += "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
        s += "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n"
        s += "    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n    \"vocab\": {"
        s += tokenizer.vocabulary.enumerated().map { "\n      \(json(String($1))): \($0)" }.joined(separator: ",")
        s += "\n    },\n    \"merges\": []\n  }\n}\n"
        return Data(s.utf8)
    }

    static func config(className: String, special: String?, addedTokens: [(text: String, id: Int32)], maxLength: Int) -> Data {
        let token = special.map(json) ?? "null"
        var s = "{\n  \"tokenizer_class\": \"\(className)\",\n"
        s += "  \"bos_token\": \(token),\n  \"eos_token\": \(token),\n  \"unk_token\": \(token),\n"
        s += "  \"add_prefix_space\": false,\n  \"add_bos_token\": false,\n  \"clean_up_tokenization_spaces\": false,\n"
        s += "  \"model_max_length\": \(maxLength)\n}\n"
        return Data(s.utf8)
    }

    /// A JSON string literal.
    static func json(_ text: String) -> String { quotedString(text) }

    // MARK: - In

    /// The tokenizer of a Hugging Face tokenizer.json (`file` names it in errors).
    /// - Throws: `TokenizerError.huggingFace` naming the file, the field and the reason: not a byte-level BPE
    ///   (another model, normalizer, pre-tokenizer or post-processor), a merge naming an unknown token, ...
    public static func tokenizer(fromTokenizerJSON data: Data, file: String) throws -> BPETokenizer {
        func fail(_ field: String, _ reason: String) -> TokenizerError { .huggingFace(file: file, field: field, reason: reason) }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw fail("(top level)", "is not a JSON object")
        }
        guard let model = root["model"] as? [String: Any] else { throw fail("model", "is missing") }
        let type = model["type"] as? String ?? "BPE"
        guard type == "BPE" else { throw fail("model.type", "is \"\(type)\"; only byte-level BPE models (GPT-2's kind) can be imported") }
        if let dropout = model["dropout"], !(dropout is NSNull) {
            throw fail("model.dropout", "is set; BPE dropout makes encoding random")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let value = model[key] as? String, !value.isEmpty { throw fail("model.\(key)", "is \"\(value)\"; byte-level BPE uses none") }
        }
        for key in ["byte_fallback", "ignore_merges"] where (model[key] as? Bool) == true {
            throw fail("model.\(key)", "is true; GPT-2's byte-level BPE does not do this")
        }
        if let normalizer = root["normalizer"], !(normalizer is NSNull) {
            throw fail("normalizer", "is \(typeName(normalizer)); text must reach the byte-level pre-tokenizer unchanged")
        }
        try checkByteLevel(root["pre_tokenizer"], field: "pre_tokenizer", fail: fail)
        if let post = root["post_processor"], !(post is NSNull) { try checkPostProcessor(post, field: "post_processor", fail: fail) }
        guard let vocabulary = model["vocab"] as? [String: Any] else { throw fail("model.vocab", "is missing or not an object") }
        var ids: [String: Int] = [:]
        for (text, value) in vocabulary {
            guard let id = integer(value), id >= 0, id < 1 << 24 else {
                throw fail("model.vocab[\(json(text))]", "must be an id in 0..<16777216")
            }
            ids[text] = id
        }
        var merges: [(String, String)] = []
        guard let list = model["merges"] as? [Any] else { throw fail("model.merges", "is missing or not a list") }
        for (i, entry) in list.enumerated() {
            if let line = entry as? String {
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw fail("model.merges[\(i)]", "\(json(line)) is not two tokens separated by one space") }
                merges.append((String(parts[0]), String(parts[1])))
            } else if let pair = entry as? [Any], pair.count == 2, let l = pair[0] as? String, let r = pair[1] as? String {
                merges.append((l, r))
            } else {
                throw fail("model.merges[\(i)]", "must be \"LEFT RIGHT\" or [LEFT, RIGHT]")
            }
        }
        var specials: [(text: String, id: Int32)] = []
        for (i, entry) in ((root["added_tokens"] as? [Any]) ?? []).enumerated() {
            guard let token = entry as? [String: Any], let content = token["content"] as? String,
                  let id = token["id"].flatMap(integer), id >= 0, id < 1 << 24 else {
                throw fail("added_tokens[\(i)]", "must have a \"content\" string and an \"id\"")
            }
            guard (token["special"] as? Bool) == true else {
                throw fail("added_tokens[\(i)]", "\(json(content)) is not special: tokenizers matches it in text before BPE, which gpt-data does not")
            }
            specials.append((content, Int32(id)))
        }
        return try build(ids: ids, merges: merges, specials: specials, file: file,
                         mergeField: { "model.merges[\($0)]" }, vocabField: "model.vocab")
    }

    /// The tokenizer of GPT-2's vocab.json and merges.txt. `<|endoftext|>`, when in vocab.json (as in GPT-2's),
    /// becomes the special token.
    public static func tokenizer(vocabJSON: Data, mergesText: Data, vocabFile: String, mergesFile: String) throws -> BPETokenizer {
        guard let vocabulary = (try? JSONSerialization.jsonObject(with: vocabJSON)) as? [String: Any] else {
            throw TokenizerError.huggingFace(file: vocabFile, field: "(top level)", reason: "is not a JSON object of token → id")
        }
        var ids: [String: Int] = [:]
        for (text, value) in vocabulary {
            guard let id = integer(value), id >= 0, id < 1 << 24 else {
                throw TokenizerError.huggingFace(file: vocabFile, field: json(text), reason: "must be an id in 0..<16777216")
            }
            ids[text] = id
        }
        guard let text = String(data: mergesText, encoding: .utf8) else {
            throw TokenizerError.huggingFace(file: mergesFile, field: "(contents)", reason: "is not UTF-8")
        }
        var merges: [(String, String)] = []
        var lineNumbers: [Int] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            if line.isEmpty || (n == 0 && line.hasPrefix("#version")) { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw TokenizerError.huggingFace(file: mergesFile, field: "line \(n + 1)",
                                                 reason: "\(json(String(line))) is not two tokens separated by one space")
            }
            merges.append((String(parts[0]), String(parts[1])))
            lineNumbers.append(n + 1)
        }
        var specials: [(text: String, id: Int32)] = []
        if let id = ids[BPETokenizer.endOfTextString] { specials.append((BPETokenizer.endOfTextString, Int32(id))) }
        return try build(ids: ids, merges: merges, specials: specials, file: vocabFile, mergesFile: mergesFile,
                         mergeField: { "line \(lineNumbers[$0])" }, vocabField: "(vocabulary)")
    }

    /// The tokenizer in `path`: a Hugging Face tokenizer.json, or a folder holding tokenizer.json or vocab.json
    /// and merges.txt.
    public static func load(path: String) throws -> BPETokenizer {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TokenizerError.huggingFace(file: path, field: "(path)", reason: "does not exist")
        }
        func read(_ file: String) throws -> Data {
            do { return try RegularFile.read(file) } catch {
                throw TokenizerError.huggingFace(file: file, field: "(file)", reason: error.description)
            }
        }
        if !isDirectory.boolValue { return try tokenizer(fromTokenizerJSON: read(path), file: path) }
        let json = (path as NSString).appendingPathComponent("tokenizer.json")
        if FileManager.default.fileExists(atPath: json) { return try tokenizer(fromTokenizerJSON: read(json), file: json) }
        let vocab = (path as NSString).appendingPathComponent("vocab.json")
        let merges = (path as NSString).appendingPathComponent("merges.txt")
        guard FileManager.default.fileExists(atPath: vocab), FileManager.default.fileExists(atPath: merges) else {
            throw TokenizerError.huggingFace(file: path, field: "(folder)",
                                             reason: "holds neither tokenizer.json nor vocab.json and merges.txt")
        }
        return try tokenizer(vocabJSON: read(vocab), mergesText: read(merges), vocabFile: vocab, mergesFile: merges)
    }

    static func build(ids: [String: Int], merges: [(String, String)], specials: [(text: String, id: Int32)], file: String,
                      mergesFile: String? = nil, mergeField: (Int) -> String, vocabField: String) throws -> BPETokenizer {
        let specialIDs = Set(specials.map { Int($0.id) })
        let size = max(ids.values.max() ?? -1, specialIDs.max() ?? -1) + 1
        var tokens = [[UInt8]?](repeating: nil, count: size)
        for (text, id) in ids.sorted(by: { $0.value < $1.value || ($0.value == $1.value && $0.key < $1.key) }) {
            if tokens[id] != nil && !specialIDs.contains(id) {
                throw TokenizerError.huggingFace(file: file, field: "\(vocabField)[\(json(text))]", reason: "id \(id) is given to two tokens")
            }
            if let bytes = GPT2ByteAlphabet.bytes(of: text) {
                tokens[id] = bytes
            } else {
                tokens[id] = Array(text.utf8)  // not byte-level: never produced by BPE; decodes as its text
            }
        }
        for special in specials { tokens[Int(special.id)] = Array(special.text.utf8) }
        var byteTokens: [Int32] = []
        for b in 0..<256 {
            let text = String(GPT2ByteAlphabet.characters[b])
            guard let id = ids[text] else {
                throw TokenizerError.huggingFace(
                    file: file, field: vocabField,
                    reason: "has no token for byte \(b) (spelled \(json(text))); a byte-level BPE needs all 256, or text holding that byte could not be encoded")
            }
            byteTokens.append(Int32(id))
        }
        var pairs: [BPEMerge] = []
        var results: [Int32] = []
        for (i, (left, right)) in merges.enumerated() {
            for token in [left, right] where ids[token] == nil {
                throw TokenizerError.huggingFace(file: mergesFile ?? file, field: mergeField(i),
                                                 reason: "names \(json(token)), which is not in the vocabulary")
            }
            guard let made = ids[left + right] else {
                throw TokenizerError.huggingFace(file: mergesFile ?? file, field: mergeField(i),
                                                 reason: "makes \(json(left + right)), which is not in the vocabulary")
            }
            pairs.append(BPEMerge(Int32(ids[left]!), Int32(ids[right]!)))
            results.append(Int32(made))
        }
        do {
            return try BPETokenizer(tokens: tokens, byteTokens: byteTokens, merges: pairs, mergeResults: results,
                                    specialTokens: specials)
        } catch let error as TokenizerError {
            switch error {
            case .invalidMerge(let index, _, _, let reason):
                throw TokenizerError.huggingFace(file: mergesFile ?? file, field: mergeField(index), reason: reason)
            case .malformedFile(let reason):
                throw TokenizerError.huggingFace(file: file, field: "(tokenizer)", reason: reason)
            default: throw error
            }
        }
    }

    static func checkByteLevel(_ value: Any?, field: String, fail: (String, String) -> TokenizerError) throws {
        guard let object = value as? [String: Any] else {
            throw fail(field, "is \(value.map(typeName) ?? "missing"); a byte-level BPE needs the ByteLevel pre-tokenizer")
        }
        let type = object["type"] as? String ?? "?"
        if type == "Sequence", let list = object["pretokenizers"] as? [Any], list.count == 1 {
            return try checkByteLevel(list[0], field: field + ".pretokenizers[0]", fail: fail)
        }
        guard type == "ByteLevel" else {
            throw fail(field, "is \(type); only ByteLevel (GPT-2's pre-split and byte alphabet) can be imported")
        }
        if (object["add_prefix_space"] as? Bool) == true {
            throw fail(field + ".add_prefix_space", "is true; GPT-2's tokenizer adds no space before the text")
        }
        if (object["use_regex"] as? Bool) == false {
            throw fail(field + ".use_regex", "is false; the ByteLevel pre-tokenizer must split with GPT-2's pattern")
        }
    }

    /// A post-processor that changes no ids: ByteLevel (offsets only), a TemplateProcessing whose single-text
    /// template is the text alone (what transformers saves by default), or a Sequence of those.
    static func checkPostProcessor(_ value: Any, field: String, fail: (String, String) -> TokenizerError) throws {
        let object = value as? [String: Any] ?? [:]
        switch object["type"] as? String {
        case "ByteLevel"?: return
        case "Sequence"?:
            for (i, item) in ((object["processors"] as? [Any]) ?? []).enumerated() {
                try checkPostProcessor(item, field: "\(field).processors[\(i)]", fail: fail)
            }
        case "TemplateProcessing"?:
            for piece in (object["single"] as? [Any]) ?? [] {
                if let special = (piece as? [String: Any])?["SpecialToken"] as? [String: Any] {
                    let id = special["id"] as? String ?? "?"
                    throw fail(field + ".single", "adds \(json(id)) to every text, which gpt-data does not; remove it from the template to import")
                }
            }
        default:
            throw fail(field, "is \(typeName(value)), which may add tokens to every text; remove it (set it to null) to import")
        }
    }

    static func typeName(_ value: Any) -> String {
        if value is NSNull { return "null" }
        if let object = value as? [String: Any], let type = object["type"] as? String { return type }
        return "set"
    }

    static func integer(_ value: Any) -> Int? {
        guard let number = value as? NSNumber else { return nil }
        let d = number.doubleValue
        guard d.rounded() == d, abs(d) < 9.0e15 else { return nil }
        return Int(d)
    }
}
