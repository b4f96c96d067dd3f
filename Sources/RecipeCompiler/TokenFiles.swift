#if canImport(Glibc)
import Glibc
#endif
import Corpus
import Durable
import Foundation

/// The token files the engines read, each written from a `TokenSequence` in slices (a split can be larger than
/// memory): under a temporary name, fsynced, then renamed into place, so a crash never leaves a half-written file
/// under the real name.
public enum TokenFiles {
    /// Tokens copied per slice.
    public static let slice = 1 << 20

    /// nanoGPT's `train.bin` / `val.bin`: the tokens as raw little-endian uint16, no header (its `prepare.py` writes
    /// `np.array(ids, dtype=np.uint16).tofile(...)` and `train.py` reads `np.memmap(..., dtype=np.uint16)`).
    public static func writeNanoGPT(_ tokens: any TokenSequence, to path: String) throws {
        try write(path: path, header: [], tokens: tokens, width: 2)
    }

    /// llm.c's data file (`dev/data/data_common.py`, `write_datafile`): a header of 256 little-endian int32 —
    /// magic 20240520, version 1 (GPT-2, uint16 tokens), the token count, zeros — then the tokens as uint16.
    public static func writeLLMC(_ tokens: any TokenSequence, to path: String) throws {
        guard tokens.count <= Int(Int32.max) else {
            throw ExportRefusal(key: "data.path", "\(path): \(tokens.count) tokens; llm.c's header keeps the count in an int32",
                                fix: "split the data into shards of at most \(Int32.max) tokens for llm.c")
        }
        try write(path: path, header: llmcHeader(count: tokens.count), tokens: tokens, width: 2)
    }

    /// The 1024-byte header of an llm.c token file holding `count` tokens.
    public static func llmcHeader(count: Int) -> [UInt8] {
        var header = [Int32](repeating: 0, count: 256)
        header[0] = LLMCFormat.magic
        header[1] = LLMCFormat.version
        header[2] = Int32(count)
        return header.flatMap { value in withUnsafeBytes(of: value.littleEndian, Array.init) }
    }

    /// Megatron-LM's MMap indexed dataset (megatron/core/datasets/indexed_dataset.py): `PREFIX.bin` holds the
    /// tokens of every sequence back to back in `dtype`; `PREFIX.idx` holds the header `MMIDIDX\0\0`, the version
    /// (uint64 1), the dtype code (uint8), the sequence count and the document count (uint64, the latter counting
    /// the entries of `document_indices`), the sequence lengths (int32), their byte offsets in `.bin` (int64) and
    /// the document indices (int64: 0, then the sequence index after each document's last).
    ///
    /// The split is one document, a stream of text as gpt-train samples it; it is cut into sequences of at most
    /// `maxSequence` tokens because lengths are int32 (Megatron's GPTDataset shuffles sequences between epochs, so
    /// a window may join two sequences that were not neighbours: only in splits of more than 2^30 tokens).
    /// - Parameter vocabSize: the vocabulary Megatron will use (its tokenizer's, with NullTokenizer's extra end-of-
    ///   document id); picks uint16 below 65500 and int32 above, as Megatron's `DType.optimal_dtype` does.
    public static func writeMegatron(_ tokens: any TokenSequence, prefix: String, vocabSize: Int,
                                     maxSequence: Int = 1 << 30) throws {
        let dtype = MegatronFormat.DType.optimal(vocabSize: vocabSize)
        try write(path: prefix + ".bin", header: [], tokens: tokens, width: dtype.size)
        var lengths: [Int] = []
        var start = 0
        while start < tokens.count {
            let n = min(maxSequence, tokens.count - start)
            lengths.append(n)
            start += n
        }
        try AtomicFile.write(Data(MegatronFormat.index(sequenceLengths: lengths, documentEnds: [lengths.count], dtype: dtype)),
                             to: prefix + ".idx")
    }

    /// Writes `header` then `tokens` as little-endian unsigned integers of `width` bytes.
    static func write(path: String, header: [UInt8], tokens: any TokenSequence, width: Int) throws {
        let temporary = AtomicFile.temporaryPath(for: path)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw AtomicFile.WriteError(path: path, reason: String(cString: strerror(errno))) }
        var failure: String?
        func put(_ bytes: UnsafeRawBufferPointer) {
            var offset = 0
            while failure == nil, offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = String(cString: strerror(errno))
                    return
                }
                offset += n
            }
        }
        header.withUnsafeBytes { put($0) }
        var ids = [Int32](repeating: 0, count: slice)
        var out = [UInt8](repeating: 0, count: slice * width)
        var start = 0
        while failure == nil, start < tokens.count {
            let n = min(slice, tokens.count - start)
            ids.withUnsafeMutableBufferPointer { tokens.read(start, n, into: $0.baseAddress!) }
            let limit = width >= 4 ? UInt64(UInt32.max) : (UInt64(1) << UInt64(8 * width)) - 1
            if let bad = ids[0..<n].firstIndex(where: { $0 < 0 || UInt64($0) > limit }) {
                failure = "token \(ids[bad]) at position \(start + bad) does not fit \(8 * width) bits"
                break
            }
            for i in 0..<n {
                let v = UInt32(bitPattern: ids[i])
                for b in 0..<width { out[i * width + b] = UInt8(truncatingIfNeeded: v >> UInt32(8 * b)) }
            }
            out.withUnsafeBytes { put(UnsafeRawBufferPointer(rebasing: $0[0..<(n * width)])) }
            start += n
        }
        if failure == nil, fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        if close(fd) != 0, failure == nil { failure = String(cString: strerror(errno)) }
        if let failure {
            unlink(temporary)
            throw AtomicFile.WriteError(path: path, reason: failure)
        }
        try AtomicFile.commit(temporary: temporary, to: path)
    }
}

/// llm.c's token file constants (dev/data/data_common.py).
public enum LLMCFormat {
    public static let magic: Int32 = 20240520
    /// Version 1: GPT-2 tokens, uint16 (version 2 is LLaMA 3's uint32).
    public static let version: Int32 = 1
    public static let headerBytes = 1024
}

/// Megatron-LM's MMap indexed dataset index (megatron/core/datasets/indexed_dataset.py, `_IndexWriter`).
public enum MegatronFormat {
    public static let header = Array("MMIDIDX".utf8) + [0, 0]

    /// The dtype codes of `indexed_dataset.DType`.
    public enum DType: UInt8, Sendable {
        case uint8 = 1, int8 = 2, int16 = 3, int32 = 4, int64 = 5, float64 = 6, float32 = 7, uint16 = 8

        public var size: Int {
            switch self {
            case .uint8, .int8: return 1
            case .int16, .uint16: return 2
            case .int32, .float32: return 4
            case .int64, .float64: return 8
            }
        }

        /// `DType.optimal_dtype(cardinality)`: uint16 below 65500, else int32.
        public static func optimal(vocabSize: Int) -> DType { vocabSize < 65500 ? .uint16 : .int32 }
    }

    /// The bytes of an `.idx` file for sequences of these lengths; `documentEnds` lists, for each document, the
    /// index of the sequence after its last one.
    public static func index(sequenceLengths: [Int], documentEnds: [Int], dtype: DType) -> [UInt8] {
        var out = header
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        u64(1)
        out.append(dtype.rawValue)
        u64(UInt64(sequenceLengths.count))
        u64(UInt64(documentEnds.count + 1))
        for n in sequenceLengths { withUnsafeBytes(of: Int32(n).littleEndian) { out.append(contentsOf: $0) } }
        var pointer: Int64 = 0
        for n in sequenceLengths {
            withUnsafeBytes(of: pointer.littleEndian) { out.append(contentsOf: $0) }
            pointer += Int64(n * dtype.size)
        }
        for d in [0] + documentEnds { withUnsafeBytes(of: Int64(d).littleEndian) { out.append(contentsOf: $0) } }
        return out
    }
}

/// A Python pickle (protocol 2) of the values nanoGPT's `meta.pkl` holds: a dict of str keys to ints, strs and
/// dicts between them. Written with the opcodes of Python's `pickletools`: PROTO, EMPTY_DICT, MARK, SETITEMS,
/// BININT1/BININT2/BININT, BINUNICODE, STOP (no memo: `pickle.load` does not need one).
public enum PythonPickle {
    public indirect enum Value: Equatable, Sendable {
        case int(Int)
        case string(String)
        case dict([(Value, Value)])

        public static func == (a: Value, b: Value) -> Bool {
            switch (a, b) {
            case (.int(let x), .int(let y)): return x == y
            case (.string(let x), .string(let y)): return x == y
            case (.dict(let x), .dict(let y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
            default: return false
            }
        }
    }

    public static func dumps(_ value: Value) -> [UInt8] {
        var out: [UInt8] = [0x80, 2]
        encode(value, into: &out)
        out.append(UInt8(ascii: "."))
        return out
    }

    static func encode(_ value: Value, into out: inout [UInt8]) {
        switch value {
        case .int(let n):
            if (0..<256).contains(n) {
                out += [UInt8(ascii: "K"), UInt8(n)]
            } else if (0..<65536).contains(n) {
                out += [UInt8(ascii: "M"), UInt8(n & 0xff), UInt8(n >> 8)]
            } else {
                precondition(n >= Int(Int32.min) && n <= Int(Int32.max), "pickle ints here fit an int32")
                out.append(UInt8(ascii: "J"))
                withUnsafeBytes(of: Int32(n).littleEndian) { out.append(contentsOf: $0) }
            }
        case .string(let s):
            let bytes = Array(s.utf8)
            out.append(UInt8(ascii: "X"))
            withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { out.append(contentsOf: $0) }
            out += bytes
        case .dict(let items):
            out.append(UInt8(ascii: "}"))
            // SETITEMS in batches of 1000, as pickle itself does.
            var i = 0
            while i < items.count {
                out.append(UInt8(ascii: "("))
                for (k, v) in items[i..<min(i + 1000, items.count)] {
                    encode(k, into: &out)
                    encode(v, into: &out)
                }
                out.append(UInt8(ascii: "u"))
                i += 1000
            }
        }
    }
}
