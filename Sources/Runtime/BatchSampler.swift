import Compute
import Corpus


/// Cuts training batches out of a token sequence: windows of `time + 1` tokens at uniformly random offsets
/// (inputs are the first `time`, targets the last `time`), as nanoGPT's `get_batch` does. The generator's four
/// words and the count of windows drawn are its whole state, saved in checkpoints.
public struct BatchSampler: Sendable, Equatable {
    public var rng: Xoshiro256
    public var windowsDrawn: Int

    public init(seed: UInt64) {
        rng = Xoshiro256(seed: seed, stream: 2)
        windowsDrawn = 0
    }

    public init(rng: Xoshiro256, windowsDrawn: Int) {
        self.rng = rng
        self.windowsDrawn = windowsDrawn
    }

    /// Fills `tokens` and `targets` ([batch, time] each).
    public mutating func fill(from source: any TokenSequence, batch: Int, time: Int,
                              tokens: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>) {
        let offsets = UInt64(source.count - time)  // offsets 0...count − time − 1
        for b in 0..<batch {
            let start = Int(rng.next(below: offsets))
            source.read(start, time, into: tokens + b * time)
            source.read(start + 1, time, into: targets + b * time)
        }
        windowsDrawn += batch
    }

    /// Draws `batch` windows as `fill` does, without reading them: how a data-parallel rank passes over the
    /// micro-batches other ranks compute, keeping its generator in step with theirs.
    public mutating func skip(in source: any TokenSequence, batch: Int, time: Int) {
        let offsets = UInt64(source.count - time)
        for _ in 0..<batch { _ = rng.next(below: offsets) }
        windowsDrawn += batch
    }
}
