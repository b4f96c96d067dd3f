import Compute

/// bfloat16 (1 sign bit, 8 exponent bits, 7 stored mantissa bits: fp32's range with an 8-bit significand) held
/// in fp32 values whose low 16 bits are zero.
///
/// This is the exact software form of a bf16-input, fp32-accumulate matrix product on a CPU without bf16
/// instructions: round both operands with `round` into fp32 buffers and multiply them with the fp32 sgemm. The
/// product of two 8-bit significands has at most 16 significant bits, so every product is exact in fp32's 24, and
/// the result equals a bf16 matmul's up to the order of the fp32 summation.
public enum BFloat16 {
    /// Round to nearest, ties to even, on the bit pattern (what `torch.Tensor.bfloat16()` and oneDNN's
    /// conversions do). Infinities stay; a NaN stays a NaN (a quiet bit is forced so that rounding cannot carry a
    /// NaN's payload into the exponent).
    @inline(__always) public static func round(_ x: Float) -> Float {
        let bits = x.bitPattern
        if x.isNaN { return Float(bitPattern: (bits | 0x0040_0000) & 0xFFFF_0000) }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return Float(bitPattern: rounded & 0xFFFF_0000)
    }

    /// The same on sixteen lanes (NaNs are not expected here: these are finite activations and gradients).
    @inline(__always) public static func round(_ x: FloatVector) -> FloatVector {
        let bits = unsafeBitCast(x, to: SIMD16<UInt32>.self)
        let rounded = bits &+ SIMD16<UInt32>(repeating: 0x7FFF) &+ ((bits &>> 16) & SIMD16<UInt32>(repeating: 1))
        return unsafeBitCast(rounded & SIMD16<UInt32>(repeating: 0xFFFF_0000), to: FloatVector.self)
    }

    /// `out[i] = round(inp[i])` on the calling thread; `out` may be `inp`.
    @inline(__always)
    public static func roundSerial(out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, count n: Int) {
        var j = 0
        while j + 16 <= n { store(round(load(inp + j)), out + j); j += 16 }
        while j < n { out[j] = round(inp[j]); j += 1 }
    }

    /// `out[i] = round(inp[i])`, split over the pool; `out` may be `inp`.
    public static func round(_ pool: ThreadPool, out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, count: Int) {
        pool.parallelFor(count, grain: 16, serialBelow: 16384, (out, inp)) { a, range in
            let (out, inp) = a
            roundSerial(out: out + range.lowerBound, inp + range.lowerBound, count: range.count)
        }
    }

    /// The bf16 bit pattern of `round(x)`: its high sixteen bits.
    @inline(__always) public static func bits(_ x: Float) -> UInt16 { UInt16(truncatingIfNeeded: round(x).bitPattern >> 16) }

    /// The fp32 value of a bf16 bit pattern (exact).
    @inline(__always) public static func value(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// `rounded[i] = round(inp[i])` and `bits[i]` its bf16 pattern, on the calling thread. `rounded` may be `inp`
    /// or nil (only the bits are wanted).
    @inline(__always)
    static func convertSerial(bits: UnsafeMutablePointer<UInt16>, rounded: UnsafeMutablePointer<Float>?,
                              _ inp: UnsafePointer<Float>, count n: Int) {
        var j = 0
        while j + 16 <= n {
            let r = round(load(inp + j))
            if let rounded { store(r, rounded + j) }
            // The high half of each lane (little-endian: the odd 16-bit halves).
            let high = unsafeBitCast(r, to: SIMD32<UInt16>.self).oddHalf
            UnsafeMutableRawPointer(bits + j).storeBytes(of: high, as: SIMD16<UInt16>.self)
            j += 16
        }
        while j < n {
            let r = round(inp[j])
            rounded?[j] = r
            bits[j] = UInt16(truncatingIfNeeded: r.bitPattern >> 16)
            j += 1
        }
    }

    /// Converts `count` floats to bf16 for a native bf16 product: `bits` gets the bf16 patterns and, when given,
    /// `rounded` the same values as fp32 (so that everything else that reads them sees what the product saw).
    /// `rounded` may be `inp`. Split over the pool.
    public static func convert(_ pool: ThreadPool, bits: UnsafeMutablePointer<UInt16>, rounded: UnsafeMutablePointer<Float>?,
                               _ inp: UnsafePointer<Float>, count: Int) {
        pool.parallelFor(count, grain: 16, serialBelow: 16384, (bits, rounded, inp)) { a, range in
            let (bits, rounded, inp) = a
            convertSerial(bits: bits + range.lowerBound, rounded: rounded.map { $0 + range.lowerBound },
                          inp + range.lowerBound, count: range.count)
        }
    }

    /// `transposed[j·rows + i] = bits[i·columns + j]`: a rows×columns matrix of bf16 patterns as its transpose,
    /// in 16×16 tiles (32-byte rows, so each tile is a few cache lines each way). Split over the pool by column
    /// tiles.
    public static func transpose(_ pool: ThreadPool, transposed: UnsafeMutablePointer<UInt16>,
                                 _ bits: UnsafePointer<UInt16>, rows: Int, columns: Int) {
        pool.parallelFor(columns, grain: 16, serialBelow: 64, (transposed, bits, rows, columns)) { a, range in
            let (out, inp, rows, columns) = a
            var j0 = range.lowerBound
            while j0 < range.upperBound {
                let j1 = Swift.min(j0 + 16, range.upperBound)
                var i0 = 0
                while i0 < rows {
                    let i1 = Swift.min(i0 + 16, rows)
                    for j in j0..<j1 {
                        let o = out + j * rows
                        for i in i0..<i1 { o[i] = inp[i * columns + j] }
                    }
                    i0 = i1
                }
                j0 = j1
            }
        }
    }

    /// Unit roundoff of bf16: 2⁻⁸ (8 significant bits, round to nearest).
    public static let unitRoundoff: Float = 0x1p-8
}
