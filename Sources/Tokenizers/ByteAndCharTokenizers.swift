import Foundation

/// One token per byte: token `b` is byte value `b`. Round-trips any bytes.
public struct ByteTokenizer: Tokenizer {
    public init() {}

    public var kind: TokenizerKind { .byte }
    public var vocabSize: Int { 256 }

    public func encode(_ bytes: [UInt8]) -> [Int32] {
        bytes.map { Int32($0) }
    }

    public func decode(_ tokens: [Int32]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(tokens.count)
        for token in tokens {
            if token >= 0 && token < 256 {
                out.append(UInt8(token))
            } else {
                out.append(contentsOf: replacementCharacterBytes)
            }
        }
        return out
    }

    /// `{"type": "byte", "version": 1, "vocab_size": 256}`
    public func jsonData() -> Data {
        Data("{\"type\": \"byte\", \"version\": 1, \"vocab_size\": 256}\n".utf8)
    }
}

/// One token per Unicode scalar of a fixed vocabulary, like nanoGPT's shakespeare_char
/// (`chars = sorted(list(set(text)))`): token `i` is `vocabulary[i]`.
public struct CharTokenizer: Tokenizer {
    /// The characters, in token order.
    public let vocabulary: [Unicode.Scalar]
    /// Token of each ASCII character, -1 when not in the vocabulary.
    private let asciiTokens: [Int32]
    /// Token of each non-ASCII character in the vocabulary.
    private let otherTokens: [UInt32: Int32]
    /// Token `t`'s UTF-8 bytes are `tokenBytes[tokenStarts[t] ..< tokenStarts[t + 1]]`.
    private let tokenStarts: [Int]
    private let tokenBytes: [UInt8]

    /// A tokenizer whose token `i` is `vocabulary[i]`.
    /// - Throws: `TokenizerError.emptyVocabulary`, or `.duplicateCharacter` if a character appears twice.
    public init(vocabulary: [Unicode.Scalar]) throws {
        guard !vocabulary.isEmpty else { throw TokenizerError.emptyVocabulary }
        var ascii = [Int32](repeating: -1, count: 128)
        var other: [UInt32: Int32] = [:]
        var starts = [0]
        var bytes: [UInt8] = []
        for (i, scalar) in vocabulary.enumerated() {
            if scalar.isASCII {
                guard ascii[Int(scalar.value)] < 0 else { throw TokenizerError.duplicateCharacter(scalar) }
                ascii[Int(scalar.value)] = Int32(i)
            } else {
                guard other.updateValue(Int32(i), forKey: scalar.value) == nil else {
                    throw TokenizerError.duplicateCharacter(scalar)
                }
            }
            bytes.append(contentsOf: String(scalar).utf8)
            starts.append(bytes.count)
        }
        self.vocabulary = vocabulary
        self.asciiTokens = ascii
        self.otherTokens = other
        self.tokenStarts = starts
        self.tokenBytes = bytes
    }

    /// The tokenizer of a training text: its distinct characters sorted by code point.
    /// - Throws: `TokenizerError.invalidUTF8` if `bytes` is not valid UTF-8, `.emptyVocabulary` if it is empty.
    public init(fitting bytes: [UInt8]) throws {
        var seen = [UInt64](repeating: 0, count: 0x110000 / 64)
        try bytes.withUnsafeBufferPointer { buffer in
            guard let p = buffer.baseAddress else { return }
            let n = buffer.count
            var i = 0
            while i < n {
                if p[i] < 0x80 {
                    seen[Int(p[i]) >> 6] |= 1 << UInt64(p[i] & 63)
                    i += 1
                    continue
                }
                let (value, length) = UTF8Scan.decode(p, i, n)
                guard length > 0 else { throw TokenizerError.invalidUTF8(offset: i) }
                seen[Int(value >> 6)] |= 1 << UInt64(value & 63)
                i += length
            }
        }
        var scalars: [Unicode.Scalar] = []
        for (w, word) in seen.enumerated() where word != 0 {
            for bit in 0 ..< 64 where word & (1 << UInt64(bit)) != 0 {
                scalars.append(Unicode.Scalar(UInt32(w * 64 + bit))!)
            }
        }
        try self.init(vocabulary: scalars)
    }

    /// The tokenizer of a training text: its distinct characters sorted by code point.
    public init(fitting text: String) throws {
        try self.init(fitting: Array(text.utf8))
    }

    public var kind: TokenizerKind { .char }
    public var vocabSize: Int { vocabulary.count }

    /// - Throws: `TokenizerError.invalidUTF8`, or `.unknownCharacter` naming the first character that is not in
    ///   the vocabulary.
    public func encode(_ bytes: [UInt8]) throws -> [Int32] {
        var tokens: [Int32] = []
        tokens.reserveCapacity(bytes.count)
        try bytes.withUnsafeBufferPointer { buffer in
            guard let p = buffer.baseAddress else { return }
            let n = buffer.count
            var i = 0
            while i < n {
                let token: Int32
                let (value, length) = p[i] < 0x80 ? (UInt32(p[i]), 1) : UTF8Scan.decode(p, i, n)
                guard length > 0 else { throw TokenizerError.invalidUTF8(offset: i) }
                if value < 0x80 {
                    token = asciiTokens[Int(value)]
                } else {
                    token = otherTokens[value] ?? -1
                }
                guard token >= 0 else {
                    throw TokenizerError.unknownCharacter(Unicode.Scalar(value)!, offset: i)
                }
                tokens.append(token)
                i += length
            }
        }
        return tokens
    }

    public func decode(_ tokens: [Int32]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(tokens.count)
        let count = vocabulary.count
        for token in tokens {
            if token >= 0 && Int(token) < count {
                out.append(contentsOf: tokenBytes[tokenStarts[Int(token)] ..< tokenStarts[Int(token) + 1]])
            } else {
                out.append(contentsOf: replacementCharacterBytes)
            }
        }
        return out
    }

    /// `{"type": "char", "version": 1, "vocab_size": n, "code_points": [10, 32, ...]}`
    public func jsonData() -> Data {
        let points = vocabulary.map { String($0.value) }.joined(separator: ", ")
        return Data("""
            {"type": "char", "version": 1, "vocab_size": \(vocabulary.count), "code_points": [\(points)]}

            """.utf8)
    }
}
