import Compute
import Foundation
import GPT
import GPTShape
import XCTest

/// The KV cache of a Llama-family model: keys (rotated at their own position) and values per key/value head.
final class LlamaGenerationTests: XCTestCase {
    func model(context: Int, kvHeads: Int, tied: Bool) throws -> GPT {
        let shape = ModelShape(nLayer: 2, nHead: 4, dModel: 32, dFF: 40, seqLen: context, vocabSize: 13, bias: false,
                               family: .llama, nKVHead: kvHeads, ropeTheta: 1000, normEps: 1e-6, tieEmbeddings: tied)
        let m = try GPT(shape: shape, maxBatch: 1, maxTime: context, pool: ThreadPool(threads: 2))
        m.initialize(seed: 5)
        // Larger weights than the 0.02 initialisation, so that attention, positions and every head matter; the
        // RMSNorm gains (1 at initialisation) varied too.
        for i in 0..<m.parameters.count { m.parameters.base[i] *= 15 }
        for o in m.layout.layers {
            for i in 0..<32 { m.parameters.base[o.ln1Weight + i] = 0.5 + Float(i % 7) / 7 }
        }
        return m
    }

    /// Token after token through the cache, the logits at every position are the full forward pass's logits at
    /// that position (one pass over the whole sequence), for grouped-query and multi-head attention, tied and
    /// untied heads; past the context, the cached generator agrees with recomputing the window.
    func testCachedLogitsEqualTheFullForwardAtEveryPosition() throws {
        let context = 12, vocab = 13
        for (kvHeads, tied) in [(2, false), (1, false), (4, true)] {
            let what = "n_kv_head \(kvHeads), \(tied ? "tied" : "untied")"
            var rng = Xoshiro256(seed: UInt64(7 + kvHeads))
            let tokens = (0..<context).map { _ in Int32(rng.next(below: UInt64(vocab))) }
            let reference = try model(context: context, kvHeads: kvHeads, tied: tied)
            _ = try tokens.withUnsafeBufferPointer {
                try reference.forward(tokens: $0.baseAddress!, targets: nil, batch: 1, time: context)
            }
            let full = Array(UnsafeBufferPointer(start: reference.logits, count: context * vocab))
            var largest: Float = 0
            for v in full { largest = max(largest, abs(v)) }
            XCTAssertGreaterThan(largest, 1, "\(what): logits far from uniform")

            let generator = Generator(model: try model(context: context, kvHeads: kvHeads, tied: tied), useCache: true)
            let prompt = 3
            var logits = try generator.append(Array(tokens[0..<prompt]))  // prefill through the batched pass
            var worst: Float = 0
            for p in (prompt - 1)..<context {
                if p >= prompt { logits = try generator.append([tokens[p]]) }  // one position through the cache
                for v in 0..<vocab {
                    let expected = full[p * vocab + v]
                    worst = max(worst, abs(logits[v] - expected))
                    // float32 through two blocks, summed in another order (dot products against the blocked
                    // products of the full pass): agreement to a few ulps of the largest logit.
                    XCTAssertEqual(logits[v], expected, accuracy: 1e-5 * max(1, largest), "\(what): position \(p), logit \(v)")
                }
            }
            print("llama KV cache, \(what): largest difference \(worst), largest logit \(largest)")

            // Past the context the window slides (the cache is rebuilt from its newest half): still the logits of
            // running the window through the model.
            let cached = Generator(model: try model(context: context, kvHeads: kvHeads, tied: tied), useCache: true)
            let recomputed = Generator(model: try model(context: context, kvHeads: kvHeads, tied: tied), useCache: false)
            var next = Array(tokens[0..<2])
            for step in 0..<30 {
                let a = Array(UnsafeBufferPointer(start: try cached.append(next), count: vocab))
                let b = Array(UnsafeBufferPointer(start: try recomputed.append(next), count: vocab))
                for v in 0..<vocab { XCTAssertEqual(a[v], b[v], accuracy: 1e-5 * max(1, largest), "\(what): step \(step)") }
                next = [Int32(rng.next(below: UInt64(vocab)))]
            }
        }
    }
}
