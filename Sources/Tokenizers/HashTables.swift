/// Open-addressing hash tables for the BPE hot paths, which a `Dictionary` keyed by `[UInt8]` would slow down
/// with an allocation per lookup.

/// A set of byte strings, each given a dense index (0, 1, 2, ... in insertion order); the bytes live in one arena.
struct ByteStringTable: Sendable {
    private var slots: [Int32]        // entry index, or -1 when empty
    private var mask: Int
    private(set) var hashes: [UInt64] = []
    private(set) var starts: [Int] = []   // entry i's bytes are arena[starts[i] ..< starts[i] + lengths[i]]
    private(set) var lengths: [Int32] = []
    private(set) var arena: [UInt8] = []

    init(capacity: Int = 1024) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = Array(repeating: -1, count: size)
        mask = size - 1
    }

    var count: Int { hashes.count }

    /// Bytes held by the table (keys and bookkeeping), for callers that bound memory.
    var memoryBytes: Int { arena.count + hashes.count * 20 + slots.count * 4 }

    /// The index of `p[0..<n]`, inserting it if new.
    @inline(__always)
    mutating func findOrInsert(_ p: UnsafePointer<UInt8>, _ n: Int) -> (index: Int, inserted: Bool) {
        let h = hashBytes(p, n)
        var slot = Int(truncatingIfNeeded: h) & mask
        while true {
            let e = Int(slots[slot])
            if e < 0 { break }
            if hashes[e] == h && Int(lengths[e]) == n && keyEquals(e, p, n) { return (e, false) }
            slot = (slot + 1) & mask
        }
        let index = hashes.count
        slots[slot] = Int32(index)
        hashes.append(h)
        starts.append(arena.count)
        lengths.append(Int32(n))
        arena.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
        if hashes.count * 2 > slots.count { grow() }
        return (index, true)
    }

    /// The index of `p[0..<n]`, or nil.
    @inline(__always)
    func find(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
        let h = hashBytes(p, n)
        var slot = Int(truncatingIfNeeded: h) & mask
        while true {
            let e = Int(slots[slot])
            if e < 0 { return nil }
            if hashes[e] == h && Int(lengths[e]) == n && keyEquals(e, p, n) { return e }
            slot = (slot + 1) & mask
        }
    }

    /// Calls `body` with each entry's index and bytes.
    func forEach(_ body: (Int, UnsafeBufferPointer<UInt8>) throws -> Void) rethrows {
        try arena.withUnsafeBufferPointer { a in
            for e in 0..<hashes.count {
                try body(e, UnsafeBufferPointer(rebasing: a[starts[e] ..< starts[e] + Int(lengths[e])]))
            }
        }
    }

    mutating func removeAll() {
        for i in slots.indices { slots[i] = -1 }
        hashes.removeAll(keepingCapacity: true)
        starts.removeAll(keepingCapacity: true)
        lengths.removeAll(keepingCapacity: true)
        arena.removeAll(keepingCapacity: true)
    }

    @inline(__always)
    private func keyEquals(_ e: Int, _ p: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        arena.withUnsafeBufferPointer { a in
            let k = a.baseAddress! + starts[e]
            var i = 0
            while i + 8 <= n {
                if UnsafeRawPointer(k + i).loadUnaligned(as: UInt64.self)
                    != UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self) { return false }
                i += 8
            }
            while i < n {
                if k[i] != p[i] { return false }
                i += 1
            }
            return true
        }
    }

    private mutating func grow() {
        let size = slots.count * 2
        slots = Array(repeating: -1, count: size)
        mask = size - 1
        for e in 0..<hashes.count {
            var slot = Int(truncatingIfNeeded: hashes[e]) & mask
            while slots[slot] >= 0 { slot = (slot + 1) & mask }
            slots[slot] = Int32(e)
        }
    }
}

/// A map from a pair of token ids to an `Int32`, keyed by `left << 32 | right`.
struct PairTable: Sendable {
    private var keys: [UInt64]
    private var values: [Int32]
    private var mask: Int
    private(set) var count = 0
    private static let empty = UInt64.max

    init(capacity: Int = 1024) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = Array(repeating: PairTable.empty, count: size)
        values = Array(repeating: 0, count: size)
        mask = size - 1
    }

    @inline(__always)
    static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    @inline(__always)
    private func slot(for key: UInt64) -> Int {
        var h = key &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 29
        return Int(truncatingIfNeeded: h) & mask
    }

    @inline(__always)
    subscript(key: UInt64) -> Int32? {
        var s = slot(for: key)
        while true {
            let k = keys[s]
            if k == key { return values[s] }
            if k == PairTable.empty { return nil }
            s = (s + 1) & mask
        }
    }

    /// The value for `key`, inserting `make()` first if there is none.
    @inline(__always)
    mutating func findOrInsert(_ key: UInt64, _ make: () -> Int32) -> Int32 {
        var s = slot(for: key)
        while true {
            let k = keys[s]
            if k == key { return values[s] }
            if k == PairTable.empty { break }
            s = (s + 1) & mask
        }
        let value = make()
        keys[s] = key
        values[s] = value
        count += 1
        if count * 2 > keys.count { grow() }
        return value
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values
        let size = keys.count * 2
        keys = Array(repeating: PairTable.empty, count: size)
        values = Array(repeating: 0, count: size)
        mask = size - 1
        for i in oldKeys.indices where oldKeys[i] != PairTable.empty {
            var s = slot(for: oldKeys[i])
            while keys[s] != PairTable.empty { s = (s + 1) & mask }
            keys[s] = oldKeys[i]
            values[s] = oldValues[i]
        }
    }
}

/// A 64-bit hash of `p[0..<n]` (8 bytes at a time, then a final avalanche).
@inline(__always)
func hashBytes(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
    var h: UInt64 = 0x243F_6A88_85A3_08D3 ^ UInt64(truncatingIfNeeded: n)
    var i = 0
    while i + 8 <= n {
        let w = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
        h = (h ^ w) &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 31
        i += 8
    }
    var tail: UInt64 = 0
    var shift: UInt64 = 0
    while i < n {
        tail |= UInt64(p[i]) << shift
        shift += 8
        i += 1
    }
    h = (h ^ tail) &* 0x9E37_79B9_7F4A_7C15
    h ^= h >> 33
    h = h &* 0xFF51_AFD7_ED55_8CCD
    h ^= h >> 33
    h = h &* 0xC4CE_B9FE_1A85_EC53
    h ^= h >> 33
    return h
}
