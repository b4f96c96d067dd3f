import Compute
import Foundation

/// Softmax cross-entropy over the vocabulary, one row of logits per position.
public enum CrossEntropy {
    /// Per-row losses `losses[r] = log Σ_j e^{logits[r, j]} − logits[r, targets[r]]` (natural log, all columns
    /// in the softmax). With `gradientScale`, the logits are replaced by the gradient of
    /// `gradientScale · Σ_r losses[r]`: `(softmax − onehot(target)) · gradientScale`, the fused backward pass.
    public static func forward(_ pool: ThreadPool, losses: UnsafeMutablePointer<Float>, logits: UnsafeMutablePointer<Float>,
                               targets: UnsafePointer<Int32>, rows: Int, vocab v: Int, gradientScale: Float?) {
        pool.parallelFor(rows, (losses, logits, targets, v, gradientScale)) { a, range in
            let (losses, logits, targets, v, gradientScale) = a
            for r in range {
                let row = logits + r * v
                let target = Int(targets[r])
                var mv = FloatVector(repeating: -.infinity)
                var j = 0
                while j + 16 <= v { mv = vmax(mv, load(row + j)); j += 16 }
                var m = horizontalMax(mv)
                while j < v { m = max(m, row[j]); j += 1 }
                let targetLogit = row[target]
                let mvec = FloatVector(repeating: m)
                var acc = FloatVector(repeating: 0)
                j = 0
                if gradientScale != nil {
                    // Keep e^{x − max} in place; it becomes the softmax below.
                    while j + 16 <= v { let e = vexp(load(row + j) - mvec); store(e, row + j); acc += e; j += 16 }
                } else {
                    while j + 16 <= v { acc += vexp(load(row + j) - mvec); j += 16 }
                }
                var sum = horizontalSum(acc)
                while j < v {
                    let e = fastExp(row[j] - m)
                    if gradientScale != nil { row[j] = e }
                    sum += e
                    j += 1
                }
                losses[r] = (log(sum) + m) - targetLogit
                guard let scale = gradientScale else { continue }
                let factor = scale / sum
                let fv = FloatVector(repeating: factor)
                j = 0
                while j + 16 <= v { store(load(row + j) * fv, row + j); j += 16 }
                while j < v { row[j] *= factor; j += 1 }
                row[target] -= scale
            }
        }
    }
}
