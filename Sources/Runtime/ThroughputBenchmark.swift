import Compute
import Foundation
import GPT
import GPTShape

/// Training-step throughput of one model configuration on random tokens: forward, backward, gradient norm and
/// AdamW, exactly as a training step runs them, timed over several steps after a warm-up.
public enum ThroughputBenchmark {
    public struct Configuration: Sendable {
        public var name: String
        public var shape: ModelShape
        public var batch: Int
        public var time: Int

        public init(name: String, shape: ModelShape, batch: Int, time: Int) {
            self.name = name
            self.shape = shape
            self.batch = batch
            self.time = time
        }

        /// 6N + 12·n_layer·d_model·T, N the non-embedding parameters plus the tied head's matrix.
        public var flopsPerToken: Double { shape.flopsPerTokenWithAttention(context: time) }

        /// The three configurations docs/benchmarks.md compares with PyTorch.
        public static let standard: [Configuration] = [
            Configuration(name: "a: 4×4×128, T 64, B 12, vocab 65 (nanoGPT shakespeare_char CPU)",
                          shape: ModelShape(nLayer: 4, nHead: 4, dModel: 128, dFF: 512, seqLen: 64, vocabSize: 65, bias: false),
                          batch: 12, time: 64),
            Configuration(name: "b: 6×6×384, T 256, B 8, vocab 65",
                          shape: ModelShape(nLayer: 6, nHead: 6, dModel: 384, dFF: 1536, seqLen: 256, vocabSize: 65, bias: false),
                          batch: 8, time: 256),
            Configuration(name: "c: GPT-2 124M 12×12×768, T 64, B 4, vocab 50304",
                          shape: ModelShape(nLayer: 12, nHead: 12, dModel: 768, dFF: 3072, seqLen: 1024, vocabSize: 50304, bias: false),
                          batch: 4, time: 64),
        ]

        /// GPT-2 124M at its full context, one sequence: what docs/benchmarks.md measures each `Recompute` mode on.
        public static let fullContext = Configuration(
            name: "d: GPT-2 124M 12×12×768, T 1024, B 1, vocab 50304",
            shape: ModelShape(nLayer: 12, nHead: 12, dModel: 768, dFF: 3072, seqLen: 1024, vocabSize: 50304, bias: false),
            batch: 1, time: 1024)

        /// A Llama-style model of GPT-2 124M's size at its full context, one sequence: the same 12 layers of width
        /// 768 with 12 heads, grouped-query attention with 4 KV heads, a SwiGLU MLP of width 2048 (as many MLP
        /// weights as GPT-2's 3072-wide GELU MLP), RMSNorm, rotary positions, no biases, the head tied to the token
        /// embedding (114.2M parameters): what docs/benchmarks.md measures each `Recompute` mode and PyTorch on.
        public static let llamaFullContext = Configuration(
            name: "l: Llama-style 12×12×768, 4 KV heads, SwiGLU 2048, tied, T 1024, B 1, vocab 50304",
            shape: ModelShape(nLayer: 12, nHead: 12, dModel: 768, dFF: 2048, seqLen: 1024, vocabSize: 50304, bias: false,
                              family: .llama, nKVHead: 4, tieEmbeddings: true),
            batch: 1, time: 1024)

        /// The same configuration with micro-batches of `batch` sequences.
        public func withBatch(_ batch: Int) -> Configuration {
            var c = self
            c.batch = batch
            c.name = name.replacingOccurrences(of: "B \(self.batch)", with: "B \(batch)")
            return c
        }
    }

    public struct Result: Sendable {
        public var name: String
        public var threads: Int
        public var steps: Int
        /// Median seconds per training step, and per phase.
        public var stepSeconds: Double
        public var forwardSeconds: Double
        public var backwardSeconds: Double
        public var optimizerSeconds: Double
        public var tokensPerSecond: Double
        public var flopsPerSecond: Double
        public var peakMemoryBytes: Int
        /// Median CPU time of a step, all of the process's threads together (`CLOCK_PROCESS_CPUTIME_ID`): on a
        /// machine shared with other work it grows much less than the wall-clock time (idle workers spin at most
        /// `ThreadPool.spinNanoseconds` between regions).
        public var cpuSecondsPerStep: Double = 0
    }

    public static func run(_ c: Configuration, threads: Int, steps: Int = 10, warmup: Int = 2,
                           attention: AttentionKernel = .fused, precision: Precision = .fp32,
                           bf16Products: BF16Products? = nil, recompute: Recompute = .none) throws -> Result {
        BLAS.pinToOneThread()
        let pool = ThreadPool(threads: threads)
        let model = try GPT(shape: c.shape, maxBatch: c.batch, maxTime: c.time, pool: pool, attention: attention,
                            precision: precision, bf16Products: bf16Products, recompute: recompute)
        model.initialize(seed: 1)
        let optimizer = AdamW(parameterCount: model.layout.count, beta1: 0.9, beta2: 0.95, eps: 1e-8,
                              weightDecay: 0.1, gradClip: 1.0)
        var rng = Xoshiro256(seed: 2)
        let n = c.batch * c.time
        var tokens = (0..<n).map { _ in Int32(rng.next(below: UInt64(c.shape.vocabSize))) }
        var targets = (0..<n).map { _ in Int32(rng.next(below: UInt64(c.shape.vocabSize))) }
        var step: [Double] = [], forward: [Double] = [], backward: [Double] = [], update: [Double] = [], cpu: [Double] = []
        func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
        func cpuNow() -> Double {
            var t = timespec()
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
            return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
        }
        for i in 0..<(warmup + steps) {
            let c0 = cpuNow()
            let t0 = now()
            try tokens.withUnsafeBufferPointer { t in
                try targets.withUnsafeBufferPointer { y in
                    _ = try model.forward(tokens: t.baseAddress!, targets: y.baseAddress!, batch: c.batch, time: c.time,
                                      gradientScale: 1 / Float(n))
                }
            }
            let t1 = now()
            model.backward(accumulate: false)
            let t2 = now()
            optimizer.step(model, lr: 1e-4, norm: optimizer.gradientNorm(model))
            let t3 = now()
            let c1 = cpuNow()
            if i >= warmup {
                cpu.append(c1 - c0)
                step.append(Double(t3 - t0) * 1e-9)
                forward.append(Double(t1 - t0) * 1e-9)
                backward.append(Double(t2 - t1) * 1e-9)
                update.append(Double(t3 - t2) * 1e-9)
            }
            tokens.swapAt(0, n - 1)
            targets.swapAt(1, n - 2)
        }
        func median(_ x: [Double]) -> Double {
            let s = x.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        let seconds = median(step)
        return Result(name: c.name, threads: threads, steps: steps, stepSeconds: seconds,
                      forwardSeconds: median(forward), backwardSeconds: median(backward),
                      optimizerSeconds: median(update), tokensPerSecond: Double(n) / seconds,
                      flopsPerSecond: c.flopsPerToken * Double(n) / seconds, peakMemoryBytes: PeakMemory.bytes,
                      cpuSecondsPerStep: median(cpu))
    }
}
