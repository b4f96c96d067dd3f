import Compute

/// Token plus position embedding: `out[b, t] = wte[tokens[b, t]] + wpe[t]`.
public enum Encoder {
    /// - Parameters: `out` [B·T, C]; `tokens` [B·T]; `wte` [V, C]; `wpe` [≥T, C].
    public static func forward(_ pool: ThreadPool, out: UnsafeMutablePointer<Float>, tokens: UnsafePointer<Int32>,
                               wte: UnsafePointer<Float>, wpe: UnsafePointer<Float>, batch: Int, time: Int, channels c: Int) {
        pool.parallelFor(batch * time, serialBelow: 64, (out, tokens, wte, wpe, time, c)) { a, rows in
            let (out, tokens, wte, wpe, time, c) = a
            for row in rows {
                let token = wte + Int(tokens[row]) * c, position = wpe + (row % time) * c
                let o = out + row * c
                var i = 0
                while i + 16 <= c {
                    store(load(token + i) + load(position + i), o + i)
                    i += 16
                }
                while i < c { o[i] = token[i] + position[i]; i += 1 }
            }
        }
    }

    /// Adds `dout` into the rows of `dwte` and `dwpe` that the forward pass read. Split over channels, so that
    /// two positions with the same token never race and rows are added in the same order whatever the threads.
    /// With `accumulate` false, `dwpe`'s first T rows are overwritten rather than added to (`dwte` is not touched
    /// here beyond the addition: the tied head's gradient is written into it first).
    public static func backward(_ pool: ThreadPool, dwte: UnsafeMutablePointer<Float>, dwpe: UnsafeMutablePointer<Float>,
                                dout: UnsafePointer<Float>, tokens: UnsafePointer<Int32>, batch: Int, time: Int,
                                channels c: Int, accumulate: Bool) {
        pool.parallelFor(c, grain: 16, serialBelow: 32, (dwte, dwpe, dout, tokens, batch, time, c, accumulate)) { a, columns in
            let (dwte, dwpe, dout, tokens, batch, time, c, accumulate) = a
            if !accumulate {
                for t in 0..<time { for j in columns { dwpe[t * c + j] = 0 } }
            }
            for row in 0..<(batch * time) {
                let g = dout + row * c
                let token = dwte + Int(tokens[row]) * c, position = dwpe + (row % time) * c
                var j = columns.lowerBound
                while j + 16 <= columns.upperBound {
                    let v = load(g + j)
                    store(load(token + j) + v, token + j)
                    store(load(position + j) + v, position + j)
                    j += 16
                }
                while j < columns.upperBound {
                    token[j] += g[j]
                    position[j] += g[j]
                    j += 1
                }
            }
        }
    }
}
