#if canImport(Glibc)
import Glibc
#endif
import Durable
import Foundation

/// A sequence of token ids that batches are cut from.
public protocol TokenSequence: Sendable {
    var count: Int { get }
    /// Copies tokens `start..<start + n` into `out`.
    func read(_ start: Int, _ n: Int, into out: UnsafeMutablePointer<Int32>)
}

/// Tokens held in memory (a text file tokenized when the run starts).
public struct InMemoryTokens: TokenSequence {
    public let tokens: [Int32]
    public init(_ tokens: [Int32]) { self.tokens = tokens }
    public var count: Int { tokens.count }
    public func read(_ start: Int, _ n: Int, into out: UnsafeMutablePointer<Int32>) {
        tokens.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + start, count: n) }
    }
}

/// Errors reading or writing token files and prepared data directories, each naming the file.
public struct CorpusError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String
    public init(_ path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { "\(path): \(reason)" }
}

/// The token file format (`train.bin`, `val.bin`): a 64-byte little-endian header, then the tokens.
///
/// | bytes | field |
/// |---|---|
/// | 0..<8 | magic `SWGPTTOK` |
/// | 8..<12 | format version, UInt32 (1) |
/// | 12..<16 | bytes per token, UInt32: 2 (uint16) or 4 (uint32) |
/// | 16..<24 | token count, UInt64 |
/// | 24..<28 | vocabulary size, UInt32 (every token is below it) |
/// | 28..<64 | zero |
/// | 64... | the tokens, little-endian |
public enum TokenShardFormat {
    public static let magic = Array("SWGPTTOK".utf8)
    public static let version: UInt32 = 1
    public static let headerBytes = 64

    /// uint16 when every id fits, else uint32.
    public static func tokenBytes(vocabSize: Int) -> Int { vocabSize <= 65536 ? 2 : 4 }
}

/// A token file, memory-mapped and validated when opened.
public final class TokenShard: TokenSequence, Sendable {
    public let path: String
    public let count: Int
    public let tokenBytes: Int
    public let vocabSize: Int
    private let data: Data

    public init(path: String) throws {
        self.path = path
        let data: Data
        // Mapped only when it is a regular file: a FIFO in its place blocked the read forever.
        _ = try TextSources.open(path)
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw CorpusError(path, "cannot read: \((error as NSError).localizedDescription)")
        }
        self.data = data
        let h = TokenShardFormat.headerBytes
        guard data.count >= h else {
            throw CorpusError(path, "truncated: \(data.count) bytes, shorter than the \(h)-byte header")
        }
        func u32(_ at: Int) -> UInt32 { data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self) }.littleEndian }
        let magic = Array(data[0..<8])
        guard magic == TokenShardFormat.magic else {
            throw CorpusError(path, "not a token file (magic bytes \(magic.map { String(format: "%02x", $0) }.joined()), expected \"SWGPTTOK\"); write it with gpt-data prepare")
        }
        let version = u32(8)
        guard version == TokenShardFormat.version else {
            throw CorpusError(path, "token file format version \(version); this build reads version \(TokenShardFormat.version)")
        }
        let tokenBytes = Int(u32(12))
        self.tokenBytes = tokenBytes
        guard tokenBytes == 2 || tokenBytes == 4 else {
            throw CorpusError(path, "\(tokenBytes) bytes per token; only 2 and 4 are valid")
        }
        let promised = data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 16, as: UInt64.self) }.littleEndian
        guard promised <= UInt64(data.count) else {
            throw CorpusError(path, "truncated: the header promises \(promised) tokens but the file has \(data.count) bytes")
        }
        let count = Int(promised)
        self.count = count
        vocabSize = Int(u32(24))
        let expected = h + count * tokenBytes
        guard data.count == expected else {
            throw CorpusError(path, data.count < expected
                ? "truncated: the header promises \(count) tokens (\(expected) bytes) but the file has \(data.count) bytes"
                : "\(data.count - expected) bytes after the \(count) tokens the header promises")
        }
        if let bad = firstTokenOutOfRange() {
            throw CorpusError(path, "token \(bad.value) at position \(bad.index) is not below the vocabulary size \(vocabSize)")
        }
    }

    private func firstTokenOutOfRange() -> (index: Int, value: Int)? {
        data.withUnsafeBytes { raw in
            let base = raw.baseAddress! + TokenShardFormat.headerBytes
            if tokenBytes == 2 {
                let p = base.assumingMemoryBound(to: UInt16.self)
                for i in 0..<count where Int(UInt16(littleEndian: p[i])) >= vocabSize { return (i, Int(p[i])) }
            } else {
                let p = base.assumingMemoryBound(to: UInt32.self)
                for i in 0..<count where Int(UInt32(littleEndian: p[i])) >= vocabSize { return (i, Int(p[i])) }
            }
            return nil
        }
    }

    public func read(_ start: Int, _ n: Int, into out: UnsafeMutablePointer<Int32>) {
        precondition(start >= 0 && start + n <= count)
        data.withUnsafeBytes { raw in
            let base = raw.baseAddress! + TokenShardFormat.headerBytes
            if tokenBytes == 2 {
                let p = base.assumingMemoryBound(to: UInt16.self) + start
                for i in 0..<n { out[i] = Int32(UInt16(littleEndian: p[i])) }
            } else {
                let p = base.assumingMemoryBound(to: UInt32.self) + start
                for i in 0..<n { out[i] = Int32(bitPattern: UInt32(littleEndian: p[i])) }
            }
        }
    }

    /// All tokens (for tests and small files).
    public func allTokens() -> [Int32] {
        var out = [Int32](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { if count > 0 { read(0, count, into: $0.baseAddress!) } }
        return out
    }
}

/// Writes a token file as tokens arrive: a placeholder header, the tokens, then the real header; the file is
/// written under a temporary name, fsynced and renamed into place by `finish`, so a crash never leaves a
/// half-written file under the real name.
public final class TokenShardWriter {
    public let path: String
    public let tokenBytes: Int
    public let vocabSize: Int
    public private(set) var count = 0
    private let temporary: String
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private var finished = false

    public init(path: String, vocabSize: Int) throws {
        self.path = path
        self.vocabSize = vocabSize
        tokenBytes = TokenShardFormat.tokenBytes(vocabSize: vocabSize)
        let created: (path: String, descriptor: Int32)
        do { created = try AtomicFile.createTemporaryFile(for: path) } catch let error as AtomicFile.WriteError {
            throw CorpusError(path, error.reason)
        }
        temporary = created.path
        handle = FileHandle(fileDescriptor: created.descriptor, closeOnDealloc: true)
        // Room for the header, which `finish` writes once the count is known.
        do { try handle.write(contentsOf: Data(count: TokenShardFormat.headerBytes)) } catch {
            unlink(temporary)
            throw CorpusError(path, "write failed: \(error)")
        }
        buffer.reserveCapacity(1 << 20)
    }

    /// A writer dropped before `finish` (the preparation failed) removes its temporary file.
    deinit {
        if !finished {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: temporary)
        }
    }

    /// Appends tokens; throws, writing none of them, when one is not below the vocabulary size.
    public func append(_ tokens: [Int32]) throws {
        if let bad = tokens.firstIndex(where: { $0 < 0 || Int($0) >= vocabSize }) {
            throw CorpusError(path, "token \(tokens[bad]) (the \(count + bad)th) is not below the vocabulary size \(vocabSize)")
        }
        for t in tokens {
            if tokenBytes == 2 {
                buffer.append(UInt8(truncatingIfNeeded: t))
                buffer.append(UInt8(truncatingIfNeeded: t >> 8))
            } else {
                for shift in stride(from: 0, to: 32, by: 8) { buffer.append(UInt8(truncatingIfNeeded: t >> Int32(shift))) }
            }
        }
        count += tokens.count
        if buffer.count >= 1 << 20 { try flush() }
    }

    private func flush() throws {
        do { try handle.write(contentsOf: buffer) } catch { throw CorpusError(path, "write failed: \(error)") }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes the header, fsyncs and renames the file into place.
    public func finish() throws {
        try flush()
        var header = TokenShardFormat.magic
        func put32(_ x: UInt32) { withUnsafeBytes(of: x.littleEndian) { header.append(contentsOf: $0) } }
        put32(TokenShardFormat.version)
        put32(UInt32(tokenBytes))
        withUnsafeBytes(of: UInt64(count).littleEndian) { header.append(contentsOf: $0) }
        put32(UInt32(vocabSize))
        header += [UInt8](repeating: 0, count: TokenShardFormat.headerBytes - header.count)
        do {
            try handle.seek(toOffset: 0)
            try handle.write(contentsOf: header)
            try handle.synchronize()
            try handle.close()
            finished = true
            try AtomicFile.commit(temporary: temporary, to: path)
        } catch {
            throw CorpusError(path, "cannot finish: \(error)")
        }
    }
}
