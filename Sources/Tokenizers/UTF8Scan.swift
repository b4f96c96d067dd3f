/// Strict UTF-8 decoding of one character, shared by the pre-splitter, the char tokenizer and the stream decoder.
///
/// Valid means the well-formed sequences of the Unicode standard (table 3-7): no overlong forms,
/// no surrogates, nothing above U+10FFFF.
enum UTF8Scan {
    /// The scalar starting at `p[i]` and its length in bytes, or length 0 when `p[i]` does not start a valid,
    /// complete sequence inside `p[0..<n]` (the caller then treats that one byte as invalid).
    @inline(__always)
    static func decode(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> (value: UInt32, length: Int) {
        let b0 = p[i]
        if b0 < 0x80 { return (UInt32(b0), 1) }
        if b0 < 0xC2 { return (0, 0) }  // continuation byte, or overlong 2-byte lead
        if b0 < 0xE0 {
            guard i + 1 < n, isContinuation(p[i + 1]) else { return (0, 0) }
            return (UInt32(b0 & 0x1F) << 6 | UInt32(p[i + 1] & 0x3F), 2)
        }
        if b0 < 0xF0 {
            guard i + 2 < n else { return (0, 0) }
            let b1 = p[i + 1], b2 = p[i + 2]
            guard secondByteRange(b0).contains(b1), isContinuation(b2) else { return (0, 0) }
            return (UInt32(b0 & 0x0F) << 12 | UInt32(b1 & 0x3F) << 6 | UInt32(b2 & 0x3F), 3)
        }
        if b0 < 0xF5 {
            guard i + 3 < n else { return (0, 0) }
            let b1 = p[i + 1], b2 = p[i + 2], b3 = p[i + 3]
            guard secondByteRange(b0).contains(b1), isContinuation(b2), isContinuation(b3) else { return (0, 0) }
            return (UInt32(b0 & 0x07) << 18 | UInt32(b1 & 0x3F) << 12 | UInt32(b2 & 0x3F) << 6 | UInt32(b3 & 0x3F), 4)
        }
        return (0, 0)
    }

    @inline(__always)
    static func isContinuation(_ b: UInt8) -> Bool { b & 0xC0 == 0x80 }

    /// Number of bytes of the sequence that lead byte `b0` starts (1 for ASCII, 0 if `b0` cannot start one).
    @inline(__always)
    static func sequenceLength(_ b0: UInt8) -> Int {
        if b0 < 0x80 { return 1 }
        if b0 < 0xC2 { return 0 }
        if b0 < 0xE0 { return 2 }
        if b0 < 0xF0 { return 3 }
        if b0 < 0xF5 { return 4 }
        return 0
    }

    /// The allowed range of the byte after lead byte `b0` (for leads of 3- and 4-byte sequences).
    @inline(__always)
    static func secondByteRange(_ b0: UInt8) -> ClosedRange<UInt8> {
        switch b0 {
        case 0xE0: return 0xA0...0xBF
        case 0xED: return 0x80...0x9F
        case 0xF0: return 0x90...0xBF
        case 0xF4: return 0x80...0x8F
        default: return 0x80...0xBF
        }
    }

    /// Whether `bytes` (1 to 3 bytes) is the beginning of a valid sequence that is not yet complete.
    static func isIncompletePrefix(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard let b0 = bytes.first else { return false }
        let need = sequenceLength(b0)
        guard need >= 2, bytes.count < need else { return false }
        var index = bytes.startIndex + 1
        if index < bytes.endIndex {
            let range: ClosedRange<UInt8> = need == 2 ? 0x80...0xBF : secondByteRange(b0)
            guard range.contains(bytes[index]) else { return false }
            index += 1
        }
        while index < bytes.endIndex {
            guard isContinuation(bytes[index]) else { return false }
            index += 1
        }
        return true
    }
}
