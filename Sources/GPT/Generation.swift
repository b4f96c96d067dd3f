import Compute
import Foundation
import GPTShape
import Kernels

/// Next-token logits for text generation, one sequence at a time.
///
/// With the key/value cache, each new token costs one position: its query attends to the cached keys and values
/// of the tokens before it. Without it (`useCache: false`), the whole window is run through the model for every
/// token; both see the same window and give the same logits up to float rounding.
///
/// The window is at most the context length. When a sequence outgrows it, the window drops its oldest half and
/// the cache is rebuilt from what remains (positions count from the window's start, as the full pass counts them).
///
/// Llama family: the cache holds each position's keys after the rotary embedding (rotated at the token's own
/// position, `Rotary.Layout.firstPosition`) and its values, n_kv_head·head_size floats each (grouped-query attention
/// shares them: query head h reads key/value head h / (n_head / n_kv_head)); RMSNorm, SwiGLU and the untied head
/// as the model computes them.
public final class Generator {
    public let model: GPT
    public let useCache: Bool
    let shape: ModelShape
    let context: Int
    /// Width of one position's keys (and values): n_kv_head·head_size (d_model for multi-head attention).
    let kvWidth: Int
    /// Keys and values of every layer: [n_layer][context][kvWidth] each.
    let keys: FloatStorage
    let values: FloatStorage
    /// One position's activations.
    let scratch: FloatStorage
    let logitsBuffer: FloatStorage
    /// Llama: the rotary table for the window's positions (`Rotary.fillTable`, the model's own values).
    let rotaryTable: FloatStorage?
    /// Tokens of the current window, and how many of them the cache holds.
    private(set) var window: [Int32] = []
    private var cached = 0

    /// `model` must have been built with `maxTime` = its context and `maxBatch` ≥ 1 (the window is prefilled
    /// through the batched forward pass) and, with the cache, keep every block's q, k, v (`recompute` not `.full`).
    public init(model: GPT, useCache: Bool = true) {
        precondition(!useCache || model.recompute != .full, "the KV cache reads every block's q, k, v, which full recomputation does not keep")
        self.model = model
        self.useCache = useCache
        shape = model.shape
        context = model.maxTime
        let c = shape.dModel
        kvWidth = shape.kvWidth
        keys = FloatStorage(count: shape.nLayer * context * kvWidth)
        values = FloatStorage(count: shape.nLayer * context * kvWidth)
        scratch = FloatStorage(count: 8 * c + 2 * shape.dFF + context + 2)
        logitsBuffer = FloatStorage(count: shape.vocabSize)
        if shape.family == .llama {
            let table = FloatStorage(count: Rotary.tableCount(positions: context, headSize: shape.headSize))
            Rotary.fillTable(table.base, positions: context, headSize: shape.headSize, theta: shape.ropeTheta)
            rotaryTable = table
        } else {
            rotaryTable = nil
        }
    }

    /// Starts a new sequence.
    public func reset() {
        window = []
        cached = 0
    }

    /// Appends tokens to the sequence and returns the logits for the token after the last one ([vocab_size],
    /// valid until the next call). Throws, leaving the sequence as it was, when a token is not a vocabulary id.
    public func append(_ tokens: [Int32]) throws(GPTInputError) -> UnsafePointer<Float> {
        if let bad = tokens.firstIndex(where: { $0 < 0 || Int($0) >= shape.vocabSize }) {
            throw .tokenOutOfRange(index: window.count + bad, token: tokens[bad], vocabSize: shape.vocabSize)
        }
        guard !tokens.isEmpty else { throw .batchOutOfRange(batch: 1, time: 0, maxBatch: 1, maxTime: context) }
        window += tokens
        if window.count > context {
            // Keep the newest half of the context (at least the tokens that overflowed).
            let keep = min(window.count, max(context / 2, 1))
            window = Array(window.suffix(keep))
            cached = 0
        }
        if !useCache || cached == 0 || window.count - cached > 1 {
            return try prefill()
        }
        let p = window.count - 1
        return shape.family == .llama ? llamaStep(window[p], position: p) : step(window[p], position: p)
    }

    /// Runs the whole window through the batched forward pass; with the cache, keeps its keys and values.
    private func prefill() throws(GPTInputError) -> UnsafePointer<Float> {
        let t = window.count, c = shape.dModel, v = shape.vocabSize
        let forward: Result<Float, GPTInputError> = window.withUnsafeBufferPointer { tokens in
            Result { () throws(GPTInputError) in
                try model.forward(tokens: tokens.baseAddress!, targets: nil, batch: 1, time: t)
            }
        }
        _ = try forward.get()
        logitsBuffer.base.update(from: model.logits + (t - 1) * v, count: v)
        if useCache {
            // Each row of the fused qkv activation is [queries C | keys K | values K] (K = kvWidth), the queries
            // and keys already rotated for Llama (`GPT.attentionInput`).
            let k = kvWidth, stride = c + 2 * k
            for l in 0..<shape.nLayer {
                let qkv = model.act(model.acts.layers[l].qkv)
                for i in 0..<t {
                    (keys.base + (l * context + i) * k).update(from: qkv + i * stride + c, count: k)
                    (values.base + (l * context + i) * k).update(from: qkv + i * stride + c + k, count: k)
                }
            }
            cached = t
        }
        return UnsafePointer(logitsBuffer.base)
    }

    /// One position through the model, reading and extending the cache.
    private func step(_ token: Int32, position p: Int) -> UnsafePointer<Float> {
        let c = shape.dModel, f = shape.dFF, hs = c / shape.nHead
        let layout = model.layout
        let s = scratch.base
        let x = s, ln = s + c, qkv = s + 2 * c, y = s + 5 * c, tmp = s + 6 * c, stats = s + 7 * c
        let fc = stats + 2, gelu = fc + f, scores = gelu + f
        let pool = model.pool
        func param(_ o: Int) -> UnsafeMutablePointer<Float> { model.parameters.base + o }
        func optional(_ o: Int) -> UnsafeMutablePointer<Float>? { o < 0 ? nil : model.parameters.base + o }
        var tokenValue = token
        Encoder.forward(pool, out: x, tokens: &tokenValue, wte: param(layout.wte), wpe: param(layout.wpe) + p * c,
                        batch: 1, time: 1, channels: c)
        for (l, o) in layout.layers.enumerated() {
            LayerNorm.forward(pool, out: ln, mean: stats, rstd: stats + 1, inp: x, weight: param(o.ln1Weight),
                              bias: optional(o.ln1Bias), rows: 1, channels: c)
            Linear.forward(pool, out: qkv, inp: ln, weight: param(o.qkvWeight), bias: optional(o.qkvBias), rows: 1,
                           inFeatures: c, outFeatures: 3 * c)
            let k = keys.base + l * context * c, v = values.base + l * context * c
            (k + p * c).update(from: qkv + c, count: c)
            (v + p * c).update(from: qkv + 2 * c, count: c)
            let scale = 1 / Float(hs).squareRoot()
            for h in 0..<shape.nHead {
                // scores = scale · K[0...p, head] · q_head, softmax, y_head = V[0...p, head]ᵀ · scores.
                Matmul.serial(transA: false, transB: true, m: p + 1, n: 1, k: hs, alpha: scale,
                              a: k + h * hs, lda: c, b: qkv + h * hs, ldb: hs, beta: 0, c: scores, ldc: 1)
                Attention.softmaxCausalRow(scores, row: p, time: p + 1)
                Matmul.serial(transA: true, transB: false, m: hs, n: 1, k: p + 1,
                              a: v + h * hs, lda: c, b: scores, ldb: 1, beta: 0, c: y + h * hs, ldc: 1)
            }
            Linear.forward(pool, out: x, inp: y, weight: param(o.attnProjWeight), bias: optional(o.attnProjBias),
                           rows: 1, inFeatures: c, outFeatures: c, accumulate: true)
            LayerNorm.forward(pool, out: ln, mean: stats, rstd: stats + 1, inp: x, weight: param(o.ln2Weight),
                              bias: optional(o.ln2Bias), rows: 1, channels: c)
            Linear.forward(pool, out: fc, inp: ln, weight: param(o.fcWeight), bias: optional(o.fcBias), rows: 1,
                           inFeatures: c, outFeatures: f)
            GELU.forward(pool, out: gelu, inp: fc, count: f)
            Linear.forward(pool, out: x, inp: gelu, weight: param(o.mlpProjWeight), bias: optional(o.mlpProjBias),
                           rows: 1, inFeatures: f, outFeatures: c, accumulate: true)
        }
        LayerNorm.forward(pool, out: tmp, mean: stats, rstd: stats + 1, inp: x, weight: param(layout.lnfWeight),
                          bias: optional(layout.lnfBias), rows: 1, channels: c)
        Linear.forward(pool, out: logitsBuffer.base, inp: tmp, weight: param(layout.wte), bias: nil, rows: 1,
                       inFeatures: c, outFeatures: shape.vocabSize)
        cached = p + 1
        return UnsafePointer(logitsBuffer.base)
    }
}

extension Generator {
    /// One position of a Llama-family model, reading and extending the cache: RMSNorm, the stacked qkv product,
    /// the rotary embedding of the query and key heads at position `p`, grouped-query attention over the cached
    /// keys and values, the output projection, RMSNorm, SwiGLU (gate, up, down), the final RMSNorm and the head
    /// (`lm_head`, or the token embedding when tied).
    func llamaStep(_ token: Int32, position p: Int) -> UnsafePointer<Float> {
        let c = shape.dModel, f = shape.dFF, hs = shape.headSize, k = kvWidth, stride = c + 2 * k
        let group = shape.nHead / shape.nKVHead, eps = Float(shape.normEps)
        let layout = model.layout
        let s = scratch.base
        // x | ln | qkv (C + 2K ≤ 3C) | y | rstd | gate | up | scores
        let x = s, ln = s + c, qkv = s + 2 * c, y = s + 5 * c, rstd = s + 6 * c
        let gate = rstd + 2, up = gate + f, scores = up + f
        let pool = model.pool
        func param(_ o: Int) -> UnsafeMutablePointer<Float> { model.parameters.base + o }
        x.update(from: param(layout.wte) + Int(token) * c, count: c)
        let rotation = Rotary.Layout(rows: 1, time: 1, firstPosition: p, rowStride: stride,
                                     vectors: shape.nHead + shape.nKVHead, headSize: hs)
        let scale = 1 / Float(hs).squareRoot()
        for (l, o) in layout.layers.enumerated() {
            RMSNorm.forward(pool, out: ln, rstd: rstd, inp: x, weight: param(o.ln1Weight), rows: 1, channels: c, epsilon: eps)
            Linear.forward(pool, out: qkv, inp: ln, weight: param(o.qkvWeight), bias: nil, rows: 1,
                           inFeatures: c, outFeatures: stride)
            Rotary.forward(pool, out: qkv, inp: qkv, layout: rotation, table: rotaryTable!.base, positions: context)
            let keyCache = keys.base + l * context * k, valueCache = values.base + l * context * k
            (keyCache + p * k).update(from: qkv + c, count: k)
            (valueCache + p * k).update(from: qkv + c + k, count: k)
            for h in 0..<shape.nHead {
                // scores = scale · K[0...p, kv head] · q_head, softmax, y_head = V[0...p, kv head]ᵀ · scores.
                let kvHead = h / group
                Matmul.serial(transA: false, transB: true, m: p + 1, n: 1, k: hs, alpha: scale,
                              a: keyCache + kvHead * hs, lda: k, b: qkv + h * hs, ldb: hs, beta: 0, c: scores, ldc: 1)
                Attention.softmaxCausalRow(scores, row: p, time: p + 1)
                Matmul.serial(transA: true, transB: false, m: hs, n: 1, k: p + 1,
                              a: valueCache + kvHead * hs, lda: k, b: scores, ldb: 1, beta: 0, c: y + h * hs, ldc: 1)
            }
            Linear.forward(pool, out: x, inp: y, weight: param(o.attnProjWeight), bias: nil, rows: 1,
                           inFeatures: c, outFeatures: c, accumulate: true)
            RMSNorm.forward(pool, out: ln, rstd: rstd, inp: x, weight: param(o.ln2Weight), rows: 1, channels: c, epsilon: eps)
            Linear.forward(pool, out: gate, inp: ln, weight: param(o.fcWeight), bias: nil, rows: 1, inFeatures: c, outFeatures: f)
            Linear.forward(pool, out: up, inp: ln, weight: param(o.upWeight), bias: nil, rows: 1, inFeatures: c, outFeatures: f)
            SwiGLU.forward(pool, out: gate, gate: gate, up: up, count: f)
            Linear.forward(pool, out: x, inp: gate, weight: param(o.mlpProjWeight), bias: nil, rows: 1,
                           inFeatures: f, outFeatures: c, accumulate: true)
        }
        RMSNorm.forward(pool, out: ln, rstd: rstd, inp: x, weight: param(layout.lnfWeight), rows: 1, channels: c, epsilon: eps)
        let head = layout.lmHead >= 0 ? layout.lmHead : layout.wte
        Linear.forward(pool, out: logitsBuffer.base, inp: ln, weight: param(head), bias: nil, rows: 1,
                       inFeatures: c, outFeatures: shape.vocabSize)
        cached = p + 1
        return UnsafePointer(logitsBuffer.base)
    }
}

/// Picks the next token from logits: temperature, then the k most likely, then a draw from a seeded generator
/// (temperature 0 takes the most likely token).
public struct TokenSampler: Sendable {
    public var temperature: Float
    public var topK: Int
    public var rng: Xoshiro256

    public init(temperature: Float, topK: Int, seed: UInt64) {
        self.temperature = temperature
        self.topK = topK
        rng = Xoshiro256(seed: seed, stream: 4)
    }

    public mutating func sample(_ logits: UnsafePointer<Float>, vocab: Int) -> Int32 {
        if temperature <= 0 {
            var best = 0
            for i in 1..<vocab where logits[i] > logits[best] { best = i }
            return Int32(best)
        }
        // The k largest, ties broken by the lower id, in a stable order.
        let k = min(max(topK, 1), vocab)
        let candidates = (0..<vocab).sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }.prefix(k)
        let top = Double(logits[candidates.first!])
        let weights = candidates.map { exp((Double(logits[$0]) - top) / Double(temperature)) }
        var u = rng.nextDouble() * weights.reduce(0, +)
        for (i, w) in zip(candidates, weights) {
            u -= w
            if u < 0 { return Int32(i) }
        }
        return Int32(candidates.last!)
    }
}
