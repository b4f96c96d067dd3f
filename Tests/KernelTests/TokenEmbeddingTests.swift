import Compute
import Foundation
import Kernels
import XCTest

/// The Llama family's token embedding (no position table) against a lookup written here and central differences
/// of L = Σ out ⊙ g, as KernelTests checks GPT-2's Encoder.
final class TokenEmbeddingTests: XCTestCase {
    func testTokenEmbeddingAgainstFiniteDifferences() {
        let rows = 7, c = 37, v = 5   // 37 channels: whole 16-lane vectors and a tail, split over two threads
        var random = TestRandom(16)
        let wte = random.floats(v * c), g = random.floats(rows * c)
        let tokens: [Int32] = [1, 3, 1, 4, 1, 0, 3]   // token 1 three times: its gradient rows add up; token 2 unused
        func reference(_ wte: [Double]) -> [Double] { (0..<(rows * c)).map { wte[Int(tokens[$0 / c]) * c + $0 % c] } }
        let pool = ThreadPool(threads: 2)
        // 2: out, 3: dwte written over garbage (accumulate false), 4: dwte added to (accumulate true).
        var arrays = [wte, g, [Float](repeating: 0, count: rows * c), [Float](repeating: .nan, count: v * c),
                      [Float](repeating: 0.5, count: v * c)]
        tokens.withUnsafeBufferPointer { tk in
            withPointers(&arrays) { p in
                TokenEmbedding.forward(pool, out: p[2], tokens: tk.baseAddress!, wte: p[0], rows: rows, channels: c)
                TokenEmbedding.backward(pool, dwte: p[3], dout: p[1], tokens: tk.baseAddress!, rows: rows, channels: c,
                                        vocab: v, accumulate: false)
                TokenEmbedding.backward(pool, dwte: p[4], dout: p[1], tokens: tk.baseAddress!, rows: rows, channels: c,
                                        vocab: v, accumulate: true)
            }
        }
        // The forward pass copies: exact.
        XCTAssertEqual(arrays[2].doubles, reference(wte.doubles))
        func loss(_ out: [Double]) -> Double { zip(out, g.doubles).map(*).reduce(0, +) }
        let numeric = numericalGradient(wte.doubles) { loss(reference($0)) }
        assertGradientsMatch(arrays[3], numeric, "dwte")
        XCTAssertEqual(Array(arrays[3][(2 * c)..<(3 * c)]), [Float](repeating: 0, count: c), "an unused token's row is zeroed")
        assertGradientsMatch(arrays[4].map { $0 - 0.5 }, numeric, "dwte added onto 0.5")
    }
}
