/// Sixteen floats: one AVX-512 register (two AVX2 registers, four SSE ones). Kernels work in these.
public typealias FloatVector = SIMD16<Float>

// Generic SIMD helpers such as `clamped`, `max()` and `rounded` are not specialised and end up as calls in the
// inner loops; everything here is written with operations that lower to single vector instructions.

@inline(__always) func load(_ p: UnsafePointer<Float>) -> FloatVector {
    UnsafeRawPointer(p).loadUnaligned(as: FloatVector.self)
}

@inline(__always) func load(_ p: UnsafeMutablePointer<Float>) -> FloatVector {
    UnsafeRawPointer(p).loadUnaligned(as: FloatVector.self)
}

@inline(__always) func store(_ v: FloatVector, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: FloatVector.self)
}

/// The first `count` (< 16) floats at `p`, the other lanes `fill`.
@inline(__always) func loadPartial(_ p: UnsafePointer<Float>, _ count: Int, fill: Float) -> FloatVector {
    var v = FloatVector(repeating: fill)
    for i in 0..<count { v[i] = p[i] }
    return v
}

@inline(__always) func storePartial(_ v: FloatVector, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
    for i in 0..<count { p[i] = v[i] }
}

@inline(__always) func horizontalSum(_ v: FloatVector) -> Float {
    let a = v.lowHalf + v.highHalf
    let b = a.lowHalf + a.highHalf
    let c = b.lowHalf + b.highHalf
    return c[0] + c[1]
}

@inline(__always) func horizontalMax(_ v: FloatVector) -> Float {
    let a = vmax(FloatVector(lowHalf: v.highHalf, highHalf: v.lowHalf), v)
    var m = a[0]
    for i in 1..<8 { m = Swift.max(m, a[i]) }
    return m
}

/// Lane-wise maximum and minimum as one compare and one blend. The standard library's `pointwiseMax` and
/// `pointwiseMin` follow IEEE `maximum` (NaN handling) lane by lane and were not inlined: profiles showed them at
/// 11% of a training step, in every `vexp`. Here a NaN in `a` stays (a NaN should show, not be clamped away).
@usableFromInline @_transparent func vmax(_ a: FloatVector, _ b: FloatVector) -> FloatVector { a.replacing(with: b, where: a .< b) }
@usableFromInline @_transparent func vmin(_ a: FloatVector, _ b: FloatVector) -> FloatVector { a.replacing(with: b, where: b .< a) }

/// e^x, relative error below 1e-7 (Cephes' expf polynomial after the usual range reduction
/// x = n·ln2 + r, |r| ≤ ln2/2; 2^n is assembled in the exponent bits). Arguments are clamped to [-87, 88], so
/// very negative inputs give about 1.6e-38 rather than 0, and overflow cannot happen; NaN stays NaN.
@_transparent public func vexp(_ x0: FloatVector) -> FloatVector {
    let x = vmin(vmax(x0, FloatVector(repeating: -87)), FloatVector(repeating: 88))
    // Adding 1.5·2^23 rounds x·log2(e) to an integer held in the low mantissa bits.
    let magic = FloatVector(repeating: 12_582_912)
    let t = x * FloatVector(repeating: 1.442_695_040_888_963_4) + magic
    let n = t - magic
    var r = x - n * FloatVector(repeating: 0.693_359_375)
    r = r - n * FloatVector(repeating: -2.121_944_40e-4)
    var p = FloatVector(repeating: 1.987_569_150_0e-4)
    p = p * r + FloatVector(repeating: 1.398_199_950_7e-3)
    p = p * r + FloatVector(repeating: 8.333_451_907_3e-3)
    p = p * r + FloatVector(repeating: 4.166_579_589_4e-2)
    p = p * r + FloatVector(repeating: 1.666_666_545_9e-1)
    p = p * r + FloatVector(repeating: 5.000_000_120_1e-1)
    let e = p * r * r + r + FloatVector(repeating: 1)
    let bits = unsafeBitCast(t, to: SIMD16<Int32>.self) &- SIMD16<Int32>(repeating: 0x4B40_0000 - 127)
    return e * unsafeBitCast(bits &<< 23, to: FloatVector.self)
}

/// tanh(x) = 1 − 2/(e^{2x} + 1): absolute error about 1e-7 (relative accuracy is lost only where |tanh x| is
/// tiny, where GELU multiplies it by x anyway).
@_transparent public func vtanh(_ x: FloatVector) -> FloatVector {
    FloatVector(repeating: 1) - FloatVector(repeating: 2) / (vexp(x + x) + FloatVector(repeating: 1))
}

/// Scalar versions, for tails and for tests.
@inline(__always) public func fastExp(_ x: Float) -> Float { vexp(FloatVector(repeating: x))[0] }
@inline(__always) public func fastTanh(_ x: Float) -> Float { vtanh(FloatVector(repeating: x))[0] }
