/// Turns bytes that arrive piece by piece (e.g. one token's bytes at a time while sampling) into text,
/// holding back an incomplete UTF-8 sequence at the end until the bytes that complete it arrive.
///
/// The concatenation of everything `push` and `finish` return equals `String(decoding: allBytes, as: UTF8.self)`:
/// bytes that can never be valid become U+FFFD as soon as that is known.
public struct UTF8StreamDecoder: Sendable {
    /// The held-back start of a sequence: at most 3 bytes.
    private var pending: [UInt8] = []

    public init() {}

    /// The text completed by `bytes` (with what was held back before); an incomplete trailing sequence is kept.
    public mutating func push(_ bytes: [UInt8]) -> String {
        guard !bytes.isEmpty else { return "" }
        pending.append(contentsOf: bytes)
        // Keep the last 1...3 bytes if they begin a valid sequence that is not complete yet.
        var keep = 0
        for length in 1...min(3, pending.count) {
            let tail = pending[(pending.count - length)...]
            if UTF8Scan.isIncompletePrefix(tail) {
                keep = length
                break
            }
        }
        let text = String(decoding: pending[..<(pending.count - keep)], as: UTF8.self)
        pending.removeFirst(pending.count - keep)
        return text
    }

    /// The held-back bytes as text (each incomplete sequence becomes U+FFFD); the decoder is then empty.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Whether bytes are being held back.
    public var hasPendingBytes: Bool { !pending.isEmpty }
}
