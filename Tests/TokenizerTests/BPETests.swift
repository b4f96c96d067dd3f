import Foundation
import Tokenizers
import XCTest

final class BPETrainingTests: XCTestCase {
    func train(_ text: String, vocabSize: Int) throws -> BPETokenizer {
        var trainer = BPETrainer()
        trainer.add(utf8(text))
        return try trainer.train(vocabSize: vocabSize)
    }

    func words(_ counts: [(String, Int)]) -> String {
        counts.flatMap { word, count in Array(repeating: word, count: count) }.joined(separator: "\n")
    }

    /// The Hugging Face course example, one word per line (each word is a chunk; the single "\n" chunks have
    /// no pairs): hug ×10, pug ×5, pun ×12, bun ×4, hugs ×5, and xyz once.
    /// Ids: b 98, g 103, h 104, n 110, p 112, s 115, u 117, x 120, y 121, z 122.
    ///
    /// 1. pairs: hu 15, ug 20, pu 17, un 16, bu 4, gs 5, xy 1, yz 1 → ug (117,103) = 256.
    /// 2. h·ug 15, p·ug 5, pu 12, un 16, bu 4, ug·s 5 → un (117,110) = 257.
    /// 3. h·ug 15, p·ug 5, p·un 12, b·un 4, ug·s 5 → hug (104,256) = 258.
    /// 4. p·ug 5, p·un 12, b·un 4, hug·s 5 → pun (112,257) = 259.
    /// 5. p·ug 5, b·un 4, hug·s 5: a tie at 5, won by the smaller (left, right): (112,256) < (258,115) → pug = 260.
    /// 6. hug·s (258,115) = 261.  7. b·un (98,257) = 262.
    /// Then only xy and yz are left, once each: training stops early with 7 merges.
    func testHuggingFaceExample() throws {
        let text = words([("hug", 10), ("pug", 5), ("pun", 12), ("bun", 4), ("hugs", 5), ("xyz", 1)])
        let tokenizer = try train(text, vocabSize: 1000)
        XCTAssertEqual(tokenizer.merges, [
            BPEMerge(117, 103), BPEMerge(117, 110), BPEMerge(104, 256), BPEMerge(112, 257),
            BPEMerge(112, 256), BPEMerge(258, 115), BPEMerge(98, 257),
        ])
        XCTAssertEqual(tokenizer.vocabSize, 256 + 7 + 1)
        XCTAssertEqual(tokenizer.endOfText, 263)
        XCTAssertEqual(tokenizer.bytes(of: 261), utf8("hugs"))

        // A smaller vocabulary keeps the first merges.
        let small = try train(text, vocabSize: 260)
        XCTAssertEqual(small.merges, [BPEMerge(117, 103), BPEMerge(117, 110), BPEMerge(104, 256)])
        XCTAssertEqual(small.vocabSize, 260)

        // Encoding: "hugs" is one token. " pug": ug (rank 0) then p·ug (rank 4); the space has no merge.
        // " bug": ug, and b·ug was never learned.
        XCTAssertEqual(tokenizer.encode(utf8("hugs pug bug")), [261, 32, 260, 32, 98, 256])
        XCTAssertEqual(small.encode(utf8("hugs pun")), [258, 115, 32, 112, 257])
    }

    /// ab ×3, ba ×3, cd ×3: three pairs with count 3. Ties go to the smallest (left, right):
    /// (97,98) < (98,97) < (99,100).
    func testTieBreakIsSmallestPair() throws {
        let tokenizer = try train(words([("cd", 3), ("ba", 3), ("ab", 3)]), vocabSize: 300)
        XCTAssertEqual(tokenizer.merges, [BPEMerge(97, 98), BPEMerge(98, 97), BPEMerge(99, 100)])
    }

    /// "aaa" twice: the overlapping pairs a·a count 2 per word, 4 in all → aa = 256; the word becomes
    /// aa·a, so aa·a (256,97) counts 2 → 257.
    func testOverlappingPairs() throws {
        let tokenizer = try train(words([("aaa", 2)]), vocabSize: 300)
        XCTAssertEqual(tokenizer.merges, [BPEMerge(97, 97), BPEMerge(256, 97)])
        // "aaaaa": aa aa a (left to right) → then aa·a at the end → [aa, aaa].
        XCTAssertEqual(tokenizer.encode(utf8("aaaaa")), [256, 257])
    }

    /// "ab ab ab" splits as "ab", " ab", " ab": a·b counts 3 → 256, then space·ab counts 2 → 257.
    /// The pair b·space (count 2 across chunk boundaries) is never learned.
    func testNoMergesAcrossChunks() throws {
        let tokenizer = try train("ab ab ab", vocabSize: 300)
        XCTAssertEqual(tokenizer.merges, [BPEMerge(97, 98), BPEMerge(32, 256)])
    }

    func testVocabularyMustHoldBytesAndEndOfText() throws {
        XCTAssertThrowsError(try train("abc", vocabSize: 256)) { error in
            XCTAssertEqual(error as? TokenizerError, .vocabularyTooSmall(requested: 256, minimum: 257))
        }
        let minimal = try train("abab abab", vocabSize: 257)
        XCTAssertEqual(minimal.merges, [])
        XCTAssertEqual(minimal.vocabSize, 257)
        XCTAssertEqual(minimal.endOfText, 256)
    }

    /// Counting in blocks cut where safeCut says gives the same merges as the whole text, and merging two
    /// trainers gives the same as one.
    func testBlockwiseTrainingMatchesWholeText() throws {
        let text = generatedText(bytes: 60_000, seed: 3)
        var whole = BPETrainer()
        whole.add(text)
        var blockwise = BPETrainer()
        var other = BPETrainer()
        var start = 0
        var blocks = 0
        while start < text.count {
            var end = min(start + 4000, text.count)
            if end < text.count {
                let cut = GPT2PreSplit.safeCut(Array(text[start..<end]), before: end - start)
                end = start + cut!
            }
            if blocks % 2 == 0 { blockwise.add(text[start..<end]) } else { other.add(text[start..<end]) }
            blocks += 1
            start = end
        }
        blockwise.merge(other)
        XCTAssertGreaterThan(blocks, 14)
        XCTAssertEqual(blockwise.bytesSeen, text.count)
        XCTAssertEqual(blockwise.distinctChunks, whole.distinctChunks)
        XCTAssertEqual(try blockwise.train(vocabSize: 400).merges, try whole.train(vocabSize: 400).merges)
    }

    /// At a larger scale (~200 KB, 512 tokens) the vocabulary fills, the text encodes to fewer than half as many
    /// tokens as bytes, and decodes back exactly. (Training speed is measured by `gpt-bench tokenizer`, not here.)
    func testALargerTextFillsTheVocabularyCompressesAndRoundTrips() throws {
        let text = generatedText(bytes: 200_000, seed: 4)
        var trainer = BPETrainer()
        trainer.add(text)
        let tokenizer = try trainer.train(vocabSize: 512)
        // The generated text has far more than 255 frequent pairs, so the vocabulary is full.
        XCTAssertEqual(tokenizer.vocabSize, 512)
        let tokens = tokenizer.encode(text)
        XCTAssertLessThan(tokens.count, text.count / 2)
        XCTAssertEqual(tokenizer.decode(tokens), text)
    }
}

final class BPEEncodingTests: XCTestCase {
    /// A 600-token BPE learned on generated English-like text plus the Unicode samples.
    static let tokenizer: BPETokenizer = {
        var trainer = BPETrainer()
        trainer.add(generatedText(bytes: 100_000, seed: 5))
        for _ in 0..<5 { trainer.add(utf8(unicodeSamples.joined(separator: "\n"))) }
        return try! trainer.train(vocabSize: 600)
    }()

    func testRoundTripOfSeenAndUnseenText() throws {
        let tokenizer = BPEEncodingTests.tokenizer
        XCTAssertEqual(tokenizer.vocabSize, 600)
        XCTAssertEqual(tokenizer.kind, .bpe)
        let unseen = [
            "Quantum chromodynamics 😀🎉 Zürich ŽŠČ 한국어 텍스트 ﷺ \u{1F1FA}\u{1F1F8}",
            "    indented code() { return x*y; }\n\t\t}\n",
            "   ", "\n", "", "a", "'s'''s  's",
        ]
        for text in unicodeSamples + unseen {
            let tokens = try tokenizer.encode(text)
            XCTAssert(tokens.allSatisfy { $0 >= 0 && $0 < tokenizer.endOfText! }, text)
            XCTAssertEqual(tokenizer.decodeString(tokens), text)
        }
        // Learned merges make common text shorter than its bytes.
        let common = "the king and the queen, the lord of love"
        XCTAssertLessThan(try tokenizer.encode(common).count, common.utf8.count / 2)
    }

    func testRoundTripOfRandomBytes() {
        let tokenizer = BPEEncodingTests.tokenizer
        var rng = SeededRandom(6)
        for i in 0..<3000 {
            let bytes = i % 2 == 0 ? rng.bytes(rng.below(80)) : awkwardText(pieces: rng.below(40), rng: &rng, invalid: true)
            XCTAssertEqual(tokenizer.decode(tokenizer.encode(bytes)), bytes)
        }
    }

    func testEncodingIsTheSameInPiecesCutAtSafeCuts() {
        let tokenizer = BPEEncodingTests.tokenizer
        let text = generatedText(bytes: 20_000, seed: 8)
        var pieces: [Int32] = []
        var encoder = BPEEncoder(tokenizer)
        var start = 0
        while start < text.count {
            var end = min(start + 777, text.count)
            if end < text.count { end = start + GPT2PreSplit.safeCut(Array(text[start..<end]), before: end - start)! }
            pieces += encoder.encode(Array(text[start..<end]))
            start = end
        }
        XCTAssertEqual(pieces, tokenizer.encode(text))
    }

    func testEndOfTextIsSpecial() throws {
        let tokenizer = BPEEncodingTests.tokenizer
        XCTAssertEqual(tokenizer.endOfText, 599)
        // The text "<|endoftext|>" is ordinary text: it never encodes to the special token.
        let tokens = try tokenizer.encode("a<|endoftext|>b")
        XCTAssertFalse(tokens.contains(tokenizer.endOfText!))
        XCTAssertEqual(tokenizer.decodeString(tokens), "a<|endoftext|>b")
        XCTAssertEqual(tokenizer.decodeString([tokenizer.endOfText!]), "<|endoftext|>")
        // Ids out of range decode to U+FFFD.
        XCTAssertEqual(tokenizer.decodeString([97, 600, -3]), "a\u{FFFD}\u{FFFD}")
    }

    /// Merging by rank: with merges bc (256), ab (257), "abc" becomes a·bc even though a·b comes first in the
    /// text, since bc has the lower rank; then no merge of a·bc exists.
    func testMergesApplyByRankNotPosition() throws {
        let tokenizer = try BPETokenizer(merges: [BPEMerge(98, 99), BPEMerge(97, 98)])
        XCTAssertEqual(tokenizer.encode(utf8("abc")), [97, 256])
        XCTAssertEqual(tokenizer.encode(utf8("abd")), [257, 100])
    }

    /// The heap algorithm used for long chunks gives the same tokens as the simple one.
    func testLongChunkAlgorithmAgrees() {
        let tokenizer = BPEEncodingTests.tokenizer
        var rng = SeededRandom(9)
        let pieces = ["th", "e", "he", "an", "d", "a", "aa", "in", "g", "the", "ing", "s", "o", "u"]
        for _ in 0..<300 {
            let chunk = utf8((0..<rng.below(60)).map { _ in rng.pick(pieces) }.joined())
            XCTAssertEqual(tokenizer._encodeChunk(chunk, forceHeap: true), tokenizer._encodeChunk(chunk, forceHeap: false))
        }
        // A 10,000-letter chunk goes through the long-chunk path of encode, and round-trips.
        let long = utf8(String(repeating: "thethinganda", count: 834))
        let tokens = tokenizer.encode(long)
        XCTAssertEqual(tokens, tokenizer._encodeChunk(long, forceHeap: false))
        XCTAssertEqual(tokenizer.decode(tokens), long)
    }

    func testInvalidMergesAreRejected() {
        XCTAssertThrowsError(try BPETokenizer(merges: [BPEMerge(97, 256)])) { error in
            XCTAssertEqual("\(error)", "BPE merge #0 [97, 256] is invalid: id 256 is not defined before this merge (ids 0..<256 are)")
        }
        XCTAssertThrowsError(try BPETokenizer(merges: [BPEMerge(97, 98), BPEMerge(97, 98)])) { error in
            XCTAssertEqual("\(error)", "BPE merge #1 [97, 98] is invalid: repeats merge #0")
        }
        XCTAssertThrowsError(try BPETokenizer(merges: [BPEMerge(-1, 98)]))
    }
}
