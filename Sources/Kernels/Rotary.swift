import Compute
import Foundation

/// Rotary position embedding (Su et al. 2021, "RoFormer", eq. 34) on queries and keys, in Hugging Face's
/// `LlamaForCausalLM` convention ("rotate_half"): feature i of a head (i < d/2) is paired with feature i + d/2,
/// not with its neighbour (Meta's original code pairs interleaved features 2i, 2i+1; Hugging Face's conversion
/// permutes q_proj and k_proj rows to the half-split order, and so do we, so that exported weights load as they are).
/// With θ_i = position · inv_freq_i:
///
///     out[i]       = x[i]·cos θ_i − x[i + d/2]·sin θ_i
///     out[i + d/2] = x[i + d/2]·cos θ_i + x[i]·sin θ_i
///
/// The backward pass is the inverse (transposed) rotation, θ → −θ.
///
/// The table holds cos θ and sin θ per position and frequency, one allocation: `[cos: positions × d/2]` then
/// `[sin: positions × d/2]`. Its angles are computed as Hugging Face computes them, in float32 even in a float64
/// model (`LlamaRotaryEmbedding.forward` casts `inv_freq` and the positions to float32):
/// `inv_freq_i = 1 / rope_theta^(fl(2i/d))` in float32, `θ = fl(inv_freq_i · position)` in float32, and cos and
/// sin of that float32 angle (here correctly rounded from double precision; PyTorch's are within an ulp). At
/// position 2000 a float32 angle is off the exact one by up to 1e-4 rad, which a double-precision table would
/// not copy: this is what makes the export exact.
public enum Rotary {
    /// Floats of a table for `positions` positions and head size `headSize` (even).
    public static func tableCount(positions: Int, headSize: Int) -> Int { 2 * positions * (headSize / 2) }

    /// `inv_freq_i` for i < headSize/2, as Hugging Face computes it in float32.
    public static func inverseFrequency(_ i: Int, headSize d: Int, theta: Double) -> Float {
        let exponent = Float(2 * i) / Float(d)
        let power = Float(Foundation.pow(Double(Float(theta)), Double(exponent)))
        return 1 / power
    }

    /// Fills a table of `tableCount(positions:headSize:)` floats.
    public static func fillTable(_ table: UnsafeMutablePointer<Float>, positions: Int, headSize d: Int, theta: Double) {
        precondition(d > 0 && d % 2 == 0, "Rotary: the head size must be even (it is \(d))")
        precondition(theta > 0, "Rotary: rope_theta must be positive (it is \(theta))")
        let half = d / 2
        let sines = table + positions * half
        for i in 0..<half {
            let frequency = inverseFrequency(i, headSize: d, theta: theta)
            for p in 0..<positions {
                let angle = Double(frequency * Float(p))
                table[p * half + i] = Float(Foundation.cos(angle))
                sines[p * half + i] = Float(Foundation.sin(angle))
            }
        }
    }

    /// Where the vectors to rotate are: `rows` rows of `rowStride` floats (B·T rows, row r at position
    /// `firstPosition + r % time`), each starting with `vectors` head vectors of `headSize` features side by side
    /// (in the fused qkv activation: the query heads, then the key heads; the values after them are not touched).
    public struct Layout: Sendable {
        public var rows: Int
        public var time: Int
        public var firstPosition: Int
        public var rowStride: Int
        public var vectors: Int
        public var headSize: Int

        public init(rows: Int, time: Int, firstPosition: Int = 0, rowStride: Int, vectors: Int, headSize: Int) {
            precondition(headSize > 0 && headSize % 2 == 0, "Rotary: the head size must be even (it is \(headSize))")
            precondition(vectors * headSize <= rowStride, "Rotary: \(vectors) vectors of \(headSize) do not fit a row of \(rowStride)")
            precondition(time >= 1 && rows % time == 0, "Rotary: \(rows) rows are not whole sequences of \(time)")
            self.rows = rows
            self.time = time
            self.firstPosition = firstPosition
            self.rowStride = rowStride
            self.vectors = vectors
            self.headSize = headSize
        }

        /// The fused qkv activation of grouped-query attention: queries and keys rotated, values left alone.
        public static func queriesAndKeys(_ s: Attention.Shape, firstPosition: Int = 0) -> Layout {
            Layout(rows: s.batch * s.time, time: s.time, firstPosition: firstPosition, rowStride: s.qkvStride,
                   vectors: s.heads + s.kvHeads, headSize: s.headSize)
        }
    }

    /// Rotates by +θ. `out` may be `inp` (in place); only the rotated features of `out` are written.
    /// `positions` is the table's length: every row's position must be below it.
    public static func forward(_ pool: ThreadPool, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                               layout: Layout, table: UnsafePointer<Float>, positions: Int) {
        rotate(pool, out: out, inp: inp, layout: layout, table: table, positions: positions, inverse: false)
    }

    /// The gradient: `dinp` = the rotation by −θ of `dout`. `dinp` may be `dout` (in place); only the rotated
    /// features of `dinp` are written.
    public static func backward(_ pool: ThreadPool, dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                layout: Layout, table: UnsafePointer<Float>, positions: Int) {
        rotate(pool, out: dinp, inp: dout, layout: layout, table: table, positions: positions, inverse: true)
    }

    static func rotate(_ pool: ThreadPool, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, layout l: Layout,
                       table: UnsafePointer<Float>, positions: Int, inverse: Bool) {
        precondition(l.firstPosition >= 0 && l.firstPosition + l.time <= positions,
                     "Rotary: positions \(l.firstPosition)..<\(l.firstPosition + l.time) are beyond the table's \(positions)")
        pool.parallelFor(l.rows, serialBelow: 8, (out, inp, l, table, positions, inverse)) { a, range in
            let (out, inp, l, table, positions, inverse) = a
            let half = l.headSize / 2
            let sines = table + positions * half
            let sign: Float = inverse ? -1 : 1
            let signs = FloatVector(repeating: sign)
            for row in range {
                let position = l.firstPosition + row % l.time
                let cosRow = table + position * half, sinRow = sines + position * half
                for vector in 0..<l.vectors {
                    let x = inp + row * l.rowStride + vector * l.headSize
                    let o = out + row * l.rowStride + vector * l.headSize
                    var i = 0
                    while i + 16 <= half {
                        let x1 = load(x + i), x2 = load(x + half + i)
                        let c = load(cosRow + i), s = load(sinRow + i) * signs
                        store(x1 * c - x2 * s, o + i)
                        store(x2 * c + x1 * s, o + half + i)
                        i += 16
                    }
                    while i < half {
                        let x1 = x[i], x2 = x[half + i]
                        let c = cosRow[i], s = sinRow[i] * sign
                        o[i] = x1 * c - x2 * s
                        o[half + i] = x2 * c + x1 * s
                        i += 1
                    }
                }
            }
        }
    }
}
