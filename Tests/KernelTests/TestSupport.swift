import Compute
import Foundation
import XCTest

/// Random test data from a seeded generator.
struct TestRandom {
    var rng: Xoshiro256
    init(_ seed: UInt64) { rng = Xoshiro256(seed: seed) }
    mutating func floats(_ n: Int, scale: Double = 1) -> [Float] { (0..<n).map { _ in Float(rng.nextNormal() * scale) } }
    mutating func ints(_ n: Int, below: Int) -> [Int32] { (0..<n).map { _ in Int32(rng.next(below: UInt64(below))) } }
}

/// Central differences of a Double function of a vector: ∂f/∂x_i ≈ (f(x + h e_i) − f(x − h e_i)) / 2h.
/// With h = 1e-5 the truncation error is O(h²·f''') ≈ 1e-10 and the rounding error ≈ 1e-16/h ≈ 1e-11, far
/// below the float32 errors the comparisons allow.
func numericalGradient(_ x: [Double], h: Double = 1e-5, indices: [Int]? = nil, _ f: ([Double]) -> Double) -> [Int: Double] {
    var result: [Int: Double] = [:]
    var probe = x
    for i in indices ?? Array(x.indices) {
        probe[i] = x[i] + h
        let up = f(probe)
        probe[i] = x[i] - h
        let down = f(probe)
        probe[i] = x[i]
        result[i] = (up - down) / (2 * h)
    }
    return result
}

/// Compares float32 analytic gradients with double-precision numerical ones. Float32 has a unit roundoff of
/// 6e-8; the kernels' sums run over at most a few hundred terms, so their relative error is ~1e-5 at worst, and
/// components that are small because of cancellation are judged against 1e-3 of the largest component.
func assertGradientsMatch(_ analytic: [Float], _ numeric: [Int: Double], tolerance: Double = 2e-3,
                          _ label: String, file: StaticString = #filePath, line: UInt = #line) {
    let scale = numeric.values.map(abs).max() ?? 0
    var worst = 0.0, worstIndex = -1
    for (i, n) in numeric {
        let error = abs(Double(analytic[i]) - n) / (abs(n) + 1e-3 * scale + 1e-12)
        if error > worst { worst = error; worstIndex = i }
    }
    XCTAssertLessThanOrEqual(worst, tolerance,
                             "\(label): worst relative error \(worst) at \(worstIndex): analytic \(worstIndex >= 0 ? analytic[worstIndex] : 0) vs numeric \(numeric[worstIndex] ?? 0)",
                             file: file, line: line)
    XCTAssertFalse(numeric.isEmpty, label, file: file, line: line)
}

extension Array where Element == Float {
    var doubles: [Double] { map(Double.init) }
}

extension Array where Element == Double {
    var floats: [Float] { map(Float.init) }
}

/// Runs `body` with mutable pointers to copies of arrays.
func withPointers<R>(_ arrays: inout [[Float]], _ body: ([UnsafeMutablePointer<Float>]) -> R) -> R {
    var pointers: [UnsafeMutablePointer<Float>] = []
    for a in arrays {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(a.count, 1))
        p.initialize(from: a, count: a.count)
        pointers.append(p)
    }
    let result = body(pointers)
    for (i, p) in pointers.enumerated() {
        arrays[i] = Array(UnsafeBufferPointer(start: p, count: arrays[i].count))
        p.deallocate()
    }
    return result
}
