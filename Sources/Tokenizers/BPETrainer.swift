/// Learns a byte-level BPE vocabulary from text streamed through it block by block.
///
/// `add` pre-splits each block with `GPT2PreSplit` and counts the distinct chunks; blocks of a larger text
/// must be cut where `GPT2PreSplit.safeCut` says, so that the counts are those of the whole text. `train` then
/// learns merges on the distinct chunks ("words") with their counts, never across chunk boundaries:
///
/// - it keeps the count of every adjacent pair, an index from each pair to the words that contain it, and a
///   max-heap of pairs by count with lazy deletion (a popped entry whose count is out of date is pushed back
///   with the current count: counts of existing pairs only go down, so the entries are upper bounds);
/// - each merge rewrites only the words that contain the pair and updates only the pairs next to the merged
///   positions;
/// - the most frequent pair wins, ties going to the smallest `(left id, right id)`.
public struct BPETrainer: Sendable {
    private var chunks = ByteStringTable(capacity: 1 << 14)
    private var counts: [Int64] = []
    /// Bytes passed to `add` so far.
    public private(set) var bytesSeen = 0

    public init() {}

    /// Distinct chunks of two or more bytes seen so far (one-byte chunks have no pairs and are not kept).
    public var distinctChunks: Int { counts.count }

    /// Counts the chunks of one block of text (any bytes; normally UTF-8).
    public mutating func add(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let p = bytes.baseAddress else { return }
        let n = bytes.count
        bytesSeen += n
        var start = 0
        while start < n {
            let end = GPT2PreSplit.chunkEnd(p, from: start, count: n)
            if end - start > 1 { addChunk(p + start, end - start, count: 1) }
            start = end
        }
    }

    /// Counts the chunks of one block of text.
    public mutating func add(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBufferPointer { add($0) }
    }

    /// Counts the chunks of one block of text.
    public mutating func add(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { add($0) }
    }

    /// Adds the counts of another trainer (e.g. one that counted other blocks on another thread).
    public mutating func merge(_ other: BPETrainer) {
        bytesSeen += other.bytesSeen
        other.chunks.forEach { e, bytes in addChunk(bytes.baseAddress!, bytes.count, count: other.counts[e]) }
    }

    private mutating func addChunk(_ p: UnsafePointer<UInt8>, _ n: Int, count: Int64) {
        let (e, inserted) = chunks.findOrInsert(p, n)
        if inserted { counts.append(count) } else { counts[e] += count }
    }

    /// Learns up to `vocabSize - 257` merges (fewer if no pair occurs at least twice).
    /// - Throws: `TokenizerError.vocabularyTooSmall` if `vocabSize < 257` (256 bytes + `<|endoftext|>`).
    public func train(vocabSize: Int) throws -> BPETokenizer {
        guard vocabSize >= 257 else { throw TokenizerError.vocabularyTooSmall(requested: vocabSize, minimum: 257) }
        var state = MergeState(chunks: chunks, counts: counts)
        return try BPETokenizer(merges: state.learn(count: vocabSize - 257))
    }
}

/// The working state of `BPETrainer.train`.
private struct MergeState {
    // Words: word w is symbols[wordStart[w] ..< wordStart[w] + wordLength[w]], seen wordCount[w] times.
    var symbols: [Int32] = []
    var wordStart: [Int] = []
    var wordLength: [Int] = []
    var wordCount: [Int64] = []
    var wordStamp: [Int] = []

    // Pairs: pair i is pairKey[i] (left << 32 | right), occurring pairCount[i] times, in the words pairWords[i]
    // (a superset: words are listed when the pair appears in them and not removed when it disappears).
    var pairIndex = PairTable(capacity: 1 << 16)
    var pairKey: [UInt64] = []
    var pairCount: [Int64] = []
    var pairWords: [[Int32]] = []
    var pairStamp: [Int] = []
    var touched: [Int] = []

    var heap: [HeapEntry] = []
    var step = 0

    init(chunks: ByteStringTable, counts: [Int64]) {
        symbols.reserveCapacity(chunks.arena.count)
        chunks.forEach { e, bytes in
            wordStart.append(symbols.count)
            wordLength.append(bytes.count)
            wordCount.append(counts[e])
            for b in bytes { symbols.append(Int32(b)) }
        }
        wordStamp = Array(repeating: -1, count: wordCount.count)
        for w in wordCount.indices {
            let s = wordStart[w]
            for k in s ..< s + wordLength[w] - 1 {
                add(PairTable.key(symbols[k], symbols[k + 1]), wordCount[w], word: Int32(w))
            }
        }
        heap.reserveCapacity(pairKey.count)
        for i in pairKey.indices { push(HeapEntry(count: pairCount[i], key: pairKey[i])) }
        touched.removeAll()
    }

    mutating func learn(count target: Int) -> [BPEMerge] {
        var merges: [BPEMerge] = []
        while merges.count < target, let top = pop() {
            let i = Int(pairIndex[top.key]!)
            let current = pairCount[i]
            if current != top.count {
                if current > 0 { push(HeapEntry(count: current, key: top.key)) }
                continue
            }
            if current < 2 { break }
            let left = Int32(truncatingIfNeeded: top.key >> 32), right = Int32(truncatingIfNeeded: top.key)
            merge(pair: i, left: left, right: right, into: Int32(256 + merges.count))
            merges.append(BPEMerge(left, right))
        }
        return merges
    }

    /// Replaces every `left right` in the words that contain it by `made`, updating pair counts around them.
    mutating func merge(pair: Int, left a: Int32, right b: Int32, into made: Int32) {
        step += 1
        let words = pairWords[pair]
        pairWords[pair] = []
        for w32 in words {
            let w = Int(w32)
            if wordStamp[w] == step { continue }
            wordStamp[w] = step
            let s = wordStart[w], n = wordLength[w], c = wordCount[w]
            // Pass 1: remove the pairs that touch each occurrence (each pair once).
            var i = 0, lastRemoved = -1, found = false
            while i < n - 1 {
                if symbols[s + i] == a && symbols[s + i + 1] == b {
                    found = true
                    var k = max(i - 1, lastRemoved + 1)
                    let last = min(i + 1, n - 2)
                    while k <= last {
                        remove(PairTable.key(symbols[s + k], symbols[s + k + 1]), c)
                        k += 1
                    }
                    lastRemoved = last
                    i += 2
                } else {
                    i += 1
                }
            }
            if !found { continue }
            // Pass 2: rewrite the word in place.
            var read = 0, write = 0
            while read < n {
                if read + 1 < n && symbols[s + read] == a && symbols[s + read + 1] == b {
                    symbols[s + write] = made
                    read += 2
                } else {
                    symbols[s + write] = symbols[s + read]
                    read += 1
                }
                write += 1
            }
            let m = write
            wordLength[w] = m
            // Pass 3: add the pairs that touch each new token (each pair once).
            var lastAdded = -1
            for j in 0 ..< m where symbols[s + j] == made {
                var k = max(j - 1, lastAdded + 1)
                let last = min(j, m - 2)
                while k <= last {
                    add(PairTable.key(symbols[s + k], symbols[s + k + 1]), c, word: w32)
                    k += 1
                }
                lastAdded = max(lastAdded, last)
            }
        }
        for t in touched where pairCount[t] > 0 { push(HeapEntry(count: pairCount[t], key: pairKey[t])) }
        touched.removeAll(keepingCapacity: true)
    }

    mutating func add(_ key: UInt64, _ count: Int64, word: Int32) {
        let i = Int(pairIndex.findOrInsert(key) {
            pairKey.append(key)
            pairCount.append(0)
            pairWords.append([])
            pairStamp.append(-1)
            return Int32(pairKey.count - 1)
        })
        pairCount[i] += count
        if pairWords[i].last != word { pairWords[i].append(word) }
        if pairStamp[i] != step {
            pairStamp[i] = step
            touched.append(i)
        }
    }

    mutating func remove(_ key: UInt64, _ count: Int64) {
        let i = Int(pairIndex[key]!)
        pairCount[i] -= count
    }

    // MARK: Max-heap by (count, then smallest key)

    mutating func push(_ entry: HeapEntry) {
        heap.append(entry)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if !entry.isAbove(heap[parent]) { break }
            heap[i] = heap[parent]
            i = parent
        }
        heap[i] = entry
    }

    mutating func pop() -> HeapEntry? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if heap.isEmpty { return top }
        let n = heap.count
        var i = 0
        while true {
            var child = 2 * i + 1
            if child >= n { break }
            if child + 1 < n && heap[child + 1].isAbove(heap[child]) { child += 1 }
            if !heap[child].isAbove(last) { break }
            heap[i] = heap[child]
            i = child
        }
        heap[i] = last
        return top
    }
}

private struct HeapEntry {
    var count: Int64
    var key: UInt64

    /// Higher count first; among equal counts the smaller (left, right) first.
    @inline(__always)
    func isAbove(_ other: HeapEntry) -> Bool {
        count > other.count || (count == other.count && key < other.key)
    }
}
