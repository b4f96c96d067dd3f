import Foundation
import Tokenizers
import XCTest

final class TokenizerFileTests: XCTestCase {
    func load(_ json: String) throws -> any Tokenizer {
        try TokenizerFile.load(Data(json.utf8))
    }

    func assertLoadFails(_ json: String, _ expected: TokenizerError, _ message: String,
                         file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try load(json), file: file, line: line) { error in
            XCTAssertEqual(error as? TokenizerError, expected, file: file, line: line)
            XCTAssertEqual("\(error)", message, file: file, line: line)
        }
    }

    func testByteRoundTrip() throws {
        let data = ByteTokenizer().jsonData()
        XCTAssertEqual(String(decoding: data, as: UTF8.self), "{\"type\": \"byte\", \"version\": 1, \"vocab_size\": 256}\n")
        let loaded = try TokenizerFile.load(data)
        XCTAssert(loaded is ByteTokenizer)
        XCTAssertEqual(loaded.vocabSize, 256)
    }

    func testCharRoundTrip() throws {
        let original = try CharTokenizer(fitting: "hello wörld\n😀")
        let data = original.jsonData()
        XCTAssertEqual(String(decoding: data, as: UTF8.self),
                       "{\"type\": \"char\", \"version\": 1, \"vocab_size\": 11, \"code_points\": [10, 32, 100, 101, 104, 108, 111, 114, 119, 246, 128512]}\n")
        let loaded = try XCTUnwrap(try TokenizerFile.load(data) as? CharTokenizer)
        XCTAssertEqual(loaded.vocabulary, original.vocabulary)
        XCTAssertEqual(try loaded.encode("wörld 😀"), try original.encode("wörld 😀"))
    }

    func testBPERoundTrip() throws {
        var trainer = BPETrainer()
        trainer.add(generatedText(bytes: 30_000, seed: 12))
        let original = try trainer.train(vocabSize: 400)
        let data = try original.jsonData()
        let loaded = try XCTUnwrap(try TokenizerFile.load(data) as? BPETokenizer)
        XCTAssertEqual(loaded.merges, original.merges)
        XCTAssertEqual(loaded.vocabSize, 400)
        XCTAssertEqual(loaded.endOfText, 399)
        let text = generatedText(bytes: 5_000, seed: 13) + utf8(unicodeSamples.joined())
        XCTAssertEqual(loaded.encode(text), original.encode(text))
        // Saving again gives the same bytes.
        XCTAssertEqual(try loaded.jsonData(), data)
    }

    func testBPEFileForm() throws {
        let tokenizer = try BPETokenizer(merges: [BPEMerge(101, 32), BPEMerge(256, 116)])
        XCTAssertEqual(String(decoding: try tokenizer.jsonData(), as: UTF8.self), """
            {
              "type": "bpe",
              "version": 1,
              "vocab_size": 259,
              "pre_split": "gpt2",
              "special_tokens": {"<|endoftext|>": 258},
              "merges": [
                [101, 32],
                [256, 116]
              ]
            }

            """)
        // Field order and spacing are free.
        let loaded = try load(#"{"merges":[[101,32],[256,116]],"special_tokens":{"<|endoftext|>":258},"vocab_size":259,"pre_split":"gpt2","version":1,"type":"bpe"}"#)
        XCTAssertEqual((loaded as? BPETokenizer)?.merges, tokenizer.merges)
        // No merges at all.
        let empty = try BPETokenizer(merges: [])
        XCTAssertEqual((try TokenizerFile.load(empty.jsonData()) as? BPETokenizer)?.vocabSize, 257)
    }

    func testMalformedFiles() {
        assertLoadFails("not json", .malformedFile("not valid JSON"), "malformed tokenizer.json: not valid JSON")
        assertLoadFails("[1, 2]", .malformedFile("the top level must be a JSON object"),
                        "malformed tokenizer.json: the top level must be a JSON object")
        assertLoadFails(#"{"version": 1, "vocab_size": 256}"#, .malformedFile("missing field \"type\""),
                        "malformed tokenizer.json: missing field \"type\"")
        assertLoadFails(#"{"type": "byte", "vocab_size": 256}"#, .malformedFile("missing field \"version\""),
                        "malformed tokenizer.json: missing field \"version\"")
        assertLoadFails(#"{"type": "byte", "version": "1", "vocab_size": 256}"#,
                        .malformedFile("\"version\" must be an integer"),
                        "malformed tokenizer.json: \"version\" must be an integer")
        assertLoadFails(#"{"type": "byte", "version": 1, "vocab_size": true}"#,
                        .malformedFile("\"vocab_size\" must be an integer"),
                        "malformed tokenizer.json: \"vocab_size\" must be an integer")
        assertLoadFails(#"{"type": "byte", "version": 1, "vocab_size": 256.5}"#,
                        .malformedFile("\"vocab_size\" must be an integer"),
                        "malformed tokenizer.json: \"vocab_size\" must be an integer")
        assertLoadFails(#"{"type": "bpe", "version": 1, "vocab_size": 258, "pre_split": "gpt2", "merges": [[101, 3.5]]}"#,
                        .malformedFile("\"merges\"[0][1] must be an integer"),
                        "malformed tokenizer.json: \"merges\"[0][1] must be an integer")
        assertLoadFails(#"{"type": 3, "version": 1}"#, .malformedFile("\"type\" must be a string"),
                        "malformed tokenizer.json: \"type\" must be a string")
    }

    func testUnknownTypeAndWrongVersion() {
        assertLoadFails(#"{"type": "wordpiece", "version": 1, "vocab_size": 30000}"#, .unknownType("wordpiece"),
                        "tokenizer.json has unknown type \"wordpiece\" (known: \"char\", \"byte\", \"bpe\")")
        assertLoadFails(#"{"type": "byte", "version": 2, "vocab_size": 256}"#, .unsupportedVersion(2),
                        "tokenizer.json has version 2; this program reads version 1")
    }

    func testVocabSizeMismatches() {
        assertLoadFails(#"{"type": "byte", "version": 1, "vocab_size": 300}"#,
                        .vocabSizeMismatch(declared: 300, actual: 256, detail: "a byte tokenizer has 256 tokens"),
                        "tokenizer.json declares vocab_size 300 but its contents give 256 (a byte tokenizer has 256 tokens)")
        assertLoadFails(#"{"type": "char", "version": 1, "vocab_size": 3, "code_points": [10, 32]}"#,
                        .vocabSizeMismatch(declared: 3, actual: 2, detail: "one token per entry of code_points"),
                        "tokenizer.json declares vocab_size 3 but its contents give 2 (one token per entry of code_points)")
        assertLoadFails(
            #"{"type": "bpe", "version": 1, "vocab_size": 4096, "pre_split": "gpt2", "merges": [[101, 32]], "special_tokens": {"<|endoftext|>": 4095}}"#,
            .vocabSizeMismatch(declared: 4096, actual: 258, detail: "256 bytes + 1 merges + <|endoftext|>"),
            "tokenizer.json declares vocab_size 4096 but its contents give 258 (256 bytes + 1 merges + <|endoftext|>)")
    }

    func testMalformedCharFiles() {
        assertLoadFails(#"{"type": "char", "version": 1, "vocab_size": 2}"#, .malformedFile("missing field \"code_points\""),
                        "malformed tokenizer.json: missing field \"code_points\"")
        assertLoadFails(#"{"type": "char", "version": 1, "vocab_size": 2, "code_points": [10, 55296]}"#,
                        .malformedFile("code_points[1] = 55296 is not a Unicode scalar value"),
                        "malformed tokenizer.json: code_points[1] = 55296 is not a Unicode scalar value")
        assertLoadFails(#"{"type": "char", "version": 1, "vocab_size": 2, "code_points": [10, "a"]}"#,
                        .malformedFile("\"code_points\"[1] must be an integer"),
                        "malformed tokenizer.json: \"code_points\"[1] must be an integer")
        assertLoadFails(#"{"type": "char", "version": 1, "vocab_size": 2, "code_points": [97, 97]}"#,
                        .duplicateCharacter("a"), "character \"a\" (U+0061) appears twice in the char vocabulary")
    }

    func testMalformedBPEFiles() {
        func bpe(_ rest: String, vocab: Int = 258) -> String {
            #"{"type": "bpe", "version": 1, "vocab_size": \#(vocab), "# + rest + "}"
        }
        let special = #""special_tokens": {"<|endoftext|>": 257}"#
        assertLoadFails(bpe(#""merges": [[101, 32]], "# + special), .malformedFile("missing field \"pre_split\""),
                        "malformed tokenizer.json: missing field \"pre_split\"")
        assertLoadFails(bpe(#""pre_split": "llama", "merges": [[101, 32]], "# + special),
                        .malformedFile("pre_split \"llama\" is not supported (only \"gpt2\")"),
                        "malformed tokenizer.json: pre_split \"llama\" is not supported (only \"gpt2\")")
        assertLoadFails(bpe(#""pre_split": "gpt2", "# + special), .malformedFile("missing field \"merges\""),
                        "malformed tokenizer.json: missing field \"merges\"")
        assertLoadFails(bpe(#""pre_split": "gpt2", "merges": [[101, 32, 7]], "# + special),
                        .malformedFile("merges[0] must be a list of two token ids"),
                        "malformed tokenizer.json: merges[0] must be a list of two token ids")
        assertLoadFails(bpe(#""pre_split": "gpt2", "merges": [101, 32], "# + special, vocab: 259),
                        .malformedFile("\"merges\"[0] must be a list"),
                        "malformed tokenizer.json: \"merges\"[0] must be a list")
        assertLoadFails(bpe(#""pre_split": "gpt2", "merges": [[101, 300]], "# + special),
                        .invalidMerge(index: 0, left: 101, right: 300,
                                      reason: "id 300 is not defined before this merge (ids 0..<256 are)"),
                        "BPE merge #0 [101, 300] is invalid: id 300 is not defined before this merge (ids 0..<256 are)")
        assertLoadFails(bpe(#""pre_split": "gpt2", "merges": [[101, 32]]"#),
                        .malformedFile("special_tokens must be exactly {\"<|endoftext|>\": 257}"),
                        "malformed tokenizer.json: special_tokens must be exactly {\"<|endoftext|>\": 257}")
        assertLoadFails(bpe(#""pre_split": "gpt2", "merges": [[101, 32]], "special_tokens": {"<|endoftext|>": 0}"#),
                        .malformedFile("<|endoftext|> must be the last id, 257, not 0"),
                        "malformed tokenizer.json: <|endoftext|> must be the last id, 257, not 0")
        assertLoadFails(bpe(#""pre_split": "gpt2", "merges": [[101, 32]], "special_tokens": {"<|pad|>": 257}"#),
                        .malformedFile("special_tokens must be exactly {\"<|endoftext|>\": 257}"),
                        "malformed tokenizer.json: special_tokens must be exactly {\"<|endoftext|>\": 257}")
    }

    func testLoadFromFile() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tokenizer-test-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try CharTokenizer(fitting: "abc").jsonData().write(to: url)
        XCTAssertEqual(try TokenizerFile.load(contentsOf: url).kind, .char)
    }
}
