import Foundation
import XCTest
import Tokenizers

/// Hugging Face's tokenizer files, both ways, without Python (InterchangeCommandTests checks them against
/// `tokenizers` and `transformers` themselves).
final class HuggingFaceFormatTests: XCTestCase {
    func testByteAlphabetIsGPT2s() {
        let chars = GPT2ByteAlphabet.characters
        XCTAssertEqual(Set(chars).count, 256)
        XCTAssertEqual(chars[0x20], "\u{120}")   // "Ġ": a space
        XCTAssertEqual(chars[0x0A], "\u{10A}")   // "Ċ": a newline
        XCTAssertEqual(chars[0x21], "!")
        XCTAssertEqual(chars[0x00], "\u{100}")
        XCTAssertEqual(chars[0xAD], "\u{143}")   // the soft hyphen, the last of the 68 moved bytes
        XCTAssertEqual(chars[0xFF], "ÿ")
        for b in 0..<256 { XCTAssertEqual(GPT2ByteAlphabet.bytes[chars[b]], UInt8(b)) }
    }

    func trained() throws -> BPETokenizer {
        var trainer = BPETrainer()
        trainer.add(generatedText(bytes: 40_000, seed: 5) + utf8(unicodeSamples.joined(separator: "\n")))
        return try trainer.train(vocabSize: 500)
    }

    func testExportedFilesReadBackToTheSameTokenizer() throws {
        let original = try trained()
        let files = try HuggingFaceTokenizer.files(for: original, maxLength: 64)
        let viaJSON = try HuggingFaceTokenizer.tokenizer(fromTokenizerJSON: files.tokenizerJSON, file: "tokenizer.json")
        let viaGPT2 = try HuggingFaceTokenizer.tokenizer(vocabJSON: try XCTUnwrap(files.vocabJSON), mergesText: try XCTUnwrap(files.mergesText),
                                                         vocabFile: "vocab.json", mergesFile: "merges.txt")
        let text = generatedText(bytes: 3_000, seed: 9) + utf8(unicodeSamples.joined(separator: " "))
        for imported in [viaJSON, viaGPT2] {
            XCTAssertEqual(imported.encode(text), original.encode(text))
            XCTAssertEqual(imported.vocabSize, original.vocabSize)
            XCTAssertEqual(imported.endOfText, original.endOfText)
            // The same ids in the same layout: saved in this project's own form again.
            XCTAssertTrue(imported.isNativeLayout)
            XCTAssertEqual(try imported.jsonData(), try original.jsonData())
        }
        let merges = String(decoding: try XCTUnwrap(files.mergesText), as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(merges.first, "#version: 0.2")
        XCTAssertEqual(merges.count, 1 + original.merges.count)
    }

    /// A vocabulary whose ids are not bytes-then-merges (as `tokenizers`' trainer makes: special tokens first,
    /// the alphabet in character order) keeps its ids, and is saved in Hugging Face's form.
    func testForeignIDsAreKept() throws {
        let alphabet = GPT2ByteAlphabet.characters.map { String($0) }.sorted()
        var vocab: [String: Int] = ["<|endoftext|>": 0]
        for (i, c) in alphabet.enumerated() { vocab[c] = i + 1 }
        let e = GPT2ByteAlphabet.spell(Array("e".utf8)), t = GPT2ByteAlphabet.spell(Array("t".utf8))
        let space = GPT2ByteAlphabet.spell([0x20])
        vocab[space + t] = 257
        vocab[space + t + e] = 258
        let json = Self.tokenizerJSON(vocab: vocab, merges: ["\(space) \(t)", "\(space + t) \(e)"], special: ("<|endoftext|>", 0))
        let tokenizer = try HuggingFaceTokenizer.tokenizer(fromTokenizerJSON: Data(json.utf8), file: "t.json")
        XCTAssertFalse(tokenizer.isNativeLayout)
        XCTAssertEqual(tokenizer.endOfText, 0)
        XCTAssertEqual(tokenizer.encode(utf8(" te x")), [258, Int32(vocab[space]!), Int32(vocab["x"]!)])
        XCTAssertEqual(tokenizer.decode([258, 0]), Array(" te<|endoftext|>".utf8))
        // Saved in Hugging Face's form, read back through TokenizerFile as any tokenizer.json is.
        let again = try XCTUnwrap(try TokenizerFile.load(try tokenizer.jsonData()) as? BPETokenizer)
        XCTAssertEqual(again.encode(utf8(" te x")), tokenizer.encode(utf8(" te x")))
        XCTAssertEqual(try again.jsonData(), try tokenizer.jsonData())
    }

    /// Merges that use a token made by a later merge: the priority order (what `tokenizers` computes: for
    /// "aaaaa" with ranks "aa a" = 0, "a a" = 1 it gives [aaa, aa]) differs from merging all occurrences of the
    /// best pair left to right, so such tokenizers are merged with the heap.
    func testMergesOutOfCreationOrderFollowThePriorityQueue() throws {
        var vocab: [String: Int] = [:]
        for b in 0..<256 { vocab[String(GPT2ByteAlphabet.characters[b])] = b }
        vocab["<|endoftext|>"] = 256
        vocab["aa"] = 257
        vocab["aaa"] = 258
        let json = Self.tokenizerJSON(vocab: vocab, merges: ["aa a", "a a"], special: ("<|endoftext|>", 256))
        let tokenizer = try HuggingFaceTokenizer.tokenizer(fromTokenizerJSON: Data(json.utf8), file: "t.json")
        // Expected values printed by tokenizers 0.23 (Tokenizer.from_str(...).encode(w).ids).
        XCTAssertEqual(tokenizer.encode(utf8("aaaa")), [258, 97])
        XCTAssertEqual(tokenizer.encode(utf8("aaa")), [258])
        XCTAssertEqual(tokenizer.encode(utf8("aaaaa")), [258, 257])
        XCTAssertEqual(tokenizer.encode(utf8("aa")), [257])
    }

    func testUnusableFilesAreRefusedNamingFileAndField() throws {
        var vocab: [String: Int] = [:]
        for b in 0..<256 { vocab[String(GPT2ByteAlphabet.characters[b])] = b }
        vocab["<|endoftext|>"] = 256
        let vocabData = try JSONSerialization.data(withJSONObject: vocab)
        func refusal(_ merges: String) -> String {
            do {
                _ = try HuggingFaceTokenizer.tokenizer(vocabJSON: vocabData, mergesText: Data(merges.utf8),
                                                       vocabFile: "v/vocab.json", mergesFile: "v/merges.txt")
                return "accepted"
            } catch { return "\(error)" }
        }
        XCTAssertEqual(refusal("#version: 0.2\n\nzz q\n"), "v/merges.txt: line 3 names \"zz\", which is not in the vocabulary")
        XCTAssertEqual(refusal("#version: 0.2\na b c\n"), "v/merges.txt: line 2 \"a b c\" is not two tokens separated by one space")
        XCTAssertEqual(refusal("a b\n"), "v/merges.txt: line 1 makes \"ab\", which is not in the vocabulary")
        // A vocabulary without every byte.
        var short = vocab
        short.removeValue(forKey: "A")
        do {
            _ = try HuggingFaceTokenizer.tokenizer(vocabJSON: try JSONSerialization.data(withJSONObject: short), mergesText: Data(),
                                                   vocabFile: "v/vocab.json", mergesFile: "v/merges.txt")
            XCTFail("accepted")
        } catch {
            XCTAssertTrue("\(error)".hasPrefix("v/vocab.json: (vocabulary) has no token for byte 65"), "\(error)")
        }
        // Models, normalizers and templates that change ids.
        let base = Self.tokenizerJSON(vocab: vocab, merges: [], special: ("<|endoftext|>", 256))
        for (from, to, expected) in [
            ("\"normalizer\": null", "\"normalizer\": {\"type\": \"NFC\"}", "t.json: normalizer is NFC"),
            ("\"add_prefix_space\": false", "\"add_prefix_space\": true", "t.json: pre_tokenizer.add_prefix_space is true"),
            ("\"type\": \"BPE\"", "\"type\": \"WordPiece\"", "t.json: model.type is \"WordPiece\""),
            ("\"post_processor\": null",
             "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}]}",
             "t.json: post_processor.single adds \"<s>\""),
        ] {
            do {
                _ = try HuggingFaceTokenizer.tokenizer(fromTokenizerJSON: Data(base.replacingOccurrences(of: from, with: to).utf8), file: "t.json")
                XCTFail("accepted \(to)")
            } catch {
                XCTAssertTrue("\(error)".hasPrefix(expected), "\(error)")
            }
        }
    }

    func testByteAndCharacterTokenizers() throws {
        let bytes = try HuggingFaceTokenizer.files(for: ByteTokenizer(), maxLength: 8)
        let asBPE = try HuggingFaceTokenizer.tokenizer(
            vocabJSON: try XCTUnwrap(bytes.vocabJSON), mergesText: try XCTUnwrap(bytes.mergesText), vocabFile: "v", mergesFile: "m")
        XCTAssertEqual(asBPE.encode(utf8("héllo 😀")), ByteTokenizer().encode(utf8("héllo 😀")))
        let tokenizerJSON = String(decoding: bytes.tokenizerJSON, as: UTF8.self)
        XCTAssertTrue(tokenizerJSON.contains("\"added_tokens\": []"), "the byte tokenizer has no special tokens")

        let chars = try CharTokenizer(fitting: "ab\n é😀")
        let files = try HuggingFaceTokenizer.files(for: chars, maxLength: 8)
        XCTAssertNil(files.vocabJSON, "GPT-2's vocab.json implies byte-level pre-tokenization")
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: files.tokenizerJSON) as? [String: Any])
        let model = try XCTUnwrap(object["model"] as? [String: Any])
        XCTAssertEqual(model["vocab"] as? [String: Int], ["\n": 0, " ": 1, "a": 2, "b": 3, "é": 4, "😀": 5])
    }

    func testDuplicateSpellingsCannotBeExported() throws {
        // Two merges making the bytes "abc" by different paths: a vocab.json cannot hold both ids.
        let tokenizer = try BPETokenizer(merges: [BPEMerge(97, 98), BPEMerge(98, 99), BPEMerge(256, 99), BPEMerge(97, 257)])
        XCTAssertThrowsError(try HuggingFaceTokenizer.files(for: tokenizer, maxLength: 8)) { error in
            XCTAssertTrue("\(error)".contains("ids 258 and 259 are both the bytes \"abc\""), "\(error)")
        }
    }

    static func tokenizerJSON(vocab: [String: Int], merges: [String], special: (String, Int)) -> String {
        let vocabText = String(decoding: try! JSONSerialization.data(withJSONObject: vocab, options: [.sortedKeys]), as: UTF8.self)
        let mergesText = String(decoding: try! JSONSerialization.data(withJSONObject: merges), as: UTF8.self)
        return """
            {"version": "1.0", "truncation": null, "padding": null,
             "added_tokens": [{"id": \(special.1), "content": "\(special.0)", "special": true}],
             "normalizer": null,
             "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
             "post_processor": null,
             "decoder": {"type": "ByteLevel"},
             "model": {"type": "BPE", "dropout": null, "unk_token": null, "vocab": \(vocabText), "merges": \(mergesText)}}
            """
    }
}
