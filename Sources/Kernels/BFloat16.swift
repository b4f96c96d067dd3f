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

    /// Unit roundoff of bf16: 2⁻⁸ (8 significant bits, round to nearest).
    public static let unitRoundoff: Float = 0x1p-8
}
