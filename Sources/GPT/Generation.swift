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
/// the cache is rebuilt from what remains.
public final class Generator {
    public let model: GPT
    public let useCache: Bool
    let shape: ModelShape
    let context: Int
    /// Keys and values of every layer: [n_layer][context][C] each.
    let keys: FloatStorage
    let values: FloatStorage
    /// One position's activations.
    let scratch: FloatStorage
    let logitsBuffer: FloatStorage
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
        keys = FloatStorage(count: shape.nLayer * context * c)
        values = FloatStorage(count: shape.nLayer * context * c)
        scratch = FloatStorage(count: 8 * c + 2 * shape.dFF + context + 2)
        logitsBuffer = FloatStorage(count: shape.vocabSize)
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
        return step(window[window.count - 1], position: window.count - 1)
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
            for l in 0..<shape.nLayer {
                let qkv = model.act(model.acts.layers[l].qkv)
                for i in 0..<t {
                    (keys.base + (l * context + i) * c).update(from: qkv + i * 3 * c + c, count: c)
                    (values.base + (l * context + i) * c).update(from: qkv + i * 3 * c + 2 * c, count: c)
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
