import Compute

/// Token embedding without a position table (Llama: positions enter as rotations of queries and keys inside
/// attention, `Rotary`): `out[b, t] = wte[tokens[b, t]]`, Hugging Face's `nn.Embedding` `embed_tokens`.
public enum TokenEmbedding {
    /// - Parameters: `out` [rows, C]; `tokens` [rows] (each below the vocabulary size: the caller checks);
    ///   `wte` [V, C].
    public static func forward(_ pool: ThreadPool, out: UnsafeMutablePointer<Float>, tokens: UnsafePointer<Int32>,
                               wte: UnsafePointer<Float>, rows: Int, channels c: Int) {
        pool.parallelFor(rows, serialBelow: 64, (out, tokens, wte, c)) { a, range in
            let (out, tokens, wte, c) = a
            for row in range { (out + row * c).update(from: wte + Int(tokens[row]) * c, count: c) }
        }
    }

    /// Adds `dout`'s rows into the rows of `dwte` that the forward pass read. Split over channels, so that two
    /// positions with the same token never race and rows are added in the same order whatever the threads (the
    /// result depends on nothing but the inputs). With `accumulate` false the whole of `dwte` ([vocab, C]) is
    /// zeroed first, so that it holds this pass's gradient alone (an untied head leaves `dwte` to the embedding);
    /// a tied head writes its gradient into `dwte` first and the embedding's is added with `accumulate` true.
    public static func backward(_ pool: ThreadPool, dwte: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                tokens: UnsafePointer<Int32>, rows: Int, channels c: Int, vocab: Int, accumulate: Bool) {
        if !accumulate {
            pool.parallelFor(vocab, serialBelow: 256, (dwte, c)) { a, range in
                let (dwte, c) = a
                (dwte + range.lowerBound * c).update(repeating: 0, count: range.count * c)
            }
        }
        pool.parallelFor(c, grain: 16, serialBelow: 32, (dwte, dout, tokens, rows, c)) { a, columns in
            let (dwte, dout, tokens, rows, c) = a
            for row in 0..<rows {
                let g = dout + row * c, token = dwte + Int(tokens[row]) * c
                var j = columns.lowerBound
                while j + 16 <= columns.upperBound {
                    store(load(token + j) + load(g + j), token + j)
                    j += 16
                }
                while j < columns.upperBound {
                    token[j] += g[j]
                    j += 1
                }
            }
        }
    }
}
