import Compute
import Foundation
import GPT
import GPTShape
import XCTest

final class GenerationTests: XCTestCase {
    func model(context: Int) throws -> GPT {
        let cfg = ModelShape(nLayer: 2, nHead: 2, dModel: 16, dFF: 64, seqLen: context, vocabSize: 11, bias: true)
        let m = try GPT(shape: cfg, maxBatch: 1, maxTime: context, pool: ThreadPool(threads: 2))
        m.initialize(seed: 3)
        // Larger weights than the 0.02 initialisation, so that attention and position matter.
        for i in 0..<m.parameters.count { m.parameters.base[i] *= 20 }
        return m
    }

    /// The cache gives the logits of running the whole window, token after token, also after the window slides.
    func testCachedLogitsEqualFullRecomputation() throws {
        let context = 8
        let cached = Generator(model: try model(context: context), useCache: true)
        let full = Generator(model: try model(context: context), useCache: false)
        var rng = Xoshiro256(seed: 9)
        var prompt: [Int32] = [1, 4, 2]
        var a = Array(UnsafeBufferPointer(start: try cached.append(prompt), count: 11))
        var b = Array(UnsafeBufferPointer(start: try full.append(prompt), count: 11))
        for step in 0..<30 {
            // float32 through two blocks; the cached path sums in a different order (dot products instead of a
            // blocked product), so the logits agree to a few ulps of their size, not bit for bit.
            for v in 0..<11 { XCTAssertEqual(a[v], b[v], accuracy: 2e-5 * max(1, abs(b[v])), "step \(step)") }
            prompt = [Int32(rng.next(below: 11))]
            a = Array(UnsafeBufferPointer(start: try cached.append(prompt), count: 11))
            b = Array(UnsafeBufferPointer(start: try full.append(prompt), count: 11))
        }
    }

    func testSamplingIsDeterministicAndTemperatureZeroIsGreedy() throws {
        let logits: [Float] = [0.1, 2.0, -1.0, 1.9, 0.5]
        func draw(_ s: inout TokenSampler) -> Int32 { logits.withUnsafeBufferPointer { s.sample($0.baseAddress!, vocab: 5) } }
        var a = TokenSampler(temperature: 1, topK: 5, seed: 4), b = TokenSampler(temperature: 1, topK: 5, seed: 4)
        let first = (0..<200).map { _ in draw(&a) }
        XCTAssertEqual(first, (0..<200).map { _ in draw(&b) })
        XCTAssertEqual(Set(first), [0, 1, 2, 3, 4])
        var greedy = TokenSampler(temperature: 0, topK: 5, seed: 4)
        XCTAssertEqual((0..<10).map { _ in draw(&greedy) }, Array(repeating: 1, count: 10))
        var top2 = TokenSampler(temperature: 1, topK: 2, seed: 5)
        XCTAssertEqual(Set((0..<300).map { _ in draw(&top2) }), [1, 3])
        // Frequencies follow the softmax: p(1)/p(3) = e^0.1 ≈ 1.105 among the top two.
        var counts = [Int32: Int]()
        var sampler = TokenSampler(temperature: 1, topK: 2, seed: 6)
        for _ in 0..<20_000 { counts[draw(&sampler), default: 0] += 1 }
        XCTAssertEqual(Double(counts[1]!) / Double(counts[3]!), exp(0.1), accuracy: 0.06)
    }
}
