import Compute
import Foundation
import Kernels
import XCTest

/// The Llama-style kernels composed into one decoder layer (RMSNorm, fused q/k/v product, RoPE, grouped-query fused
/// attention, o_proj and the residual, RMSNorm, gate/up products, SwiGLU, down_proj and the residual) in float32,
/// forward and backward, against `ReferenceLlamaBlock` in double precision: outputs, and gradients against central
/// differences of the reference. This checks the conventions the kernels share with Hugging Face's
/// `LlamaDecoderLayer` (where RoPE sits, which K/V head a query head reads, ε inside the square root), which the
/// kernels' own tests cannot see.
final class LlamaBlockTests: XCTestCase {
    struct Gradients {
        var out: [Float]
        var dx: [Float]
        var params: [String: [Float]]
    }

    /// Forward and backward through the kernels for L = Σ out ⊙ w.
    static func kernels(_ block: ReferenceLlamaBlock, x: [Float], w: [Float], batch: Int, time: Int,
                        tiles: FusedAttention.Tiles, threads: Int = 2) -> Gradients {
        let c = block.config, C = c.dModel, F = c.dFF, N = batch * time, hs = c.headSize
        let shape = Attention.Shape(batch: batch, time: time, channels: C, heads: c.nHead, kvHeads: c.nKVHead)
        let S = shape.qkvStride
        let pool = ThreadPool(threads: threads)
        func param(_ name: String) -> [Float] { block.params[name]!.map(Float.init) }
        // q_proj, k_proj and v_proj stacked: one product gives the fused qkv row [q | k | v].
        let wqkv = param("self_attn.q_proj.weight") + param("self_attn.k_proj.weight") + param("self_attn.v_proj.weight")
        func zeros(_ n: Int) -> [Float] { [Float](repeating: 0, count: n) }
        var a: [[Float]] = [
            x, w, param("input_layernorm.weight"), wqkv, param("self_attn.o_proj.weight"),
            param("post_attention_layernorm.weight"), param("mlp.gate_proj.weight"), param("mlp.up_proj.weight"),
            param("mlp.down_proj.weight"),
            // 9 n1, 10 rstd1, 11 qkv, 12 y, 13 lse, 14 h, 15 n2, 16 rstd2, 17 gate, 18 up, 19 m, 20 out
            zeros(N * C), zeros(N), zeros(N * S), zeros(N * C), zeros(N * c.nHead), zeros(N * C), zeros(N * C), zeros(N),
            zeros(N * F), zeros(N * F), zeros(N * F), zeros(N * C),
            // 21 table, 22 attention scratch, 23 norm scratch
            zeros(Rotary.tableCount(positions: time, headSize: hs)),
            zeros(threads * FusedAttention.scratchPerThread(tiles: tiles)),
            zeros(RMSNorm.scratchCount(threads: threads, channels: C)),
            // 24 dh, 25 dm, 26 dgate, 27 dup, 28 dn2, 29 dy, 30 dqkv, 31 dn1, 32 dx
            zeros(N * C), zeros(N * F), zeros(N * F), zeros(N * F), zeros(N * C), zeros(N * C), zeros(N * S), zeros(N * C),
            zeros(N * C),
            // 33 dg1, 34 dwqkv, 35 dwo, 36 dg2, 37 dwgate, 38 dwup, 39 dwdown
            zeros(C), zeros(wqkv.count), zeros(C * C), zeros(C), zeros(F * C), zeros(F * C), zeros(C * F),
        ]
        withPointers(&a) { p in
            let eps = Float(c.normEps)
            Rotary.fillTable(p[21], positions: time, headSize: hs, theta: c.ropeTheta)
            let layout = Rotary.Layout.queriesAndKeys(shape)
            // Forward.
            RMSNorm.forward(pool, out: p[9], rstd: p[10], inp: p[0], weight: p[2], rows: N, channels: C, epsilon: eps)
            Linear.forward(pool, out: p[11], inp: p[9], weight: p[3], bias: nil, rows: N, inFeatures: C, outFeatures: S)
            Rotary.forward(pool, out: p[11], inp: p[11], layout: layout, table: p[21], positions: time)
            FusedAttention.forward(pool, out: p[12], lse: p[13], qkv: p[11], shape: shape, tiles: tiles, scratch: p[22],
                                   dropout: nil)
            p[14].update(from: p[0], count: N * C)
            Linear.forward(pool, out: p[14], inp: p[12], weight: p[4], bias: nil, rows: N, inFeatures: C, outFeatures: C,
                           accumulate: true)
            RMSNorm.forward(pool, out: p[15], rstd: p[16], inp: p[14], weight: p[5], rows: N, channels: C, epsilon: eps)
            Linear.forward(pool, out: p[17], inp: p[15], weight: p[6], bias: nil, rows: N, inFeatures: C, outFeatures: F)
            Linear.forward(pool, out: p[18], inp: p[15], weight: p[7], bias: nil, rows: N, inFeatures: C, outFeatures: F)
            SwiGLU.forward(pool, out: p[19], gate: p[17], up: p[18], count: N * F)
            p[20].update(from: p[14], count: N * C)
            Linear.forward(pool, out: p[20], inp: p[19], weight: p[8], bias: nil, rows: N, inFeatures: F, outFeatures: C,
                           accumulate: true)
            // Backward: dL/dout = w.
            p[24].update(from: p[1], count: N * C)
            Linear.backward(pool, dinp: p[25], dweight: p[39], dbias: nil, dout: p[1], inp: p[19], weight: p[8], rows: N,
                            inFeatures: F, outFeatures: C, accumulateInput: false, accumulateParameters: false)
            SwiGLU.backward(pool, dgate: p[26], dup: p[27], gate: p[17], up: p[18], dout: p[25], count: N * F)
            Linear.backward(pool, dinp: p[28], dweight: p[37], dbias: nil, dout: p[26], inp: p[15], weight: p[6], rows: N,
                            inFeatures: C, outFeatures: F, accumulateInput: false, accumulateParameters: false)
            Linear.backward(pool, dinp: p[28], dweight: p[38], dbias: nil, dout: p[27], inp: p[15], weight: p[7], rows: N,
                            inFeatures: C, outFeatures: F, accumulateInput: true, accumulateParameters: false)
            RMSNorm.backward(pool, dinp: p[24], dweight: p[36], dout: p[28], inp: p[14], weight: p[5], rstd: p[16], rows: N,
                             channels: C, scratch: p[23], accumulateInput: true, accumulateParameters: false)
            Linear.backward(pool, dinp: p[29], dweight: p[35], dbias: nil, dout: p[24], inp: p[12], weight: p[4], rows: N,
                            inFeatures: C, outFeatures: C, accumulateInput: false, accumulateParameters: false)
            FusedAttention.backward(pool, dqkv: p[30], dout: p[29], out: p[12], lse: p[13], qkv: p[11], shape: shape,
                                    tiles: tiles, scratch: p[22], dropout: nil)
            Rotary.backward(pool, dinp: p[30], dout: p[30], layout: layout, table: p[21], positions: time)
            Linear.backward(pool, dinp: p[31], dweight: p[34], dbias: nil, dout: p[30], inp: p[9], weight: p[3], rows: N,
                            inFeatures: C, outFeatures: S, accumulateInput: false, accumulateParameters: false)
            p[32].update(from: p[24], count: N * C)
            RMSNorm.backward(pool, dinp: p[32], dweight: p[33], dout: p[31], inp: p[0], weight: p[2], rstd: p[10], rows: N,
                             channels: C, scratch: p[23], accumulateInput: true, accumulateParameters: false)
        }
        let qCount = C * C, kvCount = c.nKVHead * hs * C
        let dwqkv = a[34]
        return Gradients(out: a[20], dx: a[32], params: [
            "input_layernorm.weight": a[33],
            "self_attn.q_proj.weight": Array(dwqkv[0..<qCount]),
            "self_attn.k_proj.weight": Array(dwqkv[qCount..<(qCount + kvCount)]),
            "self_attn.v_proj.weight": Array(dwqkv[(qCount + kvCount)...]),
            "self_attn.o_proj.weight": a[35], "post_attention_layernorm.weight": a[36],
            "mlp.gate_proj.weight": a[37], "mlp.up_proj.weight": a[38], "mlp.down_proj.weight": a[39],
        ])
    }

    /// float32 kernels against the double reference: a layer is a few products of length ≤ max(C, F) and sums of
    /// ≤ T attention terms, so outputs agree to ~1e-6 relative; gradients are compared as in KernelTests
    /// (relative to each component, components small by cancellation judged against 1e-3 of the largest),
    /// within 2e-3, over sampled entries of every tensor.
    func check(_ config: ReferenceLlamaBlock.Config, batch: Int, time: Int, tiles: FusedAttention.Tiles) {
        let block = ReferenceLlamaBlock.random(config, seed: 42)
        var rng = ReferenceGPT.SplitMix64(seed: 7)
        let n = batch * time * config.dModel
        let x = (0..<n).map { _ in Float(rng.nextNormal()) }, w = (0..<n).map { _ in Float(rng.nextNormal()) }
        let result = Self.kernels(block, x: x, w: w, batch: batch, time: time, tiles: tiles)
        let xd = x.map(Double.init), wd = w.map(Double.init)
        let expected = block.forward(xd, batch: batch, time: time)
        let scale = expected.map(abs).max()!
        for i in 0..<n { XCTAssertEqual(Double(result.out[i]), expected[i], accuracy: 2e-6 * scale, "out[\(i)]") }

        func loss(_ b: ReferenceLlamaBlock, _ x: [Double]) -> Double {
            zip(b.forward(x, batch: batch, time: time), wd).map(*).reduce(0, +)
        }
        func compare(_ analytic: [Float], _ value: [Double], _ label: String, _ f: ([Double]) -> Double) {
            var r = ReferenceGPT.SplitMix64(seed: UInt64(value.count))
            let indices = value.count <= 40 ? Array(value.indices) : (0..<40).map { _ in Int(r.next() % UInt64(value.count)) }
            var numeric: [Int: Double] = [:]
            var probe = value
            let h = 1e-5
            for i in indices {
                probe[i] = value[i] + h
                let up = f(probe)
                probe[i] = value[i] - h
                let down = f(probe)
                probe[i] = value[i]
                numeric[i] = (up - down) / (2 * h)
            }
            let largest = numeric.values.map(abs).max() ?? 0
            var worst = 0.0
            for (i, v) in numeric {
                worst = max(worst, abs(Double(analytic[i]) - v) / (abs(v) + 1e-3 * largest + 1e-12))
            }
            XCTAssertLessThanOrEqual(worst, 2e-3, "\(label): worst relative error \(worst)")
            XCTAssertGreaterThan(largest, 0, label)
        }
        compare(result.dx, xd, "dx") { loss(block, $0) }
        for name in ReferenceLlamaBlock.names {
            compare(result.params[name]!, block.params[name]!, name) { value in
                var b = block
                b.params[name] = value
                return loss(b, xd)
            }
        }
    }

    func testGroupedBlockAgainstTheDoubleReference() {
        // Four query heads on two key/value heads, head size 8, Llama 3's θ and ε; ragged attention tiles.
        check(.init(dModel: 32, nHead: 4, nKVHead: 2, dFF: 48, ropeTheta: 500_000, normEps: 1e-5),
              batch: 2, time: 7, tiles: .init(queries: 4, keys: 3))
        // Multi-query (one key/value head) and multi-head (as many as query heads), θ = 10000.
        check(.init(dModel: 24, nHead: 3, nKVHead: 1, dFF: 40, ropeTheta: 10_000, normEps: 1e-6),
              batch: 1, time: 9, tiles: .standard)
        check(.init(dModel: 24, nHead: 2, nKVHead: 2, dFF: 32, ropeTheta: 10_000, normEps: 1e-6),
              batch: 2, time: 5, tiles: .standard)
    }
}

/// Runs `body` with mutable pointers to copies of arrays, and copies them back.
private func withPointers<R>(_ arrays: inout [[Float]], _ body: ([UnsafeMutablePointer<Float>]) -> R) -> R {
    let pointers = arrays.map { a -> UnsafeMutablePointer<Float> in
        let p = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(a.count, 1))
        p.initialize(from: a, count: a.count)
        return p
    }
    let result = body(pointers)
    for (i, p) in pointers.enumerated() {
        arrays[i] = Array(UnsafeBufferPointer(start: p, count: arrays[i].count))
        p.deallocate()
    }
    return result
}
