import Foundation

/// One learned BPE merge: the adjacent tokens `left`, `right` become one new token.
public struct BPEMerge: Hashable, Sendable, CustomStringConvertible {
    public var left: Int32
    public var right: Int32

    public init(_ left: Int32, _ right: Int32) {
        self.left = left
        self.right = right
    }

    public var description: String { "[\(left), \(right)]" }
}

/// Byte-level BPE like GPT-2's. In this project's own layout (what `gpt-data prepare` trains) ids 0...255 are
/// the bytes, merge number `r` makes id `256 + r`, and the last id is the special token `<|endoftext|>`, which
/// `encode` never produces from text. A tokenizer imported from Hugging Face's files (`HuggingFaceTokenizer`) keeps
/// that vocabulary's ids instead: each byte, each merge's result and each special token has the id the files give.
///
/// Text is pre-split with `GPT2PreSplit`, and each chunk's bytes are merged by priority (the pair with the lowest
/// merge rank first, leftmost first among equals, as GPT-2, tiktoken and Hugging Face `tokenizers` do). Any byte
/// string round-trips: `decode(encode(b)) == b`.
public struct BPETokenizer: Tokenizer {
    /// The text of the special end-of-text token.
    public static let endOfTextString = "<|endoftext|>"

    /// The merges in rank order, as pairs of ids.
    public let merges: [BPEMerge]
    /// The id merge `r` makes (`256 + r` in this project's layout).
    public let mergeResults: [Int32]
    /// The id of each byte value (the byte itself in this project's layout).
    public let byteTokens: [Int32]
    /// Special tokens (never produced from text) and their ids, sorted by id.
    public let specialTokens: [(text: String, id: Int32)]
    /// Number of ids: every id `encode` produces and every special token is below it.
    public let vocabSize: Int
    /// The id of `<|endoftext|>`: callers put it between documents. Always there in this project's layout; an
    /// imported vocabulary may lack it (GPT-2's byte tokenizer as exported here has none).
    public let endOfText: Int32?
    /// Whether the ids follow this project's layout (bytes, then merges, then `<|endoftext|>`, nothing else), which
    /// tokenizer.json's own `"type": "bpe"` form describes; other tokenizers are saved in Hugging Face's form.
    public let isNativeLayout: Bool
    /// Whether merging all occurrences of the best pair left to right gives the priority order (true when every
    /// merge uses only bytes and the results of earlier merges, and results are distinct new ids); otherwise every
    /// chunk is merged with the heap.
    let leftToRight: Bool
    /// pair key → rank.
    let ranks: PairTable
    /// Token `t`'s bytes are `tokenBytes[tokenStarts[t] ..< tokenStarts[t + 1]]`, for every `t < vocabSize`
    /// (U+FFFD for ids the vocabulary leaves unused).
    let tokenStarts: [Int]
    let tokenBytes: [UInt8]
    /// Ids below `vocabSize` that stand for no token (a Hugging Face vocabulary may leave gaps).
    let unusedIDs: Set<Int32>

    public var kind: TokenizerKind { .bpe }

    /// Whether `id` stands for a token (or a special token).
    public func isUsed(_ id: Int) -> Bool { id >= 0 && id < vocabSize && !unusedIDs.contains(Int32(id)) }

    /// A tokenizer in this project's layout with these merges, in rank order.
    /// - Throws: `TokenizerError.invalidMerge` when a merge uses an id not yet defined (the special token or one
    ///   made by a later merge) or repeats an earlier merge.
    public init(merges: [BPEMerge]) throws {
        var ranks = PairTable(capacity: merges.count)
        var starts = Array(0...256)
        var bytes = (0...255).map { UInt8($0) }
        for (rank, merge) in merges.enumerated() {
            let defined = Int32(256 + rank)
            for id in [merge.left, merge.right] where id < 0 || id >= defined {
                throw TokenizerError.invalidMerge(
                    index: rank, left: merge.left, right: merge.right,
                    reason: "id \(id) is not defined before this merge (ids 0..<\(defined) are)")
            }
            let existing = ranks.findOrInsert(PairTable.key(merge.left, merge.right)) { Int32(rank) }
            if existing != Int32(rank) {
                throw TokenizerError.invalidMerge(
                    index: rank, left: merge.left, right: merge.right, reason: "repeats merge #\(existing)")
            }
            for id in [merge.left, merge.right] {
                bytes.append(contentsOf: bytes[starts[Int(id)] ..< starts[Int(id) + 1]])
            }
            starts.append(bytes.count)
        }
        bytes.append(contentsOf: BPETokenizer.endOfTextString.utf8)
        starts.append(bytes.count)
        self.merges = merges
        self.mergeResults = (0 ..< merges.count).map { Int32(256 + $0) }
        self.byteTokens = (0 ..< 256).map { Int32($0) }
        self.endOfText = Int32(256 + merges.count)
        self.specialTokens = [(BPETokenizer.endOfTextString, Int32(256 + merges.count))]
        self.vocabSize = 256 + merges.count + 1
        self.isNativeLayout = true
        self.leftToRight = true
        self.unusedIDs = []
        self.ranks = ranks
        self.tokenStarts = starts
        self.tokenBytes = bytes
    }

    /// A tokenizer over any vocabulary: `tokens[id]` is the bytes of id `id` (nil for an unused id), `byteTokens`
    /// the id of each byte value, `merges[r]` joins two ids into `mergeResults[r]`, and `specialTokens` are never
    /// produced from text (`<|endoftext|>`, when among them, is `endOfText`).
    /// - Throws: `TokenizerError.invalidMerge` (an id out of range, a result whose bytes are not its operands'
    ///   joined, a repeated pair), `.malformedFile` (a byte's token not that byte).
    public init(tokens: [[UInt8]?], byteTokens: [Int32], merges: [BPEMerge], mergeResults: [Int32],
                specialTokens: [(text: String, id: Int32)]) throws {
        let n = tokens.count
        func valid(_ id: Int32) -> Bool { id >= 0 && Int(id) < n && tokens[Int(id)] != nil }
        guard byteTokens.count == 256 else { throw TokenizerError.malformedFile("a byte-level BPE needs one token for each of the 256 bytes") }
        for (b, id) in byteTokens.enumerated() where !valid(id) || tokens[Int(id)]! != [UInt8(b)] {
            throw TokenizerError.malformedFile("the token of byte \(b) (id \(id)) is not that byte")
        }
        precondition(merges.count == mergeResults.count)
        var ranks = PairTable(capacity: merges.count)
        // Whether left-to-right merging equals the priority order: merge r may use only bytes and results of
        // merges before it, and each result is a new id.
        var definedAt = [Int32](repeating: Int32.max, count: n)  // rank of the merge that makes an id; -1 for bytes
        for id in byteTokens { definedAt[Int(id)] = -1 }
        var ordered = true
        for (rank, merge) in merges.enumerated() {
            let made = mergeResults[rank]
            for id in [merge.left, merge.right, made] where !valid(id) {
                throw TokenizerError.invalidMerge(index: rank, left: merge.left, right: merge.right,
                                                  reason: "id \(id) is not in the vocabulary (0..<\(n))")
            }
            guard tokens[Int(made)]! == tokens[Int(merge.left)]! + tokens[Int(merge.right)]! else {
                throw TokenizerError.invalidMerge(index: rank, left: merge.left, right: merge.right,
                                                  reason: "its result, id \(made), is not the two tokens joined")
            }
            let existing = ranks.findOrInsert(PairTable.key(merge.left, merge.right)) { Int32(rank) }
            if existing != Int32(rank) {
                throw TokenizerError.invalidMerge(index: rank, left: merge.left, right: merge.right,
                                                  reason: "repeats merge #\(existing)")
            }
            if definedAt[Int(merge.left)] >= Int32(rank) || definedAt[Int(merge.right)] >= Int32(rank)
                || definedAt[Int(made)] != Int32.max {
                ordered = false
            }
            if definedAt[Int(made)] == Int32.max { definedAt[Int(made)] = Int32(rank) }
        }
        var starts = [0]
        var bytes: [UInt8] = []
        for token in tokens {
            bytes.append(contentsOf: token ?? replacementCharacterBytes)
            starts.append(bytes.count)
        }
        let specials = specialTokens.sorted { $0.id < $1.id }
        for special in specials where special.id < 0 || Int(special.id) >= n {
            throw TokenizerError.malformedFile("special token \(special.text) has id \(special.id), outside the vocabulary")
        }
        let eot = specials.first(where: { $0.text == BPETokenizer.endOfTextString })?.id
        self.merges = merges
        self.mergeResults = mergeResults
        self.byteTokens = byteTokens
        self.specialTokens = specials
        self.vocabSize = n
        self.endOfText = eot
        self.isNativeLayout = n == 256 + merges.count + 1 && byteTokens.elementsEqual(Int32(0) ..< 256)
            && mergeResults.elementsEqual(Int32(256) ..< Int32(256 + merges.count)) && specials.count == 1 && eot == Int32(n - 1) && ordered
        self.leftToRight = ordered
        self.unusedIDs = Set(tokens.indices.filter { tokens[$0] == nil }.map { Int32($0) })
        self.ranks = ranks
        self.tokenStarts = starts
        self.tokenBytes = bytes
    }

    /// The bytes of one token (`"<|endoftext|>"` for the special token, U+FFFD for ids out of range).
    public func bytes(of token: Int32) -> [UInt8] {
        decode([token])
    }

    /// The tokens of `bytes`: pre-split chunks, each merged by rank. Never produces `endOfText`.
    public func encode(_ bytes: [UInt8]) -> [Int32] {
        var encoder = BPEEncoder(self)
        return encoder.encode(bytes)
    }

    public func decode(_ tokens: [Int32]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(tokens.count * 4)
        let n = vocabSize
        for token in tokens {
            if token >= 0 && Int(token) < n {
                out.append(contentsOf: tokenBytes[tokenStarts[Int(token)] ..< tokenStarts[Int(token) + 1]])
            } else {
                out.append(contentsOf: replacementCharacterBytes)
            }
        }
        return out
    }

    /// `{"type": "bpe", "version": 1, "vocab_size": ..., "pre_split": "gpt2", "special_tokens": {...}, "merges": [[l, r], ...]}`
    /// in this project's layout; otherwise Hugging Face's tokenizer.json (`HuggingFaceTokenizer.tokenizerJSON`),
    /// which `TokenizerFile.load` reads too.
    public func jsonData() throws -> Data {
        guard isNativeLayout else { return try HuggingFaceTokenizer.tokenizerJSON(self) }
        var text = """
            {
              "type": "bpe",
              "version": 1,
              "vocab_size": \(vocabSize),
              "pre_split": "gpt2",
              "special_tokens": {"\(BPETokenizer.endOfTextString)": \(endOfText!)},
              "merges": [
            """
        for (i, merge) in merges.enumerated() {
            text += (i == 0 ? "\n    " : ",\n    ") + "[\(merge.left), \(merge.right)]"
        }
        text += merges.isEmpty ? "]\n}\n" : "\n  ]\n}\n"
        return Data(text.utf8)
    }

    /// The tokens of one pre-split chunk. `forceHeap` picks the algorithm used for long chunks even for short
    /// ones; both give the same tokens (exposed so tests can check that).
    public func _encodeChunk(_ bytes: [UInt8], forceHeap: Bool) -> [Int32] {
        var ids = bytes.map { byteTokens[Int($0)] }
        let n = forceHeap || !leftToRight ? mergeLongChunk(&ids, count: ids.count) : mergeShortChunk(&ids, count: ids.count)
        return Array(ids[..<n])
    }

    // MARK: - Merging one chunk

    @inline(__always)
    func rank(_ left: Int32, _ right: Int32) -> Int32? {
        ranks[PairTable.key(left, right)]
    }

    /// Merges `ids[0..<count]` in place, returning the new count: repeatedly finds the lowest-rank pair and
    /// merges all its occurrences left to right. O(count × merges applied); for short chunks.
    func mergeShortChunk(_ ids: inout [Int32], count: Int) -> Int {
        var n = count
        while n > 1 {
            var best = Int32.max, bestAt = -1
            for i in 0 ..< n - 1 {
                if let r = rank(ids[i], ids[i + 1]), r < best {
                    best = r
                    bestAt = i
                }
            }
            if bestAt < 0 { break }
            let a = ids[bestAt], b = ids[bestAt + 1], made = mergeResults[Int(best)]
            var read = bestAt, write = bestAt
            while read < n {
                if read + 1 < n && ids[read] == a && ids[read + 1] == b {
                    ids[write] = made
                    read += 2
                } else {
                    ids[write] = ids[read]
                    read += 1
                }
                write += 1
            }
            n = write
        }
        return n
    }

    /// The same as `mergeShortChunk` in O(count log count): a linked list of tokens and a min-heap of
    /// (rank, position) candidates, checked when popped. The leftmost occurrence of the lowest rank is merged
    /// first, which is what the left-to-right pass does, since a merge only creates pairs of higher rank.
    func mergeLongChunk(_ ids: inout [Int32], count n: Int) -> Int {
        guard n > 1 else { return n }
        var next = Array(1...n)          // n means none
        var prev = Array(-1 ..< n - 1)   // -1 means none
        var heap: [UInt64] = []          // rank << 32 | position, smallest first
        for i in 0 ..< n - 1 {
            if let r = rank(ids[i], ids[i + 1]) { heap.append(UInt64(r) << 32 | UInt64(i)) }
        }
        heap.sort()  // a sorted array is a valid min-heap
        while let top = popMin(&heap) {
            let r = Int32(top >> 32), i = Int(top & 0xFFFF_FFFF)
            let j = next[i]
            // Stale if position i was merged away (prev link broken) or its pair changed.
            guard j < n, ids[i] >= 0, rank(ids[i], ids[j]) == r else { continue }
            ids[i] = mergeResults[Int(r)]
            ids[j] = -1  // removed
            let k = next[j]
            next[i] = k
            if k < n { prev[k] = i }
            if prev[i] >= 0, let rl = rank(ids[prev[i]], ids[i]) { pushMin(&heap, UInt64(rl) << 32 | UInt64(prev[i])) }
            if k < n, let rr = rank(ids[i], ids[k]) { pushMin(&heap, UInt64(rr) << 32 | UInt64(i)) }
        }
        var write = 0, i = 0
        while i < n {
            ids[write] = ids[i]
            write += 1
            i = next[i]
        }
        return write
    }
}

@inline(__always)
private func pushMin(_ heap: inout [UInt64], _ value: UInt64) {
    heap.append(value)
    var i = heap.count - 1
    while i > 0 {
        let parent = (i - 1) / 2
        if heap[parent] <= value { break }
        heap[i] = heap[parent]
        i = parent
    }
    heap[i] = value
}

@inline(__always)
private func popMin(_ heap: inout [UInt64]) -> UInt64? {
    guard let top = heap.first else { return nil }
    let last = heap.removeLast()
    if heap.isEmpty { return top }
    var i = 0
    let n = heap.count
    while true {
        var child = 2 * i + 1
        if child >= n { break }
        if child + 1 < n && heap[child + 1] < heap[child] { child += 1 }
        if last <= heap[child] { break }
        heap[i] = heap[child]
        i = child
    }
    heap[i] = last
    return top
}

/// Encodes with a cache of chunk → tokens that lives as long as the encoder: make one per thread and feed it
/// block after block. The cache is emptied whenever it holds more than `cacheLimitBytes`.
public struct BPEEncoder: Sendable {
    public let tokenizer: BPETokenizer
    /// Memory bound of the chunk cache, in bytes.
    public let cacheLimitBytes: Int
    private var cache = ByteStringTable(capacity: 256)
    private var cachedStarts: [Int] = []   // entry e's tokens are cachedTokens[cachedStarts[e] ..< + cachedCounts[e]]
    private var cachedCounts: [Int32] = []
    private var cachedTokens: [Int32] = []
    private var scratch: [Int32] = []

    /// Chunks longer than this are merged with the heap algorithm, and not cached.
    static let longChunk = 128

    public init(_ tokenizer: BPETokenizer, cacheLimitBytes: Int = 64 << 20) {
        self.tokenizer = tokenizer
        self.cacheLimitBytes = cacheLimitBytes
    }

    /// The tokens of `bytes`.
    public mutating func encode(_ bytes: [UInt8]) -> [Int32] {
        var tokens: [Int32] = []
        tokens.reserveCapacity(bytes.count / 3)
        bytes.withUnsafeBufferPointer { encode($0, into: &tokens) }
        return tokens
    }

    /// Appends the tokens of `bytes` to `tokens`.
    public mutating func encode(_ bytes: UnsafeBufferPointer<UInt8>, into tokens: inout [Int32]) {
        guard let p = bytes.baseAddress else { return }
        let n = bytes.count
        var start = 0
        while start < n {
            let end = GPT2PreSplit.chunkEnd(p, from: start, count: n)
            encodeChunk(p + start, end - start, into: &tokens)
            start = end
        }
    }

    @inline(__always)
    private mutating func encodeChunk(_ p: UnsafePointer<UInt8>, _ length: Int, into tokens: inout [Int32]) {
        if length == 1 {
            tokens.append(tokenizer.byteTokens[Int(p[0])])
            return
        }
        if length <= BPEEncoder.longChunk, let e = cache.find(p, length) {
            let s = cachedStarts[e]
            tokens.append(contentsOf: cachedTokens[s ..< s + Int(cachedCounts[e])])
            return
        }
        scratch.removeAll(keepingCapacity: true)
        for i in 0 ..< length { scratch.append(tokenizer.byteTokens[Int(p[i])]) }
        if length > BPEEncoder.longChunk || !tokenizer.leftToRight {
            let count = tokenizer.mergeLongChunk(&scratch, count: length)
            tokens.append(contentsOf: scratch[..<count])
            return
        }
        let count = tokenizer.mergeShortChunk(&scratch, count: length)
        tokens.append(contentsOf: scratch[..<count])
        if cache.memoryBytes + cachedTokens.count * 4 + cachedStarts.count * 12 > cacheLimitBytes {
            cache.removeAll()
            cachedStarts.removeAll(keepingCapacity: true)
            cachedCounts.removeAll(keepingCapacity: true)
            cachedTokens.removeAll(keepingCapacity: true)
        }
        _ = cache.findOrInsert(p, length)
        cachedStarts.append(cachedTokens.count)
        cachedCounts.append(Int32(count))
        cachedTokens.append(contentsOf: scratch[..<count])
    }
}
