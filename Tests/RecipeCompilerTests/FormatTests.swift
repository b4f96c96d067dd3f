import Corpus
import RecipeCompiler
import Foundation
import TestFixtures
import XCTest

/// Every data format against its published specification, byte by byte, and read back by the engines' own readers
/// where they are installed (megatron-core's IndexedDataset, Python's pickle).
final class FormatTests: XCTestCase {
    let tokens: [Int32] = [0, 1, 2, 65, 255, 256, 1023, 40000, 65535, 7]

    /// llm.c dev/data/data_common.py write_datafile: header = np.zeros(256, dtype=np.int32); header[0] = 20240520;
    /// header[1] = 1 (GPT-2, uint16); header[2] = len(toks); then the tokens as uint16.
    func testLLMCTokenFileIsItsHeaderThenUint16Tokens() throws {
        let dir = try Fixtures.directory("llmc-format")
        let path = dir + "/val.bin"
        try TokenFiles.writeLLMC(InMemoryTokens(tokens), to: path)
        let b = try Support.bytes(path)
        XCTAssertEqual(b.count, 256 * 4 + 2 * tokens.count)
        XCTAssertEqual(Support.int32(b, 0), 20240520)
        XCTAssertEqual(Support.int32(b, 4), 1)
        XCTAssertEqual(Support.int32(b, 8), Int32(tokens.count))
        for i in 3..<256 { XCTAssertEqual(Support.int32(b, 4 * i), 0, "header int \(i)") }
        XCTAssertEqual(Support.uint16s(b, from: 1024), tokens)
        // Little-endian on disk: 40000 = 0x9C40 → 40 9C.
        XCTAssertEqual(Array(b[1024 + 2 * 7 ..< 1024 + 2 * 8]), [0x40, 0x9C])
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: dir).contains { $0.hasPrefix(".") }, "no temporary file left")
    }

    /// nanoGPT prepare.py: np.array(ids, dtype=np.uint16).tofile(path): no header.
    func testNanoGPTTokenFileIsRawUint16() throws {
        let dir = try Fixtures.directory("nanogpt-format")
        try TokenFiles.writeNanoGPT(InMemoryTokens(tokens), to: dir + "/train.bin")
        let b = try Support.bytes(dir + "/train.bin")
        XCTAssertEqual(b.count, 2 * tokens.count)
        XCTAssertEqual(Support.uint16s(b, from: 0), tokens)
    }

    /// A token that does not fit uint16 is refused, never truncated, and nothing is left behind.
    func testUint16FilesRefuseLargerTokens() throws {
        let dir = try Fixtures.directory("too-big")
        XCTAssertThrowsError(try TokenFiles.writeNanoGPT(InMemoryTokens([1, 2, 65536]), to: dir + "/train.bin")) { error in
            XCTAssertTrue("\(error)".contains("token 65536 at position 2 does not fit 16 bits"), "\(error)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
    }

    /// Token files bigger than one slice of the streamed writer come out whole.
    func testStreamedWriterCrossesSlices() throws {
        let dir = try Fixtures.directory("slices")
        let many = (0..<(TokenFiles.slice + 1234)).map { Int32($0 % 50000) }
        try TokenFiles.writeNanoGPT(InMemoryTokens(many), to: dir + "/t.bin")
        XCTAssertEqual(Support.uint16s(try Support.bytes(dir + "/t.bin"), from: 0), many)
    }

    /// megatron/core/datasets/indexed_dataset.py _IndexWriter: b"MMIDIDX\x00\x00", <Q 1, <B dtype code, <Q sequence
    /// count, <Q document count (entries of document_indices), int32 lengths, int64 byte pointers, int64 document
    /// indices.
    func testMegatronIndexIsTheMMapLayout() throws {
        let dir = try Fixtures.directory("megatron-format")
        // Sequences of at most 4 tokens: 4 + 4 + 2.
        try TokenFiles.writeMegatron(InMemoryTokens(tokens), prefix: dir + "/train", vocabSize: 1025, maxSequence: 4)
        let bin = try Support.bytes(dir + "/train.bin")
        XCTAssertEqual(Support.uint16s(bin, from: 0), tokens)
        let idx = try Support.bytes(dir + "/train.idx")
        XCTAssertEqual(Array(idx[0..<9]), Array("MMIDIDX".utf8) + [0, 0])
        XCTAssertEqual(Support.int64(idx, 9), 1)
        XCTAssertEqual(idx[17], 8, "uint16 is DType code 8")
        XCTAssertEqual(Support.int64(idx, 18), 3, "sequences")
        XCTAssertEqual(Support.int64(idx, 26), 2, "document_indices entries: [0, 3]")
        var at = 34
        XCTAssertEqual((0..<3).map { Support.int32(idx, at + 4 * $0) }, [4, 4, 2]); at += 12
        XCTAssertEqual((0..<3).map { Support.int64(idx, at + 8 * $0) }, [0, 8, 16]); at += 24
        XCTAssertEqual((0..<2).map { Support.int64(idx, at + 8 * $0) }, [0, 3]); at += 16
        XCTAssertEqual(idx.count, at)
        // Megatron's optimal_dtype: int32 from a cardinality of 65500.
        try TokenFiles.writeMegatron(InMemoryTokens(tokens), prefix: dir + "/big", vocabSize: 65500)
        XCTAssertEqual(try Support.bytes(dir + "/big.idx")[17], 4)
        XCTAssertEqual(try Support.bytes(dir + "/big.bin").count, 4 * tokens.count)
    }

    /// megatron-core's own IndexedDataset reads the files back, and its IndexedDatasetBuilder writes the same bytes.
    func testMegatronCoreReadsTheIndexedDataset() throws {
        try Support.requirePython("megatron.core")
        let dir = try Fixtures.directory("megatron-read")
        try TokenFiles.writeMegatron(InMemoryTokens(tokens), prefix: dir + "/small", vocabSize: 1025, maxSequence: 4)
        let wide = (0..<100).map { Int32($0 * 997 % 70000) }
        try TokenFiles.writeMegatron(InMemoryTokens(wide), prefix: dir + "/wide", vocabSize: 70000)
        let result = try Support.python(["\(Support.pythonDirectory)/read_indexed_dataset.py", dir + "/small", dir + "/wide"])
        if result.status == 3 { throw XCTSkip("megatron-core is not installed: \(result.stderr)") }
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: [String: Any]]
        let small = try XCTUnwrap(json[dir + "/small"])
        XCTAssertEqual(small["dtype"] as? String, "uint16")
        XCTAssertEqual(small["sequence_lengths"] as? [Int], [4, 4, 2])
        XCTAssertEqual(small["document_indices"] as? [Int], [0, 3])
        XCTAssertEqual(small["tokens"] as? [Int], tokens.map(Int.init))
        XCTAssertEqual(small["get_0_1_3"] as? [Int], [1, 2, 65])
        XCTAssertEqual(small["same_as_builder"] as? Bool, true)
        let w = try XCTUnwrap(json[dir + "/wide"])
        XCTAssertEqual(w["dtype"] as? String, "int32")
        XCTAssertEqual(w["tokens"] as? [Int], wide.map(Int.init))
        XCTAssertEqual(w["same_as_builder"] as? Bool, true)
    }

    /// Protocol 2 opcodes (Python's Lib/pickletools.py): PROTO 2, EMPTY_DICT, MARK, BINUNICODE, BININT1, SETITEMS, STOP.
    func testPickleBytesAreProtocol2() {
        let bytes = PythonPickle.dumps(.dict([(.string("vocab_size"), .int(65))]))
        XCTAssertEqual(bytes, [0x80, 2, UInt8(ascii: "}"), UInt8(ascii: "("), UInt8(ascii: "X"), 10, 0, 0, 0]
                       + Array("vocab_size".utf8) + [UInt8(ascii: "K"), 65, UInt8(ascii: "u"), UInt8(ascii: ".")])
        XCTAssertEqual(Array(PythonPickle.dumps(.int(50304)).dropFirst(2)), [UInt8(ascii: "M"), 0x80, 0xC4, UInt8(ascii: ".")])
        XCTAssertEqual(Array(PythonPickle.dumps(.int(70000)).dropFirst(2)), [UInt8(ascii: "J"), 0x70, 0x11, 0x01, 0x00, UInt8(ascii: ".")])
    }

    /// nanoGPT's meta.pkl, loaded by Python's pickle: what shakespeare_char's prepare.py writes.
    func testMetaPickleLoadsInPython() throws {
        try Support.requirePython("pickle")
        let dir = try Fixtures.directory("meta")
        let characters = Array("\n !é€😀ab".unicodeScalars)
        try Data(NanoGPTMeta.pickle(vocabSize: 70, characters: characters)).write(to: URL(fileURLWithPath: dir + "/meta.pkl"))
        let script = """
            import pickle, sys
            meta = pickle.load(open(sys.argv[1], 'rb'))
            chars = sys.argv[2]
            assert meta['vocab_size'] == 70, meta['vocab_size']
            assert meta['itos'] == {i: c for i, c in enumerate(chars)}, meta['itos']
            assert meta['stoi'] == {c: i for i, c in enumerate(chars)}, meta['stoi']
            assert list(meta) == ['vocab_size', 'itos', 'stoi']
            print('ok')
            """
        let result = try Support.python(["-c", script, dir + "/meta.pkl", String(String.UnicodeScalarView(characters))])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, "ok\n")
        // More than one SETITEMS batch (pickle batches 1000 items).
        let many = (0..<1500).map { Unicode.Scalar(UInt32(0x4E00 + $0))! }
        try Data(NanoGPTMeta.pickle(vocabSize: 1500, characters: many)).write(to: URL(fileURLWithPath: dir + "/big.pkl"))
        let big = try Support.python(["-c", "import pickle,sys; m = pickle.load(open(sys.argv[1],'rb')); print(len(m['itos']), len(m['stoi']), m['itos'][1499] == chr(0x4E00 + 1499))", dir + "/big.pkl"])
        XCTAssertEqual(big.stdout, "1500 1500 True\n", big.stderr)
    }
}
