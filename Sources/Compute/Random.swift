import Foundation

/// xoshiro256** (Blackman and Vigna), a small fast generator whose whole state is four words, so it can be saved in
/// a checkpoint and restored exactly. Seeded through SplitMix64 from a seed and a stream number, so that one user
/// seed gives independent streams for initialisation, batches and evaluation.
public struct Xoshiro256: Equatable, Sendable {
    public var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64, stream: UInt64 = 0) {
        var mixer = SplitMix64(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03))
        state = (mixer.next(), mixer.next(), mixer.next(), mixer.next())
        if state == (0, 0, 0, 0) { state.0 = 1 }
    }

    public init(state words: [UInt64]) {
        precondition(words.count == 4, "xoshiro256 state is four words")
        state = (words[0], words[1], words[2], words[3])
    }

    public var stateWords: [UInt64] { [state.0, state.1, state.2, state.3] }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.stateWords == rhs.stateWords }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotl(state.3, 45)
        return result
    }

    /// Uniform integer in `0..<bound`, unbiased (Lemire's multiply-and-reject).
    public mutating func next(below bound: UInt64) -> UInt64 {
        precondition(bound > 0)
        var product = next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold { product = next().multipliedFullWidth(by: bound) }
        }
        return product.high
    }

    /// Uniform double in [0, 1) with 53 random bits.
    public mutating func nextDouble() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Standard normal (Box-Muller, one value per call; the cosine branch only, so the stream is simple to
    /// reproduce elsewhere).
    public mutating func nextNormal() -> Double {
        let u1 = 1.0 - nextDouble()  // (0, 1], safe for log
        let u2 = nextDouble()
        return (-2.0 * log(u1)).squareRoot() * cos(2.0 * Double.pi * u2)
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}

/// SplitMix64: seeds other generators, and as a stateless hash (`mix`) drives counter-based randomness such as
/// dropout masks, where bit `i` of step `s` must not depend on how the work was split over threads.
public struct SplitMix64: Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    @inline(__always)
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.mix(state)
    }

    @inline(__always)
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
