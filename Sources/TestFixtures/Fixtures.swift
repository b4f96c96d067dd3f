import Compute
import Foundation
import GPTShape
import Planner
import Recipe
import Synchronization

/// Small, fast, real training setups for tests: a generated text file on disk and a recipe that passes every
/// check, written to a fresh directory.
public enum Fixtures {
    /// A fresh empty directory under the system's temporary directory, removed with everything in it when the
    /// test process exits.
    public static func directory(_ name: String) throws -> String {
        let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("swift-gpt-tests/\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        created.withLock { list in
            if list.isEmpty { atexit { Fixtures.removeCreated() } }
            list.append(path)
        }
        return path
    }

    /// Directories `directory` made in this process and not yet removed.
    private static let created = Mutex<[String]>([])

    /// Removes every directory `directory` made (and their parent, once it is empty).
    public static func removeCreated() {
        let paths = created.withLock { list in defer { list = [] }; return list }
        for path in paths { try? FileManager.default.removeItem(atPath: path) }
        if let parent = paths.first.map({ ($0 as NSString).deletingLastPathComponent }) {
            rmdir(parent)
        }
    }

    /// Deterministic text with structure a small model can learn: lines of words from a small vocabulary.
    public static func text(bytes: Int, seed: UInt64 = 1) -> String {
        let words = ["the", "king", "queen", "shall", "speak", "of", "love", "and", "war", "my", "lord", "good",
                     "night", "sweet", "prince", "to", "be", "or", "not", "that", "is", "question"]
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func next() -> Int {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Int(state % UInt64(words.count))
        }
        var out = ""
        while out.utf8.count < bytes {
            let speaker = ["KING", "QUEEN", "HAMLET"][next() % 3]
            out += "\(speaker):\n"
            for _ in 0..<(2 + next() % 4) { out += words[next()] + " " }
            out += words[next()] + ".\n\n"
        }
        return out
    }

    public struct Options {
        public var steps = 30
        public var nLayer = 2
        public var nHead = 2
        public var dModel = 32
        public var seqLen = 16
        public var microBatch = 4
        public var gradAccum = 1
        public var devices = 1
        public var zeroStage = 0
        public var lr = 3e-3
        public var warmup = 3
        public var dropout = 0.0
        public var precision: Precision = .fp32
        public var recompute: GPTShape.Recompute = .none
        public var bias = true
        public var evalInterval = 10
        public var evalIters = 2
        public var checkpointInterval = 10
        public var keep = 3
        public var logInterval = 1
        public var seed = 7
        public var tokenizer = "char"
        public var vocabSize = 64
        public var dataPath = "data.txt"
        public init() {}
    }

    /// A recipe for `options`, with the budget it spends declared, written next to `data.txt` (created when
    /// missing) in `directory`. Returns the recipe's path.
    @discardableResult
    public static func recipe(in directory: String, name: String = "tiny.toml", _ o: Options = Options()) throws -> String {
        let dataPath = (directory as NSString).appendingPathComponent(o.dataPath)
        if !FileManager.default.fileExists(atPath: dataPath) {
            try text(bytes: 20_000).write(toFile: dataPath, atomically: true, encoding: .utf8)
        }
        var r = Recipe()
        r.model = .init(nLayer: o.nLayer, nHead: o.nHead, dModel: o.dModel, dFF: 4 * o.dModel, seqLen: o.seqLen,
                        vocabSize: o.vocabSize, bias: o.bias)
        r.data = .init(path: o.dataPath, tokenizer: o.tokenizer, valFraction: 0.1)
        r.optimizer = .init(lr: o.lr, minLR: o.lr / 10, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1.0)
        r.schedule = .init(warmupSteps: min(o.warmup, o.steps - 1), decay: .cosine)
        r.training = .init(steps: o.steps, batchSize: o.microBatch * o.gradAccum * o.devices, seqLen: o.seqLen,
                           microBatch: o.microBatch, gradAccum: o.gradAccum, devices: o.devices,
                           zeroStage: o.zeroStage, dropout: o.dropout, seed: o.seed)
        r.training.precision = o.precision
        r.training.recompute = o.recompute
        r.eval = .init(interval: o.evalInterval, iters: o.evalIters)
        r.checkpoint = .init(dir: "checkpoints", interval: o.checkpointInterval, keep: o.keep)
        r.logging = .init(interval: o.logInterval)
        let n = r.shape.parameterCount.total
        r.plan = .init(flopsBudget: 6 * Double(n) * r.trainingTokens, fit: "manual", params: n,
                       tokens: Int(r.trainingTokens), predictedLoss: 0)
        let path = (directory as NSString).appendingPathComponent(name)
        try RecipeWriter.write(r, header: ["test recipe"]).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The metrics.jsonl lines of a run, parsed, with the timing fields (which differ between runs) removed.
    public static func metrics(runDirectory: String) throws -> [[String: Double]] {
        let text = try String(contentsOfFile: (runDirectory as NSString).appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            var out: [String: Double] = [:]
            for (key, value) in object where !["tokens_per_sec", "mfu", "comm_seconds"].contains(key) {
                out[key] = (value as? NSNumber)?.doubleValue
            }
            return out
        }
    }
}

extension Fixtures {
    /// Writes `data.txt` in `directory` (before `recipe(in:)`, which then keeps it) so that the batches a run of
    /// `o` draws at step `step` are a loss spike: their windows hold nothing but "~", a character the rest of the
    /// text never has, which the model has learned is never the next one. Nothing else in the run knows: this is
    /// how tests of a separate `gpt-train` process (or an `mpirun` job) make a spike, as real ones mostly come from
    /// bad data. The windows are those of the run's batch sampler (nanoGPT's `get_batch`: uniform offsets from
    /// the seed's generator, stream 2, `micro_batch × grad_accum × devices` windows a step); no other window of the
    /// first `o.steps + 10` steps may touch them, so that no other step sees a "~" (checked: `step` must be chosen
    /// so, else this throws). A run that passes over the batches (a rollback) does not meet them again.
    public static func spikeData(in directory: String, _ o: Options, atStep step: Int, bytes: Int = 200_000) throws {
        var text = Array(Fixtures.text(bytes: bytes).utf8)
        precondition(o.tokenizer == "char" && !text.contains(UInt8(ascii: "~")))
        let train = Int(Double(text.count) * (1 - 0.1))   // the fixture recipe's val_fraction
        var rng = Xoshiro256(seed: UInt64(o.seed), stream: 2)
        let perStep = o.microBatch * o.gradAccum * o.devices
        let starts = (0..<((o.steps + 10) * perStep)).map { _ in Int(rng.next(below: UInt64(train - o.seqLen))) }
        let spiked = Array(starts[((step - 1) * perStep)..<(step * perStep)])
        for (index, start) in starts.enumerated() where index / perStep != step - 1 {
            for s in spiked where abs(start - s) <= o.seqLen {
                throw FixtureError("window \(index) at \(start) overlaps the spike's window at \(s): choose another step or seed")
            }
        }
        for s in spiked {
            for i in s...(s + o.seqLen) { text[i] = UInt8(ascii: "~") }
        }
        try Data(text).write(to: URL(fileURLWithPath: (directory as NSString).appendingPathComponent(o.dataPath)))
    }

    public struct FixtureError: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }
}
