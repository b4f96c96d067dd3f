import Foundation
import Tokenizers
import XCTest

final class UTF8StreamDecoderTests: XCTestCase {
    func testOneByteAtATime() {
        let text = unicodeSamples.joined(separator: "\n")
        var decoder = UTF8StreamDecoder()
        var out = ""
        var emptyPushes = 0
        for byte in text.utf8 {
            let piece = decoder.push([byte])
            if piece.isEmpty { emptyPushes += 1 }
            out += piece
        }
        out += decoder.finish()
        XCTAssertEqual(out, text)
        // A push returns text exactly when its byte ends a character: the empty pushes are the bytes that are
        // not the last of their character.
        XCTAssertEqual(emptyPushes, text.utf8.count - text.unicodeScalars.count)
    }

    func testHoldsBackIncompleteSequence() {
        var decoder = UTF8StreamDecoder()
        // "€" is E2 82 AC.
        XCTAssertEqual(decoder.push([0x61, 0xE2]), "a")
        XCTAssert(decoder.hasPendingBytes)
        XCTAssertEqual(decoder.push([0x82]), "")
        XCTAssertEqual(decoder.push([0xAC, 0x62]), "€b")
        XCTAssertFalse(decoder.hasPendingBytes)
        // "😀" is F0 9F 98 80: three bytes held, the fourth completes it.
        XCTAssertEqual(decoder.push([0xF0, 0x9F, 0x98]), "")
        XCTAssertEqual(decoder.push([0x80]), "😀")
    }

    func testInvalidBytesBecomeReplacementCharacters() {
        var decoder = UTF8StreamDecoder()
        // E2 82 followed by "A": the sequence can no longer complete; one U+FFFD for the maximal subpart E2 82.
        XCTAssertEqual(decoder.push([0xE2, 0x82]), "")
        XCTAssertEqual(decoder.push([0x41]), "\u{FFFD}A")
        // A byte that can never start a sequence is replaced at once, not held.
        XCTAssertEqual(decoder.push([0x62, 0xFF]), "b\u{FFFD}")
        // E0 80 is not a valid prefix (E0 needs A0...BF next): nothing is held.
        XCTAssertEqual(decoder.push([0xE0, 0x80]), "\u{FFFD}\u{FFFD}")
        // An incomplete sequence at the end is flushed by finish.
        XCTAssertEqual(decoder.push([0x63, 0xF0, 0x9F]), "c")
        XCTAssertEqual(decoder.finish(), "\u{FFFD}")
        XCTAssertEqual(decoder.finish(), "")
    }

    /// Any bytes, pushed in random pieces, give the same text as decoding them at once.
    func testRandomPiecesMatchWholeDecoding() {
        var rng = SeededRandom(21)
        for i in 0..<2000 {
            let bytes = i % 2 == 0 ? rng.bytes(rng.below(40)) : awkwardText(pieces: rng.below(20), rng: &rng, invalid: true)
            var decoder = UTF8StreamDecoder()
            var out = ""
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + 1 + rng.below(4))
                out += decoder.push(Array(bytes[start..<end]))
                start = end
            }
            out += decoder.finish()
            XCTAssertEqual(out, String(decoding: bytes, as: UTF8.self))
        }
    }

    /// Streaming a BPE's tokens one at a time, as a sampler does.
    func testStreamingBPETokens() throws {
        var trainer = BPETrainer()
        trainer.add(utf8(String(repeating: unicodeSamples.joined(separator: " "), count: 3)))
        let tokenizer = try trainer.train(vocabSize: 400)
        let text = unicodeSamples.joined(separator: " ")
        var decoder = UTF8StreamDecoder()
        var out = ""
        for token in try tokenizer.encode(text) { out += decoder.push(tokenizer.bytes(of: token)) }
        out += decoder.finish()
        XCTAssertEqual(out, text)
    }
}
