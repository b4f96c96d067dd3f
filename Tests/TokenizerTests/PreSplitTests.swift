import Foundation
import Tokenizers
import XCTest

/// GPT-2's pre-split pattern `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`:
/// each expectation is worked out by hand from the regex semantics (alternatives in order, each greedy).
final class PreSplitTests: XCTestCase {
    func check(_ text: String, _ expected: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(GPT2PreSplit.split(text), expected, "split of \(text.debugDescription)", file: file, line: line)
    }

    func testWordsTakeTheirLeadingSpace() {
        // " ?\p{L}+": the space before a word belongs to the word.
        check("Hello world", ["Hello", " world"])
        // Two leading spaces: the run "  " is followed by "h", so `\s+(?!\S)` backs off to the first space,
        // and the second goes with the word.
        check("  hello", [" ", " hello"])
        check("", [])
    }

    func testContractions() {
        // "'m" is tried first at the apostrophe; " here" is a space-prefixed letter run.
        check("I'm here", ["I", "'m", " here"])
        check("don't stop", ["don", "'t", " stop"])
        // "'ll" and "'ve" in a row; " 'S": contractions are lower case only, so at the space the first
        // alternative that matches is ` ?[^\s\p{L}\p{N}]+`, which takes " '" and stops at the letter "S".
        check("they'll've 'S", ["they", "'ll", "'ve", " '", "S"])
        // At the first apostrophe no contraction matches ("''"), so the other-run takes both apostrophes
        // greedily and "s" is left alone.
        check("''s", ["''", "s"])
    }

    func testWhitespaceRuns() {
        // Run of 3 spaces followed by "b": `\s+(?!\S)` backs off one character, leaving " b" for the word.
        check("a   b", ["a", "  ", " b"])
        // At the first "\n" the run "\n\n" is followed by "y", so `\s+(?!\S)` backs off to "\n" (the next
        // character is whitespace, so the look-ahead holds). The second "\n" is a run of one followed by "y":
        // `\s+(?!\S)` cannot back off further and fails, and `\s+` takes it.
        check("x\n\ny", ["x", "\n", "\n", "y"])
        // Run "\n\n " before "y": back off to "\n\n", the space joins the word.
        check("x\n\n y", ["x", "\n\n", " y"])
        // Run " \n" before "b": backs off to " "; then "\n" alone before "b" is taken by `\s+`.
        check("a \nb", ["a", " ", "\n", "b"])
        check("a\r\nb", ["a", "\r", "\n", "b"])
        // At the end of the text (?!\S) holds, so a trailing run is one chunk.
        check("end  \n", ["end", "  \n"])
        check("x   ", ["x", "   "])
        check(" \n\n", [" \n\n"])
        // A tab is whitespace but not the optional space of ` ?\p{L}+`.
        check("\tx", ["\t", "x"])
        // No-break space (U+00A0) is `\s` but not U+0020: a run of one before "b", taken by `\s+`.
        check("a\u{A0}b", ["a", "\u{A0}", "b"])
    }

    func testNumbersAndPunctuation() {
        // Letters and digits are different classes; " 45" takes its space.
        check("abc123 45", ["abc", "123", " 45"])
        check("$100.50", ["$", "100", ".", "50"])
        // Punctuation runs are one chunk (` ?[^\s\p{L}\p{N}]+`).
        check("Wait... what?!", ["Wait", "...", " what", "?!"])
        check("a -- b", ["a", " --", " b"])
        // Other numbers: Arabic-Indic digits (Nd) and the vulgar fraction ½ (No).
        check("٣٤ ½", ["٣٤", " ½"])
    }

    func testUnicodeClasses() {
        check("naïve café", ["naïve", " café"])
        check("日本語 テキスト", ["日本語", " テキスト"])
        // A combining accent is a mark (Mn), neither letter nor number: an "other" chunk of its own.
        check("e\u{301}", ["e", "\u{301}"])
        // Emoji and the skin-tone modifier are symbols: one other-run with the "!" and the leading space.
        check("hi 👍🏽!", ["hi", " 👍🏽!"])
        // Titlecase (Lt) and modifier (Lm) letters are letters.
        check("ǅx ʰ", ["ǅx", " ʰ"])
    }

    func testInvalidBytesAreOtherCharacters() {
        // 0xFF 0xFE are invalid: an other-run. 0xC3 followed by "b" is an incomplete sequence: one invalid
        // byte, so the space takes it as ` ?[^\s\p{L}\p{N}]+` and "b" starts a new chunk.
        let bytes: [UInt8] = [0x61, 0xFF, 0xFE, 0x20, 0xC3, 0x62]
        XCTAssertEqual(GPT2PreSplit.split(bytes), [[0x61], [0xFF, 0xFE], [0x20, 0xC3], [0x62]])
        // A truncated sequence at the end is invalid bytes too, and a valid "é" (C3 A9) is a letter.
        XCTAssertEqual(GPT2PreSplit.split([0x78, 0xC3, 0xA9, 0x20, 0xE2, 0x82]), [[0x78, 0xC3, 0xA9], [0x20, 0xE2, 0x82]])
    }

    func testChunksConcatenateToTheInput() {
        var rng = SeededRandom(7)
        for _ in 0..<2000 {
            let bytes = rng.below(3) == 0 ? rng.bytes(rng.below(40)) : awkwardText(pieces: rng.below(30), rng: &rng, invalid: true)
            let ranges = GPT2PreSplit.chunkRanges(bytes)
            var position = 0
            for range in ranges {
                XCTAssertEqual(range.lowerBound, position)
                XCTAssertFalse(range.isEmpty)
                position = range.upperBound
            }
            XCTAssertEqual(position, bytes.count)
        }
    }

    // MARK: safeCut

    /// Cutting where safeCut says and splitting the halves gives the chunks of the whole, for a buffer that is
    /// only the beginning of the text (the rest is unknown to safeCut).
    func assertSafeCutProperty(_ text: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> Int {
        let whole = GPT2PreSplit.split(text)
        var cuts = 0
        for bufferEnd in stride(from: 1, through: text.count, by: max(1, text.count / 97)) {
            let buffer = Array(text[..<bufferEnd])
            for limit in [bufferEnd, bufferEnd - 1, bufferEnd / 2] {
                guard let p = GPT2PreSplit.safeCut(buffer, before: limit) else { continue }
                XCTAssert(p >= 1 && p <= limit && p < bufferEnd, "cut \(p) outside 1...\(limit)", file: file, line: line)
                let halves = GPT2PreSplit.split(Array(text[..<p])) + GPT2PreSplit.split(Array(text[p...]))
                XCTAssertEqual(halves, whole, "cut at \(p) of \(String(decoding: text, as: UTF8.self).debugDescription)",
                               file: file, line: line)
                cuts += 1
            }
        }
        return cuts
    }

    func testSafeCutOnMultiLineText() {
        let text = utf8("""
            ACT I. SCENE 1.
            Elsinore. A platform before the Castle.

              Enter two Sentinels-[first,] Francisco, [who paces up and down
            at his post; then] Bernardo, [who approaches him].

            Ber. Who's there?   \n\
            Fran. Nay, answer me. Stand and unfold yourself.\t
             \u{A0}Ber. Long live the King!\r\n\r\n  Fran. Bernardo? 1,234 ½  \n\n\n
            """)
        XCTAssertGreaterThan(assertSafeCutProperty(text), 150)
        // The last cut before the end of "ACT I. SCENE 1." is before the space of " 1.".
        XCTAssertEqual(GPT2PreSplit.safeCut(text, before: 14), 12)
        // Right before "\n" after "1.".
        XCTAssertEqual(GPT2PreSplit.safeCut(text, before: 15), 15)
    }

    func testSafeCutOnRandomText() {
        var rng = SeededRandom(11)
        var cuts = 0
        for _ in 0..<300 {
            cuts += assertSafeCutProperty(awkwardText(pieces: 5 + rng.below(40), rng: &rng, invalid: rng.below(2) == 0))
        }
        XCTAssertGreaterThan(cuts, 1000)
    }

    func testSafeCutNeedsWhitespaceAfterNonWhitespace() {
        // Whitespace only after whitespace (or at the start), or none at all: no safe cut.
        XCTAssertNil(GPT2PreSplit.safeCut(utf8("abcdef"), before: 6))
        XCTAssertNil(GPT2PreSplit.safeCut(utf8("   \n\nabc"), before: 8))
        XCTAssertNil(GPT2PreSplit.safeCut(utf8("ab c"), before: 1))
        // Whitespace after "b" but the limit is before it.
        XCTAssertEqual(GPT2PreSplit.safeCut(utf8("ab c"), before: 2), 2)
        // After a non-ASCII whitespace (no-break space) it is not safe; after "é" (C3 A9) it is.
        XCTAssertNil(GPT2PreSplit.safeCut(utf8("\u{A0} x"), before: 3))
        XCTAssertEqual(GPT2PreSplit.safeCut(utf8("é x"), before: 3), 2)
    }
}
