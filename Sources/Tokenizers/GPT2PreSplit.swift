/// GPT-2's pre-split of text into chunks ("words") before BPE, as a hand-written scanner over UTF-8 bytes.
///
/// It gives the same chunks as Python's `regex.findall(GPT2PreSplit.pattern, text)`: at each position the
/// alternatives are tried in order and each is greedy. `\s` is Unicode `White_Space`, `\p{L}` is the letter
/// categories (Lu Ll Lt Lm Lo), `\p{N}` the number categories (Nd Nl No). Bytes that are not part of a valid
/// UTF-8 sequence are each one character of the "other" class (like punctuation), so any byte string splits,
/// and the chunks always concatenate back to the input.
public enum GPT2PreSplit {
    /// The regular expression this scanner implements.
    public static let pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    /// Calls `body` with the byte range of each chunk of `bytes`, in order.
    public static func forEachChunk(in bytes: UnsafeBufferPointer<UInt8>, _ body: (Range<Int>) throws -> Void) rethrows {
        guard let base = bytes.baseAddress else { return }
        let n = bytes.count
        var start = 0
        while start < n {
            let end = chunkEnd(base, from: start, count: n)
            try body(start..<end)
            start = end
        }
    }

    /// The byte ranges of the chunks of `bytes`, in order.
    public static func chunkRanges(_ bytes: [UInt8]) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        bytes.withUnsafeBufferPointer { buffer in forEachChunk(in: buffer) { ranges.append($0) } }
        return ranges
    }

    /// The chunks of `bytes` as byte arrays (for tests and inspection; the encoder works on ranges).
    public static func split(_ bytes: [UInt8]) -> [[UInt8]] {
        chunkRanges(bytes).map { Array(bytes[$0]) }
    }

    /// The chunks of `text` (for tests and inspection).
    public static func split(_ text: String) -> [String] {
        split(Array(text.utf8)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// A position `p` in `1...limit` (and below `bytes.count`) where `bytes` can be cut so that pre-splitting
    /// `bytes[..<p]` and the rest separately gives exactly the chunks of the whole; `nil` when there is none
    /// (no whitespace after a non-whitespace character up to `limit`). Then a caller can read more text and try
    /// again, or cut at `limit` anyway, accepting that the chunks next to that cut may differ.
    ///
    /// `bytes` may be the beginning of a longer text: the answer holds whatever follows `bytes`, so a corpus can be
    /// streamed through fixed-size blocks. The cut is the last position `p ≤ limit` where an ASCII whitespace byte
    /// (space, `\t`, `\n`, `\v`, `\f`, `\r`) follows a character that is not whitespace. Why this is safe: no chunk
    /// holds both a non-whitespace and a following whitespace character (letter, number and other runs stop at
    /// whitespace, and a contraction holds none), so the whole text has a chunk boundary at `p`; the chunks before
    /// `p` never looked past the whitespace byte (a run stops there, a contraction cannot match there, and the
    /// look-ahead of `\s+(?!\S)` only follows whitespace), so they are the same without it; and the scan from `p`
    /// reads only what follows. Cutting *after* whitespace would not be safe: `" \nX"` splits as `" "`, `"\n"`,
    /// `"X"` whole but as `" \n"` and `"X"` cut after the newline.
    public static func safeCut(_ bytes: UnsafeBufferPointer<UInt8>, before limit: Int) -> Int? {
        guard let p = bytes.baseAddress, bytes.count >= 2 else { return nil }
        var q = min(limit, bytes.count - 1)
        while q >= 1 {
            if isASCIIWhitespace(p[q]) && !characterBeforeIsWhitespace(p, q) { return q }
            q -= 1
        }
        return nil
    }

    /// `safeCut` on an array.
    public static func safeCut(_ bytes: [UInt8], before limit: Int) -> Int? {
        bytes.withUnsafeBufferPointer { safeCut($0, before: limit) }
    }

    // MARK: - Scanner

    /// Character classes of the pattern.
    static let other: UInt8 = 0, letter: UInt8 = 1, number: UInt8 = 2, space: UInt8 = 3

    /// The end of the chunk that starts at `i` (`i < n`).
    @inline(__always)
    static func chunkEnd(_ p: UnsafePointer<UInt8>, from i: Int, count n: Int) -> Int {
        let b0 = p[i]
        // 's|'t|'re|'ve|'m|'ll|'d (lower case only, as in GPT-2)
        if b0 == 0x27 && i + 1 < n {
            let b1 = p[i + 1]
            if b1 == 0x73 || b1 == 0x74 || b1 == 0x6D || b1 == 0x64 { return i + 2 }  // s t m d
            if i + 2 < n {
                let b2 = p[i + 2]
                if (b1 == 0x72 && b2 == 0x65) || (b1 == 0x76 && b2 == 0x65) || (b1 == 0x6C && b2 == 0x6C) {
                    return i + 3  // re ve ll
                }
            }
        }
        let (cls, len) = character(p, i, n)
        var j = i + len
        guard cls == space else { return run(of: cls, p, from: j, count: n) }
        // ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+`: a space (U+0020 only) takes the run that follows it.
        if b0 == 0x20 && j < n {
            let (next, nextLength) = character(p, j, n)
            if next != space { return run(of: next, p, from: j + nextLength, count: n) }
        }
        // `\s+(?!\S)|\s+`: the whole whitespace run, less its last character if a non-whitespace one follows
        // and the run has more than one character.
        var lastStart = i
        while j < n {
            let (c, l) = character(p, j, n)
            if c != space { break }
            lastStart = j
            j += l
        }
        return j < n && lastStart > i ? lastStart : j
    }

    /// The end of the run of class `cls` characters that continues at `j`.
    @inline(__always)
    static func run(of cls: UInt8, _ p: UnsafePointer<UInt8>, from start: Int, count n: Int) -> Int {
        var j = start
        while j < n {
            let b = p[j]
            if b < 0x80 {
                if asciiClass(b) != cls { break }
                j += 1
            } else {
                let (c, l) = character(p, j, n)
                if c != cls { break }
                j += l
            }
        }
        return j
    }

    /// Class and byte length of the character at `i`; an invalid byte is one character of class `other`.
    @inline(__always)
    static func character(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> (cls: UInt8, length: Int) {
        let b = p[i]
        if b < 0x80 { return (asciiClass(b), 1) }
        let (value, length) = UTF8Scan.decode(p, i, n)
        if length == 0 { return (other, 1) }
        return (value < 0x10000 ? bmpClasses[Int(value)] : unicodeClass(value), length)
    }

    @inline(__always)
    static func asciiClass(_ b: UInt8) -> UInt8 {
        if (b | 0x20) &- 0x61 < 26 { return letter }
        if b &- 0x30 < 10 { return number }
        if isASCIIWhitespace(b) { return space }
        return other
    }

    /// Space, `\t`, `\n`, `\v`, `\f`, `\r` (the ASCII `White_Space` characters).
    @inline(__always)
    static func isASCIIWhitespace(_ b: UInt8) -> Bool { b == 0x20 || b &- 0x09 < 5 }

    /// Classes of U+0000...U+FFFF, computed once.
    static let bmpClasses: [UInt8] = (0..<0x10000).map { unicodeClass(UInt32($0)) }

    static func unicodeClass(_ value: UInt32) -> UInt8 {
        guard let scalar = Unicode.Scalar(value) else { return other }
        let properties = scalar.properties
        if properties.isWhitespace { return space }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return letter
        case .decimalNumber, .letterNumber, .otherNumber: return number
        default: return other
        }
    }

    /// Whether the character that ends right before the ASCII byte at `q` is whitespace.
    static func characterBeforeIsWhitespace(_ p: UnsafePointer<UInt8>, _ q: Int) -> Bool {
        let last = p[q - 1]
        if last < 0x80 { return isASCIIWhitespace(last) }
        // Find the lead byte of the sequence `last` may end; anything else is an invalid byte (class other).
        var start = q - 1
        while start > max(0, q - 4) && UTF8Scan.isContinuation(p[start]) { start -= 1 }
        let (value, length) = UTF8Scan.decode(p, start, q)
        guard length > 0, start + length == q else { return false }
        return (value < 0x10000 ? bmpClasses[Int(value)] : unicodeClass(value)) == space
    }
}
