import Compute
import Foundation
import XCTest

final class ThreadPoolTests: XCTestCase {
    func testChunksCoverTheRangeOnceOnGrainBoundaries() {
        for parts in 1...5 {
            for count in [0, 1, 7, 16, 100, 1001] {
                var covered: [Int] = []
                for i in 0..<parts {
                    let r = ThreadPool.chunk(i, of: parts, count: count, grain: 16)
                    covered += Array(r)
                    if i < parts - 1, !r.isEmpty { XCTAssertEqual(r.upperBound % 16 == 0 || r.upperBound == count, true) }
                }
                XCTAssertEqual(covered, Array(0..<count), "parts \(parts), count \(count)")
            }
        }
    }

    func testEveryIndexRunsExactlyOnceAcrossManyRegions() {
        let pool = ThreadPool(threads: 3)
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 1000)
        counts.initialize(repeating: 0, count: 1000)
        defer { counts.deallocate() }
        for _ in 0..<500 {
            pool.parallelFor(1000, grain: 8, counts) { counts, range in for i in range { counts[i] += 1 } }
        }
        XCTAssertTrue((0..<1000).allSatisfy { counts[$0] == 500 })
        // Idle long enough for the workers to fall asleep, then wake them.
        usleep(20_000)
        var seen = [Int](repeating: 0, count: 3)
        seen.withUnsafeMutableBufferPointer { s in pool.parallelChunks(3, s.baseAddress!) { s, thread, _ in s[thread] += 1 } }
        XCTAssertEqual(seen, [1, 1, 1])
    }
}

final class RandomTests: XCTestCase {
    func testXoshiroMatchesTheReferenceAlgorithm() {
        // xoshiro256** from state (1, 2, 3, 4): the first outputs of the reference C implementation.
        var rng = Xoshiro256(state: [1, 2, 3, 4])
        XCTAssertEqual((0..<4).map { _ in rng.next() }, [11520, 0, 1509978240, 1215971899390074240])
    }

    func testStateRoundTripsAndStreamsDiffer() {
        var a = Xoshiro256(seed: 42, stream: 2)
        _ = a.next()
        var b = Xoshiro256(state: a.stateWords)
        XCTAssertEqual((0..<10).map { _ in a.next() }, (0..<10).map { _ in b.next() })
        var c = Xoshiro256(seed: 42, stream: 3)
        XCTAssertNotEqual(a.next(), c.next())
    }

    func testBoundedAndNormalDraws() {
        var rng = Xoshiro256(seed: 7)
        var counts = [Int](repeating: 0, count: 6)
        for _ in 0..<60_000 { counts[Int(rng.next(below: 6))] += 1 }
        // Each face 10 000 ± 3·sqrt(60000·(1/6)(5/6)) ≈ ±275.
        XCTAssertTrue(counts.allSatisfy { abs($0 - 10_000) < 300 }, "\(counts)")
        let normals = (0..<100_000).map { _ in rng.nextNormal() }
        let mean = normals.reduce(0, +) / 1e5
        let variance = normals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 1e5
        XCTAssertEqual(mean, 0, accuracy: 0.015)       // 4.7 standard errors of 0.0032
        XCTAssertEqual(variance, 1, accuracy: 0.02)     // 4.5 standard errors of 0.0045
    }
}
