import Foundation
import XCTest

/// SplitMix64: a small seeded generator, so every random case is reproducible.
struct SeededRandom {
    var state: UInt64

    init(_ seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }

    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
}

/// Multi-byte and awkward text: emoji (with ZWJ sequences and skin tones), CJK, Arabic, combining accents,
/// non-ASCII whitespace and numbers.
let unicodeSamples: [String] = [
    "naïve café, résumé",
    "e\u{301}te\u{301} (combining accents)",
    "👩‍👩‍👧‍👦 family, 👍🏽 thumbs, 🏳️‍🌈 flag",
    "日本語のテキストと中文文本",
    "مرحبا بالعالم ١٢٣",
    "Ελληνικά и русский текст",
    "non\u{A0}breaking\u{2028}line\u{3000}ideographic space",
    "½ ⅓ Ⅻ ²³ ٣٤",
    "tabs\tand\r\nCRLF\n\n\nand trailing   ",
    "quotes 'single' \"double\" it's we'll they've I'd",
]

/// Words for generated English-like text.
let sampleWords = [
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
    "he", "I", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you",
    "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will",
    "would", "who", "so", "no", "king", "queen", "lord", "sweet", "death", "love", "night", "thou", "thee",
    "doth", "hath", "wherefore", "art", "heaven", "England", "Rome", "don't", "it's", "we'll", "1599", "42",
]

/// Syllables for made-up words, so generated text has thousands of distinct words.
let sampleSyllables = [
    "ka", "lo", "mi", "ne", "ro", "sta", "ther", "in", "qu", "ex", "pre", "tion", "al", "ous", "ly", "ing", "ed",
    "er", "ment", "con", "de", "un", "re", "vi", "zo", "gra", "phy", "tel", "mar", "shi", "bo", "nu", "ent",
]

/// Seeded English-like text of about `count` bytes: common words, made-up words of 1 to 4 syllables
/// (sometimes capitalised), punctuation, line breaks.
func generatedText(bytes count: Int, seed: UInt64) -> [UInt8] {
    var rng = SeededRandom(seed)
    var out: [UInt8] = []
    out.reserveCapacity(count + 32)
    var lineLength = 0
    while out.count < count {
        var word = rng.pick(sampleWords)
        if rng.below(2) == 0 {
            word = (0...rng.below(4)).map { _ in rng.pick(sampleSyllables) }.joined()
            if rng.below(5) == 0 { word = word.capitalized }
        }
        if lineLength > 0 { out.append(32) }
        out.append(contentsOf: word.utf8)
        lineLength += word.utf8.count + 1
        switch rng.below(20) {
        case 0: out.append(contentsOf: ",".utf8)
        case 1: out.append(contentsOf: ".".utf8)
        case 2: out.append(contentsOf: "!".utf8)
        default: break
        }
        if lineLength > 60 || rng.below(15) == 0 {
            out.append(contentsOf: rng.below(4) == 0 ? "\n\n".utf8 : "\n".utf8)
            lineLength = 0
        }
    }
    return out
}

/// Random text from pieces that stress the pre-split rules (every whitespace and class boundary, contractions,
/// invalid bytes when `invalid` is set).
func awkwardText(pieces: Int, rng: inout SeededRandom, invalid: Bool = false) -> [UInt8] {
    let parts = [
        "a", "Z", "word", "5", "42", " ", "  ", "\n", "\n\n", "\t", "\r\n", "'", "'s", "'ll", "'re", "'S", ".", "!?",
        "\u{A0}", "\u{2028}", "\u{3000}", "é", "e\u{301}", "日本", "½", "٣", "😀", "👩‍👧", "ǅ", "ʰ",
    ]
    var out: [UInt8] = []
    for _ in 0..<pieces {
        if invalid && rng.below(8) == 0 {
            out.append(rng.pick([0x80, 0xBF, 0xC0, 0xC3, 0xE2, 0xED, 0xF0, 0xF4, 0xF8, 0xFF]))
        } else {
            out.append(contentsOf: rng.pick(parts).utf8)
        }
    }
    return out
}

func utf8(_ text: String) -> [UInt8] { Array(text.utf8) }
