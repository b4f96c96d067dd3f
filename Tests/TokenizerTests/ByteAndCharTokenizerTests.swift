import Foundation
import Tokenizers
import XCTest

final class ByteTokenizerTests: XCTestCase {
    func testTokensAreByteValues() throws {
        let tokenizer = ByteTokenizer()
        XCTAssertEqual(tokenizer.kind, .byte)
        XCTAssertEqual(tokenizer.vocabSize, 256)
        XCTAssertEqual(tokenizer.encode(utf8("Hé")), [72, 195, 169])
        XCTAssertEqual(tokenizer.decodeString([72, 195, 169]), "Hé")
    }

    func testRoundTripsAnyBytes() throws {
        let tokenizer = ByteTokenizer()
        for text in unicodeSamples {
            XCTAssertEqual(tokenizer.decodeString(try tokenizer.encode(text)), text)
        }
        var rng = SeededRandom(1)
        for _ in 0..<3000 {
            let bytes = rng.bytes(rng.below(64))
            XCTAssertEqual(tokenizer.decode(tokenizer.encode(bytes)), bytes)
        }
    }

    func testOutOfRangeIdsDecodeToReplacementCharacter() {
        XCTAssertEqual(ByteTokenizer().decodeString([65, 256, -1, 66]), "A\u{FFFD}\u{FFFD}B")
    }
}

final class CharTokenizerTests: XCTestCase {
    /// The opening of tiny Shakespeare: its sorted distinct characters, as nanoGPT's shakespeare_char computes
    /// them (`sorted(list(set(text)))`).
    let opening = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"

    func testVocabularyIsSortedDistinctCharacters() throws {
        let tokenizer = try CharTokenizer(fitting: opening)
        XCTAssertEqual(tokenizer.kind, .char)
        // "\n" (10) < " " (32) < "," (44) < "." (46) < ":" (58) < "A" < "B" < "C" < "F" < "S" < lower case.
        XCTAssertEqual(String(String.UnicodeScalarView(tokenizer.vocabulary)), "\n ,.:ABCFSacdefhiklmnoprstuwyz")
        XCTAssertEqual(tokenizer.vocabSize, 30)
        XCTAssertEqual(try tokenizer.encode("\n"), [0])
        XCTAssertEqual(try tokenizer.encode(" "), [1])
        XCTAssertEqual(try tokenizer.encode("First"), [8, 16, 23, 24, 25])
    }

    func testVocabularyOrderIsByCodePoint() throws {
        // "é" (U+00E9) sorts after "z"; "😀" (U+1F600) after "日" (U+65E5).
        let tokenizer = try CharTokenizer(fitting: "😀zé日a")
        XCTAssertEqual(tokenizer.vocabulary.map(\.value), [0x61, 0x7A, 0xE9, 0x65E5, 0x1F600])
    }

    func testRoundTrip() throws {
        let corpus = unicodeSamples.joined(separator: "\n") + opening
        let tokenizer = try CharTokenizer(fitting: corpus)
        for text in unicodeSamples + [opening, corpus] {
            let tokens = try tokenizer.encode(text)
            XCTAssertEqual(tokens.count, text.unicodeScalars.count)
            XCTAssertEqual(tokenizer.decodeString(tokens), text)
        }
        // Random texts drawn from the vocabulary.
        var rng = SeededRandom(2)
        let scalars = tokenizer.vocabulary
        for _ in 0..<3000 {
            let text = String(String.UnicodeScalarView((0..<rng.below(50)).map { _ in rng.pick(scalars) }))
            XCTAssertEqual(tokenizer.decodeString(try tokenizer.encode(text)), text)
        }
    }

    func testUnknownCharacterErrorNamesIt() throws {
        let tokenizer = try CharTokenizer(fitting: "hello\n")
        XCTAssertThrowsError(try tokenizer.encode("hé")) { error in
            XCTAssertEqual(error as? TokenizerError, .unknownCharacter("é", offset: 1))
            XCTAssertEqual("\(error)", "character \"é\" (U+00E9) at byte 1 is not in the vocabulary of this char tokenizer")
        }
        XCTAssertThrowsError(try tokenizer.encode("h\tx")) { error in
            XCTAssertEqual("\(error)", "character \"\\t\" (U+0009) at byte 1 is not in the vocabulary of this char tokenizer")
        }
        XCTAssertThrowsError(try tokenizer.encode("hell😀")) { error in
            XCTAssertEqual(error.localizedDescription,
                           "character \"😀\" (U+1F600) at byte 4 is not in the vocabulary of this char tokenizer")
        }
    }

    func testInvalidUTF8IsRejected() throws {
        XCTAssertThrowsError(try CharTokenizer(fitting: [0x61, 0xC3])) { error in
            XCTAssertEqual(error as? TokenizerError, .invalidUTF8(offset: 1))
        }
        let tokenizer = try CharTokenizer(fitting: "ab")
        XCTAssertThrowsError(try tokenizer.encode([0x61, 0xFF])) { error in
            XCTAssertEqual(error as? TokenizerError, .invalidUTF8(offset: 1))
        }
    }

    func testVocabularyInit() throws {
        // Ids follow the given order, which need not be sorted.
        let tokenizer = try CharTokenizer(vocabulary: ["b", "a", "é"])
        XCTAssertEqual(try tokenizer.encode("abé"), [1, 0, 2])
        XCTAssertEqual(tokenizer.decodeString([2, 0, 3]), "éb\u{FFFD}")
        XCTAssertThrowsError(try CharTokenizer(vocabulary: ["a", "b", "a"])) { error in
            XCTAssertEqual(error as? TokenizerError, .duplicateCharacter("a"))
        }
        XCTAssertThrowsError(try CharTokenizer(vocabulary: [])) { error in
            XCTAssertEqual(error as? TokenizerError, .emptyVocabulary)
        }
        XCTAssertThrowsError(try CharTokenizer(fitting: "")) { error in
            XCTAssertEqual(error as? TokenizerError, .emptyVocabulary)
        }
    }
}
