import Foundation

/// The kinds of tokenizer this module provides; the raw value is the `"type"` written in tokenizer.json.
public enum TokenizerKind: String, Sendable, CaseIterable {
    /// One token per distinct Unicode scalar of the training text (nanoGPT's shakespeare_char).
    case char
    /// One token per byte value (vocabulary 256).
    case byte
    /// Byte-level BPE with GPT-2's pre-split and an `<|endoftext|>` special token.
    case bpe
}

/// Turns raw UTF-8 bytes into token ids and back.
///
/// Every tokenizer is an immutable value, safe to share between threads.
public protocol Tokenizer: Sendable {
    /// Which kind of tokenizer this is.
    var kind: TokenizerKind { get }
    /// Number of token ids: every id produced by `encode` (and every special token) is in `0..<vocabSize`.
    var vocabSize: Int { get }
    /// Token ids of `bytes`, which are normally UTF-8 text.
    /// - Throws: `TokenizerError` when the text cannot be represented (e.g. a character outside a char vocabulary).
    func encode(_ bytes: [UInt8]) throws -> [Int32]
    /// The bytes that `tokens` stand for. Ids outside `0..<vocabSize` decode to U+FFFD (`EF BF BD`).
    func decode(_ tokens: [Int32]) -> [UInt8]
    /// The tokenizer.json form of this tokenizer, readable by `TokenizerFile.load`.
    func jsonData() throws -> Data
}

extension Tokenizer {
    /// Token ids of the UTF-8 form of `text`.
    public func encode(_ text: String) throws -> [Int32] {
        try encode(Array(text.utf8))
    }

    /// The text that `tokens` stand for; bytes that are not valid UTF-8 become U+FFFD.
    public func decodeString(_ tokens: [Int32]) -> String {
        String(decoding: decode(tokens), as: UTF8.self)
    }
}

/// The UTF-8 bytes of U+FFFD, what out-of-range token ids decode to.
let replacementCharacterBytes: [UInt8] = [0xEF, 0xBF, 0xBD]

/// Errors of this module: text a tokenizer cannot encode, vocabularies that cannot be built,
/// and tokenizer.json files that cannot be read.
public enum TokenizerError: Error, Equatable, Sendable, CustomStringConvertible, LocalizedError {
    /// The bytes are not valid UTF-8 at `offset` (char tokenizers need valid text).
    case invalidUTF8(offset: Int)
    /// The character at byte `offset` is not in the char tokenizer's vocabulary.
    case unknownCharacter(Unicode.Scalar, offset: Int)
    /// A char vocabulary must have at least one character.
    case emptyVocabulary
    /// A char vocabulary lists the same character twice.
    case duplicateCharacter(Unicode.Scalar)
    /// A BPE vocabulary size below the minimum (256 bytes + `<|endoftext|>`).
    case vocabularyTooSmall(requested: Int, minimum: Int)
    /// Merge number `index` is not usable (refers to an id not yet defined, or repeats an earlier merge).
    case invalidMerge(index: Int, left: Int32, right: Int32, reason: String)
    /// tokenizer.json is not JSON, or a field is missing or has the wrong form.
    case malformedFile(String)
    /// tokenizer.json names a `"type"` this module does not know.
    case unknownType(String)
    /// tokenizer.json has a `"version"` this module does not read.
    case unsupportedVersion(Int)
    /// tokenizer.json's `"vocab_size"` disagrees with its contents.
    case vocabSizeMismatch(declared: Int, actual: Int, detail: String)
    /// The tokenizer has no exact form in the format asked for.
    case notExpressible(String)
    /// A Hugging Face tokenizer file that cannot be imported: the file, the field (or line), and why.
    case huggingFace(file: String, field: String, reason: String)

    public var description: String {
        switch self {
        case .invalidUTF8(let offset):
            return "the text is not valid UTF-8 (at byte \(offset))"
        case .unknownCharacter(let scalar, let offset):
            return "character \(describe(scalar)) at byte \(offset) is not in the vocabulary of this char tokenizer"
        case .emptyVocabulary:
            return "a char tokenizer needs at least one character in its vocabulary"
        case .duplicateCharacter(let scalar):
            return "character \(describe(scalar)) appears twice in the char vocabulary"
        case .vocabularyTooSmall(let requested, let minimum):
            return "BPE vocabulary size \(requested) is too small: at least \(minimum) (256 bytes + <|endoftext|>)"
        case .invalidMerge(let index, let left, let right, let reason):
            return "BPE merge #\(index) [\(left), \(right)] is invalid: \(reason)"
        case .malformedFile(let detail):
            return "malformed tokenizer.json: \(detail)"
        case .unknownType(let type):
            return "tokenizer.json has unknown type \"\(type)\" (known: "
                + TokenizerKind.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ") + ")"
        case .unsupportedVersion(let version):
            return "tokenizer.json has version \(version); this program reads version 1"
        case .vocabSizeMismatch(let declared, let actual, let detail):
            return "tokenizer.json declares vocab_size \(declared) but its contents give \(actual) (\(detail))"
        case .notExpressible(let detail):
            return "this tokenizer cannot be written in Hugging Face's format exactly: \(detail)"
        case .huggingFace(let file, let field, let reason):
            return "\(file): \(field) \(reason)"
        }
    }

    public var errorDescription: String? { description }
}

/// `"é" (U+00E9)`, `"\n" (U+000A)`: a character as a readable literal and its code point.
func describe(_ scalar: Unicode.Scalar) -> String {
    let hex = String(scalar.value, radix: 16, uppercase: true)
    let code = "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    return "\(scalar.escaped(asASCII: false).debugQuoted) (\(code))"
}

extension String {
    fileprivate var debugQuoted: String { "\"" + self + "\"" }
}
