import Corpus
import Foundation
import TestFixtures
import Tokenizers
import XCTest

final class SHA256Tests: XCTestCase {
    func testKnownVectors() {
        // FIPS 180-4 examples.
        XCTAssertEqual(SHA256.hex([UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // A million 'a's, fed in uneven pieces.
        var s = SHA256()
        var left = 1_000_000
        var piece = 1
        while left > 0 {
            let n = min(piece, left)
            s.update([UInt8](repeating: 0x61, count: n))
            left -= n
            piece = piece * 3 + 7
        }
        XCTAssertEqual(s.hexDigest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

final class TokenShardTests: XCTestCase {
    func testWriteAndReadBackExactlyInBothWidths() throws {
        let dir = try Fixtures.directory("shard")
        for vocab in [300, 70_000] {
            let path = "\(dir)/t\(vocab).bin"
            let writer = try TokenShardWriter(path: path, vocabSize: vocab)
            let tokens = (0..<5000).map { Int32(($0 * 7919) % vocab) }
            try writer.append(Array(tokens[..<1234]))
            try writer.append(Array(tokens[1234...]))
            try writer.finish()
            let shard = try TokenShard(path: path)
            XCTAssertEqual(shard.tokenBytes, vocab <= 65536 ? 2 : 4)
            XCTAssertEqual(shard.count, 5000)
            XCTAssertEqual(shard.vocabSize, vocab)
            XCTAssertEqual(shard.allTokens(), tokens)
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
            XCTAssertEqual(size, 64 + 5000 * shard.tokenBytes)
        }
    }

    func testDamagedShardsGiveClearErrors() throws {
        let dir = try Fixtures.directory("shard-bad")
        let path = "\(dir)/t.bin"
        let writer = try TokenShardWriter(path: path, vocabSize: 100)
        try writer.append((0..<100).map { Int32($0) })
        try writer.finish()
        let good = try Data(contentsOf: URL(fileURLWithPath: path))

        func expectError(_ data: Data, _ words: String) throws {
            let bad = "\(dir)/bad.bin"
            try data.write(to: URL(fileURLWithPath: bad))
            XCTAssertThrowsError(try TokenShard(path: bad)) { error in
                XCTAssertTrue("\(error)".hasPrefix(bad), "\(error)")
                XCTAssertTrue("\(error)".contains(words), "\(error)")
            }
        }
        var magic = good
        magic[0] = UInt8(ascii: "X")
        try expectError(magic, "not a token file")
        try expectError(good.prefix(good.count - 3), "truncated")
        try expectError(good.prefix(10), "truncated")
        var version = good
        version[8] = 9
        try expectError(version, "format version 9")
        var huge = good
        for i in 16..<24 { huge[i] = 0xFF }
        try expectError(huge, "truncated: the header promises")
        var outOfRange = good
        outOfRange[64 + 2 * 50] = 200
        try expectError(outOfRange, "not below the vocabulary size 100")
    }
}

final class TokenShardWriterTests: XCTestCase {
    func testAWriterDroppedBeforeFinishLeavesNoFile() throws {
        let dir = try Fixtures.directory("shard-drop")
        do {
            let writer = try TokenShardWriter(path: "\(dir)/t.bin", vocabSize: 10)
            try writer.append([1, 2, 3])
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
    }

    /// A token id at or above the vocabulary size (or negative) is an error, in release builds too, and none of
    /// the tokens passed with it are written.
    func testTokensOutsideTheVocabularyAreRefused() throws {
        let dir = try Fixtures.directory("shard-vocab")
        let writer = try TokenShardWriter(path: "\(dir)/t.bin", vocabSize: 10)
        try writer.append([1, 2])
        XCTAssertThrowsError(try writer.append([3, 10])) { error in
            XCTAssertEqual("\(error)", "\(dir)/t.bin: token 10 (the 3th) is not below the vocabulary size 10")
        }
        XCTAssertThrowsError(try writer.append([-1])) { error in
            XCTAssertTrue("\(error)".contains("token -1"), "\(error)")
        }
        try writer.finish()
        XCTAssertEqual(try TokenShard(path: "\(dir)/t.bin").allTokens(), [1, 2])
    }
}

final class DatasetPreparerTests: XCTestCase {
    func write(_ files: [String: String], in dir: String) throws {
        for (name, text) in files {
            try text.write(toFile: "\(dir)/\(name)", atomically: true, encoding: .utf8)
        }
    }

    /// Streaming in small blocks gives exactly the tokens of encoding each split in one piece, for every
    /// tokenizer, and the split falls near the requested fraction.
    func testStreamingMatchesWholeTextEncoding() throws {
        for kind in [TokenizerKind.char, .byte, .bpe] {
            let dir = try Fixtures.directory("prep-\(kind.rawValue)")
            let a = Fixtures.text(bytes: 30_000, seed: 1) + "naïve café — 日本語 ✓\n"
            let b = Fixtures.text(bytes: 20_000, seed: 2)
            try write(["a.txt": a, "b.txt": b], in: dir)
            let out = "\(dir)/prepared"
            let meta = try DatasetPreparer(inputs: [dir], output: out,
                                           options: .init(tokenizer: kind, vocabSize: 400, valFraction: 0.2, blockBytes: 777)).run()
            let set = try PreparedDataset(directory: out)
            let all = Array((a + b).utf8)
            XCTAssertEqual(Double(meta.splitByte) / Double(all.count), 0.8, accuracy: 0.01)
            XCTAssertEqual(meta.sources.map(\.sha256), [SHA256.hex(Array(a.utf8)), SHA256.hex(Array(b.utf8))])

            // Expected: each file's part on each side of the split encoded in one piece (BPE: files are documents).
            let split = meta.splitByte, aCount = a.utf8.count
            var train: [Int32] = [], val: [Int32] = []
            let eot = (set.tokenizer as? BPETokenizer).flatMap { $0.endOfText }.map { [$0] } ?? []
            if split <= aCount {
                train = try set.tokenizer.encode(Array(all[..<split]))
                val = try set.tokenizer.encode(Array(all[split..<aCount])) + eot + (try set.tokenizer.encode(Array(all[aCount...]))) + eot
            } else {
                train = try set.tokenizer.encode(Array(all[..<aCount])) + eot + (try set.tokenizer.encode(Array(all[aCount..<split])))
                val = try set.tokenizer.encode(Array(all[split...])) + eot
            }
            XCTAssertEqual(set.train.allTokens(), train, "\(kind)")
            XCTAssertEqual(set.val.allTokens(), val, "\(kind)")
            XCTAssertEqual(set.tokenizer.decode(set.train.allTokens() + set.val.allTokens()).filter { $0 != 0 }.count > 0, true)
        }
    }

    func testNonUTF8TextIsRefusedForCharactersWithTheFileNamed() throws {
        let dir = try Fixtures.directory("prep-bad")
        try Data([0x61, 0x62, 0xFF, 0x63]).write(to: URL(fileURLWithPath: "\(dir)/x.txt"))
        XCTAssertThrowsError(try DatasetPreparer(inputs: ["\(dir)/x.txt"], output: "\(dir)/out",
                                                 options: .init(tokenizer: .char)).run()) { error in
            XCTAssertTrue("\(error)".contains("x.txt"), "\(error)")
            XCTAssertTrue("\(error)".contains("not UTF-8"), "\(error)")
        }
        // Bytes take anything.
        XCTAssertNoThrow(try DatasetPreparer(inputs: ["\(dir)/x.txt"], output: "\(dir)/out",
                                             options: .init(tokenizer: .byte, valFraction: 0.5)).run())
    }
}
